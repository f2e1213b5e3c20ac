"""The Anima process: ``python -m orgctl.runtime.anima --name N --state-dir S``.

Started by the supervisor, one per Anima. It:

1. connects to the supervisor (``hello``) and keeps that connection; EOF on
   it means the supervisor died, and the Anima exits;
2. wakes every ``heartbeat_interval`` seconds (first wake one interval after
   start, offset by a per-name fraction so Animas don't all wake at once);
3. outside its active hours it rests (reports ``resting``, runs nothing);
   inside, it runs one agent cycle and reports the heartbeat;
4. SIGHUP re-reads the spec snapshot (in-place change), SIGTERM stops it.

Lean on purpose (ROADMAP: <= 25 MB per idle Anima): no litellm, no
chromadb; model calls go to the supervisor's gateway over the socket.
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

from orgctl.errors import OrgctlError
from orgctl.llm.requests import CompletionRequest, CompletionResult
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths
from orgctl.processes import die_with_parent
from orgctl.runtime import protocol
from orgctl.runtime.cycle import run_cycle
from orgctl.state.snapshots import Snapshot, read_snapshot


class SupervisorModel:
    """A :class:`~orgctl.llm.requests.ModelClient` that asks the supervisor's gateway."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def complete(self, request: CompletionRequest) -> CompletionResult:
        reply = protocol.request(self.socket_path, "complete", timeout=600.0,
                                 request=request.model_dump(mode="json", by_alias=True))
        return CompletionResult.model_validate(reply["result"])


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


class AnimaProcess:
    """The heartbeat loop of one Anima. See the module docstring."""

    def __init__(self, *, name: str, paths: StatePaths) -> None:
        self.name = name
        self.paths = paths
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        self.snapshot: Snapshot = read_snapshot(paths.spec_snapshot(name))
        self.model = SupervisorModel(paths.socket)

    # signals only set flags and wake the loop
    def _on_term(self, signum: int, frame: Any) -> None:
        self.stopping = True
        self.wake.set()

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reload_requested = True
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
        protocol.send(conn, {"op": "hello", "name": self.name, "pid": os.getpid()})
        reader = conn.makefile("rb")
        reply = protocol.recv(reader)
        if not reply or not reply.get("ok"):
            raise SystemExit(f"supervisor refused hello: {reply}")
        threading.Thread(target=self._watch_supervisor, args=(conn,), daemon=True).start()

    def report(self, *, state: str, ran_cycle: bool) -> None:
        protocol.request(self.paths.socket, "heartbeat", name=self.name, state=state, ran_cycle=ran_cycle)

    def beat(self) -> None:
        spec = self.snapshot.spec
        now = datetime.now(ZoneInfo(spec.timezone))
        if not in_active_hours(spec.active_hours, now):
            self.report(state="resting", ran_cycle=False)
            return
        store = MemoryStore(Path(self.snapshot.memory_dir), anima=self.name)
        try:
            episode = run_cycle(spec=spec, store=store, client=self.model, now=now,
                                revision=self.snapshot.revision)
        except OrgctlError as e:
            print(f"{self.name}: heartbeat failed: {e.message}", file=sys.stderr)
            self.report(state="running", ran_cycle=False)
            return
        print(f"{self.name}: heartbeat done in {episode.duration_s:.1f}s "
              f"({episode.usage.total_tokens} tokens)", file=sys.stderr)
        self.report(state="running", ran_cycle=True)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.connect()
        interval = float(self.snapshot.spec.heartbeat_interval)
        next_beat = time.monotonic() + interval + first_wake_offset(self.name, interval)
        print(f"{self.name}: up (pid {os.getpid()}), heartbeat every {interval:.0f}s, "
              f"first in {next_beat - time.monotonic():.1f}s", file=sys.stderr)
        while not self.stopping:
            self.wake.wait(max(0.0, next_beat - time.monotonic()))
            self.wake.clear()
            if self.stopping:
                break
            if self.reload_requested:
                self.reload_requested = False
                self.snapshot = read_snapshot(self.paths.spec_snapshot(self.name))
                print(f"{self.name}: reloaded spec at {self.snapshot.revision}", file=sys.stderr)
            if time.monotonic() >= next_beat:
                self.beat()
                next_beat = max(next_beat + interval, time.monotonic() + 1.0)
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

