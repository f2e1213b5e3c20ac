"""Bench: the choice everything rests on, on the real embedded model (issue 23, point 7).

30 tasks phrased as people phrase them, each answerable by exactly one of the template bob's four permitted
commands (``git log --oneline --since=1.week``, ``git status --short``, ``git diff --stat HEAD~1``,
``pytest -q``), are given to bob one at a time; each runs on his real task cycle (the framework narrows the
commands by matching the task against their descriptions, the model chooses among what is left) with the
real embedded model (``local/smollm2`` through :class:`orgctl.llm.gateways.Gateway`, which starts the
llama.cpp server and is closed afterwards), in a real workspace (a clone of the template org at HEAD, two
commits), each command in the sandbox. The commands are ranked by meaning with the memory's embedding model
(:func:`orgctl.runtime.tasking.rank_commands`, run in process here as the supervisor runs it). Two figures:

* **right command first**: the first command bob ran is the task's (goal >= 29/30);
* **report true to its evidence**: the task ended ``done`` with at least one command run, and the model's
  sentence in its result (the framework's lines state each outcome from the exit code) claims nothing the
  commands' outcomes contradict (:func:`orgctl.runtime.outcomes.contradiction`) and names no number or
  quoted name nothing observed holds (:func:`~orgctl.runtime.outcomes.ungrounded`) (goal 30/30).

The workspace has no tests, so ``pytest -q`` exits 5 (no tests collected): the case where the embedded model
said "The test suite passed." Each task's first command, result and verdicts are kept in the results file.

Run: .venv/bin/python bench/command_choice.py   (about 5 minutes on 2 cores; results in bench/results/)
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG, STATUS, DIFF, TEST = ("git log --oneline --since=1.week", "git status --short", "git diff --stat HEAD~1",
                           "pytest -q")
TASKS: list[tuple[str, str]] = [
    ("What changed in the repo this week?", LOG),
    ("Can you list this week's commits?", LOG),
    ("Summarise the recent commit history for me", LOG),
    ("Which commits landed in the last seven days?", LOG),
    ("Give me the log of what people committed lately", LOG),
    ("Has anyone committed anything since last week?", LOG),
    ("Show me the latest commits", LOG),
    ("Find out what changed in the org repo this week and report", LOG),
    ("Are there uncommitted changes in the repo?", STATUS),
    ("Is the working tree clean?", STATUS),
    ("Check whether there are untracked files lying around", STATUS),
    ("Did somebody leave modified files without committing them?", STATUS),
    ("Is there anything not yet committed in the checkout?", STATUS),
    ("Check the org repo for uncommitted work", STATUS),
    ("Tell me if the repo has local modifications", STATUS),
    ("Which files did the last commit change?", DIFF),
    ("What files were touched by the most recent commit?", DIFF),
    ("Show the diff stat of the previous commit", DIFF),
    ("How big was the last change, file by file?", DIFF),
    ("List the files changed in HEAD compared with the commit before", DIFF),
    ("What did the last commit modify?", DIFF),
    ("Give me a summary of the files in the latest commit's diff", DIFF),
    ("Run the test suite and tell me whether it passes", TEST),
    ("Run the test suite and report whether it passes", TEST),
    ("Do the tests pass?", TEST),
    ("Please run the tests", TEST),
    ("Check that the test suite is green", TEST),
    ("Are there any failing tests?", TEST),
    ("Run pytest and report the failures", TEST),
    ("Make sure nothing is broken: run the tests", TEST),
]
RESULTS = Path(__file__).parent / "results" / "command_choice.json"
GOAL_FIRST, GOAL_TRUE = 29, 30


def main() -> int:
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource
    from orgctl.gitops.bootstrapping import init_org
    from orgctl.gitops.repos import prepare_workspace
    from orgctl.llm.gateways import Gateway
    from orgctl.memory.stores import MemoryStore
    from orgctl.paths import StatePaths, template_dir
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.outcomes import contradiction, outcome_of_step, ungrounded
    from orgctl.runtime.permissions import Policy
    from orgctl.runtime.services import LocalMemory
    from orgctl.runtime.tasking import run_task

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="command-choice-") as tmp:
        root = Path(tmp)
        init_org(dest=root / "acme", template=template_dir(), name="acme")
        notes = root / "acme" / "common_knowledge" / "release.md"  # a second commit: `git diff HEAD~1` has one
        notes.write_text("# Release notes\n\n- The template ships a workflow.\n")
        subprocess.run(["git", "-C", str(root / "acme"), "add", "--all"], check=True)
        subprocess.run(["git", "-C", str(root / "acme"), "commit", "-qm", "Release notes"], check=True)
        spec = load_org(GitRevisionSource(root / "acme", "HEAD"))
        paths = StatePaths(root=root / "state").ensure()
        prepare_workspace(root / "acme", paths.workspace("bob"), revision=spec.revision)
        org = Organization(paths=paths, specs=spec.animas)
        bob = spec.animas["bob"]
        gateway = Gateway(paths=StatePaths(root / "model").ensure())
        try:
            memory = LocalMemory(paths)  # the supervisor's memory service, in process: it ranks the commands
            agent = Agent(spec=bob, org=org, client=gateway, revision=spec.revision, recall=memory,
                          store=MemoryStore(paths.root / "memory-bob", anima="bob"),
                          policy=Policy(bob.permissions, workspace=paths.workspace("bob"), sandbox=bob.sandbox))
            for n, (title, expected) in enumerate(TASKS, start=1):
                task = org.add_task("bob", title)
                org.queue("bob").update(task.id, by="bob", status="in_progress")
                started = time.perf_counter()
                run_task(agent, task.id, now=lambda: datetime.now(UTC))
                seconds = time.perf_counter() - started
                done = org.queue("bob").get(task.id)
                ran = [r for r in done.records if r.kind == "ran"]
                first = ran[0].command if ran else None
                outcomes = [outcome_of_step(r) for r in ran]
                evidence = "\n".join([task.id, title, *(r.summary() for r in ran)])  # what the framework showed
                result = done.result or ""
                said = _model_sentence(result)  # the framework's own lines state the outcome; the model's is checked
                problem = ("no command ran" if not ran else f"ended {done.status}" if done.status != "done"
                           else contradiction(said, outcomes) or ungrounded(said, evidence))
                rows.append({"task": title, "expected": expected, "first": first, "right_first": first == expected,
                             "status": done.status, "true": problem is None, "problem": problem,
                             "seconds": round(seconds, 2), "result": result[-400:]})
                mark = "ok " if first == expected else "BAD"
                print(f"{n:2}/{len(TASKS)} {mark} {title!r}: ran {first!r}; {done.status}"
                      f"{'' if problem is None else '; UNTRUE: ' + problem} ({seconds:.1f} s)", flush=True)
        finally:
            gateway.close()
            memory.close()
    right = sum(r["right_first"] for r in rows)
    true = sum(r["true"] for r in rows)
    latencies = sorted(r["seconds"] for r in rows)
    print(f"right command first: {right}/{len(rows)} (goal >= {GOAL_FIRST}); report true to its evidence: "
          f"{true}/{len(rows)} (goal {GOAL_TRUE}); task latency p50 {latencies[len(latencies) // 2]} s, "
          f"max {latencies[-1]} s")
    RESULTS.write_text(json.dumps({"right_first": right, "true_reports": true, "tasks": len(rows),
                                   "goal_right_first": GOAL_FIRST, "goal_true": GOAL_TRUE,
                                   "model": "local/smollm2", "python": platform.python_version(),
                                   "at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows},
                                  indent=2) + "\n")
    print(f"recorded in {RESULTS}")
    return 0 if right >= GOAL_FIRST and true >= GOAL_TRUE else 1


def _model_sentence(result: str) -> str:
    """The model's part of a result (after ``Note:``): the rest is the framework's record of what ran."""
    return result.rpartition("Note: ")[2] if "Note: " in result else ""


if __name__ == "__main__":
    sys.exit(main())
