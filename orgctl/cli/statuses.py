"""``orgctl status``: the click command; the rendering (click-free) is :mod:`orgctl.cli.statusview`."""

from __future__ import annotations

from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import org_dir_argument, resolve
from orgctl.cli.statusview import print_status


@cli.command()
@org_dir_argument
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
def status(org_dir: Path, as_json: bool) -> None:
    """Show each Anima's state, sync, health and Ready condition, its revision, last heartbeat and restarts.

    Reads only files in the state dir (no git, no process is contacted): what the supervisor and the
    controller recorded."""
    from orgctl.state.observing import observe_status

    _, paths = resolve(org_dir)
    print_status(observe_status(paths), as_json=as_json)
