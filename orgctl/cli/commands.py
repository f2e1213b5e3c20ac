"""The orgctl commands. Each parses its flags, makes one call into the core, and renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from orgctl.cli.main import cli
from orgctl.cli.options import (
    load_desired,
    lock_timeout_option,
    one_of,
    org_dir_argument,
    org_location,
    resolve,
    revision_option,
)
from orgctl.errors import OrgctlError, SpecError
from orgctl.paths import StatePaths


def _warn_uncommitted(root: Path, revision: str) -> None:
    if revision != "HEAD":
        return
    from orgctl.gitops.repos import uncommitted_spec_changes

    changed = uncommitted_spec_changes(root)
    if changed:
        click.secho(f"Note: {len(changed)} uncommitted change(s) outside memory are not part of "
                    f"the desired state (HEAD): {', '.join(changed[:5])}"
                    f"{' …' if len(changed) > 5 else ''}", fg="yellow", err=True)


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--name", help="Org name (default: the directory's name).")
@click.option("--org", "-C", "org_flag", default=None, metavar="DIR", type=click.Path(path_type=Path),
              help="The directory to create (instead of DIRECTORY).")
def init(directory: Path | None, name: str | None, org_flag: Path | None) -> None:
    """Create a new org repo in DIRECTORY from the template: three Animas and one commit."""
    from datetime import UTC, datetime

    directory = one_of(directory, org_flag, what="the directory")
    if directory is None:
        raise click.UsageError("say where: orgctl init DIRECTORY")

    from orgctl.cli import rendering
    from orgctl.gitops.bootstrapping import init_org
    from orgctl.paths import state_paths, template_dir

    paths = state_paths(directory)
    _refuse_live_state(paths, directory)
    sha = init_org(dest=directory, template=template_dir(), name=name)
    spec = load_desired(directory.resolve(), "HEAD")
    click.echo(f"Created org {spec.name!r} in {directory} at {sha[:7]} with "
               f"{len(spec.animas)} Animas: {rendering.chart_line(spec)}")
    if paths.root.exists():  # an org that used to live at this path left its state: not this org's
        aside = paths.root.with_name(f"{paths.root.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        paths.root.rename(aside)
        click.echo(f"An earlier org at this path left its state; moved it aside to {aside}")
    click.echo(f"Next: orgctl plan {directory}   then   orgctl apply {directory}")
    if (directory / ".github" / "workflows").is_dir():
        click.echo("On GitHub, its .github/workflows/ plan every pull request and can run the org on a schedule "
                   "(docs/github.md in the orgctl repository).")


@cli.command()
@org_dir_argument
@click.option("--revision", "-r", default=None, metavar="REV",
              help="Validate a git revision instead of the work tree.")
def validate(org_dir: Path, revision: str | None) -> None:
    """Check the org spec (work tree by default); report every problem with file:line."""
    root, _ = resolve(org_dir)
    spec = load_desired(root, revision)
    where = "work tree" if revision is None else f"revision {revision}"
    enabled = len(spec.enabled())
    warnings = [*spec.warnings, *_cron_refusals(spec)]
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"Valid: org {spec.name!r}, {len(spec.animas)} Animas ({enabled} enabled), "
               f"{sum(len(a.cron) for a in spec.animas.values())} cron tasks, in the {where}"
               f"{_warnings_note(len(warnings))}.")


def _cron_refusals(spec):  # type: ignore[no-untyped-def]
    """A warning for each cron command its own Anima's permissions would refuse at every fire (the policy the
    runtime uses, the sandbox left out: that is the machine's, not the spec's)."""
    from orgctl.errors import Diagnostic
    from orgctl.runtime.permissions import Policy

    found = []
    for name, anima in sorted(spec.animas.items()):
        policy = Policy(anima.permissions, workspace=Path("/nonexistent/workspaces") / name)
        for task in anima.cron:
            if task.type == "command" and not (verdict := policy.permits(task.command or "")).allowed:
                found.append(Diagnostic(f"animas/{name}/cron.md", task.line, f"cron {task.title!r} runs "
                                        f"{task.command!r}, which {name}'s permissions.md refuses "
                                        f"({verdict.outcome}: {verdict.rule}): it would be refused at every fire"))
    return found


def _warnings_note(n: int) -> str:
    return f", {n} warning{'s' if n != 1 else ''}" if n else ""


def _refuse_live_state(paths: StatePaths, directory: Path) -> None:
    """Raises OrgctlError when an org that lived at ``directory`` still has a running supervisor."""
    from orgctl.state.runtimes import load_runtime

    runtime = load_runtime(paths.runtime)
    if paths.root.exists() and runtime.supervisor_alive():
        raise OrgctlError(f"an org at {directory} is running (supervisor pid {runtime.supervisor_pid})",
                          hint=f"stop it first: orgctl down {directory}")


def _observe(root: Path, paths: StatePaths):  # type: ignore[no-untyped-def]
    """The local backend, the inventory and the runtime status (refreshed from a live supervisor)."""
    from orgctl.runtime.local import LocalBackend
    from orgctl.state.inventories import load_inventory

    backend = LocalBackend(paths=paths, org_dir=root)
    return backend, load_inventory(paths.inventory), backend.observe()


def _plan(desired, inventory, runtime, paths: StatePaths):  # type: ignore[no-untyped-def]
    """The plan from desired to observed state, with pauses honoured and drift converged back."""
    from orgctl.gitops.drifting import detect_drift
    from orgctl.gitops.planning import compute_plan
    from orgctl.state.pauses import read_pauses

    paused = read_pauses(paths)
    return compute_plan(desired, inventory, runtime, paused, detect_drift(inventory, runtime, paths, paused=paused))


@cli.command()
@org_dir_argument
@revision_option
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there are no changes, 2 when there are, 1 on error.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--out", "-out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the plan to FILE; `orgctl apply FILE` applies exactly it, or refuses it once stale.")
@click.option("--chart", is_flag=True, help="Also print the org chart before/after as a Mermaid flowchart.")
@click.option("--base", default=None, metavar="REV",
              help="Plan the change of desired state from REV to --revision (a pull request's plan: no observed "
                   "state is read).")
def plan(org_dir: Path, revision: str, detailed_exitcode: bool, as_json: bool, out: Path | None, chart: bool,
         base: str | None) -> None:
    """Show what apply would do: desired state (git) against observed state (what runs)."""
    from orgctl.cli import rendering
    from orgctl.state.files import write_json

    root, paths = resolve(org_dir)
    if base is not None:
        if out is not None:
            raise click.UsageError("--out saves a plan to apply; a plan --base between two revisions is not one")
        the_plan, desired, inventory = plan_base(root, base, revision)
    else:
        desired = load_desired(root, revision)
        _warn_uncommitted(root, revision)
        _, inventory, runtime = _observe(root, paths)
        the_plan = _plan(desired, inventory, runtime, paths)
    if out is not None:
        write_json(out, {"format_version": "1", "kind": "orgctl-plan", "org_dir": str(root), "ref": revision,
                         "plan": the_plan.to_json()})
        click.echo(f"Saved the plan to {out}. Apply exactly it with: orgctl apply {out}", err=True)
    if as_json:
        click.echo(json.dumps(the_plan.to_json() | ({"chart": rendering.mermaid_chart(the_plan, desired, inventory)}
                                                    if chart else {}), indent=2))
    else:
        rendering.echo_plan(the_plan)
        if chart:
            click.echo(f"\n```mermaid\n{rendering.mermaid_chart(the_plan, desired, inventory)}\n```")
    if detailed_exitcode and the_plan.has_changes:
        sys.exit(2)


@cli.command()
@org_dir_argument
@click.option("--format", "fmt", type=click.Choice(["mermaid", "svg", "dot"]), default="mermaid", show_default=True,
              help="mermaid (a README or PR renders it), svg (drawn here: no network, no browser), dot (Graphviz).")
@revision_option
@click.option("--base", default=None, metavar="REV",
              help="Draw the change from REV to --revision: hires, changes and retirements marked, removed "
                   "links dotted.")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of standard output.")
def chart(org_dir: Path, fmt: str, revision: str, base: str | None, out: Path | None) -> None:
    """Draw the org chart at a revision (or the change since --base) as Mermaid, SVG or DOT."""
    from orgctl.cli import charts

    root, _ = resolve(org_dir)
    if base is not None:
        the_plan, desired, inventory = plan_base(root, base, revision)
        picture = charts.chart_of_plan(the_plan, desired, inventory)
        title = f"{desired.name}: {base} -> {revision}"
    else:
        desired = load_desired(root, revision)
        picture, title = charts.chart_of(desired), f"{desired.name} at {revision}"
    text = charts.render(picture, fmt, title=title)
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"Wrote the org chart ({fmt}, {len(picture.roles)} Animas) to {out}.", err=True)


class InvalidRevision(SpecError):
    """One of ``plan --base``'s two revisions does not validate: ``which`` (``base`` or ``head``), the
    ``revision`` as given, and, for an invalid base, the ``head`` spec (which loaded)."""

    def __init__(self, error: SpecError, *, which: str, revision: str, head=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(error.diagnostics)
        self.which, self.revision, self.head = which, revision, head
        self.message = f"the {which} revision {revision} does not validate: {error.message}"


def plan_base(root: Path, base: str, head: str):  # type: ignore[no-untyped-def]
    """``(plan, head spec, base inventory)`` for ``plan --base BASE -r HEAD`` (:func:`planning.plan_between`):
    both revisions loaded and validated, the head first. Raises InvalidRevision (a SpecError with file:line,
    naming the revision) for either; GitError for an unknown one."""
    from orgctl.desired.speccache import SpecCache
    from orgctl.gitops.planning import applied_as, plan_between
    from orgctl.paths import state_paths

    cache = SpecCache(state_paths(root).spec_cache)  # one for both: a PR changes few of the files it loads twice
    try:
        after = load_desired(root, head, cache=cache)
    except SpecError as e:
        raise InvalidRevision(e, which="head", revision=head) from None
    try:
        before = load_desired(root, base, cache=cache)
    except SpecError as e:
        raise InvalidRevision(e, which="base", revision=base, head=after) from None
    applied = applied_as(before)
    return plan_between(before, after, applied=applied), after, applied


def _saved_plan(path: Path) -> dict[str, Any]:
    """A plan file written by ``plan --out``. Raises OrgctlError for anything else."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OrgctlError(f"{path}: not a readable plan file ({e})",
                          hint="write one with `orgctl plan --out FILE`") from e
    if not isinstance(saved, dict) or saved.get("kind") != "orgctl-plan" or saved.get("format_version") != "1":
        raise OrgctlError(f"{path}: not an orgctl plan file (format 1)", hint="write one with `orgctl plan --out FILE`")
    return saved


