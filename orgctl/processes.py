"""Small process helpers shared by the supervisor, the Anima and the model server."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

PARENT_ENV = "ORGCTL_PARENT_PID"
STATE_ENV = "ORGCTL_ORG_STATE"
"""Set in every process orgctl spawns for an org: that org's state directory (whose process it is)."""


def child_env(*, state_root: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a child orgctl spawns: records this process as its parent, and the org's
    state directory (``state_root``) so the child can later be told apart from another org's."""
    tagged = {STATE_ENV: str(state_root)} if state_root is not None else {}
    return {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1", **tagged, **extra}


ANIMA_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV",
                             "LITELLM_LOCAL_MODEL_COST_MAP"})
ANIMA_ENV_PREFIXES = ("ORGCTL_", "LC_", "XDG_", "GIT_", "PYTHON")


def keyless_env(*, state_root: Path | None = None, **extra: str) -> dict[str, str]:
    """:func:`child_env` cut down to what an Anima process or the embedded model server needs: no
    model keys, no tokens.

    Model calls and notifications happen in the supervisor, which alone holds the keys (its own
    environment plus the org's env file); an Anima (and whatever a tool it runs might leak) and the
    local llama.cpp server see only the names in :data:`ANIMA_ENV_NAMES` and those starting with
    :data:`ANIMA_ENV_PREFIXES`.
    """
    return {k: v for k, v in child_env(state_root=state_root, **extra).items()
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


def _argv(pid: int) -> list[str]:
    """The process's argv from ``/proc/PID/cmdline``, or [] if it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.rstrip(b"\0").split(b"\0")] if raw else []


def cmdline(pid: int) -> str:
    """The process's command line joined by spaces, or '' if it is gone or unreadable."""
    return " ".join(_argv(pid)).strip()


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22); None if gone.

    With the pid it names one process for the machine's uptime: a reused pid has another start time.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # after "pid (comm) ": comm may hold spaces and parens
    return int(fields[19])


def _state_of(pid: int) -> str | None:
    """The org state directory recorded in ``pid``'s environment (:data:`STATE_ENV`), if readable."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = STATE_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def is_orgctl_process(pid: int, marker: str, *, state_root: Path | None = None,
                      started: int | None = None) -> bool:
    """True when ``pid`` runs one of orgctl's own modules (``marker``, e.g. ``orgctl.runtime``) and,
    when given, belongs to the org whose state directory is ``state_root`` and started at ``started``
    (:func:`start_ticks`).

    ``down`` and the liveness checks use this before trusting or signalling a recorded pid, so a
    reused pid of a stranger, or a process of another org on the same machine, is never taken for
    ours. A process belongs to an org when its command line names ``--state-dir <root>`` or its
    environment carries :data:`STATE_ENV` = root.
    """
    argv = _argv(pid)
    if marker not in " ".join(argv):
        return False
    if started is not None and start_ticks(pid) != started:
        return False
    if state_root is None:
        return True
    root = str(state_root)
    # the --state-dir value compared whole: /x/state is not /x/state-b
    state_dir = next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--state-dir"), None)
    return state_dir == root or _state_of(pid) == root


def release_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim(0)``); False where there is none.

    After a large native object is dropped (the embedding model's onnxruntime session), glibc keeps the
    freed pages in its arenas: measured here, dropping the session alone left 169 of 420 MB resident,
    and a trim brought the process to 65 MB.
    """
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    trim(0)
    return True
