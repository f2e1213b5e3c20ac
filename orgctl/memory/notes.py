"""Memory notes: plain Markdown with YAML frontmatter, so every change shows in a diff.

A note (knowledge, procedure, an archived note) is::

    ---
    format: 1
    title: Deploy checklist
    kind: procedure
    created: 2026-11-24T09:12:00+00:00
    updated: 2026-11-24T09:12:00+00:00
    importance: normal          # low | normal | high; high is never forgotten
    protected: false            # true: never forgotten, whatever its use
    stage: active               # active | downscaled  (the forgetting stage; archived notes live in archive/)
    sources: [episodes/2026-11-23.md#14:02:11]
    uses: 3                     # recalls counted up to the last consolidation
    last_used: 2026-11-23
    ---

    # Deploy checklist
    ...

Only the keys orgctl knows are given meaning; others are kept as they are.
``format`` (:data:`MEMORY_FORMAT`) guards against an older orgctl rewriting a
note a newer one wrote. Access statistics between passes live in the state
dir (:mod:`orgctl.memory.access`), so recall never changes a file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orgctl.errors import StateError
from orgctl.state.files import write_text_atomic

MEMORY_FORMAT = 1
"""The frontmatter format of memory notes this orgctl writes (and the newest it rewrites)."""

IMPORTANCE = ("low", "normal", "high")
STAGES = ("active", "downscaled")


def refuse_links(*paths: Path) -> None:
    """Raises StateError when any of ``paths`` (a memory file or a folder) is a symbolic link: memory is never
    written through a link, since one planted in the repo could point anywhere."""
    for p in paths:
        if p.is_symlink():
            raise StateError(f"{p} is a symbolic link: memory is never written through a link",
                             hint="replace it with a regular folder or file (git shows what changed)")


def split_frontmatter(text: str) -> tuple[dict[str, Any] | None, str]:
    """``(meta, body)`` of a Markdown text; ``meta`` is None without (valid) frontmatter."""
    if not text.startswith("---\n"):
        return None, text
    end = text.find("\n---", 3)
    if end < 0:
        return None, text
    try:
        meta = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return None, text
    if not isinstance(meta, dict):
        return None, text
    body = text[end + 4:]
    return meta, body[1:] if body.startswith("\n") else body


def render(meta: dict[str, Any], body: str) -> str:
    """Frontmatter (``format`` first, then ``meta`` in its order) and the body, ending in one newline."""
    front = yaml.safe_dump({"format": MEMORY_FORMAT, **{k: v for k, v in meta.items() if k != "format"}},
                           sort_keys=False, allow_unicode=True, width=100).strip()
    return f"---\n{front}\n---\n\n{body.strip()}\n"


def slugify(text: str, *, limit: int = 60) -> str:
    """A file-name slug of a subject: ASCII lower-case words joined by ``-`` (``"note"`` when nothing is left)."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    slug = slug[:limit].rsplit("-", 1)[0] if len(slug) > limit and "-" in slug[:limit] else slug[:limit]
    return slug or "note"


@dataclass
class Note:
    """One note file. ``meta`` is its frontmatter (without ``format``), ``body`` its Markdown."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    @classmethod
    def read(cls, path: Path) -> Note:
        """The note at ``path`` (a file without frontmatter reads as a body with empty meta).

        Raises OSError when it cannot be read.
        """
        meta, body = split_frontmatter(path.read_text(encoding="utf-8"))
        return cls(path=path, meta=dict(meta or {}), body=body)

    @property
    def format(self) -> int:
        value = self.meta.get("format", MEMORY_FORMAT)
        return value if isinstance(value, int) else MEMORY_FORMAT

    @property
    def title(self) -> str:
        title = self.meta.get("title")
        if isinstance(title, str) and title.strip():
            return title.strip()
        heading = next((ln[2:].strip() for ln in self.body.splitlines() if ln.startswith("# ")), "")
        return heading or self.path.stem.replace("-", " ")

    @property
    def protected(self) -> bool:
        """Never forgotten: marked ``protected: true`` or ``importance: high``."""
        return self.meta.get("protected") is True or self.meta.get("importance") == "high"

    @property
    def sources(self) -> list[str]:
        value = self.meta.get("sources") or []
        return [str(s) for s in value] if isinstance(value, list) else [str(value)]

    def write(self) -> Path:
        """Write atomically (temp file + rename). Raises StateError when the file on disk is in a newer
        format, or the note or its folder is a symbolic link."""
        refuse_links(self.path, self.path.parent)
        if self.path.exists():
            found = note_format(self.path)
            if found is not None and found > MEMORY_FORMAT:
                raise StateError(f"{self.path} is in memory format {found}, written by a newer orgctl; this one "
                                 f"writes format {MEMORY_FORMAT} and will not overwrite it",
                                 hint="upgrade orgctl (pip install -U orgctl)")
        write_text_atomic(self.path, render(self.meta, self.body))
        return self.path


def note_format(path: Path) -> int | None:
    """The ``format`` in a note's YAML frontmatter (1 when it has frontmatter without one), or None without
    frontmatter or file."""
    try:
        meta, _ = split_frontmatter(path.read_text(encoding="utf-8"))
    except OSError:
        return None
    if meta is None:
        return None
    version = meta.get("format", 1)
    return version if isinstance(version, int) else None
