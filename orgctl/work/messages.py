"""Messages and inboxes: durable delivery between people, Animas and the outside.

An inbox is a Maildir (D. J. Bernstein's format, used by mail servers for
exactly this guarantee): a message is written to ``tmp/``, fsynced, and
renamed into ``new/``. The rename is the moment of acceptance; after it, no
SIGKILL of the sender, the recipient or the supervisor can lose the message.
The recipient moves it to ``cur/`` only after the cycle that handled it has
finished, so a recipient killed mid-cycle sees it again (at-least-once).

Every accepted DM is also appended to the org's outbox log, which the
messaging rules (rate limits, pair depth, duplicate sends) count.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from orgctl.state.files import append_jsonl, sync
from orgctl.state.inventories import now_iso

Intent = Literal["report", "question", "delegation", "reply", "chat", "notice"]
"""Why a DM is sent. Animas choose report, question or delegation (delegation only through
``delegate_task``); ``reply`` answers a message; ``chat`` is a person's chat line; ``notice`` is the
framework's own (an overdue task, an approval decision)."""

Trust = Literal["trusted", "medium", "untrusted"]
"""How far the content may be believed: ``trusted`` (people using orgctl, the framework),
``medium`` (another Anima's own words), ``untrusted`` (anything from outside, and anything relaying it)."""

TRUST_ORDER: dict[str, int] = {"untrusted": 0, "medium": 1, "trusted": 2}

HUMAN = "human"
"""The recipient and sender name of the people using orgctl (``orgctl inbox human``)."""

MAX_TEXT = 4000


def lowest_trust(*levels: str) -> Trust:
    """The least trusted of ``levels``: relaying never launders untrusted data."""
    return min(levels, key=lambda t: TRUST_ORDER[t])  # type: ignore[return-value]


def new_id(prefix: str) -> str:
    """A short random id like ``m-3f2a1c9b``."""
    return f"{prefix}-{secrets.token_hex(4)}"


class Message(BaseModel):
    """One message. ``chain`` lists the senders of the causal chain that led to it, oldest first
    (the sender last); it is how a cycle A -> B -> C -> A is seen even though no pair repeats."""

    id: str = Field(default_factory=lambda: new_id("m"))
    at: str = Field(default_factory=now_iso)
    sender: str
    recipient: str
    intent: Intent
    text: str = Field(max_length=MAX_TEXT)
    trust: Trust = "medium"
    chain: list[str] = []
    in_reply_to: str | None = None
    task_id: str | None = None
    source: str = "anima"
    """Where it came from: ``anima``, ``cli``, ``webhook``, ``slack``, ``chatwork``, ``framework``."""


class Inbox:
    """The Maildir of one recipient. Safe for many concurrent writers and one reader."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dirs(self) -> tuple[Path, Path, Path]:
        return self.root / "tmp", self.root / "new", self.root / "cur"

    def deliver(self, message: Message) -> Path:
        """Write ``message`` durably into ``new/``; returns its path. Raises OSError on disk failure."""
        tmp, new, _ = self._dirs()
        name = f"{time.time_ns():020d}.{message.id}.json"
        staged = tmp / name
        try:
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # a first message: make the Maildir (not on every delivery)
            for d in self._dirs():
                d.mkdir(parents=True, exist_ok=True)
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, message.model_dump_json().encode())
            sync(fd)
        finally:
            os.close(fd)
        final = new / name
        try:
            os.rename(staged, final)
        except FileNotFoundError:  # new/ removed by hand while tmp/ stayed
            new.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)
        dir_fd = os.open(new, os.O_RDONLY)
        try:
            sync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)
        return final

    def _read(self, folder: Path) -> Iterator[tuple[Path, Message]]:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return
        for name in names:
            path = folder / name
            try:
                yield path, Message.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                continue  # moved away by the reader meanwhile, or not ours

    def unread(self) -> list[Message]:
        """Messages in ``new/``, oldest first."""
        return [m for _, m in self._read(self.root / "new")]

    def read(self, *, limit: int | None = None) -> list[Message]:
        """Messages already handled (``cur/``), oldest first; the newest ``limit``."""
        out = [m for _, m in self._read(self.root / "cur")]
        return out[-limit:] if limit else out

    def all(self) -> list[tuple[Message, bool]]:
        """Every message with whether it is still unread, oldest first."""
        items = [(m, False) for m in self.read()] + [(m, True) for m in self.unread()]
        return sorted(items, key=lambda x: x[0].at)

    def mark_read(self, message_id: str) -> bool:
        """Move the message from ``new/`` to ``cur/``; False when it is not unread."""
        new, cur = self.root / "new", self.root / "cur"
        cur.mkdir(parents=True, exist_ok=True)
        for path, message in self._read(new):
            if message.id == message_id:
                try:
                    os.rename(path, cur / path.name)
                except FileNotFoundError:
                    return False
                return True
        return False

    def find(self, message_id: str) -> Message | None:
        for folder in ("new", "cur"):
            for _, m in self._read(self.root / folder):
                if m.id == message_id:
                    return m
        return None


def record_sent(outbox: Path, message: Message) -> None:
    """Append an accepted message to the org's outbox log (what limits count)."""
    append_jsonl(outbox, {"at": message.at, "ts": time.time(), "id": message.id, "sender": message.sender,
                          "recipient": message.recipient, "intent": message.intent,
                          "text": message.text[:200], "chain": message.chain})
