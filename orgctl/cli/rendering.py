"""Human output: plans in Terraform's shape, status tables, the org chart in one line."""

from __future__ import annotations

import click

from orgctl.desired.models import OrgSpec
from orgctl.gitops.planning import Action, Plan
from orgctl.state.observing import StatusReport

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
    click.echo(f"orgctl will perform the following actions for org {plan.org!r} "
               f"at revision {short(plan.revision)}:\n")
    for c in plan.changes:
        click.secho(f"  {c.action.symbol:>3} {c.name}", fg=_COLORS[c.action], bold=True, nl=False)
        click.echo(f" {_LABELS[c.action]}")
        for reason in c.reasons:
            click.echo(f"        # {reason}")
    click.echo("")
    click.secho(plan.summary(), bold=True)


def echo_status(report: StatusReport, *, model_server: str) -> None:
    sup = (f"running (pid {report.supervisor_pid})" if report.supervisor_running else "not running")
    click.echo(f"Applied revision: {short(report.revision)} at {report.applied_at or '-'}")
    click.echo(f"Supervisor:       {sup}")
    click.echo(f"Model server:     {model_server}")
    if not report.animas:
        click.echo("\nNo Animas applied yet. Run `orgctl plan` and `orgctl apply`.")
        return
    headers = ["NAME", "ROLE", "STATE", "HEALTH", "REVISION", "LAST HEARTBEAT", "BEATS", "RESTARTS"]
    rows = [[a.name, a.role or "-", a.state, a.health, short(a.revision), a.last_heartbeat or "-",
             str(a.heartbeats), str(a.restarts)] for a in report.animas]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    click.echo("")
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    troubled = [a for a in report.animas if a.health == "Degraded"]
    if troubled:
        click.echo("")
        for a in troubled:
            click.secho(f"{a.name}: Degraded: {a.reason}", fg="red")
