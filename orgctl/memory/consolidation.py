"""The memory passes: consolidation (daily), compression (weekly) and forgetting (monthly).

Each pass over one Anima computes its changes first (:class:`NoteChange`: a
note's text before and after), so ``--dry-run`` shows exactly what a real run
writes; a real run writes them under the Anima's memory lock and commits them
as exactly one git commit by the bot, with trailers (Anima, Pass,
Source-Revision, Added, Changed, Archived, Forgotten, Redactions) and a body
that lists each note. Episodes written since the last batch are committed
first, on their own, so the pass's commit holds only what the pass changed.

* **consolidate** (a day): the day's activity log, fact by fact, filed under
  its subject (:mod:`.subjects`): merged into the existing knowledge note on
  that subject (new facts appended, known ones not repeated, the episodes as
  ``sources``), never one note per day. A failed action (a command's non-zero
  exit, a refusal) becomes a procedure: what failed, and what worked after it
  the same day, "how to do it right next time". Access statistics are folded
  into the frontmatter. Facts come from what the framework observed, never
  from the model. The idea of sleep-like consolidation of episodic into
  semantic memory is from complementary learning systems theory (McClelland
  et al., 1995), as used by Generative Agents (Park et al., 2023) and AnimaWorks.
* **compress** (weekly): notes over :data:`MAX_FACTS` facts keep the newest and
  fold the rest into one line (the full text stays in git history); notes on
  the same subject (same slug once numbers and dates are dropped) are merged.
* **forget** (monthly), in three stages with the thresholds of
  :class:`~orgctl.desired.models.ForgettingConfig`: *downscale* (an unused note
  is marked ``stage: downscaled``), *reorganize* (a downscaled note still
  unused moves to ``archive/``; old episode files too), *forget* (an archived
  note still unused leaves the working set; git history keeps it). Protected
  notes (``protected: true``, ``importance: high``, and the kinds in
  ``protect``, procedures by default) are never touched; skills are spec and
  never memory. AnimaWorks' thresholds (90 days, 3 uses) are the defaults.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orgctl.desired.models import ForgettingConfig
from orgctl.memory.access import AccessStats
from orgctl.memory.notes import Note, refuse_links, render, slugify
from orgctl.memory.stores import MemoryStore
from orgctl.memory.subjects import Fact, fact, title_of

MAX_FACTS = 40
"""Facts a knowledge note keeps after compression (older ones are folded into one line)."""
PASSES = ("consolidate", "compress", "forget")
_FACT_LINE = re.compile(r"^- (\d{4}-\d{2}-\d{2}): (.*)$")


@dataclass(frozen=True)
class NoteChange:
    """One file a pass changes: ``path`` relative to the memory folder, ``action`` one of added, changed,
    downscaled, archived, forgotten; ``before``/``after`` its text ('' when absent); ``target`` where an
    archived file goes."""

    path: str
    action: str
    before: str
    after: str
    summary: str
    target: str = ""

    def diff(self) -> str:
        """A unified diff of the change (for ``--dry-run``)."""
        target = self.target or self.path
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=f"a/{self.path}", tofile=f"b/{target}"))


@dataclass
class PassResult:
    """What one pass over one Anima did (or, with ``dry_run``, would do). ``commit``: its sha, or None."""

    anima: str
    kind: str
    changes: list[NoteChange] = field(default_factory=list)
    commit: str | None = None
    dry_run: bool = False
    skipped: str | None = None
    episodes: int = 0

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def counts(self) -> dict[str, int]:
        """``added``, ``changed`` (downscaled included), ``archived``, ``forgotten``."""
        return {"added": self.count("added"), "changed": self.count("changed") + self.count("downscaled"),
                "archived": self.count("archived"), "forgotten": self.count("forgotten")}


# ------------------------------------------------------------------ helpers


def _facts_of(note: Note) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for line in note.body.splitlines() if (m := _FACT_LINE.match(line))]


def _body(title: str, facts: list[tuple[str, str]], *, folded: str = "") -> str:
    lines = [f"# {title}", ""]
    if folded:
        lines += [folded, ""]
    lines += [f"- {day}: {text}" for day, text in facts]
    return "\n".join(lines)


def _fold_stats(note: Note, stats: dict[str, dict[str, object]]) -> None:
    entry = stats.get(note.path.parent.name + "/" + note.path.name)
    if entry:
        note.meta["uses"] = int(note.meta.get("uses", 0) or 0) + int(entry.get("uses", 0) or 0)  # type: ignore[call-overload]
        note.meta["last_used"] = max(str(note.meta.get("last_used") or ""), str(entry.get("last_used") or ""))


def _rel(store: MemoryStore, path: Path) -> str:
    return path.relative_to(store.root).as_posix()


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


# ------------------------------------------------------------------ consolidate


def plan_consolidation(store: MemoryStore, day: date, *, stats: dict[str, dict[str, object]] | None = None
                       ) -> tuple[list[NoteChange], int]:
    """The changes consolidating ``day`` makes, and how many episodes it read. Writes nothing."""
    records = store.activity(day)
    by_subject: dict[str, list[tuple[Fact, str]]] = {}
    for record in records:
        source = f"episodes/{day.isoformat()}.md#{str(record.get('at', ''))[11:19]}"
        for line in record.get("did") or []:
            f = fact(str(line))
            if f.text.startswith("introduced myself"):
                continue
            by_subject.setdefault(f.subject, []).append((f, source))
        if record.get("failed"):
            f = Fact("work", "work", f"failed: {' '.join(str(record['failed']).split())[:200]}", True)
            by_subject.setdefault("work", []).append((f, source))
    changes = []
    stats = stats or {}
    for subject, items in sorted(by_subject.items()):
        kind = items[0][0].kind
        changes.extend(_merge_knowledge(store, subject, kind, items, day, stats))
        failures = [(f, s) for f, s in items if f.failed]
        if failures:
            changes.extend(_learn_procedure(store, subject, kind, items, failures, day))
    # Recalled notes that learned nothing today still get their use counts.
    touched = {c.path for c in changes}
    for kind in ("knowledge", "procedures"):
        for note in store.notes(kind):
            rel = _rel(store, note.path)
            if rel not in touched and rel in stats:
                before = _text(note.path)
                _fold_stats(note, stats)
                changes.append(NoteChange(rel, "changed", before, render(note.meta, note.body),
                                          f"{note.title}: recalled {stats[rel].get('uses')} times"))
    return changes, len(store.episodes(day))


def _merge_knowledge(store: MemoryStore, subject: str, kind: str, items: list[tuple[Fact, str]], day: date,
                     stats: dict[str, dict[str, object]]) -> list[NoteChange]:
    path = store.note_path("knowledge", subject)
    existing = Note.read(path) if path.is_file() else None
    note = existing or Note(path=path, meta={"title": title_of(subject, kind), "kind": "knowledge",
                                             "subject": subject, "created": day.isoformat(),
                                             "importance": "normal", "protected": False, "stage": "active",
                                             "sources": []})
    facts = _facts_of(note)
    known = {text for _, text in facts}
    new = [(day.isoformat(), f.text) for f, _ in items if f.text not in known]
    new = list(dict.fromkeys(new))
    if not new:
        return []
    note.meta["updated"] = day.isoformat()
    note.meta["stage"] = "active"  # learning about it again brings a downscaled note back
    note.meta["sources"] = list(dict.fromkeys([*note.sources, *(s for _, s in items)]))
    _fold_stats(note, stats)
    folded = next((ln for ln in note.body.splitlines() if ln.startswith("_Earlier:")), "")
    before = _text(path)
    after = render(note.meta, _body(note.title, facts + new, folded=folded))
    action = "changed" if existing else "added"
    return [NoteChange(_rel(store, path), action, before, after, f"{note.title}: {_count(len(new), 'new fact')}")]


def _count(n: int, noun: str) -> str:
    """``"1 new fact"``, ``"3 new facts"``: a count for a commit message a person reads."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _learn_procedure(store: MemoryStore, subject: str, kind: str, items: list[tuple[Fact, str]],
                     failures: list[tuple[Fact, str]], day: date) -> list[NoteChange]:
    path = store.note_path("procedures", subject)
    existing = Note.read(path) if path.is_file() else None
    name = title_of(subject, kind)
    note = existing or Note(path=path, meta={"title": f"{name}: how to do it right next time", "kind": "procedure",
                                             "subject": subject, "created": day.isoformat(),
                                             "importance": "normal", "protected": True, "stage": "active",
                                             "sources": []})
    facts = _facts_of(note)
    known = {text for _, text in facts}
    last_failure = max(i for i, item in enumerate(items) if item in failures)
    worked = [f for f, _ in items[last_failure + 1:] if not f.failed]
    lesson = [(day.isoformat(), f"went wrong: {f.text}") for f, _ in failures]
    lesson += [(day.isoformat(), f"worked after that: {f.text}") for f in worked[:2]]
    if not worked:
        lesson.append((day.isoformat(), "still unsolved: ask your supervisor or a person before trying it again"))
    new = [x for x in dict.fromkeys(lesson) if x[1] not in known]
    if not new:
        return []
    note.meta["updated"] = day.isoformat()
    note.meta["sources"] = list(dict.fromkeys([*note.sources, *(s for _, s in failures)]))
    before = _text(path)
    after = render(note.meta, _body(note.title, facts + new))
    return [NoteChange(_rel(store, path), "changed" if existing else "added", before, after,
                       f"{note.title}: {_count(len(failures), 'failure')}")]


