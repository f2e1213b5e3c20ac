"""The supervisor: one daemon per org that runs one child process per Anima.

Started (detached) by :mod:`orgctl.runtime.local` on the first ``apply``.
It does only what it is told over its Unix socket (start, stop, restart,
reload, status, shutdown): desired state lives in git and in ``apply``, not
here. What it adds is supervision: a crashed Anima is restarted after an
exponential backoff (1 s, 2 s, 4 s ... capped at 30 s; reset after 60 s of
stable running), as Erlang/OTP supervisors and systemd's ``Restart=`` do.

It is also the host of the org's services (:mod:`orgctl.runtime.services`):
it builds the in-process ones once (model gateway, memory, notifier, memory
commits) and serves them on its socket through a typed dispatch table
(:data:`OPS`), so Anima processes never import model libraries or hold keys.
Its periodic jobs (memory batches, the memory-pass schedule, the overdue and
health sweep, the embedding model's keep-alive) run on one
``schedule.Scheduler`` (:func:`periodic_jobs`).

Its status (pids, restarts, last heartbeat) goes to ``runtime.json``, which
only the supervisor writes.

Concurrency: every change to the children and their state happens under one
lock (``_lock``); ending a process (up to 10 s) happens outside it, after the
child has been detached (not wanted, no restart pending), so no supervision
pass can respawn it meanwhile. Start, stop and restart of one Anima are
serialized by a lock of its own, so two of them never interleave.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from orgctl.errors import BudgetExceeded, ModelError, OrgctlError, StateError
from orgctl.llm.requests import CompletionRequest
from orgctl.pacing import backoff
from orgctl.paths import StatePaths, private_dir
from orgctl.processes import keyless_env, start_ticks
from orgctl.runtime import protocol
from orgctl.runtime.forkserver import ForkServer
from orgctl.runtime.services import Services
from orgctl.state.files import open_log, read_json, write_json
from orgctl.state.inventories import now_iso
from orgctl.state.runtimes import ProcessStatus, RuntimeStatus, save_runtime
from orgctl.state.snapshots import applied_names, read_snapshot, unknown_anima

log = logging.getLogger("orgctl.supervisor")

BACKOFF_BASE = 1.0  # seconds
BACKOFF_CAP = 30.0  # seconds
STABLE_AFTER = 60.0  # seconds of running that reset the backoff
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
SWEEP_EVERY = 30.0  # seconds between overdue-task sweeps
SPAWN_ENV = "ORGCTL_SPAWN"  # "fork" (default: from the fork server) or "exec" (a fresh interpreter per Anima)


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restart number ``failures`` (1-based): 1, 2, 4 ... capped at 30."""
    return backoff(failures, base=BACKOFF_BASE, cap=BACKOFF_CAP)


class _Child:
    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.wanted = False
        self.failures = 0
        self.restart_at: float | None = None
        self.started_mono = 0.0
        self.status = ProcessStatus(name=name, state="stopped")
        self.interval = 1800.0  # its heartbeat interval (s), read from its snapshot when spawned
        self.health = "Healthy"  # as last reported in an event


