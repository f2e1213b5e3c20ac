"""Human output: plans in Terraform's shape and the org chart in one line (status: :mod:`orgctl.cli.statuses`)."""

from __future__ import annotations

import click

from orgctl.desired.models import OrgSpec
from orgctl.gitops.planning import Action, Plan
from orgctl.state.inventories import Inventory

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
    for name, why in sorted(plan.suspended.items()):
        click.secho(f"Suspended, not reconciled: {name} ({why}); `orgctl resume {name}` lets it converge", fg="yellow")
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


def mermaid_chart(plan: Plan, desired: OrgSpec, inventory: Inventory) -> str:
    """The org chart before and after ``plan`` as a Mermaid flowchart (for a PR comment or a docs page).

    One node per Anima in the spec or the inventory, classed by what the plan does to it: ``hire``,
    ``change``, ``restart``, ``retire`` (or unchanged); a solid edge for each supervisor link after the
    plan, a dotted edge labelled ``was`` for a link the plan removes.
    """
    actions = {c.name: c.action for c in plan.changes}
    before = {n: e.org.get("supervisor") for n, e in inventory.animas.items()
              if e.status not in ("retired", "orphaned")}
    after = {n: a.org.supervisor for n, a in desired.animas.items()}
    names = sorted(set(before) | set(after))
    lines = ["flowchart TD"]
    for name in names:
        spec = desired.animas.get(name)
        role = spec.role if spec else str(inventory.animas[name].config.get("role", ""))
        action = actions.get(name)
        mark = f"{action.symbol} " if action else ""
        lines.append(f'  {name}["{mark}{name}<br/><small>{role}</small>"]')
    for name in names:
        if (boss := after.get(name)) and name in after:
            lines.append(f"  {boss} --> {name}")
        if (old := before.get(name)) and (name not in after or after.get(name) != old):
            lines.append(f"  {old} -. was .-> {name}")
    styles = {Action.HIRE: "fill:#d4f7d4,stroke:#2b8a3e", Action.CHANGE: "fill:#fff3bf,stroke:#e67700",
              Action.RESTART: "fill:#f3d9fa,stroke:#862e9c", Action.RETIRE: "fill:#ffe3e3,stroke:#c92a2a,"
                                                                           "stroke-dasharray: 5 5"}
    for action, style in styles.items():
        lines.append(f"  classDef {action.value} {style}")
        members = [n for n in names if actions.get(n) == action]
        if members:
            lines.append(f"  class {','.join(members)} {action.value}")
    return "\n".join(lines)
