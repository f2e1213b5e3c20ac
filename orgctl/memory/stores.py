"""The memory stores of one Anima, under ``animas/<name>/memory/`` in the runtime's clone.

=================  ==========================================================
``episodes/``      ``<YYYY-MM-DD>.md``: one ``## HH:MM:SS <trigger>`` section per
                   agent cycle, written from what was observed and done
``activity_log/``  ``<YYYY-MM-DD>.jsonl``: the same cycles as JSON lines (the
                   audit trail: structured answers, token usage)
``knowledge/``     ``<subject>.md``: one semantic note per subject, merged into
                   by consolidation, never one per day (:mod:`.notes`)
``procedures/``    ``<subject>.md``: "how to do it right next time", learned
                   from failed experiences; protected from forgetting
``state/``         ``current.md``: the work in hand and pending, as the Anima
                   last saw it
``shortterm/``     ``recent.md``: the last few cycles, so a restarted Anima
                   carries on where it stopped
``archive/``       notes the forgetting pass moved out of the working set
=================  ==========================================================

Dates are the Anima's local dates (its ``timezone``). Skills are spec, not
memory: people declare them under ``animas/<name>/skills/`` and memory only
reads them. ``common_knowledge/`` at the repo root is read by every Anima.

Every write is atomic (temp file + rename), and a store has one writer at a
time: each write, or a whole pass, holds the Anima's memory lock
(:meth:`MemoryStore.writing`); a second writer waits ``wait`` seconds at most and is
then refused with the holder's name.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from orgctl.errors import StateError
from orgctl.memory import MEMORY_DIRS
from orgctl.memory.notes import Note, refuse_links, slugify
from orgctl.state.files import write_text_atomic
from orgctl.state.locking import state_lock

_SECTION = re.compile(r"^## ", re.MULTILINE)
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.(md|jsonl)$")
NOTE_KINDS = ("knowledge", "procedures")
SHORTTERM_CYCLES = 5
"""How many recent cycles ``shortterm/recent.md`` keeps."""


_THREAD = threading.local()


def _held_locks() -> dict[str, int]:
    """This thread's memory locks and how deep each is held (flock is per open file: never take it twice)."""
    if not hasattr(_THREAD, "held"):
        _THREAD.held = {}
    return _THREAD.held  # type: ignore[no-any-return]


def episode_sections(text: str) -> list[str]:
    """The ``## `` sections of an episode file, oldest first, each stripped."""
    starts = [m.start() for m in _SECTION.finditer(text)]
    return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]


