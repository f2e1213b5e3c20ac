"""Events: the operator's bounded stream of what happened (``orgctl events``).

Shaped like Kubernetes events: a ``type`` (``Normal`` or ``Warning``), a
CamelCase ``reason`` (``MessageSent``, ``MessageRefused``, ``TaskDelegated``,
``CommandRun``, ``CommandRefused``, ``HeartbeatFailed`` ...), the object it is
about (``anima/bob``, ``task/t-3f2a1c``), and one human sentence. Every writer
(CLI, supervisor, Anima processes) appends one JSON line with a single
``O_APPEND`` write, so concurrent writers never interleave.

Bounded: when the file passes :data:`MAX_BYTES` it is rotated to
``events.1.jsonl`` (one generation kept), as logrotate would. The durable
audit trail is each Anima's committed activity log; this is the operator's
view.

Repeats are folded when read (:func:`aggregate`), as Kubernetes folds an event
that recurs into one with a ``count`` and first/last seen times: writers only
ever append, so concurrent writers need no coordination.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from orgctl.state.files import append_jsonl
from orgctl.state.inventories import now_iso

MAX_BYTES = 8 * 1024 * 1024

EventType = Literal["Normal", "Warning"]


class Event(BaseModel):
    """One event. ``at`` is ISO 8601 UTC; ``fields`` carries structured details (ids, exit codes)."""

    at: str
    type: EventType
    reason: str
    object: str
    message: str
    anima: str | None = None
    fields: dict[str, Any] = {}


def emit(path: Path, *, reason: str, object: str, message: str, anima: str | None = None,
         type: EventType = "Normal", **fields: Any) -> Event:
    """Append one event to the stream at ``path`` (rotating first when it is too big); returns it."""
    one_line = " ".join(message.split())  # an event is one line in `orgctl events`, whatever the text held
    event = Event(at=now_iso(), type=type, reason=reason, object=object, message=one_line[:500],
                  anima=anima, fields=fields)
    try:
        if path.stat().st_size > MAX_BYTES:
            os.replace(path, path.with_name(path.stem + ".1.jsonl"))
    except FileNotFoundError:
        pass
    append_jsonl(path, event.model_dump(mode="json"))
    return event


class EventSeries(BaseModel):
    """One event and its repeats: the same type, reason, object and message, ``count`` times between
    ``first_seen`` and ``last_seen`` (ISO 8601 UTC). ``event`` is the latest occurrence."""

    event: Event
    count: int
    first_seen: str
    last_seen: str

    def to_json(self) -> dict[str, Any]:
        return self.event.model_dump(mode="json") | {"count": self.count, "first_seen": self.first_seen,
                                                     "last_seen": self.last_seen}


def aggregate(events: list[Event]) -> list[EventSeries]:
    """Fold repeats of each (type, reason, object, message) into one series, ordered by last seen."""
    series: dict[tuple[str, str, str, str], EventSeries] = {}
    for e in events:
        key = (e.type, e.reason, e.object, e.message)
        if (found := series.pop(key, None)) is not None:  # popped and put back: the dict stays in last-seen order
            series[key] = EventSeries(event=e, count=found.count + 1, first_seen=found.first_seen, last_seen=e.at)
        else:
            series[key] = EventSeries(event=e, count=1, first_seen=e.at, last_seen=e.at)
    return list(series.values())


def _lines(path: Path) -> Iterator[str]:
    for p in (path.with_name(path.stem + ".1.jsonl"), path):
        try:
            with open(p, encoding="utf-8") as f:
                yield from f
        except FileNotFoundError:
            continue


def read_events(path: Path, *, anima: str | None = None, reason: str | None = None,
                since: str | None = None, limit: int | None = None) -> list[Event]:
    """Events oldest first, filtered by Anima, reason and ``since`` (ISO time); the newest ``limit`` kept.

    A torn last line (a writer mid-append) is skipped.
    """
    out: list[Event] = []
    for line in _lines(path):
        try:
            event = Event.model_validate(json.loads(line))
        except (ValueError, TypeError):
            continue
        if anima and event.anima != anima:
            continue
        if reason and event.reason != reason:
            continue
        if since and event.at < since:
            continue
        out.append(event)
    return out[-limit:] if limit else out
