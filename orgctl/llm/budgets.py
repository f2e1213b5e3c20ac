"""Spend controls and usage summaries, computed from the usage log.

The gateway appends one JSON line per model call to ``<state>/usage.jsonl``
(:mod:`orgctl.llm.gateways`)::

    {"at": "2025-01-31T12:00:00+00:00", "model", "anima", "purpose",
     "prompt_tokens", "completion_tokens", "latency_s", "cost_usd"?}

This module reads that log and answers two questions: *may this Anima make
another call?* (:func:`evaluate` against the ``budgets:`` section of
``org.yaml``) and *who spent what?* (:func:`spend`, :func:`summarize`, for
``orgctl`` status commands). The log is the single source of truth, so there is
no counter to drift or to lose in a crash; it is read tolerantly because a
writer may be mid-append. Limits are per UTC calendar day and month, the
windows provider invoices use. Standard library + pydantic only: Anima
processes import this module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from orgctl.desired.models import BudgetLimits, Budgets

Level = Literal["ok", "soft", "hard"]
_RANK: dict[str, int] = {"ok": 0, "soft": 1, "hard": 2}


@dataclass(frozen=True)
class Spend:
    """What some calls consumed: prompt + completion ``tokens``, ``cost_usd`` (0 when unpriced), ``calls``."""

    tokens: int
    cost_usd: float
    calls: int


@dataclass(frozen=True)
class BudgetState:
    """The verdict of :func:`evaluate`.

    ``reason`` is '' when ok, else one sentence naming the limit, e.g. "alice
    used 81,234 of 100,000 tokens today (soft limit 80%)". ``scope`` is
    ``"org"``, ``"anima:<name>"``, or '' when ok.
    """

    level: Level
    reason: str
    scope: str


@dataclass(frozen=True)
class UsageRow:
    """One line of a usage summary: an Anima's calls to one model."""

    anima: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(record: dict[str, Any]) -> datetime | None:
    """The record's timestamp in UTC (naive ones are taken as UTC); None when missing or unparseable."""
    raw = record.get("at")
    if not isinstance(raw, str):
        return None
    try:
        return _utc(datetime.fromisoformat(raw))
    except ValueError:
        return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0


def _within(record: dict[str, Any], since: datetime | None, until: datetime | None) -> bool:
    if since is None and until is None:
        return True
    at = _at(record)
    if at is None:
        return False  # cannot place it in a window
    return (since is None or at >= _utc(since)) and (until is None or at < _utc(until))


USAGE_MONTHS_KEPT = 12
"""Monthly usage files kept besides the current one (``usage-YYYY-MM.jsonl``); older ones are deleted."""


def append_usage(path: Path, record: dict[str, Any], *, now: datetime | None = None) -> None:
    """Append one usage record to ``path``, first moving a file last written in an earlier UTC month aside
    to ``usage-YYYY-MM.jsonl`` (and deleting those older than :data:`USAGE_MONTHS_KEPT` months).

    The usage log is bounded that way without losing what budgets need: they count the current month, which
    is always whole in ``path``. Concurrent writers are safe: the move is one ``rename``, and a writer that
    loses the race finds the file already moved.
    """
    import contextlib
    import os

    from orgctl.state.files import append_jsonl

    now = _utc(now or datetime.now(UTC))
    try:
        written = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except FileNotFoundError:
        written = now
    if (written.year, written.month) != (now.year, now.month):
        archive = path.with_name(f"{path.stem}-{written:%Y-%m}{path.suffix}")
        if not archive.exists():
            with contextlib.suppress(FileNotFoundError):  # another writer moved it first
                os.replace(path, archive)
        months = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
        for old in months[:-USAGE_MONTHS_KEPT]:
            old.unlink(missing_ok=True)
    append_jsonl(path, record)


def usage_files(path: Path, *, since: datetime | None = None) -> list[Path]:
    """The usage files holding records at or after ``since`` (all of them without it), oldest first:
    the monthly archives of :func:`append_usage`, then ``path``."""
    archives = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
    if since is not None:
        first = f"{path.stem}-{_utc(since):%Y-%m}{path.suffix}"
        archives = [a for a in archives if a.name >= first]
    return [*archives, path]