@cli.command()
@click.argument("target", metavar="[DIR | PLANFILE]", default=".", type=click.Path(path_type=Path))
@revision_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--allow-mass-retire", is_flag=True,
              help="Allow a plan that retires every applied Anima, or more than half of them.")
@click.option("--wait", is_flag=True, help="Return only when every Anima is Ready (or fail naming those that are not).")
@click.option("--timeout", "wait_timeout", default="5m", show_default=True, metavar="DURATION",
              help="How long --wait waits (90s, 5m, 1h).")
@lock_timeout_option
@click.option("--org", "-C", "org_flag", default=None, metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="The org repo (instead of DIR).")
def apply(target: Path, revision: str, auto_approve: bool, allow_mass_retire: bool, wait: bool, wait_timeout: str,
          lock_timeout: float, org_flag: Path | None) -> None:
    """Converge the running organization on the desired state (hire, change, restart, retire).

    Given a PLANFILE from `plan --out`, apply exactly that plan without asking, or refuse it when the
    revision it was made from or the observed state has moved since."""
    import time

    from orgctl.cli import rendering
    from orgctl.gitops.applying import apply_plan
    from orgctl.gitops.clones import RuntimeClone
    from orgctl.state import events
    from orgctl.state.files import append_jsonl
    from orgctl.state.inventories import now_iso
    from orgctl.state.locking import state_lock

    timeout = _duration(wait_timeout, "--timeout")
    target = one_of(None if target == Path(".") else target, org_flag) or target
    saved = _saved_plan(target) if target.is_file() else None
    org_dir = Path(saved["org_dir"]) if saved else target
    if saved:
        revision = str(saved["ref"])
    root, paths = resolve(org_dir)
    _refuse_under_controller(paths, org_dir)
    desired = load_desired(root, revision)
    from orgctl.runtime.ticking import refuse_tick_org

    refuse_tick_org(desired, "apply")
    _warn_uncommitted(root, revision)
    paths.ensure()
    with state_lock(paths.lock, operation="apply", timeout=lock_timeout):
        backend, inventory, runtime = _observe(root, paths)
        the_plan = _plan(desired, inventory, runtime, paths)
        if saved:
            _refuse_stale(saved, the_plan.to_json(), target)
            auto_approve = True  # a saved plan was reviewed when it was made, as terraform apply PLANFILE
        rendering.echo_plan(the_plan)
        if not the_plan.has_changes:
            if wait:
                _wait_ready(paths, desired.revision, timeout)
            return
        if (mass := the_plan.mass_retire(inventory)) and not allow_mass_retire:
            events.emit(paths.work.events, reason="MassRetireRefused", object=f"revision/{desired.revision}",
                        type="Warning", message=f"apply refused: {mass}")
            raise OrgctlError(f"refusing to apply: {mass}",
                              hint="if that is intended, run again with --allow-mass-retire; "
                                   "if not, check what removed them from animas/ (git log --stat -- animas)")
        if not auto_approve:
            if not sys.stdin.isatty():
                raise OrgctlError("apply needs confirmation", hint="pass --auto-approve when running non-interactively")
            click.confirm("\nDo you want to perform these actions?", abort=True)
        started = time.monotonic()
        record = {"at": now_iso(), "revision": desired.revision, "plan": the_plan.to_json()["summary"]}
        try:
            result = apply_plan(plan=the_plan, desired=desired, inventory=inventory, org_dir=root,
                                paths=paths, backend=backend, clone=RuntimeClone.for_checkout(root, paths.clone))
        except OrgctlError as e:
            append_jsonl(paths.history, record | {"result": f"failed: {e.message}",
                                                  "duration_s": round(time.monotonic() - started, 2)})
            raise
        append_jsonl(paths.history, record | {"result": result.summary(),
                                              "duration_s": round(time.monotonic() - started, 2)})
    for name, archive in result.archives.items():
        click.echo(f"Archived the memory of {name} to {archive}")
    click.secho(f"\n{result.summary()}", fg="green", bold=True)
    if wait:
        _wait_ready(paths, desired.revision, timeout)


