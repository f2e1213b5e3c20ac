"""``orgctl consolidate`` and ``orgctl pull``: memory passes, and memory brought into a checkout.

Memory is written and committed in the runtime's own clone (:mod:`orgctl.gitops.clones`), never in
the person's checkout; ``pull`` is how it gets there.
"""

from __future__ import annotations

from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import load_desired, lock_timeout_option, org_dir_argument, resolve, revision_option
from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths


def _sync(clone, paths: StatePaths) -> None:  # type: ignore[no-untyped-def]
    """Commit what the Animas wrote (through the supervisor when one runs, so it is the only writer),
    then sync the clone; a failed push is a warning (the commits wait in the clone)."""
    from orgctl.memory.batches import commit_pending
    from orgctl.runtime import protocol

    if protocol.reachable(paths.socket):
        answer = protocol.request(paths.socket, "commit_memory", timeout=180.0)
        if answer.get("error"):
            click.secho(f"Warning: {answer['error']}", fg="yellow", err=True)
        return
    commit_pending(clone, paths)
    try:
        clone.sync()
    except OrgctlError as e:
        click.secho(f"Warning: {e.message}" + (f" ({e.hint})" if e.hint else ""), fg="yellow", err=True)


@cli.command()
@org_dir_argument
def pull(org_dir: Path) -> None:
    """Bring the memory the Animas committed into this checkout (a fast-forward, or a merge)."""
    from orgctl.gitops.clones import RuntimeClone, pull_into

    root, paths = resolve(org_dir)
    clone = RuntimeClone.open(paths.clone)
    if clone is None:
        raise OrgctlError("there is no memory to pull: no Anima of this org has run on this machine",
                          hint="orgctl apply starts them; their memory is committed in the runtime's clone")
    _sync(clone, paths)
    result = pull_into(root, clone)
    if result.action == "up-to-date":
        click.echo("Already up to date.")
        return
    notes = sorted({"/".join(p.split("/")[:2]) for p in result.files})
    click.echo(f"{'Fast-forwarded' if result.action == 'fast-forward' else 'Merged'} {result.commits} commit(s) "
               f"to {result.head[:7]}: {len(result.files)} memory file(s) of {', '.join(notes) or 'no Anima'}.")


@cli.command()
@org_dir_argument
@revision_option
@click.option("--anima", "animas", multiple=True, metavar="NAME",
              help="Only this Anima (repeatable). Default: every Anima in the spec.")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Day to consolidate (default: today, in each Anima's time zone).")
@lock_timeout_option
def consolidate(org_dir: Path, revision: str, animas: tuple[str, ...], day, lock_timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Distil each Anima's episodes of the day into knowledge; one git commit per Anima."""
    from orgctl.gitops.clones import RuntimeClone
    from orgctl.memory.passes import run_consolidation
    from orgctl.state.locking import state_lock

    root, paths = resolve(org_dir)
    desired = load_desired(root, revision)
    unknown = sorted(set(animas) - set(desired.animas))
    if unknown:
        raise OrgctlError(f"unknown Anima(s): {', '.join(unknown)}",
                          hint=f"known: {', '.join(sorted(desired.animas))}")
    names = list(animas) or sorted(desired.animas)
    paths.ensure()
    with state_lock(paths.lock, operation="consolidate", timeout=lock_timeout):
        clone = RuntimeClone.for_checkout(root, paths.clone)
        results = run_consolidation(
            clone=clone, paths=paths, spec=desired, names=names,
            day=day.date() if day else None,
            progress=lambda name: click.echo(f"Consolidating {name} …", err=True))
        if any(r.commit for r in results):
            _sync(clone, paths)
    for r in results:
        if r.commit:
            click.echo(f"{r.anima}: {r.episodes} episodes → {r.note.relative_to(clone.root) if r.note else '-'} "
                       f"({r.tokens} tokens), commit {r.commit[:7]}")
        else:
            click.echo(f"{r.anima}: nothing committed ({r.skipped or 'no memory changes'})")
    if any(r.commit for r in results) and not clone.remote:
        click.echo("Bring it into this checkout with `orgctl pull`.")
