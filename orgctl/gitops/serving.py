"""The controller as a process: one per org, in the foreground or detached, and how to reach it.

* :class:`ControllerLease` -- an ``flock`` on ``<state>/run/controller.lock`` held for the
  process's life (the kernel drops it when the process dies, even by SIGKILL), plus a pid file
  naming the holder: a second controller for the same org refuses, naming the first.
* :func:`serve` -- run the loop with its triggers (ref watcher, work-tree watcher, webhook
  receiver, ``orgctl reconcile`` requests, SIGUSR1) until SIGTERM or SIGINT; the Animas keep
  running when the controller stops (as workloads outlive a Kubernetes controller).
* :func:`start_detached` / :func:`stop_controller` -- ``--detach`` and ``orgctl controller stop``.
* :func:`request_reconcile` -- ``orgctl reconcile``: ask the running controller for a pass now and
  wait until it says the pass was handled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orgctl.errors import StateError
from orgctl.gitops.backends import Backend
from orgctl.gitops.controlling import Controller, ControllerOptions, PassReport
from orgctl.gitops.mirrors import OrgMirror
from orgctl.pacing import NotReady, await_ready
from orgctl.paths import StatePaths
from orgctl.processes import STATE_ENV, is_orgctl_process, start_ticks
from orgctl.state.files import JsonlTail, open_log, pid_alive, read_json, tail_lines, write_json
from orgctl.state.inventories import now_iso
from orgctl.state.observing import CONTROLLER_MARKER, running_controller

log = logging.getLogger("orgctl.controller")

START_TIMEOUT = 30.0  # seconds for a detached controller to take its lease
STOP_TIMEOUT = 30.0  # seconds for a controller to finish its pass and exit after SIGTERM

#: Warning events sent to the org's notification channels (the operator's pager), at most once per
#: (reason, object) every :data:`ALERT_REPEAT` seconds.
ALERT_REASONS = frozenset({"SpecInvalid", "MassRetireRefused", "AnimaDegraded", "BudgetExceeded",
                           "ReconcileFailed", "SourceUnavailable", "DriftDetected", "LockBroken"})
ALERT_REPEAT = 600.0


@contextlib.contextmanager
def ControllerLease(paths: StatePaths, *, source: str, checkout: Path) -> Iterator[dict[str, Any]]:  # noqa: N802
    """Hold the org's controller lease for the ``with`` block; yields the pid file's content.

    Raises StateError naming the holder when another controller has it.
    """
    paths.ensure()
    fd = os.open(paths.controller_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = running_controller(paths) or read_json(paths.controller, default={}) or {}
            raise StateError(f"a controller already runs for this org: pid {holder.get('pid', '?')} since "
                             f"{holder.get('started_at', '?')}, tracking {holder.get('source', '?')}",
                             hint="one controller per org; stop it with `orgctl controller stop`, or ask it for "
                                  "a pass with `orgctl reconcile`") from None
        info = {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid()), "state_root": str(paths.root),
                "checkout": str(checkout), "source": source, "started_at": now_iso()}
        write_json(paths.controller, info)
        try:
            yield info
        finally:
            paths.controller.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Chores:
    """What the controller process does on every wake-up besides passes: ``orgctl reconcile`` requests,
    alerts for new Warning events, the work-tree watcher's debounce."""

    def __init__(self, controller: Controller, *, alert: Callable[[dict[str, Any], Any], None] | None,
                 worktree: Any = None) -> None:
        self.controller = controller
        self.paths = controller.paths
        self.alert = alert
        self.worktree = worktree
        self._events = JsonlTail(self.paths.work.events)
        with contextlib.suppress(OSError):  # alert on what happens from now on, not on old history
            self._events.offset = self.paths.work.events.stat().st_size
        self._alerted: dict[tuple[str, str], float] = {}
        self._asked: str | None = None
        handled = read_json(self.paths.reconcile_handled, default={}) or {}
        self._handled: str | None = handled.get("id") if isinstance(handled, dict) else None

    def __call__(self) -> None:
        request = read_json(self.paths.reconcile_request, default=None) if self.paths.reconcile_request.exists() \
            else None
        rid = request.get("id") if isinstance(request, dict) else None
        if rid and rid not in (self._handled, self._asked):
            self._asked = rid
            self.controller.request("reconcile")
        if self.worktree is not None:
            self.worktree.check()
        self._forward_alerts()

    def after_pass(self, report: PassReport) -> None:
        if self._asked and "reconcile" in report.trigger.split(","):
            write_json(self.paths.reconcile_handled, {
                "id": self._asked, "handled_at": now_iso(), "revision": report.revision,
                "converged": report.converged, "summary": report.summary()})
            self._handled, self._asked = self._asked, None

    def _forward_alerts(self) -> None:
        if self.alert is None:
            return
        _, records = self._events.read_new()
        now = time.monotonic()
        for event in records:
            if event.get("type") != "Warning" or event.get("reason") not in ALERT_REASONS:
                continue
            key = (str(event.get("reason")), str(event.get("object")))
            if now - self._alerted.get(key, -ALERT_REPEAT) < ALERT_REPEAT:
                continue
            self._alerted[key] = now
            try:
                self.alert(event, self.controller.desired)
            except Exception:  # a notification channel must never stop reconciling
                log.exception("sending the alert for %s failed", key[0])