class MemoryStore:
    """The memory folder of one Anima (``root`` = ``animas/<name>/memory``).

    ``lock`` is the Anima's memory lock file (in the state dir); without one (a test, a read-only
    use) writes are not locked. ``holder`` names the writer in the lock ("anima bob", "consolidation");
    ``wait`` is how long a write waits for a busy lock, in seconds.
    """

    def __init__(self, root: Path, *, anima: str, lock: Path | None = None, holder: str = "",
                 wait: float = 60.0) -> None:
        self.root = Path(root)
        self.wait = wait
        self.anima = anima
        self.lock = lock
        self.holder = holder or f"writer of {anima}'s memory"
        self._backlog: list[tuple[date, str, dict[str, Any]]] = []

    def ensure(self) -> MemoryStore:
        """Create the memory folders that are missing; returns self."""
        for d in MEMORY_DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------ the one writer

    @contextlib.contextmanager
    def writing(self, *, operation: str | None = None, wait: float | None = None) -> Iterator[None]:
        """Hold this Anima's memory lock for the ``with`` block. Re-entrant within a thread, whichever
        store object asks (a pass that commits the pending episodes takes it once).

        Raises StateError naming the holder when another writer keeps it for ``wait`` seconds (default: the
        store's ``wait``, 60 s: long enough for a pass to finish, short enough to report a stuck one).
        """
        held = _held_locks()
        key = str(self.lock) if self.lock is not None else None
        if key is None or held.get(key):
            if key is not None:
                held[key] += 1
            try:
                yield
            finally:
                if key is not None:
                    held[key] -= 1
            return
        try:
            with state_lock(self.lock, operation=operation or self.holder,  # type: ignore[arg-type]
                            timeout=self.wait if wait is None else wait,
                            what=f"{self.anima}'s memory"):
                held[key] = 1
                try:
                    yield
                finally:
                    held[key] = 0
        except StateError as e:
            if "memory" not in e.message:
                raise
            raise StateError(e.message, hint="one writer at a time: wait for it to finish; while the org runs, "
                                             "`orgctl consolidate` and `orgctl forget` go through the runtime"
                             ) from None

    def _writable(self, *paths: Path) -> None:
        """Raises StateError when the memory folder, a store folder or a file to write is a symbolic link."""
        refuse_links(self.root, *{q.parent for q in paths}, *paths)

    def _append(self, path: Path, text: str, *, header: str = "") -> None:
        """Append ``text`` by rewriting the file atomically (readers never see half a cycle)."""
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = header
        write_text_atomic(path, old + text)

    # ------------------------------------------------------------ episodes and activity

    def episode_file(self, day: date) -> Path:
        return self.root / "episodes" / f"{day.isoformat()}.md"

    def activity_file(self, day: date) -> Path:
        return self.root / "activity_log" / f"{day.isoformat()}.jsonl"

    def append_episode(self, *, day: date, markdown: str, record: dict[str, Any]) -> None:
        """Append one cycle: a Markdown section to the day's episodes, a JSON line to its activity log,
        and the cycle to ``shortterm/recent.md``.

        Raises StateError when a link stands in the way or another writer holds the lock; the cycle is
        then kept and written before the next one.
        """
        self._backlog.append((day, markdown, record))
        with self.writing():  # a busy lock raises: the cycle stays in the backlog, written with the next one
            while self._backlog:
                day, markdown, record = self._backlog[0]
                path, log = self.episode_file(day), self.activity_file(day)
                self._writable(path, log)
                if not path.parent.is_dir():  # one stat per cycle instead of a mkdir per folder
                    self.ensure()
                self._append(path, markdown.rstrip() + "\n\n",
                             header=f"# Episodes of {self.anima}, {day.isoformat()}\n\n")
                self._append(log, json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
                self._remember_recent(markdown, day)
                self._backlog.pop(0)

    def episode_days(self) -> list[date]:
        """The days that have an episode file, oldest first."""
        folder = self.root / "episodes"
        days = []
        for p in folder.iterdir() if folder.is_dir() else ():
            if _DAY_FILE.match(p.name):
                with contextlib.suppress(ValueError):
                    days.append(date.fromisoformat(p.stem))
        return sorted(days)

    def episodes(self, day: date) -> list[str]:
        """The day's episode sections (each starting ``## ``), oldest first."""
        path = self.episode_file(day)
        return episode_sections(path.read_text(encoding="utf-8")) if path.exists() else []

    def activity(self, day: date) -> list[dict[str, Any]]:
        """The day's activity records, oldest first (a torn or hand-edited line is skipped)."""
        path = self.activity_file(day)
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    # ------------------------------------------------------------ notes: knowledge and procedures

    def note_path(self, kind: str, subject: str) -> Path:
        """Where the note on ``subject`` lives: ``<kind>/<slug>.md`` (``kind`` in :data:`NOTE_KINDS`)."""
        if kind not in NOTE_KINDS:
            raise ValueError(f"unknown note kind {kind!r}")
        return self.root / kind / f"{slugify(subject)}.md"

    def note(self, kind: str, subject: str) -> Note | None:
        """The note on ``subject``, or None when there is none."""
        path = self.note_path(kind, subject)
        return Note.read(path) if path.is_file() else None

    def notes(self, kind: str, *, archived: bool = False) -> list[Note]:
        """Every note of ``kind`` (in the working set, or in ``archive/`` with ``archived``), by file name."""
        folder = self.root / ("archive" if archived else "") / kind
        out = []
        for p in sorted(folder.glob("*.md")) if folder.is_dir() else ():
            if p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    out.append(Note.read(p))
        return out

    def write_note(self, note: Note) -> Path:
        """Write ``note`` (atomically, under the lock). Raises StateError (a link, a newer format, a busy lock)."""
        with self.writing():
            self._writable(note.path)
            return note.write()

    def archive(self, note: Note) -> Path:
        """Move ``note`` out of the working set into ``archive/<kind>/`` (git shows it as a rename). Returns
        the new path. Raises StateError as :meth:`write_note`."""
        kind = note.path.parent.name
        target = self.root / "archive" / kind / note.path.name
        with self.writing():
            self._writable(note.path, target)
            moved = Note(path=target, meta=note.meta, body=note.body)
            moved.write()
            note.path.unlink(missing_ok=True)
        return target

    def forget(self, note: Note) -> None:
        """Remove ``note`` from the working set (its text stays in git history). Raises StateError."""
        with self.writing():
            self._writable(note.path)
            note.path.unlink(missing_ok=True)

    # ------------------------------------------------------------ state and short-term memory

    @property
    def state_file(self) -> Path:
        return self.root / "state" / "current.md"

    def write_state(self, *, current: list[str], pending: list[str]) -> bool:
        """Record the work in hand and pending (one line each); returns False when nothing changed."""
        text = (f"# Work of {self.anima}\n\n## In hand\n\n" + ("\n".join(f"- {c}" for c in current) or "- nothing")
                + "\n\n## Pending\n\n" + ("\n".join(f"- {p}" for p in pending) or "- nothing") + "\n")
        with self.writing():
            self._writable(self.state_file)
            try:
                if self.state_file.read_text(encoding="utf-8") == text:
                    return False
            except FileNotFoundError:
                pass
            write_text_atomic(self.state_file, text)
        return True

    @property
    def shortterm_file(self) -> Path:
        return self.root / "shortterm" / "recent.md"

    def _remember_recent(self, markdown: str, day: date) -> None:
        sections = self.recent()
        dated = markdown.strip().replace("## ", f"## {day.isoformat()} ", 1)
        sections = [*sections, dated][-SHORTTERM_CYCLES:]
        self._writable(self.shortterm_file)
        write_text_atomic(self.shortterm_file, f"# The last cycles of {self.anima}\n\n" + "\n\n".join(sections) + "\n")

    def recent(self) -> list[str]:
        """The last cycles (at most :data:`SHORTTERM_CYCLES`), oldest first, each ``## <date> <time> <trigger>``."""
        try:
            return episode_sections(self.shortterm_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