# ------------------------------------------------------------------ compress


def _subject_key(note: Note) -> str:
    subject = note.meta.get("subject") or note.title
    return re.sub(r"-?\d+", "", slugify(str(subject))) or slugify(str(subject))


def plan_compression(store: MemoryStore, *, today: date, max_facts: int = MAX_FACTS) -> list[NoteChange]:
    """The weekly pass: merge knowledge notes on the same subject, fold old facts of long notes. Writes nothing."""
    changes: list[NoteChange] = []
    groups: dict[str, list[Note]] = {}
    for note in store.notes("knowledge"):
        groups.setdefault(_subject_key(note), []).append(note)
    for notes in groups.values():
        keep, *others = sorted(notes, key=lambda n: (-len(_facts_of(n)), n.path.name))
        facts = _facts_of(keep)
        folded = next((ln for ln in keep.body.splitlines() if ln.startswith("_Earlier:")), "")
        sources = list(keep.sources)
        for other in others:
            facts += [f for f in _facts_of(other) if f not in facts]
            sources += other.sources
            changes.append(NoteChange(_rel(store, other.path), "forgotten", _text(other.path), "",
                                      f"{other.title}: merged into {_rel(store, keep.path)}"))
        facts.sort(key=lambda f: f[0])
        before_count = len(facts)
        if len(facts) > max_facts:
            dropped = facts[:-max_facts]
            facts = facts[-max_facts:]
            folded = (f"_Earlier: {len(dropped)} facts from {dropped[0][0]} to {dropped[-1][0]} were compressed "
                      f"away on {today.isoformat()}; git history has them._")
        if not others and before_count <= max_facts:
            continue
        keep.meta["sources"] = list(dict.fromkeys(sources))[-4 * max_facts:]
        keep.meta["updated"] = today.isoformat()
        after = render(keep.meta, _body(keep.title, facts, folded=folded))
        merged = f", merged {len(others)} notes" if others else ""
        changes.append(NoteChange(_rel(store, keep.path), "changed", _text(keep.path), after,
                                  f"{keep.title}: {len(facts)} facts kept of {before_count}{merged}"))
    return changes


