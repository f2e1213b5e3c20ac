"""Access statistics: when each memory item was last recalled and how often, kept in the state dir.

Recall happens on every prompt (priming) and every ``search_memory``; writing
that into the notes would make a commit of every thought. So the counts live
in ``<state>/memory/<anima>/access.json`` (operational state, never in git),
and a consolidation pass folds them into the notes' frontmatter (``uses``,
``last_used``), where forgetting reads them and a reviewer sees them.
The memory service is the one writer of the file while the org runs; a pass
reads and clears it under the Anima's memory lock.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

from orgctl.state.files import read_json, write_json

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per stats file in this process: the memory service's recalls and a pass's ``take`` are made
    through different :class:`AccessStats` objects, and a read-modify-write must not lose the other's counts."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


class AccessStats:
    """``{item id: {"uses": int, "last_used": "YYYY-MM-DD"}}`` for one Anima, at ``path``. Thread-safe, whichever
    object of this process touches the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = _lock_for(self.path.absolute())

    def load(self) -> dict[str, dict[str, object]]:
        """The statistics (empty when there are none, or the file is unreadable: they are only a hint)."""
        try:
            data = read_json(self.path, default={})
        except Exception:  # noqa: BLE001 - a corrupt stats file must never stop recall or a pass
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, ids: list[str], *, on: date) -> None:
        """Count one recall of each of ``ids`` on day ``on``."""
        if not ids:
            return
        with self._lock:
            data = self.load()
            for item in dict.fromkeys(ids):
                entry = data.setdefault(item, {"uses": 0, "last_used": on.isoformat()})
                entry["uses"] = int(entry.get("uses", 0) or 0) + 1  # type: ignore[call-overload]
                entry["last_used"] = max(str(entry.get("last_used") or ""), on.isoformat())
            write_json(self.path, data)

    def take(self, ids: list[str]) -> dict[str, dict[str, object]]:
        """Remove and return the entries of ``ids`` (a pass folds them into the notes)."""
        with self._lock:
            data = self.load()
            taken = {i: data.pop(i) for i in ids if i in data}
            if taken:
                write_json(self.path, data)
            return taken
