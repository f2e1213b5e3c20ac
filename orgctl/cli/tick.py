"""``orgctl tick``: one bounded pass of a tick org (``runtime: tick``), for a CI runner.

See :mod:`orgctl.runtime.ticking`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import json_option, org_dir_argument, resolve
from orgctl.errors import OrgctlError


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from orgctl.desired.models import parse_duration

    try:
        seconds = float(parse_duration(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if seconds <= 0:
        raise click.BadParameter("must be above zero")
    return seconds


@cli.command()
@org_dir_argument
@click.option("--deadline", default="10m", show_default=True, callback=_duration, metavar="DURATION",
              help="End within this long (30s, 10m, 1h); work not started by then stays queued.")
@click.option("--shard", default="1/1", show_default=True, metavar="I/N",
              help="Run only the Animas of shard I of N (N must be org.yaml's `shards`).")
@click.option("--budget", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Start no model call once this tick has spent this many tokens.")
@click.option("--matrix", is_flag=True,
              help="Print the shards as a GitHub Actions matrix ({\"include\": [{\"shard\": \"1/3\"}, ...]}; "
                   "empty for a controller org) and run nothing.")
@json_option
def tick(org_dir: Path, deadline: float, shard: str, budget: int | None, matrix: bool, as_json: bool) -> None:
    """Run one bounded pass of a tick org: due heartbeats, cron, tasks and memory passes; state to orgctl/state."""
    from orgctl.runtime.ticking import Tick, events_of, parse_shard

    root, paths = resolve(org_dir)
    if not (root / "org.yaml").is_file():
        raise OrgctlError(f"{root} is not an org repo (no org.yaml)", hint="run it in a checkout of the org repo")
    if matrix:
        click.echo(json.dumps(shard_matrix(root)))
        return
    which = parse_shard(shard)
    runner = Tick(root=root, paths=paths, deadline=deadline, shard=which, budget=budget,
                  progress=(lambda line: None) if as_json else (lambda line: click.echo(line, err=True)))
    report = runner.run()
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    for event in events_of(paths):
        if event.type == "Warning":
            click.secho(f"Warning {event.reason} {event.object}: {event.message}", fg="yellow", err=True)
    ran = sum(1 for a in report.animas if a.cycles or a.tasks or a.cron)
    click.echo(f"Tick {which[0]}/{which[1]} at {(report.revision or 'work tree')[:7]}: {ran} of "
               f"{len(report.animas)} Anima(s) worked, {report.calls} model call(s), {report.tokens} tokens, "
               f"{report.wall_s:.1f}s ({report.framework_s:.1f}s framework).")
    click.echo(f"Memory: {len(report.memory_commits)} commit(s)"
               + (", pushed." if report.memory_pushed else (", not pushed." if report.memory_commits else ".")))
    click.echo(f"State: {report.state_commit[:7] + ' on orgctl/state' if report.state_commit else 'unchanged'}"
               + (f" (after {report.state_attempts} attempts)" if report.state_attempts > 1 else "") + ".")
    if report.unfinished:
        click.secho(f"Left for the next tick: {', '.join(report.unfinished)}", fg="yellow")
    for warning in report.warnings:
        click.secho(f"Warning: {warning}", fg="yellow", err=True)


def shard_matrix(root: Path) -> dict[str, list[dict[str, str]]]:
    """``{"include": [{"shard": "1/N"}, ..., {"shard": "N/N"}]}`` for a tick org at HEAD (``shards: N``), and
    ``{"include": []}`` for a controller org (its controller runs it: a scheduled tick must not). Raises
    SpecError when HEAD's spec is invalid (a scheduled run then fails loudly rather than skipping)."""
    from orgctl.cli.options import load_desired

    spec = load_desired(root, "HEAD")
    if spec.runtime != "tick":
        return {"include": []}
    return {"include": [{"shard": f"{i}/{spec.shards}"} for i in range(1, spec.shards + 1)]}
