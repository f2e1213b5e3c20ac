"""What an activity record is about: subjects and outcomes, read from what the framework wrote.

Consolidation files each fact under a subject (one knowledge note per
subject) and learns a procedure from each failure. Both come from the
activity log's ``did`` lines, which the framework writes in a fixed form
(``replied to bob: …``, ``ran 'pytest -q': exit 1, 40 lines``, ``delegated
t-3 to bob as t-4``), never from what a model says about itself: the
embedded 135M model would invent subjects; these are real names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:ran|was refused|asked a person to approve|did not run) (?:the approved )?'(?P<x>[^']+)'"),
     "command"),
    (re.compile(r"^(?:replied to|relayed it to|asked|reply to) (?P<x>[A-Za-z0-9._-]+)\b"), "colleague"),
    (re.compile(r"^(?:delegated|asked) \S+ to (?P<x>[A-Za-z0-9._-]+)"), "colleague"),
    (re.compile(r"^reported \S+ \(\w+\) to (?P<x>[A-Za-z0-9._-]+)"), "colleague"),
    (re.compile(r"^(?:restarted|audited) (?P<x>[A-Za-z0-9._-]+)"), "colleague"),
    (re.compile(r"^(?:answered the person|called a human)"), "people"),
    (re.compile(r"^answered in #(?P<x>[A-Za-z0-9._-]+)"), "channel"),
)
_FAILED = re.compile(r"exit (?!0\b)\d+|\brefused\b|\bdenied\b|\bblocked\b|\bfailed\b")
HUMAN_NAMES = frozenset({"human", "person", "the"})


@dataclass(frozen=True)
class Fact:
    """One thing done: ``subject`` (the note it belongs in: ``"bob"``, ``"command git log"``, ``"people"``),
    ``kind`` (colleague, command, people, channel, work), ``text`` (the did line), ``failed``."""

    subject: str
    kind: str
    text: str
    failed: bool


def fact(line: str) -> Fact:
    """The subject and outcome of one ``did`` line (kind ``work`` when no pattern knows it)."""
    text = " ".join(line.split())
    failed = bool(_FAILED.search(text))
    for pattern, kind in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        if kind == "command":
            command = m.group("x").strip()
            return Fact(f"command {' '.join(command.split()[:2])}", kind, text, failed)
        if kind == "people" or m.group("x").lower() in HUMAN_NAMES:
            return Fact("people", "people", text, failed)
        return Fact(m.group("x"), kind, text, failed)
    return Fact("work", "work", text, failed)


def title_of(subject: str, kind: str) -> str:
    """The title of the note on ``subject``: ``Working with bob``, ``Running git log``, ``Working with people``."""
    if kind == "command":
        return "Running " + subject.removeprefix("command ")
    if kind == "channel":
        return f"The #{subject} channel"
    if kind == "work":
        return "Day-to-day work"
    return f"Working with {subject}"
