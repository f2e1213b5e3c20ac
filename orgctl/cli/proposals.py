"""``orgctl proposals``: the spec changes Animas asked for, as branches waiting for review.

An Anima never changes a spec live: its set-model, hire or skill request is
one commit on ``orgctl/proposals/<anima>/<slug>-<id>``. People review it
(``proposals show``), merge it like any branch or pull request, then
``plan`` and ``apply``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import json_option, org_option, resolve

tracked_option = click.option("--tracked", default=None, metavar="BRANCH",
                              help="The branch merges are checked against (default: the checked-out branch).")


@cli.group(invoke_without_command=True)
@org_option
@json_option
@tracked_option
@click.pass_context
def proposals(ctx: click.Context, org_dir: Path, as_json: bool, tracked: str | None) -> None:
    """List spec changes proposed by Animas (branches orgctl/proposals/*), or `proposals show BRANCH`."""
    if ctx.invoked_subcommand is not None:
        return
    from orgctl.gitops.proposals import list_proposals

    root, _ = resolve(org_dir)
    items = list_proposals(root, tracked=tracked)
    if as_json:
        click.echo(json.dumps([p.model_dump(mode="json") for p in items], indent=2))
        return
    if not items:
        click.echo("No proposals.")
        return
    headers = ["BRANCH", "ANIMA", "FILES", "MERGED", "CREATED", "TITLE"]
    rows = [[p.branch, p.anima, str(len(p.files)), "yes" if p.merged else "no", p.created[:16].replace("T", " "),
             p.title[:60]] for p in items]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if any(not p.merged for p in items):
        click.echo("\nReview one with `orgctl proposals show BRANCH`; merge it like any branch, "
                   "then `orgctl plan` and `orgctl apply`.")


@proposals.command("show")
@click.argument("branch")
@org_option
@json_option
def show(branch: str, org_dir: Path, as_json: bool) -> None:
    """Print BRANCH's proposal and its diff against the revision it was proposed on."""
    from orgctl.gitops.proposals import get_proposal, proposal_diff

    root, _ = resolve(org_dir)
    proposal = get_proposal(root, branch)
    diff = proposal_diff(root, proposal.branch)
    if as_json:
        click.echo(json.dumps(proposal.model_dump(mode="json") | {"diff": diff}, indent=2))
        return
    click.echo(f"Proposal {proposal.branch}")
    click.echo(f"  by {proposal.anima} at {proposal.created}: {proposal.title}")
    click.echo(f"  base {proposal.base[:7]}, tip {proposal.commit[:7]}, "
               f"{'merged into' if proposal.merged else 'not merged into'} {proposal.tracked or '(no tracked branch)'}")
    click.echo("")
    click.echo(diff.rstrip("\n") if diff else "(no difference from its base)")
