"""Bench (issue 8, c): a year of one Anima's memory under the passes: time, commits and size.

One Anima lives D days (default 365) in a real org repo's runtime clone. Each day it writes C cycles
(default 20) through the real store: replies to colleagues, delegations, commands that succeed and, one
in twenty, fail; recalls of its notes are counted as the memory service counts them. Each night the
episodes are committed as a batch and consolidated (one commit each); each Sunday the weekly compression
runs, on each 1st the forgetting pass, as the supervisor's schedule runs them. Reported: the time of each
kind of pass (p50/p95/max), the commit count by kind, the working set at the end (notes, archived,
forgotten), and the size of the clone's git history (packed, ``git count-objects``).

Run: ``.venv/bin/python bench/memory_passes.py [--days 365] [--cycles 20]``.
Recorded in bench/results/memory_passes.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from orgs import record_result  # noqa: E402

from orgctl.desired.models import ForgettingConfig  # noqa: E402
from orgctl.gitops.bootstrapping import init_org  # noqa: E402
from orgctl.gitops.clones import RuntimeClone  # noqa: E402
from orgctl.memory.access import AccessStats  # noqa: E402
from orgctl.memory.batches import commit_batch  # noqa: E402
from orgctl.memory.consolidation import run_pass  # noqa: E402
from orgctl.memory.stores import MemoryStore  # noqa: E402
from orgctl.paths import template_dir  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "memory_passes.json"
COLLEAGUES = ["alice", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"]
COMMANDS = ["git log --oneline -5", "pytest -q", "make lint", "git status --short", "kubectl get pods"]


def cycle(rng: random.Random, n: int) -> list[str]:
    """What one cycle did: the framework's own ``did`` lines."""
    roll = rng.random()
    if roll < 0.4:
        who = rng.choice(COLLEAGUES)
        return [f"replied to {who}: update {n} on the {rng.choice(['release', 'incident', 'roadmap', 'budget'])}"]
    if roll < 0.6:
        return [f"delegated t-{n} to {rng.choice(COLLEAGUES)} as t-{n + 1}"]
    command = rng.choice(COMMANDS)
    code = 1 if rng.random() < 0.05 else 0
    return [f"ran '{command}': exit {code}, {rng.randint(1, 80)} lines"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(8)
    times: dict[str, list[float]] = defaultdict(list)
    commits: Counter[str] = Counter()
    config = ForgettingConfig()
    with tempfile.TemporaryDirectory(prefix="passes-") as tmp:
        org = Path(tmp) / "org"
        init_org(dest=org, template=template_dir(), name="bench")
        clone = RuntimeClone.for_checkout(org, Path(tmp) / "clone")
        clone.set_hooks(False)
        store = MemoryStore(clone.memory_dir("bob"), anima="bob", lock=Path(tmp) / "bob.lock")
        stats = AccessStats(Path(tmp) / "access.json")
        start, n = date(2025, 1, 1), 0
        started = time.monotonic()
        for d in range(args.days):
            day = start + timedelta(days=d)
            for c in range(args.cycles):
                n += 1
                did = cycle(rng, n)
                at = datetime(day.year, day.month, day.day, 8) + timedelta(minutes=30 * c)
                store.append_episode(day=day, markdown=f"## {at:%H:%M:%S} heartbeat\n\n" + "\n".join(
                    f"- Did: {x}" for x in did), record={"at": at.isoformat(), "did": did, "failed": ""})
            notes = [p.relative_to(store.root).as_posix() for p in (store.root / "knowledge").glob("*.md")]
            if notes:  # some notes are recalled, most are not: forgetting has something to decide
                stats.record(rng.sample(notes, k=min(2, len(notes))), on=day)

            def commit(_p, subject, body, trailers):  # type: ignore[no-untyped-def]
                return clone.commit(["animas/bob/memory"], subject=subject, body=body, trailers=trailers)

            kinds = ["consolidate"] + (["compress"] if day.weekday() == 6 else []) + (["forget"] if day.day == 1
                                                                                       else [])
            for kind in kinds:
                t0 = time.perf_counter()
                result = run_pass(kind, store=store, anima="bob", today=day, config=config, stats=stats,
                                  dry_run=False, source_revision="bench", commit=commit,
                                  commit_episodes=lambda: commits.update(
                                      {"episodes": len(commit_batch(clone, {"bob": "bench"}))}))
                times[kind].append(time.perf_counter() - t0)
                commits[kind] += 1 if result.commit else 0
        total = time.monotonic() - started
        subprocess.run(["git", "-C", str(clone.root), "gc", "--quiet", "--aggressive"], check=True)
        objects = dict(line.split(": ") for line in subprocess.run(
            ["git", "-C", str(clone.root), "count-objects", "-v"], check=True, capture_output=True,
            text=True).stdout.splitlines())
        knowledge = len(list((store.root / "knowledge").glob("*.md")))
        procedures = len(list((store.root / "procedures").glob("*.md")))
        archived = len(list((store.root / "archive").rglob("*.md")))
        episodes_live = len(list((store.root / "episodes").glob("*.md")))
        log = subprocess.run(["git", "-C", str(clone.root), "log", "--format=%s", "--author=orgctl-bot"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    per_pass = {k: {"runs": len(v), "p50_ms": round(1000 * statistics.median(v), 1),
                    "p95_ms": round(1000 * sorted(v)[int(0.95 * (len(v) - 1))], 1),
                    "max_ms": round(1000 * max(v), 1)} for k, v in times.items()}
    record = {"bench": "memory_passes", "days": args.days, "cycles_per_day": args.cycles, "cycles": n,
              "seconds_total": round(total, 1), "passes": per_pass, "commits": dict(commits),
              "bot_commits_in_history": len(log),
              "git_size_kib": int(objects.get("size-pack", 0)) + int(objects.get("size", 0)),
              "end_state": {"knowledge_notes": knowledge, "procedures": procedures, "archived_files": archived,
                            "episode_files_in_working_set": episodes_live}}
    record_result(RESULTS, record)
    print(f"{args.days} days x {args.cycles} cycles of one Anima in {total:.1f} s "
          f"(writing episodes, committing, passes)")
    for kind, row in per_pass.items():
        print(f"  {kind:<12} {row['runs']:>4} runs  p50 {row['p50_ms']:>7} ms  p95 {row['p95_ms']:>7} ms  "
              f"max {row['max_ms']:>7} ms")
    print(f"  commits: {dict(commits)}; bot commits in history: {len(log)}")
    print(f"  git history after gc: {record['git_size_kib']} KiB")
    print(f"  at the end: {knowledge} knowledge notes, {procedures} procedures, {archived} archived files, "
          f"{episodes_live} episode files in the working set")


if __name__ == "__main__":
    main()
