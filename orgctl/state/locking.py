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
def state_lock(path: Path, *, operation: str, timeout: float = 0.0, what: str = "") -> Iterator[str]:
    """Hold the state lock (or another lock file of the same kind, ``what`` names it) for the ``with``
    block; yields the lock id.

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
                    try:
                        lock_id = json.loads(holder).get("id") if holder else None
                    except (ValueError, AttributeError):
                        lock_id = None
                    if what:
                        raise StateError(f"{what} is being written by another writer: {holder or 'unknown holder'}"
                                         ) from None
                    raise StateError(f"the state lock is held: {holder or 'unknown holder'}",
                                     hint="wait for that command to finish, or pass --lock-timeout; if it is stuck, "
                                          f"`orgctl force-unlock {lock_id or 'ID'}`") from None
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


def lock_holder(path: Path) -> dict[str, object] | None:
    """Who holds the state lock (``id``, ``pid``, ``operation``, ``created``), or None when it is free."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return dict(json.loads(path.read_text(encoding="utf-8") or "{}"))
            except (ValueError, TypeError):
                return {"id": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def force_unlock(path: Path, lock_id: str) -> dict[str, object]:
    """Break the state lock held under ``lock_id``; returns the holder it was taken from.

    An ``flock`` cannot be taken from a live process, so the lock file is moved aside
    (``state.lock.broken-<UTC time>``): the next command locks a fresh file, and the hung holder
    keeps a lock on nothing. As with ``terraform force-unlock``, this is for a holder that is stuck;
    if it wakes up it will still write. Raises StateError when the lock is free or the id differs.
    """
    holder = lock_holder(path)
    if holder is None:
        raise StateError("the state lock is not held", hint="nothing to unlock")
    if holder.get("id") != lock_id:
        raise StateError(f"lock id {lock_id!r} does not match the holder {holder.get('id')!r}",
                         hint="copy the id from the error that named the holder")
    path.rename(path.with_name(f"{path.name}.broken-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"))
    return holder
