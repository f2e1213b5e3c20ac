"""The org chart as a picture: Mermaid, Graphviz DOT or SVG, drawn here with no browser and no network.

One model, :class:`Chart` (a node per Anima with its role and an optional mark, and supervisor edges, a
dotted ``was`` edge for a link a change removes), built three ways: from one spec (:func:`chart_of`), for a
plan as one picture (:func:`chart_of_plan`, what ``plan --chart`` prints) and as the pair before/after
(:func:`charts_before_after`, what a pull request's comment and the dashboard's Plan view show). Each
renderer escapes every name and role for its format: a role written in a pull request cannot close a
label, inject markup or a script.

The SVG is laid out as a tidy tree (Reingold and Tilford's idea in its simplest form: leaves take the next
free column in depth-first order, a parent is centred over its children), top-down, one row per level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from orgctl.desired.models import OrgSpec
from orgctl.gitops.planning import Action, Plan
from orgctl.state.inventories import Inventory

FORMATS = ("mermaid", "svg", "dot")
_FILL = {Action.HIRE: ("#d4f7d4", "#2b8a3e"), Action.CHANGE: ("#fff3bf", "#e67700"),
         Action.RESTART: ("#f3d9fa", "#862e9c"), Action.RETIRE: ("#ffe3e3", "#c92a2a")}
_PLAIN = ("#f8f9fa", "#495057")
NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 168, 50, 24, 46, 16
"""SVG geometry, in pixels: node box, gaps between columns and rows, outer margin."""


@dataclass
class Chart:
    """``roles`` by Anima name, ``edges`` as ``(supervisor, report, was)`` (``was``: a link a change removes),
    ``marks``: what a plan does to an Anima (hire, change, restart, retire)."""

    roles: dict[str, str]
    edges: list[tuple[str, str, bool]] = field(default_factory=list)
    marks: dict[str, Action] = field(default_factory=dict)


def chart_of(spec: OrgSpec) -> Chart:
    """The org chart of one spec: every Anima under its ``supervisor:``."""
    return Chart({n: a.role for n, a in spec.animas.items()},
                 [(a.org.supervisor, n, False) for n, a in sorted(spec.animas.items()) if a.org.supervisor])


def _before(inventory: Inventory) -> tuple[dict[str, str], dict[str, str | None]]:
    """``(roles, supervisors)`` of the Animas the inventory runs."""
    live = {n: e for n, e in inventory.animas.items() if e.status not in ("retired", "orphaned")}
    return ({n: str(e.config.get("role", "")) for n, e in live.items()},
            {n: e.org.get("supervisor") for n, e in live.items()})


def chart_of_plan(plan: Plan, desired: OrgSpec, inventory: Inventory) -> Chart:
    """Before and after ``plan`` in one chart: every Anima of the spec or the inventory, marked by what the plan
    does to it; solid edges as they will be, a dotted ``was`` edge for each link the plan removes."""
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
    return Chart(roles, edges, actions)


def charts_before_after(plan: Plan, desired: OrgSpec, inventory: Inventory) -> tuple[Chart, Chart]:
    """The chart before ``plan`` (retirements, changes and restarts marked) and after it (hires, changes and
    restarts marked)."""
    actions = {c.name: c.action for c in plan.changes}
    roles, supervisors = _before(inventory)
    before = Chart(roles, [(b, n, False) for n, b in sorted(supervisors.items()) if b],
                   {n: a for n, a in actions.items() if a is not Action.HIRE and n in roles})
    after = chart_of(desired)
    after.marks = {n: a for n, a in actions.items() if a is not Action.RETIRE and n in after.roles}
    return before, after


# ---------------------------------------------------------------- Mermaid

_STYLES = {Action.HIRE: "fill:#d4f7d4,stroke:#2b8a3e", Action.CHANGE: "fill:#fff3bf,stroke:#e67700",
           Action.RESTART: "fill:#f3d9fa,stroke:#862e9c", Action.RETIRE: "fill:#ffe3e3,stroke:#c92a2a,"
                                                                     "stroke-dasharray: 5 5"}


def _mermaid_label(text: str) -> str:
    """``text`` safe inside a Mermaid ``["…"]`` label: quotes and angle brackets as Mermaid's entity codes."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(chart: Chart) -> str:
    """A ``flowchart TD``: a node per name (its plan symbol and role), edges, each marked node in its class."""
    lines = ["flowchart TD"]
    for name in sorted(chart.roles):
        mark = f"{chart.marks[name].symbol} " if name in chart.marks else ""
        lines.append(f'  {name}["{_mermaid_label(mark + name)}<br/><small>{_mermaid_label(chart.roles[name])}'
                     '</small>"]')
    for boss, name, was in chart.edges:
        lines.append(f"  {boss} -. was .-> {name}" if was else f"  {boss} --> {name}")
    for action, style in _STYLES.items():
        lines.append(f"  classDef {action.value} {style}")
        members = sorted(n for n in chart.roles if chart.marks.get(n) == action)
        if members:
            lines.append(f"  class {','.join(members)} {action.value}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Graphviz DOT


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _dot_id(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def to_dot(chart: Chart) -> str:
    """A Graphviz ``digraph`` (``dot -Tsvg`` draws it): boxes filled by mark, dashed for a retirement and for a
    removed link."""
    lines = ["digraph org {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fontname="sans-serif"];']
    for name in sorted(chart.roles):
        mark = chart.marks.get(name)
        fill, stroke = _FILL.get(mark, _PLAIN) if mark else _PLAIN
        label = f"{mark.symbol} {name}" if mark else name
        style = ', style="rounded,filled,dashed"' if mark is Action.RETIRE else ""
        lines.append(f'  {_dot_id(name)} [label="{_dot_escape(label)}\\n{_dot_escape(chart.roles[name])}", '
                     f'fillcolor="{fill}", color="{stroke}"{style}];')
    for boss, name, was in chart.edges:
        lines.append(f"  {_dot_id(boss)} -> {_dot_id(name)}" + (' [style=dashed, label="was"];' if was else ";"))
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------- SVG


def layout(chart: Chart) -> dict[str, tuple[float, int]]:
    """``{name: (column, row)}``: a tidy top-down tree over the solid edges (a name whose supervisor is not in
    the chart is a root); columns are fractional where a parent centres over its children."""
    children: dict[str, list[str]] = {n: [] for n in chart.roles}
    has_parent = set()
    for boss, name, was in chart.edges:
        if not was and boss in children and name in children and name not in has_parent:
            children[boss].append(name)
            has_parent.add(name)
    place: dict[str, tuple[float, int]] = {}
    next_column = 0.0

    def visit(name: str, row: int, seen: frozenset[str]) -> float:
        nonlocal next_column
        kids = [k for k in sorted(children[name]) if k not in seen]
        if not kids:
            column = next_column
            next_column += 1
        else:
            spots = [visit(k, row + 1, seen | {name}) for k in kids]
            column = (spots[0] + spots[-1]) / 2
        place[name] = (column, row)
        return column

    for root in sorted(n for n in chart.roles if n not in has_parent):
        visit(root, 0, frozenset())
    for name in sorted(set(chart.roles) - set(place)):  # a cycle (refused by validate): drawn, not lost
        place[name] = (next_column, 0)
        next_column += 1
    return place


def to_svg(chart: Chart, *, title: str = "", links: bool = False,
           colours: dict[str, tuple[str, str]] | None = None, captions: dict[str, str] | None = None) -> str:
    """A standalone SVG document of ``chart``. ``links``: each node links to ``#/anima/<name>`` (the dashboard);
    ``colours``: ``{name: (fill, stroke)}`` over the marks' colours; ``captions``: a third line per node (the
    dashboard's health). Every text is XML-escaped."""
    place = layout(chart)
    columns = max((c for c, _ in place.values()), default=0) + 1
    rows = max((r for _, r in place.values()), default=0) + 1
    top = MARGIN + (24 if title else 0)
    width = int(MARGIN * 2 + columns * NODE_W + (columns - 1) * GAP_X)
    height = int(top + MARGIN + rows * NODE_H + (rows - 1) * GAP_Y)

    def box(name: str) -> tuple[float, float]:
        column, row = place[name]
        return MARGIN + column * (NODE_W + GAP_X), top + row * (NODE_H + GAP_Y)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" role="img">']
    if title:
        out.append(f'<text x="{MARGIN}" y="{MARGIN + 12}" font-size="14" font-weight="bold">{escape(title)}</text>')
    for boss, name, was in chart.edges:
        if boss not in place or name not in place:
            continue
        (bx, by), (nx, ny) = box(boss), box(name)
        x1, y1, x2, y2 = bx + NODE_W / 2, by + NODE_H, nx + NODE_W / 2, ny
        mid = (y1 + y2) / 2 if y2 > y1 else y1 + GAP_Y / 2
        dash = ' stroke-dasharray="4 4"' if was else ""
        out.append(f'<path d="M{x1:.0f},{y1:.0f} V{mid:.0f} H{x2:.0f} V{y2:.0f}" fill="none" stroke="#868e96"'
                   f'{dash}/>')
    for name in sorted(chart.roles):
        x, y = box(name)
        mark = chart.marks.get(name)
        fill, stroke = (colours or {}).get(name) or (_FILL[mark] if mark else _PLAIN)
        dash = ' stroke-dasharray="5 5"' if mark is Action.RETIRE else ""
        label = f"{mark.symbol} {name}" if mark else name
        node = [f'<g class="node" data-name={quoteattr(name)}>',
                f'<title>{escape(name)} ({escape(chart.roles[name])})</title>',
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
                f'stroke="{stroke}"{dash}/>',
                f'<text x="{x + 10:.0f}" y="{y + 18:.0f}" font-weight="bold">{escape(_clip(label, 22))}</text>',
                f'<text x="{x + 10:.0f}" y="{y + 33:.0f}" fill="#495057">{escape(_clip(chart.roles[name], 24))}'
                '</text>']
        if captions and name in captions:
            node.append(f'<text x="{x + 10:.0f}" y="{y + 45:.0f}" font-size="10" fill="{stroke}">'
                        f'{escape(_clip(captions[name], 28))}</text>')
        node.append("</g>")
        if links:
            node = [f'<a href={quoteattr("#/anima/" + name)}>', *node, "</a>"]
        out += node
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def render(chart: Chart, fmt: str, *, title: str = "") -> str:
    """``chart`` in ``fmt`` (one of :data:`FORMATS`). Raises ValueError for another format."""
    if fmt == "mermaid":
        return to_mermaid(chart) + "\n"
    if fmt == "dot":
        return to_dot(chart) + "\n"
    if fmt == "svg":
        return to_svg(chart, title=title)
    raise ValueError(f"unknown chart format {fmt!r} (one of {', '.join(FORMATS)})")
