"""A finished workflow run, recorded in the memory of every Anima that ran one of its phases: one commit per run.

Each such Anima gets ``animas/<name>/memory/runs/<run id>.md`` (the workflow, subject, outcome, and each
phase's verdict with its evidence), and all of them go in **one** bot commit whose trailers name the run,
the workflow, the verdicts and the Animas, so ``git log --grep 'Orgctl-Run: r-…'`` finds it and a person
reviews what the run taught. The host calls :func:`record_finished_runs` after runs end (the supervisor
every sweep, a tick before its memory batch); a run is marked ``recorded`` in its log after its commit, and
a crash between the two is harmless: the files are rewritten the same, so no second commit is made.
"""

from __future__ import annotations

from pathlib import Path

from orgctl.gitops.clones import RuntimeClone
from orgctl.work.runs import Run, RunStore


def run_record(run: Run) -> str:
    """The Markdown record of a finished ``run``."""
    lines = [f"# Workflow run {run.id}: {run.workflow.name} {run.status}", "",
             f"- Subject: {run.subject[:500]}", f"- Outcome: {run.status}: {run.reason[:300]}",
             f"- Revision: {run.revision or 'work tree'}", f"- Started: {run.created_at} by {run.started_by}",
             f"- Finished: {run.finished_at}", "", "## Phases", ""]
    for d in run.decisions:
        who = d.who
        judged = f"; confidence {d.confidence}, risk {d.risk}" if d.by == "model" else ""
        lines.append(f"- {d.phase}#{d.attempt} ({who}, {d.by}): **{d.verdict}** -> {d.target}{judged}. "
                     f"{d.reason[:300]}")
        lines += [f"  - {e.render().splitlines()[0][:200]}" for e in d.evidence[-4:]]
        if d.fields:
            lines.append("  - fields: " + ", ".join(f"{k}={v}" for k, v in sorted(d.fields.items())))
    return "\n".join(lines) + "\n"


def bound_animas(run: Run) -> list[str]:
    """The Animas that ran a phase of ``run``, sorted (a standalone agent has no memory: the run's log is its
    record)."""
    bound = run.workflow.bound_animas
    return sorted({d.anima for d in run.decisions if d.anima in bound})


def record_run(clone: RuntimeClone, run: Run) -> str | None:
    """Write ``run``'s record into each bound Anima's memory and commit them together; the sha, or None when
    no Anima ran a phase or nothing changed. Raises GitError."""
    animas = bound_animas(run)
    if not animas:
        return None
    text = run_record(run)
    paths = []
    for name in animas:
        target = clone.memory_dir(name) / "runs" / f"{run.id}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        paths.append(str(Path("animas") / name / "memory" / "runs" / f"{run.id}.md"))
    verdicts = ", ".join(f"{d.phase}={d.verdict}" for d in run.decisions)
    return clone.commit(paths, subject=f"memory: workflow {run.workflow.name} run {run.id} {run.status}",
                        body=f"{run.subject[:200]}\n\n{run.reason[:300]}",
                        trailers={"Run": run.id, "Workflow": run.workflow.name, "Status": run.status,
                                  "Verdicts": verdicts, "Animas": ", ".join(animas),
                                  "Source-Revision": run.revision or "work-tree"})


def record_finished_runs(clone: RuntimeClone, runs: RunStore) -> dict[str, str | None]:
    """Record every ended run not yet recorded (:func:`record_run`), then mark it; ``{run id: sha}``."""
    done: dict[str, str | None] = {}
    for run in runs.all():
        if run.active or run.recorded:
            continue
        done[run.id] = sha = record_run(clone, run)
        runs.append(run.id, "recorded", commit=sha)
    return done
