"""The Anima process: ``python -m orgctl.runtime.anima --name N --state-dir S``.

Started by the supervisor, one per Anima. It:

1. connects to the supervisor (``hello``) and keeps that connection; EOF on
   it means the supervisor died, and the Anima exits;
2. on first boot introduces itself on the Board (#general) and records a
   survey of its place in the org (no model call);
3. wakes every ``heartbeat_interval`` seconds (offset per name so Animas do
   not all wake at once), and at once on SIGUSR1, which the supervisor sends
   when a DM, an @mention, a task or an approval arrives: a wake during a
   cycle is handled right after it;
4. runs a heartbeat (:mod:`orgctl.runtime.cycle`), then more cycles while a
   decision is still pending (bounded), and hands in-progress tasks to the
   task runner (:mod:`orgctl.runtime.tasking`); fires cron tasks on time;
5. outside its active hours it rests; SIGHUP re-reads the spec snapshot;
   SIGTERM stops it.

Lean on purpose: no litellm, no chromadb; model calls, memory search and notifications go to the
supervisor's services over its socket (:meth:`orgctl.runtime.services.Services.over_socket`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths
from orgctl.processes import die_with_parent
from orgctl.runtime import protocol
from orgctl.runtime.cycle import Agent, Trace
from orgctl.runtime.organization import Organization
from orgctl.runtime.permissions import Policy
from orgctl.runtime.scheduling import CronSchedule, fire
from orgctl.runtime.services import Services
from orgctl.runtime.tasking import TaskRunner
from orgctl.state.files import write_json
from orgctl.state.snapshots import Snapshot, read_snapshot

MAX_CYCLES_PER_WAKE = 5


def in_active_hours(active_hours: str, now: datetime) -> bool:
    """True when local time ``now`` falls in ``"HH:MM-HH:MM"`` (may wrap midnight) or ``"always"``."""
    if active_hours == "always":
        return True
    start, end = active_hours.split("-")
    t = now.strftime("%H:%M")
    if start < end:
        return start <= t < end
    return t >= start or t < end


def first_wake_offset(name: str, interval: float) -> float:
    """A stable per-name offset in [0, interval/4) seconds (AnimaWorks spreads Animas the same way)."""
    frac = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return frac * interval / 4


def first_boot(agent: Agent, *, now: datetime) -> bool:
    """Introduce the Anima on #general and record a survey of its environment (no model call), once per
    Anima: a marker in the work in flight (``cursors/<name>.booted.json``) says it was done. True when it
    ran now."""
    marker = agent.org.work.cursors / f"{agent.name}.booted.json"
    if marker.exists():
        return False
    spec = agent.spec
    first = next((ln.strip() for ln in spec.identity.splitlines() if ln.strip() and not ln.startswith("#")), "")
    sup = f"I report to {spec.org.supervisor}." if spec.org.supervisor else "I lead this organization."
    agent.org.post("general", f"Hello, I am {agent.name}, the {spec.role}. {sup} {first[:160]}".strip(),
                   sender=agent.name)
    trace = Trace(trigger="first boot", at=now)
    trace.observed.append(f"org chart: supervisor {spec.org.supervisor or 'none'}, reports "
                          f"{', '.join(spec.org.reports) or 'none'}, peers {', '.join(spec.org.peers) or 'none'}")
    trace.observed.append(f"tools: {', '.join(spec.permissions.tools) or 'none'}; commands: "
                          f"{', '.join(r.command for r in agent.policy.runnable()) or 'none'}")
    trace.did.append("introduced myself in #general")
    agent.remember(trace)
    write_json(marker, {"at": now.isoformat(timespec="seconds")})
    return True


class AnimaProcess:
    """The loop of one Anima. See the module docstring."""

    def __init__(self, *, name: str, paths: StatePaths) -> None:
        self.name = name
        self.paths = paths
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        self.woken = False
        self.snapshot: Snapshot = read_snapshot(paths.spec_snapshot(name))
        self._parts: tuple[Snapshot, Policy, MemoryStore] | None = None
        self._hash: tuple[Snapshot, str] | None = None
        # The supervisor hosts the services (model gateway, memory, notifier, memory commits); this process
        # holds no model library and no key, and reaches them over the socket.
        self.services = Services.over_socket(paths)
        self.model = self.services.model
        self.recall = self.services.memory
        self.org = Organization(paths=paths, wake=self.services.wake, notifier=self.services.notifier)
        self.runner = TaskRunner(self.agent, now=self.now)
        self.runner.on_done = lambda task_id: self._poke()
        self.cron = CronSchedule(self.snapshot.spec.cron, now=self.now())

    def now(self) -> datetime:
        return datetime.now(ZoneInfo(self.snapshot.spec.timezone))

    def agent(self) -> Agent:
        """An :class:`Agent` for the current snapshot; its policy and store are built once per snapshot.

        A policy never changes while its spec does not, and it caches what it derives (the runnable
        commands cost milliseconds of parsing per task cycle); a reload replaces the snapshot.
        """
        snapshot = self.snapshot
        if self._parts is None or self._parts[0] is not snapshot:
            workspace = self.paths.workspace(self.name)
            memory = Path(snapshot.memory_dir)
            store = (self._parts[2] if self._parts is not None and self._parts[2].root == memory  # keeps its backlog
                     else MemoryStore(memory, anima=self.name, lock=self.paths.memory_lock(self.name),
                                      holder=f"anima {self.name} (pid {os.getpid()})"))
            policy = Policy(snapshot.spec.permissions, workspace=workspace, sandbox=snapshot.spec.sandbox)
            self._parts = (snapshot, policy, store)
        _, policy, store = self._parts
        return Agent(spec=snapshot.spec, org=self.org, client=self.model, store=store, policy=policy,
                     revision=snapshot.revision, recall=self.recall)

    # signals only set flags and wake the loop
    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True
        self.wake.set()

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reload_requested = True
        self.wake.set()

    def _on_usr1(self, signum: int, frame: Any) -> None:
        self._poke()

    def _poke(self) -> None:
        self.woken = True
        self.wake.set()

    def _watch_supervisor(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while reader.readline():
                pass
        self.stopping = True
        self.wake.set()

    def connect(self) -> None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(self.paths.socket))
        protocol.send(conn, {"op": "hello", "name": self.name, "pid": os.getpid(), "spec_hash": self.spec_hash()})
        reader = conn.makefile("rb")
        reply = protocol.recv(reader)
        if not reply or not reply.get("ok"):
            raise SystemExit(f"supervisor refused hello: {reply}")
        threading.Thread(target=self._watch_supervisor, args=(conn,), daemon=True).start()

    def spec_hash(self) -> str:
        """The hash of the spec this process runs (computed once per snapshot), reported to the supervisor
        so that a snapshot changed behind orgctl's back shows as drift."""
        if self._hash is None or self._hash[0] is not self.snapshot:
            self._hash = (self.snapshot, self.snapshot.spec.spec_hash())
        return self._hash[1]

    def report(self, *, state: str, ran_cycle: bool) -> None:
        protocol.request(self.paths.socket, "heartbeat", name=self.name, state=state, ran_cycle=ran_cycle,
                         spec_hash=self.spec_hash())

    def first_boot(self) -> None:
        first_boot(self.agent(), now=self.now())

    def cycles(self, trigger: str) -> bool:
        """Heartbeat, then more cycles while a decision is pending. Returns True when one ran."""
        spec = self.snapshot.spec
        now = self.now()
        if not in_active_hours(spec.active_hours, now):
            self.report(state="resting", ran_cycle=False)
            return False
        agent = self.agent()
        ran = False
        for fired in self.cron.due(now):
            print(f"{self.name}: {fire(agent, fired)}", file=sys.stderr)
        for _ in range(MAX_CYCLES_PER_WAKE):
            started = time.monotonic()
            trace = agent.heartbeat(now=self.now(), trigger=trigger)
            # A due heartbeat counts even when idle; an idle wake-up does not; a failed cycle never does.
            ran = ran or (not trace.failed and (trigger == "heartbeat" or not trace.empty))
            if not trace.empty:
                print(f"{self.name}: {trigger} in {time.monotonic() - started:.1f}s, "
                      f"{trace.usage.calls} calls{' FAILED: ' + trace.failed if trace.failed else ''}",
                      file=sys.stderr)
            if trace.failed or not agent.pending_focus():
                break
            trigger = "follow-up"
        self.runner.poll()
        self.report(state="running", ran_cycle=ran)
        return ran

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        self.connect()
        self.first_boot()
        interval = float(self.snapshot.spec.heartbeat_interval)
        next_beat = time.monotonic() + interval + first_wake_offset(self.name, interval)
        print(f"{self.name}: up (pid {os.getpid()}), heartbeat every {interval:.0f}s, "
              f"first in {next_beat - time.monotonic():.1f}s", file=sys.stderr)
        self._poke()  # work may have arrived while it was down
        while not self.stopping:
            wait = next_beat - time.monotonic()
            cron_wait = self.cron.seconds_until_next(self.now())
            if cron_wait is not None:
                wait = min(wait, cron_wait + 0.5)
            self.wake.wait(max(0.0, wait))
            self.wake.clear()
            if self.stopping:
                break
            if self.reload_requested:
                self.reload_requested = False
                self.snapshot = read_snapshot(self.paths.spec_snapshot(self.name))
                self.org.reload()
                self.cron = CronSchedule(self.snapshot.spec.cron, now=self.now())
                print(f"{self.name}: reloaded spec at {self.snapshot.revision}", file=sys.stderr)
                awake = in_active_hours(self.snapshot.spec.active_hours, self.now())
                self.report(state="running" if awake else "resting", ran_cycle=False)  # the new spec hash, now
            if self.woken:
                self.woken = False
                self.cycles("message")
            if time.monotonic() >= next_beat:
                self.cycles("heartbeat")
                # Over a soft spend limit the beat slows to half the rate; at a hard one to a quarter
                # (it still observes, and a beat with nothing to decide costs nothing).
                slowdown = {"soft": 2.0, "hard": 4.0}.get(self.model.budget, 1.0)
                next_beat = max(next_beat + interval * slowdown, time.monotonic() + 1.0)
            elif self.cron.seconds_until_next(self.now()) == 0.0:
                self.cycles("cron")
        self.runner.shutdown()
        print(f"{self.name}: stopping", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orgctl.runtime.anima")
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    die_with_parent()
    AnimaProcess(name=args.name, paths=StatePaths(root=args.state_dir.resolve())).run()


if __name__ == "__main__":
    main()
