"""The JSON the read commands print with ``--json``, built in one place: the commands and the dashboard
(:mod:`orgctl.cli.dashboard`) call the same function for each, so the browser shows exactly what
``orgctl tasks --json`` (``inbox``, ``board``, ``events``, ``approvals``, ``history``, ``usage``,
``memory log``, ``memory diff``) prints, and there is no second model of the org.

Each function reads; none writes. Shapes are plain JSON values (dicts, lists, strings, numbers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from orgctl.paths import StatePaths


def task_json(task: Any, now: datetime) -> dict[str, Any]:
    """One :class:`~orgctl.work.tasks.Task` as JSON, with its ``overdue`` and ``stale`` flags at ``now``."""
    return task.model_dump(mode="json") | {"overdue": task.overdue(now), "stale": task.stale(now)}


def tasks_of(org: Any, names: Iterable[str], *, show_all: bool) -> list[Any]:
    """The tasks of ``names`` (open ones, or all with ``show_all``), each queue in its own order (human
    tasks first): what ``orgctl tasks`` lists."""
    return [t for n in names for t in org.queue(n).all() if show_all or t.is_open]


def tasks_report(org: Any, names: Iterable[str], *, show_all: bool, now: datetime) -> list[dict[str, Any]]:
    """``orgctl tasks --json``: :func:`tasks_of` as :func:`task_json`."""
    return [task_json(t, now) for t in tasks_of(org, names, show_all=show_all)]


def inbox_items(org: Any, name: str, *, unread: bool, limit: int) -> list[tuple[Any, bool]]:
    """The newest ``limit`` messages of ``name``'s inbox (only unread ones with ``unread``), oldest first,
    each with whether it is unread."""
    return [(m, new) for m, new in org.inbox(name).all() if new or not unread][-limit:]


def inbox_report(org: Any, name: str, *, unread: bool, limit: int) -> list[dict[str, Any]]:
    """``orgctl inbox NAME --json``: :func:`inbox_items`, each message with ``unread``."""
    return [{**m.model_dump(mode="json"), "unread": new} for m, new in inbox_items(org, name, unread=unread,
                                                                                   limit=limit)]


def board_posts(org: Any, channels: Iterable[str] | None, *, limit: int) -> list[Any]:
    """The newest ``limit`` posts of ``channels`` (None: every channel), oldest first."""
    chosen = list(channels) if channels is not None else org.board.channels()
    return sorted((p for c in chosen for p in org.board.read(c)), key=lambda p: p.at)[-limit:]


def board_report(org: Any, channels: Iterable[str] | None, *, limit: int) -> list[dict[str, Any]]:
    """``orgctl board --json``: :func:`board_posts` as JSON."""
    return [p.model_dump(mode="json") for p in board_posts(org, channels, limit=limit)]


def event_series(paths: StatePaths, *, anima: str | None = None, reason: str | None = None,
                 kind: str | None = None, limit: int = 50) -> list[Any]:
    """The newest ``limit`` event series (:class:`~orgctl.state.events.EventSeries`: repeats folded), ordered
    by last seen, of ``anima``, ``reason`` and type ``kind`` when given."""
    from orgctl.state.events import aggregate, read_events

    return aggregate([e for e in read_events(paths.work.events, anima=anima, reason=reason)
                      if kind is None or e.type == kind])[-limit:]


def events_report(paths: StatePaths, *, anima: str | None = None, reason: str | None = None,
                  kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """``orgctl events --json``: :func:`event_series` with ``count``, ``first_seen``, ``last_seen``."""
    return [s.to_json() for s in event_series(paths, anima=anima, reason=reason, kind=kind, limit=limit)]


def approvals_report(org: Any) -> list[dict[str, Any]]:
    """``orgctl approvals --json``: every approval (pending and decided)."""
    return [a.model_dump(mode="json") for a in org.approvals.all()]


def history_report(paths: StatePaths, *, limit: int) -> list[dict[str, Any]]:
    """``orgctl history --json``: the newest ``limit`` apply records, oldest first."""
    from orgctl.state.files import JsonlTail

    _, records = JsonlTail(paths.history).read_new()
    return [r for r in records if isinstance(r, dict)][-limit:]


def usage_report(paths: StatePaths, specs: Mapping[str, Any], *, name: str | None, since: datetime | None,
                 now: datetime) -> dict[str, Any]:
    """``orgctl usage --json``: ``{"usage": [row per Anima and model], "budgets": {name: {"level", "reason",
    "scope"}}}`` from the gateway's usage log (calls since ``since``), budgets of ``specs`` evaluated at ``now``."""
    from orgctl.llm.budgets import Budgets, evaluate, read_usage, summarize, usage_files

    records = [r for f in usage_files(paths.usage, since=since) for r in read_usage(f)]
    rows = summarize(records, anima=name, since=since)
    states = {n: evaluate(records, budgets=Budgets(org=s.org_budget, per_anima=s.budget), anima=n, now=now)
              for n, s in specs.items() if name in (None, n)}
    return {"usage": [r.__dict__ for r in rows],
            "budgets": {n: {"level": s.level, "reason": s.reason, "scope": s.scope} for n, s in states.items()}}


def memory_repo(paths: StatePaths, root: Path) -> Path:
    """Where memory history is read: the runtime's clone (it has every pass), else the checkout ``root``."""
    return paths.clone if (paths.clone / ".git").is_dir() else root


def memory_log_report(repo: Path, *, anima: str | None, limit: int, passes_only: bool = True) -> list[dict[str, Any]]:
    """``orgctl memory log --json``: the newest memory commits, newest first, each ``{"sha", "date", "anima",
    "pass", "subject", "trailers"}``. Raises GitError when ``repo`` is not a repository."""
    from orgctl.memory.review import memory_log

    return [{"sha": e.sha, "date": e.date, "anima": e.anima, "pass": e.kind, "subject": e.subject,
             "trailers": e.trailers} for e in memory_log(repo, anima=anima, limit=limit, passes_only=passes_only)]


def memory_diff_report(repo: Path, rev: str, *, anima: str | None) -> dict[str, Any]:
    """``orgctl memory diff REV --json``: ``{"rev", "trailers", "notes": [NoteDiff as a dict]}``, notes in
    path order. Raises GitError for an unknown revision."""
    from orgctl.gitexec import run_git
    from orgctl.gitops.repos import parse_trailers
    from orgctl.memory.review import memory_diff

    diffs = memory_diff(repo, rev, anima=anima)
    message = "" if ".." in rev else run_git("log", "-1", "--format=%B", "--end-of-options", rev, cwd=repo)
    return {"rev": rev, "trailers": parse_trailers(message), "notes": [dataclasses.asdict(d) for d in diffs]}