def _duration(value: str, option: str) -> float:
    from orgctl.desired.models import parse_duration

    try:
        return float(parse_duration(value))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from e


def _wait_ready(paths: StatePaths, revision: str | None, timeout: float) -> None:
    """Wait until every Anima that should run is Ready; raises OrgctlError naming the others after ``timeout``."""
    import time

    from orgctl.state.observing import not_ready, observe_status

    deadline = time.monotonic() + timeout
    while True:
        waiting = not_ready(observe_status(paths), revision)
        if not waiting:
            click.echo(f"All Animas are Ready at {str(revision)[:7]}.")
            return
        if time.monotonic() >= deadline:
            raise OrgctlError(f"not Ready after {timeout:.0f}s: " + "; ".join(f"{n}: {why}" for n, why in
                                                                              sorted(waiting.items())),
                              hint="see `orgctl status` and `orgctl events --type Warning`")
        time.sleep(0.2)


def _refuse_under_controller(paths: StatePaths, org_dir: Path) -> None:
    """Raises OrgctlError when a controller reconciles this org: two writers of desired state would fight.
    While the org's reconciliation is suspended (``orgctl suspend --all``), applying by hand is the point."""
    from orgctl.state.observing import running_controller
    from orgctl.state.pauses import org_suspension

    if (info := running_controller(paths)) is not None and org_suspension(paths) is None:
        raise OrgctlError(f"the controller (pid {info.get('pid')}) reconciles this org from {info.get('source')}",
                          hint=f"commit the change to the tracked branch (and push it, when that is a remote's); "
                               f"`orgctl reconcile {org_dir}` applies it now. To apply by hand, "
                               f"`orgctl suspend --all` or `orgctl controller stop {org_dir}` first")


