"""Small process helpers shared by the supervisor, the Anima and the model server."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


PARENT_ENV = "ORGCTL_PARENT_PID"


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child orgctl spawns: records this process as its parent."""
    return {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1", **extra}


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    Called at the start of every child orgctl spawns, so a supervisor killed
    with SIGKILL leaves nothing behind. If the parent named in
    ``ORGCTL_PARENT_PID`` (see :func:`child_env`) is already gone, the
    process exits at once. No-op off Linux.
    """
    expected_parent = int(os.environ.get(PARENT_ENV, "0")) or None
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        return
    if expected_parent is not None and os.getppid() != expected_parent:
        sys.exit(0)


def cmdline(pid: int) -> str:
    """The process's command line joined by spaces, or '' if it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_orgctl_process(pid: int, marker: str) -> bool:
    """True when ``pid`` runs one of orgctl's own modules (``marker``, e.g. ``orgctl.runtime``).

    ``down`` uses this before signalling a recorded pid, so a reused pid of a
    stranger is never killed.
    """
    return marker in cmdline(pid)