class Supervisor:
    """Owns the Anima child processes of one org. Thread-safe; see module docstring."""

    def __init__(self, *, paths: StatePaths, org_dir: Path) -> None:
        self.paths = paths
        self._start_ticks = start_ticks(os.getpid())
        self.org_dir = org_dir
        self._children: dict[str, _Child] = {}
        self._lock = threading.RLock()  # every change of _children and of a child's state
        self._lifecycles: dict[str, threading.Lock] = {}
        self._stopping = threading.Event()
        # The org's services live here, in-process, once per org; Animas reach them over the socket.
        self.services = Services.local(paths, wake=self.wake)
        self._workflow_org: Any = None  # the Organization drive_workflows folds the runs with, kept between passes
        self._phase_workers: Any = None  # standalone agents' phase processes (runtime.standalone.PhaseWorkers)
        # Animas are forked from one preloaded process (shared memory), unless ORGCTL_SPAWN=exec asks for a
        # fresh interpreter each (the fork server's only alternative, kept for debugging).
        self._forks = ForkServer(paths.root) if os.environ.get(SPAWN_ENV, "fork") != "exec" else None

    # ------------------------------------------------------------ children

    def _spawn(self, child: _Child) -> None:
        log_path = self.paths.logs / f"{child.name}.log"
        with open_log(log_path) as out:  # rotated here, before the child appends to it
            if self._forks is not None:
                child.proc = self._forks.spawn(child.name, log_path)  # type: ignore[assignment]
            else:
                child.proc = subprocess.Popen(
                    [sys.executable, "-m", "orgctl.runtime.anima", "--name", child.name,
                     "--state-dir", str(self.paths.root)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=keyless_env(state_root=self.paths.root),  # no keys: the gateway and notifiers live here
                )
        child.started_mono = time.monotonic()
        child.restart_at = None
        child.status.state = "starting"
        child.status.pid = child.proc.pid
        child.status.start_ticks = start_ticks(child.proc.pid)
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, StateError):
            snapshot = read_json(self.paths.spec_snapshot(child.name)) or {}
            child.interval = float(snapshot["spec"]["heartbeat_interval"])
        child.status.started_at = now_iso()
        log.info("started %s (pid %s)", child.name, child.proc.pid)

    def _detach(self, child: _Child) -> subprocess.Popen[bytes] | None:
        """Mark ``child`` stopped and not wanted, with no restart pending; returns its process to end.

        Caller holds ``_lock``: after this, no supervision pass will respawn it, and the process is
        ended outside the lock (:meth:`_end`), which can take :data:`STOP_GRACE` seconds.
        """
        proc, child.proc = child.proc, None
        child.wanted = False
        child.restart_at = None
        child.status.state = "stopped"
        child.status.pid = None
        return proc

    @staticmethod
    def _end(proc: subprocess.Popen[bytes] | None) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds; waits for the exit."""
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _lifecycle(self, name: str) -> threading.Lock:
        """The lock that serializes start, stop and restart of one Anima (others are not blocked)."""
        with self._lock:
            return self._lifecycles.setdefault(name, threading.Lock())

    def start(self, name: str, *, fresh: bool = False) -> None:
        """Run ``name`` (no-op when it already runs). ``fresh`` resets its restart count."""
        with self._lifecycle(name):
            self._start(name, fresh=fresh)
        self._check_sandbox(name)

    def _check_sandbox(self, name: str) -> None:
        """A Warning event (``SandboxUnavailable``) when ``name`` may run commands but no sandbox can start
        here: its commands will be refused (each says so again). Probed here, once per org, so that an idle
        Anima process never pays for the probe."""
        from orgctl.runtime import sandboxing
        from orgctl.state.events import emit

        try:
            spec = read_snapshot(self.paths.spec_snapshot(name)).spec
        except Exception:  # no readable snapshot: the Anima's own start reports that
            return
        if "run_command" not in spec.permissions.tools or spec.sandbox.mode == "off":
            return
        kernel = sandboxing.probe(sandboxing._find_bwrap())
        if kernel.error:
            emit(self.paths.work.events, reason="SandboxUnavailable", object=f"anima/{name}", anima=name,
                 type="Warning", message=f"{name}'s commands will be refused: no usable sandbox: {kernel.error} "
                                         "(or set `sandbox: off` in org.yaml, loudly)")

    def _start(self, name: str, *, fresh: bool) -> None:
        with self._lock:
            child = self._children.setdefault(name, _Child(name))
            child.wanted = True
            if fresh:
                child.failures = 0
                child.status.restarts = 0
            if child.proc is None or child.proc.poll() is not None:
                child.restart_at = None
                self._spawn(child)
            self._save()

    def stop(self, name: str) -> None:
        """Stop ``name`` and forget it (SIGTERM, then SIGKILL after 10 s)."""
        with self._lifecycle(name):
            with self._lock:
                child = self._children.pop(name, None)
                proc = self._detach(child) if child is not None else None
                self._save()
            self._end(proc)

    def restart(self, name: str) -> None:
        """A planned restart (new spec): stop, then start with a fresh restart count."""
        with self._lifecycle(name):
            with self._lock:
                child = self._children.get(name)
                proc = self._detach(child) if child is not None else None
            self._end(proc)
            self._start(name, fresh=True)

    def reload(self, name: str) -> None:
        """Make ``name`` re-read its spec snapshot, for in-place changes. Raises StateError when not supervised.

        A running child gets SIGHUP. A child in backoff reads the new snapshot
        when it is respawned, so nothing is needed; a child still starting may
        not have its SIGHUP handler yet (SIGHUP would kill it) and may have
        read the old snapshot, so it is respawned.
        """
        with self._lock:
            child = self._children.get(name)
            if child is None:
                raise StateError(f"{name} is not supervised", hint="`orgctl apply` starts it")
            if child.proc is None or child.proc.poll() is not None:
                return
            if child.status.state in ("running", "resting"):
                child.proc.send_signal(signal.SIGHUP)
                return
        self.restart(name)

    def _check_children(self) -> None:
        """One supervision pass: notice exits, schedule and perform restarts."""
        now = time.monotonic()
        with self._lock:
            changed = False
            for child in self._children.values():
                proc = child.proc
                if proc is not None and proc.poll() is not None and child.wanted:
                    ran = now - child.started_mono
                    child.failures = 1 if ran >= STABLE_AFTER else child.failures + 1
                    delay = backoff_delay(child.failures)
                    child.status.last_exit_code = proc.returncode
                    child.status.state = "backoff"
                    child.status.pid = None
                    child.status.backoff_seconds = delay
                    child.proc = None
                    child.restart_at = now + delay
                    log.warning("%s exited with %s after %.1fs; restarting in %.0fs",
                                child.name, proc.returncode, ran, delay)
                    changed = True
                elif child.wanted and child.proc is None and child.restart_at is not None and now >= child.restart_at:
                    child.status.restarts += 1
                    self._spawn(child)
                    changed = True
            if changed:  # a crash loop shows as soon as a child enters backoff
                self._save()
                self._check_health()

    def _check_health(self) -> None:
        """A Warning event when an Anima turns Degraded (a crash loop, or no heartbeat for twice its
        interval), with the reason and its log's last lines; a Normal one when it recovers. Caller holds
        the lock."""
        from orgctl.state.events import emit
        from orgctl.state.observing import assess, log_tail

        now = datetime.now(UTC)
        for child in self._children.values():
            health, reason = assess(child.status.model_dump(), interval=child.interval, now=now)
            if health == "Degraded" and child.health != "Degraded":
                tail = log_tail(self.paths, child.name)
                emit(self.paths.work.events, reason="AnimaDegraded", object=f"anima/{child.name}", anima=child.name,
                     type="Warning", message=reason + (f"; log: {tail}" if tail else ""))
            elif health == "Healthy" and child.health == "Degraded":
                emit(self.paths.work.events, reason="AnimaRecovered", object=f"anima/{child.name}", anima=child.name,
                     message=f"{child.name} is healthy again")
            if health in ("Healthy", "Degraded"):
                child.health = health

    def monitor(self) -> None:
        """Run supervision passes every 0.2 s until shutdown (the periodic jobs run on their own thread)."""
        while not self._stopping.wait(0.2):
            try:
                self._check_children()
            except Exception:  # keep supervising whatever one pass hit
                log.exception("supervision pass failed")

    def sweep(self) -> None:
        """The overdue sweep, then missed heartbeats and recoveries (every 30 s, not every 0.2 s pass)."""
        self.sweep_overdue()
        with self._lock:
            self._check_health()

    def run_periodic(self, jobs: Any) -> None:
        """Run the due jobs of ``jobs`` (a ``schedule.Scheduler``) every second until shutdown; a failing job
        is logged and runs again at its next time."""
        while not self._stopping.wait(1.0):
            for job in [j for j in jobs.jobs if j.should_run]:
                try:
                    job.run()
                except Exception:  # one failing job must not stop the others
                    log.exception("periodic job %s failed", job)
                    job._schedule_next_run()

    # ------------------------------------------------------------ periodic jobs

    def memory_schedule(self) -> Callable[[], None]:
        """The check of ``memory.schedule`` (org.yaml, each Anima's time zone) that :func:`periodic_jobs` runs
        every minute: it starts the passes due since the last check on a thread of their own (a pass can take
        minutes; the other jobs go on), one at a time. A pass missed while the org was down is not run late
        (the next one covers it; ``orgctl consolidate --date`` runs a past day). A failure is a Warning event."""
        from zoneinfo import ZoneInfo

        from orgctl.memory.passes import due_passes
        from orgctl.state.events import emit

        last: dict[str, datetime] = {}
        running = threading.Lock()

        def run(due: list[tuple[str, str]]) -> None:
            with running:
                for name, kind in due:
                    try:
                        self.services.commits.run_pass(kind, names=[name])
                    except OrgctlError as e:
                        emit(self.paths.work.events, reason="MemoryPassFailed", object=f"anima/{name}",
                             type="Warning", message=f"the scheduled {kind} pass of {name} failed: {e.message}")
                    except Exception:  # keep the schedule whatever one pass hit
                        log.exception("scheduled %s pass of %s failed", kind, name)

        def check() -> None:
            due = []
            for name in applied_names(self.paths):
                try:
                    spec = read_snapshot(self.paths.spec_snapshot(name)).spec
                except OrgctlError:
                    continue
                now = datetime.now(ZoneInfo(spec.timezone))
                since = last.get(name, now)
                last[name] = now
                due += [(name, kind) for kind in due_passes(spec.memory.schedule, since=since, until=now)]
            if due:
                threading.Thread(target=run, args=(due,), name="memory-pass", daemon=True).start()

        return check

    def unload_idle_model(self, keep: float) -> None:
        """Unload the memory service's embedding model once it has gone ``keep`` seconds unused (see
        :func:`orgctl.memory.embedding.keep_alive`). A quiet org's supervisor gives 180-350 MB back
        (bench/idle_memory.py); the next search loads the model again (~0.7 s)."""
        if self.services.memory.release_idle(keep):  # type: ignore[attr-defined]
            log.info("embedding model unloaded after %.0f s unused", keep)

    def commit_memory(self) -> None:
        """One memory batch (:meth:`orgctl.runtime.services.LocalCommits.commit`), pushed."""
        self.services.commits.commit()

    # ------------------------------------------------------------ reports from Animas

    def hello(self, name: str, pid: int, *, spec_hash: str | None = None) -> bool:
        """An Anima process connected; ``spec_hash`` is the hash of the spec it loaded."""
        with self._lock:
            child = self._children.get(name)
            if child is None or child.status.pid != pid:
                return False
            child.status.state = "running"
            child.status.spec_hash = spec_hash
            self._save()
            return True

    def heartbeat(self, name: str, *, state: str, ran_cycle: bool, spec_hash: str | None = None) -> None:
        """A beat (or a rest) of ``name``; ``spec_hash`` is what it runs now (it changes on a reload)."""
        with self._lock:
            child = self._children.get(name)
            if child is None:
                return
            child.status.state = "resting" if state == "resting" else "running"
            if spec_hash:
                child.status.spec_hash = spec_hash
            if ran_cycle:
                child.status.heartbeats += 1
                child.status.last_heartbeat = now_iso()
            self._save()

    def wake(self, name: str) -> bool:
        """Signal ``name`` (SIGUSR1) to run a cycle now. Only once it has said hello: before that it has
        no handler (the signal would kill it), and it runs a cycle at start anyway."""
        with self._lock:
            child = self._children.get(name)
            if child is None or child.proc is None or child.proc.poll() is not None:
                return False
            if child.status.state not in ("running", "resting"):
                return False
            child.proc.send_signal(signal.SIGUSR1)
            return True

    def drive_workflows(self) -> None:
        """Advance every active workflow run (repairs a transition a killed process left half done, starts
        queued runs), run standalone agents' phases in processes of their own
        (:class:`~orgctl.runtime.standalone.PhaseWorkers`), and commit the record of each finished run to its
        Animas' memory (one commit per run)."""
        from orgctl.runtime.organization import Organization
        from orgctl.runtime.services import LocalCommits
        from orgctl.runtime.standalone import PhaseWorkers
        from orgctl.runtime.workflows import Engine

        if self._workflow_org is None:
            self._workflow_org = Organization(paths=self.paths, wake=self.wake)
        org = self._workflow_org
        if not org.runs.root.is_dir() or self._stopping.is_set():
            return
        Engine(org, org.runs).reconcile()
        with self._lock:
            if self._phase_workers is None:
                self._phase_workers = PhaseWorkers(self.paths)
            workers = self._phase_workers
        workers.reconcile(org)
        if isinstance(self.services.commits, LocalCommits):
            self.services.commits.record_runs()

    def sweep_overdue(self) -> None:
        """Delegated tasks past their deadline with no update go back to the delegator as overdue,
        then up the chain to the delegator's supervisor if still ignored."""
        from orgctl.runtime.escalating import escalate_overdue

        for name in escalate_overdue(self.paths):
            self.wake(name)

    # ------------------------------------------------------------ status and shutdown

    def _save(self) -> None:
        server = self.services.model.server_info()
        save_runtime(self.paths.runtime, RuntimeStatus(
            supervisor_pid=os.getpid(), supervisor_start_ticks=self._start_ticks, state_root=str(self.paths.root),
            updated_at=now_iso(), model_server=server,
            animas={n: c.status for n, c in sorted(self._children.items())}))

    def status(self) -> dict[str, Any]:
        with self._lock:
            self._save()
            return {n: c.status.model_dump(mode="json") for n, c in self._children.items()}

    def shutdown(self) -> None:
        """Stop every child, then the model server. Idempotent."""
        self._stopping.set()
        with self._lock:
            procs = [self._detach(c) for c in self._children.values()]
            workers, self._phase_workers = self._phase_workers, None
        if workers is not None:
            workers.stop_all(STOP_GRACE)
        threads = [threading.Thread(target=self._end, args=(p,)) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:  # what the Animas wrote last; pushed by the next batch or `orgctl pull`, so `down` stays fast
            self.services.commits.commit(push=False)
        except Exception:
            log.exception("last memory batch failed")
        self.services.close()
        if self._forks is not None:
            self._forks.close()
        with self._lock:
            self._children.clear()
            self._save()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        sup = self.server.supervisor
        try:
            msg = protocol.recv(self.rfile)
        except ValueError as e:
            protocol.send(self.request, {"ok": False, "error": f"bad request: {e}"})
            return
        if msg is None:
            return
        op = msg.get("op")
        try:
            reply = self._dispatch(sup, op, msg)
        except Exception as e:  # reported to the caller, who raises RuntimeFailure
            log.exception("op %s failed", op)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        try:
            protocol.send(self.request, reply)
        except OSError:
            return
        if op == "hello" and reply.get("ok"):
            # Hold the connection: the Anima reads EOF when the supervisor dies.
            while self.rfile.readline():
                pass
        if op == "shutdown":
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def _dispatch(self, sup: Supervisor, op: Any, msg: dict[str, Any]) -> dict[str, Any]:
        entry = OPS.get(op) if isinstance(op, str) else None
        if entry is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        kind, handler = entry
        try:
            request = kind.model_validate(msg)
        except ValidationError as e:
            return {"ok": False, "error": f"bad {op!r} request: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"}
        for name in [getattr(request, "name", None), *(getattr(request, "names", None) or [])]:
            if name is not None and (problem := unknown_anima(sup.paths, name)):
                return {"ok": False, "error": problem}
        try:
            return {"ok": True, **handler(sup, request)}
        except OrgctlError as e:  # the caller raises it again, with its hint
            return {"ok": False, "error": e.message, "hint": e.hint}


# ---------------------------------------------------------------- the typed dispatch table


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Named(_Request):
    name: str


class _Hello(_Named):
    pid: int
    spec_hash: str | None = None


class _Beat(_Named):
    state: str = "running"
    ran_cycle: bool = True
    spec_hash: str | None = None


class _Complete(_Request):
    request: CompletionRequest


class _Search(_Named):
    query: str = ""
    k: int = 10
    kinds: list[str] | None = None
    lexical: bool = False
    record: bool = True


class _Similarity(_Named):
    query: str = ""
    texts: list[str] = []


class _Prime(_Named):
    trigger: str = "message"
    sender: str = ""
    text: str = ""
    model: str = ""


class _Commit(_Request):
    push: bool = True


class _Pass(_Request):
    kind: str
    names: list[str] | None = None
    day: str | None = None
    dry_run: bool = False


class _CallHuman(_Named):
    message: str
    title: str = ""
    context_url: str | None = None


def _complete(sup: Supervisor, r: _Complete) -> dict[str, Any]:
    try:
        result = sup.services.model.complete(r.request)
    except ModelError as e:  # the Anima raises it again: a failed heartbeat, not a crash
        return {"model_error": {"message": e.message, "hint": e.hint, "budget": isinstance(e, BudgetExceeded)}}
    return {"result": result.model_dump(mode="json")}


def _hello(sup: Supervisor, r: _Hello) -> dict[str, Any]:
    if not sup.hello(r.name, r.pid, spec_hash=r.spec_hash):
        raise StateError("unknown Anima or pid")
    return {}


def _lifecycle(op: str) -> Callable[[Supervisor, _Named], dict[str, Any]]:
    return lambda sup, r: getattr(sup, op)(r.name) or {}


OPS: dict[str, tuple[type[_Request], Callable[[Supervisor, Any], dict[str, Any]]]] = {
    "ping": (_Request, lambda sup, r: {"pid": os.getpid()}),
    **{op: (_Named, _lifecycle(op)) for op in ("start", "stop", "restart", "reload")},
    "status": (_Request, lambda sup, r: {"animas": sup.status()}),
    "wake": (_Named, lambda sup, r: {"woken": sup.wake(r.name)}),
    "hello": (_Hello, _hello),
    "heartbeat": (_Beat, lambda sup, r: sup.heartbeat(r.name, state=r.state, ran_cycle=r.ran_cycle,
                                                      spec_hash=r.spec_hash) or {}),
    "complete": (_Complete, _complete),
    "commit_memory": (_Commit, lambda sup, r: sup.services.commits.commit(push=r.push).as_json()),
    "search_memory": (_Search, lambda sup, r: {"results": sup.services.memory.search(
        r.name, r.query, k=r.k, kinds=r.kinds, lexical=r.lexical, record=r.record)}),
    "prime": (_Prime, lambda sup, r: {"block": sup.services.memory.prime(
        r.name, trigger=r.trigger, sender=r.sender, text=r.text, model=r.model)}),
    "memory_reindex": (_Named, lambda sup, r: {"items": sup.services.memory.reindex(r.name)}),
    "similarity": (_Similarity, lambda sup, r: {"scores": sup.services.memory.similarity(
        r.name, r.query[:1000], [str(t)[:500] for t in r.texts[:50]])}),
    "memory_pass": (_Pass, lambda sup, r: {"results": sup.services.commits.run_pass(
        r.kind, names=r.names, day=r.day, dry_run=r.dry_run)}),
    "call_human": (_CallHuman, lambda sup, r: {"deliveries": sup.services.notifier.call_human(
        r.name, r.message, title=r.title, context_url=r.context_url)}),
    "shutdown": (_Request, lambda sup, r: sup.shutdown() or {}),
}
"""Every op the control socket answers: its request model (validated; unknown fields ignored) and its handler,
which returns the reply's fields. A request naming an Anima that is not applied is refused before its handler."""


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``: pid, uid, gid)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The control socket: mode 0600 in a private directory, and only this user's processes are served."""

    daemon_threads = True

    def __init__(self, path: Path, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        old = os.umask(0o177)  # the socket is created 0600: no window in which others may connect
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        uid = peer_uid(request)
        if uid != os.getuid():
            log.warning("refused a connection from uid %d on the control socket", uid)
            return False
        return True


WORKFLOWS_EVERY = 3
"""Seconds between passes over the workflow runs (:meth:`Supervisor.drive_workflows`)."""


def periodic_jobs(sup: Supervisor, *, batch_every: float, keep_alive: float) -> Any:
    """The host's periodic jobs on one scheduler (the ``schedule`` library): a memory batch every
    ``batch_every`` seconds, the memory-pass schedule every minute, the overdue and health sweep every 30 s,
    and, unless ``keep_alive`` is infinite, the embedding model's unload check every ``min(60, keep/2)`` s
    (at least every second). Returns the ``schedule.Scheduler``; :meth:`Supervisor.run_periodic` runs it."""
    import schedule

    jobs = schedule.Scheduler()
    jobs.every(max(1, round(batch_every))).seconds.do(sup.commit_memory).tag("memory-batch")
    jobs.every(60).seconds.do(sup.memory_schedule()).tag("memory-schedule")
    jobs.every(round(SWEEP_EVERY)).seconds.do(sup.sweep).tag("sweep")
    jobs.every(WORKFLOWS_EVERY).seconds.do(sup.drive_workflows).tag("workflows")
    if keep_alive != float("inf"):
        jobs.every(max(1, round(min(60.0, keep_alive / 2)))).seconds.do(sup.unload_idle_model, keep_alive) \
            .tag("model-keep-alive")
    return jobs


def serve(*, paths: StatePaths, org_dir: Path) -> None:
    """Run the supervisor in this process until ``shutdown`` or SIGTERM.

    First the org's env file (:mod:`orgctl.state.envfiles`) is merged into this
    process's environment, so the model gateway (LiteLLM reads provider keys
    from it) and the notifiers see the keys; variables already set win.
    """
    from orgctl.errors import OrgctlError
    from orgctl.memory.batches import batch_interval
    from orgctl.memory.embedding import keep_alive
    from orgctl.state.envfiles import load_env_file

    try:
        os.environ.update(load_env_file(org_dir))
    except OrgctlError as e:
        raise SystemExit(f"{e.message}" + (f"\nHint: {e.hint}" if e.hint else "")) from e
    paths.ensure()
    sock_path = paths.socket
    private_dir(sock_path.parent)
    if sock_path.exists():
        if protocol.reachable(sock_path):
            raise SystemExit(f"a supervisor already answers on {sock_path}")
        sock_path.unlink()
    sup = Supervisor(paths=paths, org_dir=org_dir)
    server = _Server(sock_path, sup)
    write_json(paths.supervisor_pid, {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid()),
                                      "socket": str(sock_path), "started_at": now_iso(), "org_dir": str(org_dir),
                                      "state_root": str(paths.root)})

    def on_term(signum: int, frame: Any) -> None:
        threading.Thread(target=lambda: (sup.shutdown(), server.shutdown()), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    threading.Thread(target=sup.monitor, name="monitor", daemon=True).start()
    jobs = periodic_jobs(sup, batch_every=batch_interval(), keep_alive=keep_alive())
    threading.Thread(target=sup.run_periodic, args=(jobs,), name="periodic", daemon=True).start()
    sup.status()
    log.info("supervisor %s listening on %s", os.getpid(), sock_path)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        sup.shutdown()
        server.server_close()
        sock_path.unlink(missing_ok=True)
        paths.supervisor_pid.unlink(missing_ok=True)
        log.info("supervisor stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orgctl.runtime.supervisor")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--org-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(paths=StatePaths(root=args.state_dir.resolve()), org_dir=args.org_dir.resolve())


if __name__ == "__main__":
    main()
