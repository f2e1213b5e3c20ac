"""File-backed memory stores of one Anima: episodes, activity log, knowledge notes.

Layout under ``animas/<name>/memory/``:

* ``episodes/<YYYY-MM-DD>.md`` — one ``## HH:MM:SS <trigger>`` section per
  agent cycle, human-readable, appended by the Anima process.
* ``activity_log/<YYYY-MM-DD>.jsonl`` — the same cycles as JSON lines, with
  the structured answers and token usage (machine-readable).
* ``knowledge/<YYYY-MM-DD>.md`` — the consolidated note of a day, with YAML
  frontmatter; rewritten when the day is consolidated again (git shows the diff).

Dates are the Anima's local dates (its ``timezone``). Frontmatter carries ``format``
(:data:`MEMORY_FORMAT`): a note written by a newer orgctl is never rewritten by an older one.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from orgctl.errors import StateError
from orgctl.memory import MEMORY_DIRS
from orgctl.state.files import append_jsonl, write_text_atomic

_SECTION = re.compile(r"^## ", re.MULTILINE)

MEMORY_FORMAT = 1
"""The frontmatter format of memory notes this orgctl writes (and the newest it rewrites)."""


def note_format(path: Path) -> int | None:
    """The ``format`` in a note's YAML frontmatter (1 when it has frontmatter without one), or None without
    frontmatter or file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return None
    try:
        meta = yaml.safe_load(text[4:text.index("\n---", 4)]) or {}
    except yaml.YAMLError:
        return None
    version = meta.get("format", 1) if isinstance(meta, dict) else 1
    return version if isinstance(version, int) else None


class MemoryStore:
    """The memory folder of one Anima (``root`` = ``animas/<name>/memory``)."""

    def __init__(self, root: Path, *, anima: str) -> None:
        self.root = Path(root)
        self.anima = anima

    def ensure(self) -> MemoryStore:
        """Create the memory folders that are missing; returns self."""
        for d in MEMORY_DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        return self

    # ------------------------------------------------------------ episodes

    def episode_file(self, day: date) -> Path:
        return self.root / "episodes" / f"{day.isoformat()}.md"

    def activity_file(self, day: date) -> Path:
        return self.root / "activity_log" / f"{day.isoformat()}.jsonl"

    def _writable(self, *paths: Path) -> None:
        """Raises StateError when the memory folder, a store folder or a file to write is a symbolic link.

        Memory is never written through a link: a link planted in a checkout could point anywhere.
        """
        for p in (self.root, *{q.parent for q in paths}, *paths):
            if p.is_symlink():
                raise StateError(f"{p} is a symbolic link: memory is never written through a link",
                                 hint="replace it with a regular folder or file (git shows what changed)")

    def append_episode(self, *, day: date, markdown: str, record: dict[str, Any]) -> None:
        """Append one cycle: a Markdown section to the day's episodes, a JSON line to its activity log.

        Raises StateError when a link stands in the way (see :meth:`_writable`).
        """
        path = self.episode_file(day)
        self._writable(path, self.activity_file(day))
        if not path.parent.is_dir():  # one stat per cycle instead of a mkdir per folder
            self.ensure()
        header = "" if path.exists() else f"# Episodes of {self.anima}, {day.isoformat()}\n\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(header + markdown.rstrip() + "\n\n")
        append_jsonl(self.activity_file(day), record)

    def episodes(self, day: date) -> list[str]:
        """The day's episode sections (each starting ``## ``), oldest first."""
        path = self.episode_file(day)
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        starts = [m.start() for m in _SECTION.finditer(text)]
        return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]

    def activity(self, day: date) -> list[dict[str, Any]]:
        path = self.activity_file(day)
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue  # a torn or hand-edited line: the rest of the day still counts
            if isinstance(record, dict):
                out.append(record)
        return out

    def knowledge_file(self, day: date) -> Path:
        return self.root / "knowledge" / f"{day.isoformat()}.md"

    def write_knowledge(self, *, day: date, meta: dict[str, Any], body: str) -> Path:
        """Write (or rewrite) the day's knowledge note: YAML frontmatter, then Markdown."""
        path = self.knowledge_file(day)
        self._writable(path)
        if (found := note_format(path)) is not None and found > MEMORY_FORMAT:
            raise StateError(f"{path} is in memory format {found}, written by a newer orgctl; this one writes "
                             f"format {MEMORY_FORMAT} and will not overwrite it",
                             hint="upgrade orgctl (pip install -U orgctl)")
        front = yaml.safe_dump({"format": MEMORY_FORMAT, **meta}, sort_keys=False, allow_unicode=True).strip()
        write_text_atomic(path, f"---\n{front}\n---\n\n{body.strip()}\n")
        return path