def serve(*, checkout: Path, paths: StatePaths, backend: Backend, options: ControllerOptions,
          branch: str | None = None, listen: tuple[str, int] | None = None, webhook_secret: bytes | None = None,
          metrics_addr: tuple[str, int] | None = None, alert: Callable[[dict[str, Any], Any], None] | None = None,
          stop: threading.Event | None = None, on_pass: Callable[[PassReport], None] | None = None) -> None:
    """Run the controller until SIGTERM/SIGINT (or ``stop`` is set). Raises StateError when another runs.

    Signals are handled only when called from the main thread (a test may run this in a thread).
    """
    from orgctl.gitops import triggers
    from orgctl.gitops.repos import uncommitted_spec_changes

    checkout = Path(checkout).resolve()
    mirror = OrgMirror.for_checkout(checkout, paths.mirror, branch=branch)
    stop = stop or threading.Event()
    with ControllerLease(paths, source=mirror.describe(), checkout=checkout):
        controller = Controller(checkout=checkout, paths=paths, mirror=mirror, backend=backend, options=options)
        started: list[Any] = []
        refs = triggers.RefWatcher(mirror.watch_dirs(), controller.poke)

        def report_edits(files: list[str]) -> None:
            shown = ", ".join(files[:5]) + (" …" if len(files) > 5 else "")
            controller.emit("UncommittedChange", f"{len(files)} uncommitted change(s) in {checkout} are not "
                            f"applied until committed{' and pushed' if mirror.remote else ''}: {shown}")

        worktree = triggers.WorkTreeWatcher(checkout, list_changes=lambda: uncommitted_spec_changes(checkout),
                                            report=report_edits)
        chores = _Chores(controller, alert=alert, worktree=worktree)
        receiver = None
        if listen is not None:
            if not webhook_secret:
                raise StateError("--listen needs a webhook secret",
                                 hint="set ORGCTL_WEBHOOK_SECRET, or pass --webhook-secret-file FILE")
            receiver = triggers.WebhookReceiver(*listen, secret=webhook_secret, branch=mirror.branch,
                                                on_push=lambda sha: controller.request("webhook"))
        metrics = None
        if metrics_addr is not None:
            from orgctl.gitops.metrics import ControllerMetrics

            metrics = ControllerMetrics(paths)
            metrics.serve(*metrics_addr)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: (stop.set(), controller.request("stop")))
            signal.signal(signal.SIGINT, lambda *_: (stop.set(), controller.request("stop")))
            signal.signal(signal.SIGUSR1, lambda *_: controller.poke())
        try:
            for part in (refs, worktree, receiver):
                if part is not None:
                    part.start()
                    started.append(part)
            log.info("controller %s: tracking %s; state in %s%s", os.getpid(), mirror.describe(), paths.root,
                     f"; webhook on {receiver.address[0]}:{receiver.address[1]}" if receiver else "")

            def after(report: PassReport) -> None:
                chores.after_pass(report)
                if metrics is not None:
                    metrics.observe(report)
                if report.applied or report.pending or report.error or report.stalled or "resync" not in report.trigger:
                    log.info("%s", report.summary())
                if on_pass is not None:
                    on_pass(report)

            controller.run(stop, on_pass=after, each_turn=chores)
        finally:
            for part in reversed(started):
                with contextlib.suppress(Exception):
                    part.stop()
            log.info("controller %s stopped; the Animas keep running", os.getpid())


