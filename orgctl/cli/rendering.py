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


_STYLES = {Action.HIRE: "fill:#d4f7d4,stroke:#2b8a3e", Action.CHANGE: "fill:#fff3bf,stroke:#e67700",
           Action.RESTART: "fill:#f3d9fa,stroke:#862e9c", Action.RETIRE: "fill:#ffe3e3,stroke:#c92a2a,"
                                                                     "stroke-dasharray: 5 5"}


def _label(text: str) -> str:
    """``text`` safe inside a Mermaid ``["…"]`` label: quotes and angle brackets as Mermaid's entity codes, so
    a role written in a pull request cannot close the label or inject markup."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _flowchart(roles: dict[str, str], edges: list[tuple[str, str, bool]], marks: dict[str, Action]) -> str:
    """A ``flowchart TD``: a node per name (its plan symbol and role), ``(boss, name, was)`` edges (``was``:
    a dotted link the plan removes), each marked node in its action's class."""
    lines = ["flowchart TD"]
    for name in sorted(roles):
        mark = f"{marks[name].symbol} " if name in marks else ""
        lines.append(f'  {name}["{_label(mark + name)}<br/><small>{_label(roles[name])}</small>"]')
    for boss, name, was in edges:
        lines.append(f"  {boss} -. was .-> {name}" if was else f"  {boss} --> {name}")
    for action, style in _STYLES.items():
        lines.append(f"  classDef {action.value} {style}")
        members = sorted(n for n in roles if marks.get(n) == action)
        if members:
            lines.append(f"  class {','.join(members)} {action.value}")
    return "\n".join(lines)


def _before(inventory: Inventory) -> tuple[dict[str, str], dict[str, str | None]]:
    """``(roles, supervisors)`` of the Animas the inventory runs."""
    live = {n: e for n, e in inventory.animas.items() if e.status not in ("retired", "orphaned")}
    return ({n: str(e.config.get("role", "")) for n, e in live.items()},
            {n: e.org.get("supervisor") for n, e in live.items()})


def mermaid_chart(plan: Plan, desired: OrgSpec, inventory: Inventory) -> str:
    """The org chart before and after ``plan`` as one Mermaid flowchart (``plan --chart``).

    One node per Anima in the spec or the inventory, classed by what the plan does to it: ``hire``,
    ``change``, ``restart``, ``retire`` (or unchanged); a solid edge for each supervisor link after the
    plan, a dotted edge labelled ``was`` for a link the plan removes.
    """
    actions = {c.name: c.action for c in plan.changes}
    roles, before = _before(inventory)
    after = {n: a.org.supervisor for n, a in desired.animas.items()}
    roles |= {n: a.role for n, a in desired.animas.items()}
    edges = []
    for name in sorted(roles):
        if (boss := after.get(name)) and name in after:
            edges.append((boss, name, False))
        if (old := before.get(name)) and (name not in after or after.get(name) != old):
            edges.append((old, name, True))
    return _flowchart(roles, edges, actions)


def mermaid_before_after(plan: Plan, desired: OrgSpec, inventory: Inventory) -> tuple[str, str]:
    """The org chart before ``plan`` (retirements, changes and restarts marked) and after it (hires,
    changes and restarts marked), as two Mermaid flowcharts: a pull request's comment shows them side by side."""
    actions = {c.name: c.action for c in plan.changes}
    roles, supervisors = _before(inventory)
    before = _flowchart(roles, [(b, n, False) for n, b in sorted(supervisors.items()) if b],
                        {n: a for n, a in actions.items() if a is not Action.HIRE})
    after = _flowchart({n: a.role for n, a in desired.animas.items()},
                       [(a.org.supervisor, n, False) for n, a in sorted(desired.animas.items()) if a.org.supervisor],
                       {n: a for n, a in actions.items() if a is not Action.RETIRE})
    return before, after
