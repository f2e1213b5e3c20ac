"""The state lock taken by every mutating command (apply, down, consolidate).

An ``flock`` on ``<state>/state.lock``: the kernel drops it when the holder
dies, so a crashed apply never leaves a stale lock. The file records who
holds it (id, pid, command, time) so a blocked user sees whom they wait for.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from orgctl.errors import StateError


@contextmanager
def state_lock(path: Path, *, operation: str, timeout: float = 0.0) -> Iterator[str]:
    """Hold the state lock for the ``with`` block; yields the lock id.

    ``timeout`` is how long to wait for a busy lock, in seconds (0: fail at once).
    Raises :class:`StateError` naming the holder when the lock stays busy.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8", errors="replace").strip()
                    raise StateError(f"the state lock is held: {holder or 'unknown holder'}",
                                     hint="wait for that command to finish, or pass --lock-timeout") from None
                time.sleep(0.1)
        lock_id = str(uuid.uuid4())
        info = {"id": lock_id, "pid": os.getpid(), "operation": operation,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield lock_id
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