def reconcile_once(*, checkout: Path, paths: StatePaths, backend: Backend, options: ControllerOptions,
                   branch: str | None = None) -> PassReport:
    """``orgctl controller --once``: one pass under the controller lease. Raises StateError when a controller runs."""
    checkout = Path(checkout).resolve()
    mirror = OrgMirror.for_checkout(checkout, paths.mirror, branch=branch)
    with ControllerLease(paths, source=mirror.describe(), checkout=checkout):
        controller = Controller(checkout=checkout, paths=paths, mirror=mirror, backend=backend, options=options)
        return controller.reconcile("once")


def start_detached(argv: list[str], *, paths: StatePaths) -> dict[str, Any]:
    """Start ``python -m orgctl <argv>`` (a foreground controller command) detached; returns its pid file.

    The process gets its own session, stdin from /dev/null and its output in
    ``<state>/logs/controller.log``. Raises StateError when it exits or does not take the lease
    within :data:`START_TIMEOUT` seconds (with the log's last lines).
    """
    paths.ensure()
    if (holder := running_controller(paths)) is not None:
        raise StateError(f"a controller already runs for this org: pid {holder.get('pid')}",
                         hint="stop it with `orgctl controller stop`")
    log_path = paths.logs / "controller.log"
    with open_log(log_path) as out:
        proc = subprocess.Popen([sys.executable, "-m", "orgctl", *argv], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", STATE_ENV: str(paths.root)})

    def leased() -> dict[str, Any] | None:
        info = running_controller(paths)
        return info if info is not None and info.get("pid") == proc.pid else None

    try:
        return await_ready(proc, leased, timeout=START_TIMEOUT)
    except NotReady as e:
        raise StateError((f"the controller exited with {e.exit_code}" if e.exit_code is not None else
                          f"the controller did not start within {START_TIMEOUT:.0f}s")
                         + f":\n{_tail(log_path)}") from None


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(tail_lines(path, lines)) or "(no controller log)"


def stop_controller(paths: StatePaths, *, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM this org's controller and wait for it to exit (SIGKILL after ``timeout`` s); returns its pid,
    or None when none runs. Only a process that is really this org's controller is signalled."""
    info = running_controller(paths)
    if info is None:
        return None
    pid, ticks = int(info["pid"]), info.get("start_ticks")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) or start_ticks(pid) != ticks:
            return pid
        time.sleep(0.1)
    if is_orgctl_process(pid, CONTROLLER_MARKER, started=ticks):
        os.kill(pid, signal.SIGKILL)
    return pid


def request_reconcile(paths: StatePaths, *, timeout: float) -> dict[str, Any]:
    """Ask the running controller for a pass now; returns its answer (``id``, ``handled_at``, ``revision``,
    ``converged``, ``summary``). Raises StateError when no controller runs or it does not answer in
    ``timeout`` seconds."""
    info = running_controller(paths)
    if info is None:
        raise StateError("no controller runs for this org", hint="start one with `orgctl controller --detach`, "
                                                                  "or apply by hand with `orgctl apply`")
    rid = uuid.uuid4().hex[:12]
    write_json(paths.reconcile_request, {"id": rid, "at": now_iso(), "by": os.getpid()})
    with contextlib.suppress(OSError):
        os.kill(int(info["pid"]), signal.SIGUSR1)  # wake it now rather than at its next turn
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = read_json(paths.reconcile_handled, default=None) if paths.reconcile_handled.exists() else None
        if isinstance(answer, dict) and answer.get("id") == rid:
            return answer
        if running_controller(paths) is None:
            raise StateError("the controller stopped before it handled the request",
                             hint=f"see {paths.logs / 'controller.log'}")
        time.sleep(0.05)
    raise StateError(f"the controller did not handle the request within {timeout:.0f}s",
                     hint="it may be in a long pass; see `orgctl status` and its log")