# ------------------------------------------------------------------ forget


def _last_active(note: Note) -> date:
    days = [str(note.meta.get(k) or "") for k in ("last_used", "updated", "created")]
    found = [date.fromisoformat(d[:10]) for d in days if re.match(r"\d{4}-\d{2}-\d{2}", d)]
    return max(found) if found else date.min


def plan_forgetting(store: MemoryStore, *, today: date, config: ForgettingConfig,
                    stats: dict[str, dict[str, object]] | None = None) -> list[NoteChange]:
    """The three stages of forgetting (see the module docstring). Writes nothing."""
    stats = stats or {}
    changes: list[NoteChange] = []
    for kind in ("knowledge", "procedures"):
        for note in store.notes(kind):
            rel = _rel(store, note.path)
            _fold_stats(note, stats)
            if note.protected or kind in config.protect:
                continue
            idle = (today - _last_active(note)).days
            uses = int(note.meta.get("uses", 0) or 0)
            stage = note.meta.get("stage", "active")
            if stage != "downscaled" and idle >= config.downscale_after_days and uses < config.min_uses:
                before = _text(note.path)
                note.meta["stage"] = "downscaled"
                changes.append(NoteChange(rel, "downscaled", before, render(note.meta, note.body),
                                          f"{note.title}: unused for {idle} days, {uses} uses"))
            elif stage == "downscaled" and idle >= config.archive_after_days:
                changes.append(NoteChange(rel, "archived", _text(note.path), _text(note.path),
                                          f"{note.title}: unused for {idle} days", target=f"archive/{rel}"))
        for note in store.notes(kind, archived=True):
            if note.protected:
                continue
            idle = (today - _last_active(note)).days
            if idle >= config.forget_after_days:
                changes.append(NoteChange(_rel(store, note.path), "forgotten", _text(note.path), "",
                                          f"{note.title}: archived and unused for {idle} days"))
    # Episodes: the raw record of each day. The activity log (the audit trail) is never forgotten.
    for day in store.episode_days():
        idle = (today - day).days
        if idle >= config.archive_after_days:
            path = store.episode_file(day)
            rel = _rel(store, path)
            changes.append(NoteChange(rel, "archived", _text(path), _text(path),
                                      f"episodes of {day.isoformat()}: {idle} days old", target=f"archive/{rel}"))
    archived_episodes = store.root / "archive" / "episodes"
    for path in sorted(archived_episodes.glob("*.md")) if archived_episodes.is_dir() else ():
        try:
            idle = (today - date.fromisoformat(path.stem)).days
        except ValueError:
            continue
        if idle >= config.forget_after_days:
            changes.append(NoteChange(_rel(store, path), "forgotten", _text(path), "",
                                      f"archived episodes of {path.stem}: {idle} days old"))
    return changes


