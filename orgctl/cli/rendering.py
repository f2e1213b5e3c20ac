"""Human output: plans in Terraform's shape and the org chart in one line (status: :mod:`orgctl.cli.statuses`)."""

from __future__ import annotations

from collections.abc import Iterator

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


def plan_lines(plan: Plan) -> Iterator[tuple[str, str | None, bool]]:
    """The plan in Terraform's shape, one ``(text, colour, bold)`` per line: :func:`echo_plan` colours them,
    :func:`plan_text` (a PR comment's details block) joins them plain."""
    for name, why in sorted(plan.suspended.items()):
        yield f"Suspended, not reconciled: {name} ({why}); `orgctl resume {name}` lets it converge", "yellow", False
    if not plan.has_changes:
        yield plan.summary(), "green", False
        return
    if plan.drifted:
        yield "Changed outside orgctl (converged back to the applied spec below):", None, True
        for c in plan.drifted:
            for why in c.drift:
                yield f"  ~ {c.name}: {why}", None, False
        yield "", None, False
    where = (f"from revision {short(plan.base)} to {short(plan.revision)}" if plan.base is not None
             else f"at revision {short(plan.revision)}")
    yield f"orgctl will perform the following actions for org {plan.org!r} {where}:", None, False
    yield "", None, False
    for setting in plan.settings:
        yield f"    ~ org.yaml {setting}", "yellow", True
    if plan.settings:
        yield "", None, False
    for c in plan.changes:
        yield f"  {c.action.symbol:>3} {c.name} {_LABELS[c.action]}", _COLORS[c.action], True
        for reason in c.reasons:
            yield f"        # {reason}", None, False
    for w in plan.workflows:
        yield f"  {w.symbol:>3} workflow {w.name} {_WORKFLOW_LABELS[w.action]}", _WORKFLOW_COLORS[w.action], True
    yield "", None, False
    yield plan.summary(), None, True


_WORKFLOW_COLORS = {"add": "green", "change": "yellow", "remove": "red"}
_WORKFLOW_LABELS = {"add": "will be added", "change": "will be changed (runs in flight keep their version)",
                    "remove": "will be removed (runs in flight finish)"}


def echo_plan(plan: Plan) -> None:
    for text, colour, bold in plan_lines(plan):
        click.secho(text, fg=colour, bold=bold)


def plan_text(plan: Plan) -> str:
    """:func:`echo_plan`'s text without colour."""
    return "\n".join(text for text, _, _ in plan_lines(plan))


def mermaid_chart(plan: Plan, desired: OrgSpec, inventory: Inventory) -> str:
    """The org chart before and after ``plan`` as one Mermaid flowchart (``plan --chart``): one node per Anima
    in the spec or the inventory, classed by what the plan does to it; a dotted edge labelled ``was`` for a
    link the plan removes (:func:`orgctl.cli.charts.chart_of_plan`)."""
    from orgctl.cli import charts

    return charts.to_mermaid(charts.chart_of_plan(plan, desired, inventory))


def mermaid_before_after(plan: Plan, desired: OrgSpec, inventory: Inventory) -> tuple[str, str]:
    """The org chart before ``plan`` and after it, as two Mermaid flowcharts: a pull request's comment shows
    them side by side (:func:`orgctl.cli.charts.charts_before_after`)."""
    from orgctl.cli import charts

    before, after = charts.charts_before_after(plan, desired, inventory)
    return charts.to_mermaid(before), charts.to_mermaid(after)
