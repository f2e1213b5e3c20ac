"""Human output: plans in Terraform's shape and the org chart in one line (status: :mod:`orgctl.cli.statuses`)."""

from __future__ import annotations

import click

from orgctl.desired.models import OrgSpec
from orgctl.gitops.planning import Action, Plan

_COLORS = {Action.HIRE: "green", Action.CHANGE: "yellow", Action.RESTART: "magenta", Action.RETIRE: "red"}
_LABELS = {Action.HIRE: "will be hired", Action.CHANGE: "will be changed in place",
           Action.RESTART: "will be restarted", Action.RETIRE: "will be retired"}


def short(rev: str | None) -> str:
    return rev[:7] if rev else "-"


def chart_line(spec: OrgSpec) -> str:
    """``alice (manager) ← bob (engineer), carol (researcher)``-style summary of who reports to whom."""
    parts = []
    for a in sorted(spec.animas.values(), key=lambda a: (len(a.org.chain), a.name)):
        sup = f" → {a.org.supervisor}" if a.org.supervisor else ""
        parts.append(f"{a.name} ({a.role}{sup})")
    return ", ".join(parts)


def echo_plan(plan: Plan) -> None:
    if not plan.has_changes:
        click.secho(plan.summary(), fg="green")
        return
    if plan.drifted:
        click.secho("Changed outside orgctl (converged back to the applied spec below):", bold=True)
        for c in plan.drifted:
            for why in c.drift:
                click.echo(f"  ~ {c.name}: {why}")
        click.echo("")
    click.echo(f"orgctl will perform the following actions for org {plan.org!r} "
               f"at revision {short(plan.revision)}:\n")
    for c in plan.changes:
        click.secho(f"  {c.action.symbol:>3} {c.name}", fg=_COLORS[c.action], bold=True, nl=False)
        click.echo(f" {_LABELS[c.action]}")
        for reason in c.reasons:
            click.echo(f"        # {reason}")
    click.echo("")
    click.secho(plan.summary(), bold=True)
