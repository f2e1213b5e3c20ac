"""The Board: org-wide channels (#general, #ops ...) for greetings, thanks, FYIs and news.

DMs carry work (report, question, delegation); everything social or
broadcast goes here, as AnimaWorks users know it. Each channel is one
append-only JSON-lines file; a post is one ``O_APPEND`` write, so it is
durable once written and concurrent posters never interleave. ``@name`` in a
post wakes that Anima at once; other posts wait for its next heartbeat, which
reads what is new since its cursor.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from orgctl.errors import StateError, WorkError
from orgctl.state.files import append_jsonl, read_json, write_json
from orgctl.state.inventories import now_iso
from orgctl.work.messages import MAX_TEXT, Trust, new_id

CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")


def channel_name(raw: str) -> str:
    """``#General`` -> ``general``. Raises :class:`WorkError` for names that are not ``[a-z0-9_-]``, 1-32 chars."""
    name = raw.strip().lstrip("#").lower()
    if not CHANNEL_RE.match(name):
        raise WorkError(f"invalid channel name {raw!r}: use letters, digits, '-' and '_' (e.g. #general)")
    return name


def mentions(text: str) -> list[str]:
    """Names @mentioned in ``text``, in order, without duplicates."""
    seen: list[str] = []
    for m in MENTION_RE.findall(text):
        if m not in seen:
            seen.append(m)
    return seen


class Post(BaseModel):
    id: str = Field(default_factory=lambda: new_id("p"))
    at: str = Field(default_factory=now_iso)
    channel: str
    sender: str
    text: str = Field(max_length=MAX_TEXT)
    trust: Trust = "medium"
    seq: int = 0


SEEN_WINDOW = 200  # posts at the end of a channel whose ids a cursor keeps (see Board.unseen)


def _cursor(mark: Any) -> tuple[int, set[str]]:
    """``(read after this line, ids already seen)`` from a cursor entry: ``{"n", "seen"}``, or a plain line
    count (the format before ids were kept), or anything else (none)."""
    if isinstance(mark, dict):
        try:
            n = max(0, int(mark.get("n", 0)))
        except (TypeError, ValueError):
            return 0, set()
        seen = mark.get("seen")
        ids = {str(i) for i in seen} if isinstance(seen, list) else set()
        return max(0, n - SEEN_WINDOW) if ids else n, ids
    if isinstance(mark, int) and not isinstance(mark, bool) and mark >= 0:
        return mark, set()
    return 0, set()


class Board:
    """All channels of one org, under ``root`` (one ``<channel>.jsonl`` each)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _file(self, channel: str) -> Path:
        return self.root / f"{channel_name(channel)}.jsonl"

    def post(self, *, channel: str, sender: str, text: str, trust: Trust = "medium") -> Post:
        """Append a post; returns it. Raises :class:`WorkError` for a bad channel name."""
        post = Post(channel=channel_name(channel), sender=sender, text=text[:MAX_TEXT], trust=trust)
        append_jsonl(self._file(post.channel), post.model_dump(mode="json"))
        return post

    def channels(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.jsonl"))

    def read(self, channel: str, *, after: int = 0, limit: int | None = None) -> list[Post]:
        """Posts of ``channel`` numbered from 1 (``seq``); those after ``after``; the newest ``limit``."""
        out = []
        try:
            with open(self._file(channel), encoding="utf-8") as f:
                for seq, line in enumerate(f, 1):
                    if seq <= after:
                        continue
                    try:
                        out.append(Post.model_validate({**json.loads(line), "seq": seq}))
                    except ValueError:
                        continue
        except FileNotFoundError:
            pass
        return out[-limit:] if limit else out

    def unseen(self, *, reader: str, cursors: Path) -> list[Post]:
        """Posts in every channel since ``reader``'s cursor, not its own; does not move the cursor.

        A cursor is the channel's length when it was marked plus the ids of its last :data:`SEEN_WINDOW` posts:
        a post that a merge put before the mark (a tick org's shards append to the same channel, and the merge
        keeps their lines first) is still unseen, as long as fewer than that many lines moved. A cursor that
        does not parse counts as none (everything is new), never as an error.
        """
        try:
            seen = read_json(cursors / f"{reader}.board.json", default={}) or {}
        except StateError:
            seen = {}
        out = []
        for channel in self.channels():
            after, ids = _cursor(seen.get(channel) if isinstance(seen, dict) else None)
            out += [p for p in self.read(channel, after=after) if p.sender != reader and p.id not in ids]
        return sorted(out, key=lambda p: p.at)

    def _length(self, channel: str) -> int:
        """Lines in ``channel`` (the last ``seq``; a line that does not parse still takes its number)."""
        try:
            with open(self._file(channel), "rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def mark_seen(self, *, reader: str, cursors: Path) -> None:
        """Move ``reader``'s cursor to the end of every channel; no write when nothing moved.

        A heartbeat calls this every beat: rewriting and fsyncing an unchanged cursor cost a
        millisecond or two each time (bench/task_overhead.py).
        """
        path = cursors / f"{reader}.board.json"
        marks: dict[str, Any] = {}
        for channel in self.channels():
            length = self._length(channel)
            window = self.read(channel, after=max(0, length - SEEN_WINDOW))
            marks[channel] = {"n": length, "seen": [p.id for p in window]}
        try:
            before = read_json(path, default={}) or {}
        except StateError:
            before = {}
        if marks != before:
            write_json(path, marks)
