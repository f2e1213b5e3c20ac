"""The local backend: a detached supervisor daemon on this machine, driven over its socket.

``prepare`` starts the supervisor when none answers (adopting a live one
otherwise, so a second ``apply`` never starts a duplicate). ``shutdown``
asks it to stop everything; if it does not answer, only pids recorded in
the state directory that run orgctl's own modules are signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orgctl.errors import RuntimeFailure
from orgctl.pacing import NotReady, await_ready
from orgctl.paths import StatePaths
from orgctl.processes import STATE_ENV, is_orgctl_process
from orgctl.runtime import protocol
from orgctl.state.envfiles import load_env_file
from orgctl.state.files import open_log, pid_alive, read_json, tail_lines
from orgctl.state.runtimes import RuntimeStatus, load_runtime

START_TIMEOUT = 20.0  # seconds for a new supervisor to answer
STOP_TIMEOUT = 30.0  # seconds for a supervisor to stop its children and exit


class LocalBackend:
    """Implements :class:`orgctl.gitops.backends.Backend` with the local supervisor."""

    def __init__(self, *, paths: StatePaths, org_dir: Path) -> None:
        self.paths = paths
        self.org_dir = Path(org_dir).resolve()

    def _log_tail(self, lines: int = 15) -> str:
        return "\n".join(tail_lines(self.paths.logs / "supervisor.log", lines)) or "(no supervisor log)"

    def supervisor_alive(self) -> bool:
        return protocol.reachable(self.paths.socket)

    def prepare(self) -> None:
        if self.supervisor_alive():
            return
        load_env_file(self.org_dir)  # a refused env file fails here, with its message, before anything starts
        self.paths.ensure()
        with open_log(self.paths.logs / "supervisor.log") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orgctl.runtime.supervisor",
                 "--state-dir", str(self.paths.root), "--org-dir", str(self.org_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI and its terminal
                # glibc gives each thread that allocates its own malloc arena (up to 8 per core), and the
                # supervisor answers each request on a thread: with the embedder's allocations left to glibc the
                # supervisor reached 951 MB at 200 Animas. Two arenas is the usual cure for threaded Python
                # servers (475 MB measured, with onnxruntime's own arena); a value set by the user wins.
                env={"MALLOC_ARENA_MAX": "2", **os.environ, "PYTHONUNBUFFERED": "1", STATE_ENV: str(self.paths.root)},
            )
        try:
            await_ready(proc, self.supervisor_alive, timeout=START_TIMEOUT)
        except NotReady as e:
            raise RuntimeFailure((f"the supervisor exited with {e.exit_code}" if e.exit_code is not None else
                                  f"the supervisor did not answer within {START_TIMEOUT:.0f}s")
                                 + f":\n{self._log_tail()}") from None

    def _call(self, op: str, name: str) -> None:
        protocol.request(self.paths.socket, op, name=name, timeout=60.0)

    def start(self, name: str) -> None:
        self._call("start", name)

    def restart(self, name: str) -> None:
        self._call("restart", name)

    def reload(self, name: str) -> None:
        self._call("reload", name)

    def stop(self, name: str) -> None:
        if self.supervisor_alive():
            self._call("stop", name)

    def observe(self) -> RuntimeStatus:
        if self.supervisor_alive():
            with contextlib.suppress(RuntimeFailure):
                protocol.request(self.paths.socket, "status", timeout=10.0)  # refreshes runtime.json
        return load_runtime(self.paths.runtime)

    def shutdown(self) -> list[int]:
        """Stop the supervisor, its Animas and its model server; returns the pids that were running."""
        status = load_runtime(self.paths.runtime)
        sup = read_json(self.paths.supervisor_pid, default={}) or {}
        sup_pid = sup.get("pid") or status.supervisor_pid
        server = read_json(self.paths.model_server, default={}) or {}
        started = {p.pid: p.start_ticks for p in status.animas.values() if p.pid}
        sup_ticks = sup.get("start_ticks") or status.supervisor_start_ticks
        for pid, ticks in ((sup_pid, sup_ticks), (server.get("pid"), server.get("start_ticks"))):
            if pid:
                started[int(pid)] = ticks
        # only processes that are really this org's: orgctl's, of this state dir, started when recorded
        pids = [p for p, ticks in started.items() if pid_alive(p)
                and is_orgctl_process(p, "orgctl.", state_root=self.paths.root, started=ticks)]
        if self.supervisor_alive():
            with contextlib.suppress(RuntimeFailure):
                protocol.request(self.paths.socket, "shutdown", timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        killed = []
        for pid in pids:  # what did not stop by itself, and only if it is still that process
            if pid_alive(pid) and is_orgctl_process(pid, "orgctl.", state_root=self.paths.root, started=started[pid]):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        deadline = time.monotonic() + 5.0  # SIGKILL is delivered asynchronously: wait until they are gone
        while killed and time.monotonic() < deadline and any(pid_alive(p) for p in killed):
            time.sleep(0.05)
        for leftover in (self.paths.supervisor_pid, self.paths.model_server):
            leftover.unlink(missing_ok=True)
        if self.paths.socket.exists() and not self.supervisor_alive():
            self.paths.socket.unlink(missing_ok=True)
        return pids
