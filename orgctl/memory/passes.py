"""Running memory passes over several Animas, and when they run on their own.

``orgctl consolidate`` / ``orgctl forget`` call :func:`run_passes` in process
when the org is down, and ask the supervisor when it runs (the runtime is then
the one writer); the supervisor also runs them on the org's schedule
(:func:`due_passes`, ``memory.schedule`` in org.yaml). No model is needed: the
passes file what the framework observed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from orgctl.desired.models import AnimaSpec, MemorySchedule
from orgctl.gitops.clones import RuntimeClone
from orgctl.memory.access import AccessStats
from orgctl.memory.batches import commit_batch
from orgctl.memory.consolidation import NoteChange, PassResult, run_pass
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths


def run_passes(kind: str, *, clone: RuntimeClone, paths: StatePaths, animas: Mapping[str, AnimaSpec],
               revision: str | None, day: date | None = None, dry_run: bool = False,
               progress: Callable[[str], None] = lambda name: None) -> list[PassResult]:
    """One ``kind`` pass (and at most one commit) per Anima in ``animas``, in name order.

    The passes commit in the runtime's ``clone``; the caller syncs it (:meth:`RuntimeClone.sync`).
    ``day`` defaults to today in each Anima's time zone. Raises StateError (a busy memory lock) or
    GitError from the first pass that fails; earlier passes stay committed.
    """
    results = []
    for name, spec in sorted(animas.items()):
        progress(name)
        today = day or datetime.now(ZoneInfo(spec.timezone)).date()
        rel = f"animas/{name}/memory"
        store = MemoryStore(clone.memory_dir(name), anima=name, lock=paths.memory_lock(name),
                            holder=f"{kind} pass")

        def commit(_paths: list[str], subject: str, body: str, trailers: dict[str, Any], rel: str = rel) -> str | None:
            return clone.commit([rel], subject=subject, body=body, trailers=trailers)

        results.append(run_pass(
            kind, store=store, anima=name, today=today, config=spec.memory.forgetting,
            stats=AccessStats(paths.memory_state(name) / "access.json"), dry_run=dry_run,
            source_revision=revision, commit=commit,
            commit_episodes=lambda name=name: commit_batch(clone, {name: revision}, paths=paths)))
    return results


def result_json(result: PassResult, diffs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A pass result as JSON (the supervisor's answer, ``--json``); each change's diff only for a dry run,
    from ``diffs`` by path when given (a result read back from JSON has no texts to diff)."""
    def diff(c: NoteChange) -> dict[str, str]:
        if not result.dry_run:
            return {}
        return {"diff": diffs.get(c.path, "") if diffs is not None else c.diff()}

    return {"anima": result.anima, "pass": result.kind, "commit": result.commit, "dry_run": result.dry_run,
            "skipped": result.skipped, "episodes": result.episodes, "counts": result.counts,
            "changes": [{"path": c.path, "action": c.action, "summary": c.summary, "target": c.target, **diff(c)}
                        for c in result.changes]}


def result_from_json(data: dict[str, Any]) -> tuple[PassResult, dict[str, str]]:
    """The inverse of :func:`result_json`: the result (changes without texts) and each change's diff by path."""
    changes = [NoteChange(c["path"], c["action"], "", "", c["summary"], c.get("target", "")) for c in data["changes"]]
    return (PassResult(anima=data["anima"], kind=data["pass"], changes=changes, commit=data["commit"],
                       dry_run=data["dry_run"], skipped=data["skipped"], episodes=data.get("episodes", 0)),
            {c["path"]: c.get("diff", "") for c in data["changes"]})


def due_passes(schedule: MemorySchedule, *, since: datetime, until: datetime) -> list[str]:
    """The passes whose cron time (``schedule``, in the time zone of ``since``) falls in ``(since, until]``,
    in the order they run: consolidate, compress, forget."""
    from croniter import croniter

    due = []
    for kind, expr in (("consolidate", schedule.consolidate), ("compress", schedule.compress),
                       ("forget", schedule.forget)):
        if croniter(expr, since).get_next(datetime) <= until:
            due.append(kind)
    return due