# ------------------------------------------------------------------ applying and committing


def apply_changes(store: MemoryStore, changes: list[NoteChange]) -> None:
    """Write ``changes`` (atomically, each file) under the Anima's memory lock. Raises StateError."""
    from orgctl.state.files import write_text_atomic

    with store.writing():
        for c in changes:
            path = store.root / c.path
            refuse_links(store.root, path.parent, path)
            if c.action in ("added", "changed", "downscaled"):
                write_text_atomic(path, c.after)
            elif c.action == "archived":
                target = store.root / c.target
                refuse_links(target.parent, target)
                write_text_atomic(target, c.after)
                path.unlink(missing_ok=True)
            elif c.action == "forgotten":
                path.unlink(missing_ok=True)


def commit_message(result: PassResult, *, subject_detail: str) -> tuple[str, str]:
    """The pass commit's subject and body: one line per note, readable without knowing git."""
    counts = result.counts
    said = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "nothing"
    subject = f"memory({result.anima}): {result.kind} {subject_detail} ({said})"
    marks = {"added": "+", "changed": "~", "downscaled": "v", "archived": ">", "forgotten": "-"}
    lines = [f"  {marks[c.action]} {c.path}{' -> ' + c.target if c.target else ''}: {c.summary}"
             for c in result.changes]
    intro = {"consolidate": f"What {result.anima} learned from {result.episodes} episodes:",
             "compress": f"How {result.anima}'s knowledge was merged and compressed:",
             "forget": f"What {result.anima} forgot (+ added, ~ changed, v downscaled, > archived, "
                       "- out of the working set; git history keeps every word):"}[result.kind]
    return subject, intro + "\n\n" + "\n".join(lines)


def run_pass(kind: str, *, store: MemoryStore, anima: str, today: date, config: ForgettingConfig,
             stats: AccessStats | None, dry_run: bool, source_revision: str | None,
             commit: Callable[[list[str], str, str, dict[str, Any]], str | None],
             commit_episodes: Callable[[], object] = lambda: None) -> PassResult:
    """One ``kind`` pass (consolidate, compress, forget) over ``anima``'s memory, holding its memory lock.

    ``commit(paths, subject, body, trailers)`` commits the memory folder (one commit); ``commit_episodes``
    commits what the Anima wrote since the last batch, first. With ``dry_run`` nothing is written or
    committed. Raises StateError when another writer holds the lock, GitError when the commit fails.
    """
    if kind not in PASSES:
        raise ValueError(f"unknown memory pass {kind!r}")
    # A cycle holds the lock for milliseconds; another pass for as long as it runs: wait briefly, then refuse.
    with store.writing(operation=f"{kind} pass", wait=5.0):
        snapshot = stats.load() if stats is not None else {}
        result = PassResult(anima=anima, kind=kind, dry_run=dry_run)
        if kind == "consolidate":
            result.changes, result.episodes = plan_consolidation(store, today, stats=snapshot)
            detail = today.isoformat()
        elif kind == "compress":
            result.changes = plan_compression(store, today=today)
            detail = f"week of {(today - timedelta(days=today.weekday())).isoformat()}"
        else:
            result.changes = plan_forgetting(store, today=today, config=config, stats=snapshot)
            detail = today.isoformat()
        if not result.changes:
            result.skipped = "nothing to change"
            return result
        if dry_run:
            return result
        commit_episodes()
        apply_changes(store, result.changes)
        if stats is not None:
            stats.take([c.path for c in result.changes])
        subject, body = commit_message(result, subject_detail=detail)
        counts = result.counts
        result.commit = commit([], subject, body, {
            "Anima": anima, "Pass": kind, "Source-Revision": source_revision or "work-tree",
            "Added": counts["added"], "Changed": counts["changed"], "Archived": counts["archived"],
            "Forgotten": counts["forgotten"]})
        return result
