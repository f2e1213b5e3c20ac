"""``python -m orgctl.cli.dashboard.planner ROOT``: the plan at HEAD for the dashboard, in a short-lived process.

The dashboard runs this when HEAD, the inventory or the pauses change (:class:`~.data.DashboardData`), so the
long-lived dashboard process never holds the spec loader (pydantic models of the whole spec, YAML, CEL,
croniter) -- the way Argo CD keeps manifest generation in its repo-server, apart from the API server. It
computes exactly what ``orgctl plan --json`` prints (the same ``_plan`` over the same inputs) and prints one
JSON object on standard output::

    {"plan": <plan JSON>, "before": <svg>, "after": <svg>,
     "desired": {"name", "revision", "animas": [{"name", "role", "model", "supervisor", "enabled",
                                                 "active_hours", "heartbeat_interval", "spec"}]}}

or ``{"error": "...", "diagnostics": ["file:line: reason", ...]}`` when the spec at HEAD does not load.
Reads only (the spec cache every ``plan`` keeps is the one file it may write).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def compute(root: Path) -> dict[str, Any]:
    """The plan of the org checked out at ``root`` (its HEAD against what runs), with both charts."""
    from orgctl.cli import charts
    from orgctl.cli.commands import _plan
    from orgctl.cli.options import load_desired
    from orgctl.errors import GitError, SpecError
    from orgctl.paths import state_paths
    from orgctl.state.inventories import load_inventory
    from orgctl.state.runtimes import load_runtime

    paths = state_paths(root)
    try:
        desired = load_desired(root, "HEAD")
    except SpecError as e:
        return {"error": e.message, "diagnostics": [str(d) for d in e.diagnostics]}
    except GitError as e:
        return {"error": e.message, "diagnostics": []}
    inventory = load_inventory(paths.inventory)
    the_plan = _plan(desired, inventory, load_runtime(paths.runtime), paths)
    before, after = charts.charts_before_after(the_plan, desired, inventory)
    return {
        "plan": the_plan.to_json(),
        "before": charts.to_svg(before, title="Running now", links=True),
        "after": charts.to_svg(after, title="After apply (HEAD)", links=True),
        "desired": {"name": desired.name, "revision": desired.revision, "animas": [
            {"name": a.name, "role": a.role, "model": a.model, "supervisor": a.org.supervisor, "enabled": a.enabled,
             "active_hours": a.active_hours, "heartbeat_interval": a.heartbeat_interval,
             "spec": {"role": a.role, "model": a.model, "org": {"supervisor": a.org.supervisor},
                      "budget": a.budget.model_dump(mode="json"), "org_budget": a.org_budget.model_dump(mode="json")}}
            for a in sorted(desired.animas.values(), key=lambda a: a.name)]},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m orgctl.cli.dashboard.planner ROOT", file=sys.stderr)
        return 2
    json.dump(compute(Path(argv[0]).resolve()), sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