def read_usage(path: Path, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """The usage records in ``path`` (JSON objects, file order), those at or after ``since`` when given.

    Tolerant: a missing file gives ``[]``; torn, corrupt or non-object lines
    are skipped (a writer may be mid-append); with ``since``, records without
    a readable ``at`` are skipped too. Naive datetimes are taken as UTC.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _within(record, since, None):
            records.append(record)
    return records


def spend(records: Iterable[dict[str, Any]], *, anima: str | None = None, since: datetime | None = None,
          until: datetime | None = None) -> Spend:
    """Total :class:`Spend` of ``records`` in ``[since, until)``, only ``anima``'s when given.

    Missing or invalid token and cost fields count as 0.
    """
    tokens = calls = 0
    cost = 0.0
    for record in records:
        if (anima is not None and record.get("anima") != anima) or not _within(record, since, until):
            continue
        tokens += _int(record.get("prompt_tokens")) + _int(record.get("completion_tokens"))
        cost += _float(record.get("cost_usd"))
        calls += 1
    return Spend(tokens=tokens, cost_usd=cost, calls=calls)


def _usd(amount: float) -> str:
    return f"${amount:,.4f}" if 0 < amount < 0.01 else f"${amount:,.2f}"


def _check(*, who: str, used: Spend, limits: BudgetLimits, period: str) -> list[tuple[Level, float, str]]:
    """``(level, used/limit, reason)`` for each limit of ``period`` ("day" or "month") that has tripped."""
    when = "today" if period == "day" else "this month"
    token_limit: int | None = getattr(limits, f"tokens_per_{period}")
    cost_limit: float | None = getattr(limits, f"cost_per_{period}_usd")
    found: list[tuple[Level, float, str]] = []
    for amount, limit, is_cost in ((used.tokens, token_limit, False), (used.cost_usd, cost_limit, True)):
        if limit is None:
            continue
        share = amount / limit if limit > 0 else float("inf")
        if share >= 1:
            level: Level = "hard"
            note = "hard limit"
        elif share >= limits.soft_fraction:
            level = "soft"
            note = f"soft limit {limits.soft_fraction * 100:g}%"
        else:
            continue
        what = (f"spent {_usd(amount)} of {_usd(limit)}" if is_cost
                else f"used {int(amount):,} of {int(limit):,} tokens")
        found.append((level, share, f"{who} {what} {when} ({note})"))
    return found


def evaluate(records: Sequence[dict[str, Any]], *, budgets: Budgets, anima: str, now: datetime,
             anima_limits: BudgetLimits | None = None) -> BudgetState:
    """Whether ``anima`` may make another call at ``now``, given the usage ``records``.

    Day is the UTC calendar day of ``now``, month the UTC calendar month.
    Checks ``anima``'s own usage against ``anima_limits`` (when its own file
    overrides them) or ``budgets.per_anima``, and all Animas' usage against
    ``budgets.org``. The worst level wins (hard > soft > ok); among equals,
    the limit used the most, then the Anima's before the org's, day before
    month, tokens before cost. The reason names that limit.
    """
    now = _utc(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    windows = {"day": (day, day + timedelta(days=1)),
               "month": (month, (month + timedelta(days=32)).replace(day=1))}
    month_records = [r for r in records if _within(r, *windows["month"])]
    scopes = [(f"anima:{anima}", anima, anima_limits or budgets.per_anima, anima),
              ("org", None, budgets.org, "the org")]
    worst = BudgetState(level="ok", reason="", scope="")
    worst_share = 0.0
    for scope, only, limits, who in scopes:
        for period, (since, until) in windows.items():
            used = spend(month_records, anima=only, since=since, until=until)
            for level, share, reason in _check(who=who, used=used, limits=limits, period=period):
                if (_RANK[level], share) > (_RANK[worst.level], worst_share):
                    worst, worst_share = BudgetState(level=level, reason=reason, scope=scope), share
    return worst


def summarize(records: Iterable[dict[str, Any]], *, anima: str | None = None,
              since: datetime | None = None) -> list[UsageRow]:
    """Usage grouped by (anima, model), sorted by anima then model; only ``anima``'s rows when given.

    Calls without an Anima label (e.g. the supervisor's own) have ``anima`` ''.
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        if (anima is not None and record.get("anima") != anima) or not _within(record, since, None):
            continue
        key = (str(record.get("anima") or ""), str(record.get("model") or ""))
        row = groups.setdefault(key, [0, 0, 0, 0.0])
        row[0] += 1
        row[1] += _int(record.get("prompt_tokens"))
        row[2] += _int(record.get("completion_tokens"))
        row[3] += _float(record.get("cost_usd"))
    return [UsageRow(anima=a, model=m, calls=c, prompt_tokens=p, completion_tokens=t, cost_usd=cost)
            for (a, m), (c, p, t, cost) in sorted(groups.items())]


LimitsFor = Callable[[str | None], tuple[BudgetLimits, BudgetLimits]]
"""``limits_for(anima) -> (anima_limits, org_limits)``: the applied limits for a call's Anima."""


class BudgetGuard:
    """Checks each model call against the applied budgets, reading the usage log incrementally.

    The guard keeps this month's usage records in memory and folds in only
    the lines appended since its last look (:class:`~orgctl.state.files.JsonlTail`),
    so a check costs O(new lines) plus one pass over this month's records,
    whoever else (a consolidation pass in another process) appends to the log.
    ``on_change(anima, state)`` is called when a scope's level changes within a
    UTC day (ok → soft, soft → hard, and the first time each day), so the
    supervisor can emit a Warning event or call a human once, not per call.
    Thread-safe.
    """

    def __init__(self, usage_log: Path, *, limits_for: LimitsFor,
                 on_change: Callable[[str | None, BudgetState], None] | None = None) -> None:
        from orgctl.state.files import JsonlTail

        self._tail = JsonlTail(usage_log)
        self._limits_for = limits_for
        self._on_change = on_change
        self._records: list[dict[str, Any]] = []
        self._month: tuple[int, int] | None = None
        self._seen: dict[tuple[str, str], Level] = {}  # (scope, day) -> level last reported
        self._lock = threading.Lock()

    def check(self, anima: str | None, *, now: datetime | None = None) -> BudgetState:
        """The level for one more call by ``anima`` (None: an unlabelled call, checked org-wide only)."""
        now = _utc(now or datetime.now(UTC))
        anima_limits, org_limits = self._limits_for(anima)
        with self._lock:
            reset, new = self._tail.read_new()
            if reset or self._month != (now.year, now.month):
                self._records, self._month = [], (now.year, now.month)
                if not reset:  # month rolled over: re-read the log for this month's records
                    self._tail.offset = 0
                    _, new = self._tail.read_new()
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            self._records.extend(r for r in new if _within(r, start, None))
            state = evaluate(self._records, budgets=Budgets(org=org_limits, per_anima=anima_limits),
                             anima=anima or "", now=now)
            key = (state.scope or f"anima:{anima}", now.date().isoformat())
            changed = state.level != "ok" and self._seen.get(key) != state.level
            if changed:
                self._seen[key] = state.level
        if changed and self._on_change is not None:
            self._on_change(anima, state)
        return state