def _refuse_stale(saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    """Raises OrgctlError when ``now`` (the plan computed at apply time) is not the saved one."""
    was = saved.get("plan") or {}
    if was.get("revision") != now.get("revision"):
        raise OrgctlError(f"{path} is stale: {saved.get('ref')} was {str(was.get('revision'))[:7]} when the plan was "
                          f"made and is {str(now.get('revision'))[:7]} now", hint="make a new plan")
    if was.get("changes") != now.get("changes"):
        raise OrgctlError(f"{path} is stale: the running organization changed since the plan was made "
                          f"(it would now do: {_summary(now)}; the plan said: {_summary(was)})", hint="make a new plan")


def _summary(plan_json: dict[str, Any]) -> str:
    counts = plan_json.get("summary") or {}
    return f"{counts.get('hire', 0)} to hire, {counts.get('change', 0)} to change, {counts.get('retire', 0)} to retire"


@cli.command("force-unlock")
@click.argument("lock_id")
@org_dir_argument
def force_unlock(lock_id: str, org_dir: Path) -> None:
    """Break a state lock whose holder is stuck (LOCK_ID: from the error that named the holder)."""
    from orgctl.state import events, locking

    _, paths = resolve(org_dir)
    holder = locking.force_unlock(paths.lock, lock_id)
    events.emit(paths.work.events, reason="LockBroken", object=f"lock/{lock_id}", type="Warning",
                message=f"state lock of {holder.get('operation')} (pid {holder.get('pid')}) broken by force-unlock")
    click.echo(f"Broke the state lock {lock_id} held by {holder.get('operation')} (pid {holder.get('pid')}, "
               f"since {holder.get('created')}). If that process is still working, stop it: it can still write.")


@cli.command()
@org_dir_argument
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="The newest N applies.")
def history(org_dir: Path, as_json: bool, limit: int) -> None:
    """List past applies: when, which revision, what the plan held, the result and how long it took."""
    from orgctl.cli.reports import history_report

    _, paths = resolve(org_dir)
    records = history_report(paths, limit=limit)
    if as_json:
        for r in records:
            click.echo(json.dumps(r, sort_keys=True))
        return
    if not records:
        click.echo("No applies recorded yet.")
        return
    for r in records:
        plan = r.get("plan") or {}
        click.echo(f"{r.get('at', '?')}  {str(r.get('revision') or '-')[:7]}  "
                   f"+{plan.get('hire', 0)} ~{plan.get('change', 0)} -{plan.get('retire', 0)}  "
                   f"{r.get('duration_s', 0):>6.1f}s  {r.get('result', '')}")


@cli.command()
@org_location(positional=True, must_exist=False)
@lock_timeout_option
def down(org_dir: Path, lock_timeout: float) -> None:
    """Stop everything orgctl started for this org (Animas, supervisor, model server), nothing else."""
    from orgctl.gitops.serving import stop_controller
    from orgctl.gitops.stopping import stop_all
    from orgctl.runtime.local import LocalBackend
    from orgctl.state.locking import state_lock

    root, paths = resolve(org_dir)
    if not paths.root.exists():
        click.echo("Nothing to stop: orgctl has not started anything for this org.")
        return
    if (pid := stop_controller(paths)) is not None:  # else it would start them all again
        click.echo(f"Stopped the controller (pid {pid}).")
    with state_lock(paths.lock, operation="down", timeout=lock_timeout):
        stopped, pids = stop_all(paths=paths, backend=LocalBackend(paths=paths, org_dir=root))
    if not pids and not stopped:
        click.echo("Nothing was running.")
        return
    click.echo(f"Stopped {len(pids)} process(es); Animas now stopped: {', '.join(stopped) or 'none'}.")


