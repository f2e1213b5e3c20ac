"""The fork server: one process per org that imports the Anima runtime once and forks every Anima from itself.

An idle Anima is mostly the interpreter and the modules it imported (~20 MB when each one starts from a
fresh ``python -m``). Forked from a process that has them loaded, every Anima shares those pages
copy-on-write, and the Linux PSS of each drops to what it writes itself. ``gc.freeze()`` before the
forks keeps the collector from touching (and so copying) the preloaded objects -- the technique
Instagram described for its forked Python web workers (``gc.freeze``, Python 3.7+).

Crash isolation is unchanged: each Anima is still its own process; one that crashes or leaks takes
only itself down. The fork server is single-threaded (fork is only safe from a single-threaded
process) and speaks JSON lines with the supervisor over its stdin/stdout:

* ``{"op": "spawn", "name": N, "log": PATH}`` → ``{"op": "spawned", "name": N, "pid": P}``
* whenever a child exits: ``{"op": "exit", "pid": P, "code": C}`` (C negative for a signal, as
  :attr:`subprocess.Popen.returncode`)

EOF on stdin means the supervisor is gone: the fork server SIGTERMs its children and exits.
The supervisor side is :class:`ForkServer` and the process handle :class:`ForkedProcess`, which
answers like the :class:`subprocess.Popen` it replaces (``pid``, ``poll``, ``wait``,
``send_signal``, ``kill``, ``returncode``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orgctl.processes import PARENT_ENV, keyless_env

PRELOAD = ("orgctl.runtime.anima", "yaml", "croniter", "orgctl.desired.secrets", "tempfile", "ctypes")
"""Modules every Anima imports sooner or later: loaded once here, shared by all (tempfile: every memory
write is atomic, a temp file then a rename, so every Anima imports it at its first cycle; ctypes: each
child names its process with it, and importing it after the fork cost each Anima 0.6 MB of PSS)."""


# ------------------------------------------------------------------ the server process


def _child(name: str, log: str, state_dir: str) -> None:
    """In the forked child: become Anima ``name`` (never returns)."""
    code = 0
    try:
        os.setpgid(0, 0)  # its own process group: a signal to the fork server's group does not reach it
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.environ[PARENT_ENV] = str(os.getppid())  # die_with_parent watches the fork server
        _name_process(f"orgctl:{name}")
        sys.argv = ["orgctl.runtime.anima", "--name", name, "--state-dir", state_dir]
        from orgctl.runtime import anima

        anima.main(sys.argv[1:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def _name_process(title: str) -> None:
    """Set the kernel's name of this process (``ps -o comm``, ``top``): 15 bytes, best effort."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, title.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _send(record: dict[str, Any]) -> None:
    os.write(1, (json.dumps(record) + "\n").encode())


def serve(state_dir: str) -> None:
    """Preload, then fork Animas on request until stdin closes."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # preloaded objects move to a permanent generation: the collector never writes to them
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    children: set[int] = set()
    buffer = b""
    _send({"op": "ready", "pid": os.getpid()})
    try:
        while True:
            ready, _, _ = select.select([0, wake_r], [], [])
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            while children:  # reap every child that exited
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                children.discard(pid)
                _send({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})
            if 0 not in ready:
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return  # the supervisor is gone
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if request.get("op") == "spawn":
                    pid = os.fork()
                    if pid == 0:
                        os.close(wake_r)
                        os.close(wake_w)
                        _child(str(request["name"]), str(request["log"]), state_dir)
                    children.add(pid)
                    _send({"op": "spawned", "name": request["name"], "pid": pid})
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orgctl.runtime.forkserver")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    serve(args.state_dir)


# ------------------------------------------------------------------ the supervisor's side


class ForkedProcess:
    """An Anima forked by the fork server, answering like :class:`subprocess.Popen`."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code. Raises :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"anima pid {self.pid}", timeout or 0)
        return int(self.returncode or 0)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """Starts and talks to the fork server of one org (``state_root``). Thread-safe.

    Raises OSError when the server cannot be started; :meth:`spawn` raises RuntimeError when it died.
    """

    def __init__(self, state_root: Path) -> None:
        self.state_root = Path(state_root)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._spawned: dict[str, int] = {}
        self._replies = threading.Condition(self._lock)

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "orgctl.runtime.forkserver", "--state-dir",
                                 str(self.state_root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=keyless_env(state_root=self.state_root))
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline() or b"{}")
        if first.get("op") != "ready":
            raise OSError(f"the fork server did not start (exit {proc.poll()})")
        threading.Thread(target=self._read, args=(proc,), name="forkserver", daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            record = json.loads(line)
            with self._lock:
                if record["op"] == "spawned":
                    self._spawned[str(record["name"])] = int(record["pid"])
                    self._replies.notify_all()
                elif record["op"] == "exit":
                    child = self._children.pop(int(record["pid"]), None)
                    if child is not None:
                        child._set_exit(int(record["code"]))
                    else:  # exited before spawn() registered it
                        self._early_exits[int(record["pid"])] = int(record["code"])
        with self._lock:  # the server died: its children die with it (they watch their parent)
            for child in self._children.values():
                child._set_exit(-signal.SIGKILL)
            self._children.clear()
            self._replies.notify_all()

    def spawn(self, name: str, log: Path, *, timeout: float = 30.0) -> ForkedProcess:
        """Fork Anima ``name`` with its output appended to ``log``; returns its handle."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            assert self._proc.stdin is not None
            self._spawned.pop(name, None)
            self._proc.stdin.write((json.dumps({"op": "spawn", "name": name, "log": str(log)}) + "\n").encode())
            self._proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while name not in self._spawned:
                if self._proc.poll() is not None or not self._replies.wait(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"the fork server did not fork {name}")
            pid = self._spawned.pop(name)
            child = ForkedProcess(self, pid)
            if pid in self._early_exits:
                child._set_exit(self._early_exits.pop(pid))
            else:
                self._children[pid] = child
            return child

    def close(self) -> None:
        """Close the fork server's stdin: it SIGTERMs what is left and exits."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


if __name__ == "__main__":
    main()
