"""Small process helpers shared by the supervisor, the Anima and the model server."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

PARENT_ENV = "ORGCTL_PARENT_PID"


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child orgctl spawns: records this process as its parent."""
    return {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1", **extra}


ANIMA_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV",
                             "LITELLM_LOCAL_MODEL_COST_MAP"})
ANIMA_ENV_PREFIXES = ("ORGCTL_", "LC_", "XDG_", "GIT_", "PYTHON")


def anima_env(**extra: str) -> dict[str, str]:
    """:func:`child_env` cut down to what an Anima process needs: no model keys, no tokens.

    Model calls and notifications happen in the supervisor, which alone holds the keys (its own
    environment plus the org's env file); an Anima, and whatever a tool it runs might leak, sees
    only the names in :data:`ANIMA_ENV_NAMES` and those starting with :data:`ANIMA_ENV_PREFIXES`.
    """
    return {k: v for k, v in child_env(**extra).items()
            if k in ANIMA_ENV_NAMES or k.startswith(ANIMA_ENV_PREFIXES)}


def die_with_parent(*, poll_seconds: float = 0.5) -> None:
    """SIGTERM this process as soon as its parent is gone.

    Called at the start of every child orgctl spawns, so a supervisor killed
    with SIGKILL leaves nothing behind. A daemon thread polls ``getppid()``
    against ``ORGCTL_PARENT_PID`` (set by :func:`child_env`) every
    ``poll_seconds``. (``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when
    the spawning *thread* exits, and the supervisor spawns from short-lived
    request threads.)
    """
    expected = int(os.environ.get(PARENT_ENV, "0")) or os.getppid()

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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
