"""Atomic JSON files: write to a temp file in the same directory, fsync, rename.

Readers never see a half-written file, whichever process writes it. :func:`sync` is the one fsync of
orgctl's work files; a tick turns it off (:func:`durable`): on a CI runner the disk is thrown away and
the durable write is the push of the state branch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orgctl.errors import StateError

_DURABLE = [True]


def durable(on: bool) -> bool:
    """Whether :func:`sync` reaches the disk from now on, in this process; returns the previous setting."""
    before, _DURABLE[0] = _DURABLE[0], on
    return before


def sync(fd: int) -> None:
    """``fsync(fd)``, unless this process turned durability off (:func:`durable`)."""
    if _DURABLE[0]:
        os.fsync(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    import tempfile  # here, not at the top: read-only commands (status) start faster without it

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            sync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as pretty JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON from ``path``; ``default`` when it does not exist.

    Raises :class:`StateError` when the file exists but is not valid JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StateError(f"{path} is corrupt: {e}",
                         hint="observed state is rebuildable: remove the file and run `orgctl apply`") from e


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line. Single ``write`` of a full line, O_APPEND: safe for concurrent appenders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def file_inside(base: Path, rel: str) -> Path | None:
    """``base / rel`` resolved, when it is a regular file inside ``base`` reached through no symbolic link;
    None for anything else (empty, absolute, ``..``, a link in any part, a folder, missing). For paths that
    come from outside (a URL, a command line)."""
    root = base.resolve()
    if not rel or rel.startswith("/") or ".." in Path(rel).parts:
        return None
    target = (root / rel).resolve()
    links = any(p.is_symlink() for p in [root / rel, *(root / rel).parents] if p.is_relative_to(root) and p != root)
    return target if target.is_relative_to(root) and target.is_file() and not links else None


def pid_alive(pid: int | None) -> bool:
    """True when a process with ``pid`` exists (zombies count as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class JsonlTail:
    """Reads an append-only JSON-lines file incrementally: each call returns only the lines added since.

    A torn last line (a writer mid-append) is left for the next call; a line that is not a JSON object
    is skipped. When the file shrank (it was replaced), reading restarts from the top and ``reset`` is
    True, so the caller drops what it folded so far.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def read_new(self) -> tuple[bool, list[dict[str, Any]]]:
        """``(reset, records)``: whether reading restarted, and the complete new records in order."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False, []
        reset = size < self.offset
        if reset:
            self.offset = 0
        if size == self.offset:
            return reset, []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        records = []
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return reset, records


LOG_MAX_BYTES = 5 * 1024 * 1024


def tail_lines(path: Path, lines: int, *, max_bytes: int = 8192) -> list[str]:
    """The last ``lines`` non-empty lines of a log (read from its last ``max_bytes``); [] when it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]


def open_log(path: Path, *, max_bytes: int = LOG_MAX_BYTES) -> Any:
    """Open a process log for appending (binary), rotating it first when it is over ``max_bytes``:
    the old file becomes ``<name>.1`` (replacing an older one), so each log costs at most about
    twice ``max_bytes``. Called when a process is (re)started; the caller closes the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    return open(path, "ab")  # noqa: SIM115 - handed to a child process by the caller
