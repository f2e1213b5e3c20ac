"""``orgctl workflow run|list|status|log|cancel``: start workflow runs and follow them (docs/workflows.md).

A run is work in flight: ``workflow run`` records it and hands its first phase to its Anima (whose process
picks it up at once when the org runs); the runtime takes it from phase to phase. ``status``, ``log`` and
``list`` read the run logs and never change them; ``cancel`` stops a run and its phase in progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orgctl.cli.main import cli
from orgctl.cli.options import json_option, org_dir_argument, org_option, resolve
from orgctl.cli.work import _org


def engine(org_dir: Path):  # type: ignore[no-untyped-def]
    from orgctl.runtime.workflows import Engine

    org = _org(org_dir)
    return Engine(org, org.runs)


def start_run(org_dir: Path, workflow: str, *, subject: str, task: Any = None):  # type: ignore[no-untyped-def]
    """Start ``workflow`` (as applied) on ``subject``; the run. Raises WorkError for an unknown workflow."""
    from orgctl.runtime.ticking import is_tick_org
    from orgctl.state.snapshots import applied_workflow

    runs = engine(org_dir)
    root, _ = resolve(org_dir)
    if is_tick_org(root):  # nothing is applied in a tick org: a run starts from HEAD, as its next tick runs it
        spec, revision = workflow_at_head(root, workflow)
    else:
        spec, revision = applied_workflow(runs.org.paths.specs, workflow)
    return runs.start(spec, revision=revision, subject=subject, task=task)


def workflow_at_head(root: Path, name: str):  # type: ignore[no-untyped-def]
    """``(WorkflowSpec, revision)`` of workflow ``name`` at the org's HEAD. Raises SpecError, WorkError."""
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource
    from orgctl.errors import WorkError

    desired = load_org(GitRevisionSource(root, "HEAD"))
    if name not in desired.workflows:
        raise WorkError(f"no workflow named {name!r} at HEAD",
                        hint=f"workflows: {', '.join(sorted(desired.workflows)) or 'none'} (workflows/<name>.yaml)")
    return desired.workflows[name], desired.revision


@cli.group()
def workflow() -> None:
    """Run workflows (workflows/<name>.yaml): phases run by Animas, ended by verdicts."""


@workflow.command("run")
@click.argument("name")
@click.option("--subject", "-s", required=True, help="What the run works on (the phases' task).")
@org_option
@json_option
def workflow_run(name: str, subject: str, org_dir: Path, as_json: bool) -> None:
    """Start a run of the applied workflow NAME on SUBJECT."""
    run = start_run(org_dir, name, subject=subject)
    if as_json:
        click.echo(json.dumps(run_json(run), indent=2))
        return
    where = f"phase {run.phase} with {run.phase_anima}" if run.phase_anima else run.status
    click.echo(f"Run {run.id} of {name} started ({where}). Follow it with `orgctl workflow log {run.id}`.")


@workflow.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include finished runs.")
@org_dir_argument
@json_option
def workflow_list(show_all: bool, org_dir: Path, as_json: bool) -> None:
    """List the runs in flight (with --all, finished ones too), oldest first."""
    runs = [r for r in engine(org_dir).runs.all() if show_all or r.active]
    if as_json:
        click.echo(json.dumps([run_json(r, brief=True) for r in runs], indent=2))
        return
    if not runs:
        click.echo("No workflow runs in flight." if not show_all else "No workflow runs.")
        return
    for r in runs:
        at = f"{r.phase}#{r.attempt}" if r.active and r.phase else "-"
        click.echo(f"{r.id}  {r.workflow.name:<12} {r.status:<10} {at:<16} {r.subject[:60]}")


@workflow.command("status")
@click.argument("run_id", metavar="[RUN]", required=False)
@org_option
@json_option
def workflow_status(run_id: str | None, org_dir: Path, as_json: bool) -> None:
    """Show one run (phase, rework counters, verdicts so far), or every run in flight."""
    store = engine(org_dir).runs
    runs = [store.require(run_id)] if run_id else [r for r in store.all() if r.active]
    if as_json:
        out = [run_json(r) for r in runs]
        click.echo(json.dumps(out[0] if run_id else out, indent=2))
        return
    if not runs:
        click.echo("No workflow runs in flight.")
    for r in runs:
        click.echo(f"{r.id}: {r.workflow.name} {r.status}" + (f" at {r.phase}#{r.attempt} ({r.phase_anima})"
                                                               if r.active and r.phase else ""))
        click.echo(f"  subject: {r.subject[:200]}")
        if r.reason:
            click.echo(f"  outcome: {r.reason[:300]}")
        if r.attempts:
            click.echo("  reworks: " + ", ".join(f"{p} {n}/{r.workflow.phase(p).max_rework_attempts}"
                                                 for p, n in sorted(r.attempts.items())))
        if r.decisions:
            click.echo("  verdicts: " + ", ".join(f"{d.phase} {d.verdict}" for d in r.decisions))


@workflow.command("log")
@click.argument("run_id", metavar="RUN")
@org_option
@json_option
def workflow_log(run_id: str, org_dir: Path, as_json: bool) -> None:
    """Every transition of RUN: each phase's decision with its evidence, and where it routed."""
    run = engine(org_dir).runs.require(run_id)
    if as_json:
        click.echo(json.dumps(run_json(run), indent=2))
        return
    click.echo(f"Run {run.id}: workflow {run.workflow.name} at {(run.revision or 'work tree')[:12]}, "
               f"started {run.created_at} by {run.started_by}")
    click.echo(f"Subject: {run.subject}")
    for d in run.decisions:
        who = d.who
        judged = f"; confidence {d.confidence}, risk {d.risk}" if d.by == "model" else ""
        click.echo(f"\n{d.at}  {d.phase}#{d.attempt} ({who})  {d.verdict} -> {d.target}  [{d.by}{judged}]")
        if d.reason:
            click.echo(f"  reason: {d.reason}")
        for name, value in sorted(d.fields.items()):
            click.echo(f"  {name}: {value}")
        for e in d.evidence:
            lines = e.render().splitlines()
            click.echo(f"  evidence: {lines[0][:160]}" + "".join(f"\n            {ln[:160]}" for ln in lines[1:4]))
    if run.active:
        click.echo(f"\nIn progress: {run.phase}#{run.attempt} with {run.phase_anima} (task {run.phase_task})"
                   if run.phase else f"\n{run.status}")
    else:
        click.echo(f"\n{run.finished_at}  run {run.status}: {run.reason}")
        if run.memory_commit:
            click.echo(f"Recorded in memory: {run.memory_commit[:12]}")


@workflow.command("cancel")
@click.argument("run_id", metavar="RUN")
@org_option
def workflow_cancel(run_id: str, org_dir: Path) -> None:
    """Cancel RUN and the phase it is in."""
    run = engine(org_dir).cancel(run_id)
    click.echo(f"Run {run.id} cancelled.")


def run_json(run: Any, *, brief: bool = False) -> dict[str, Any]:
    """A run as JSON, with the workflow it is pinned to as name and digest (not its whole file)."""
    data = run.model_dump(mode="json", exclude={"workflow"} | ({"decisions"} if brief else set()))
    return {"workflow": run.workflow.name, "workflow_digest": run.workflow.digest, **data}
