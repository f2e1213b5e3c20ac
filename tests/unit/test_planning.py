"""Planning: desired (spec) against observed (inventory + runtime), pure data, no processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.models import OrgSpec
from orgctl.desired.sources import WorkTreeSource
from orgctl.gitops.applying import inventory_entry
from orgctl.gitops.planning import Action, compute_plan
from orgctl.state.inventories import Inventory
from orgctl.state.runtimes import ProcessStatus, RuntimeStatus
from tests.conftest import edit


def applied(spec: OrgSpec, status: str = "active") -> Inventory:
    return Inventory(revision="r1", animas={n: inventory_entry(a, revision="r1", status=status)
                                            for n, a in spec.animas.items()},
                     workflows={n: w.digest for n, w in spec.workflows.items()})


@pytest.fixture(scope="module")
def supervisor_pid() -> Iterator[int]:
    """A live process whose command line names the supervisor module, as a real one's does.

    Planning only reads observed state; this stands in for a running supervisor
    without starting Animas (the integration tests start real ones).
    """
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "orgctl.runtime.supervisor"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def running(supervisor_pid: int):  # type: ignore[no-untyped-def]
    def make(spec: OrgSpec) -> RuntimeStatus:
        """A runtime whose live supervisor runs every Anima."""
        return RuntimeStatus(supervisor_pid=supervisor_pid,
                             animas={n: ProcessStatus(name=n, state="running", pid=1) for n in spec.animas})
    return make


def actions(plan) -> dict[str, Action]:  # type: ignore[no-untyped-def]
    return {c.name: c.action for c in plan.changes}


def load(org: Path) -> OrgSpec:
    return load_org(WorkTreeSource(org))


def test_empty_observed_state_hires_everyone(org: Path) -> None:
    plan = compute_plan(load(org), Inventory(), RuntimeStatus())
    assert actions(plan) == {"alice": Action.HIRE, "bob": Action.HIRE, "carol": Action.HIRE}
    assert plan.summary() == "Plan: 3 to hire, 0 to change, 0 to retire; workflows: 1 to add."
    assert plan.changes[0].reasons == ["new in the repo"]


def test_converged_has_no_changes(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    plan = compute_plan(spec, applied(spec), running(spec))
    assert not plan.has_changes
    assert plan.summary().startswith("No changes.")


def test_restart_field_change_restarts_only_that_anima(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nheartbeat_interval: 10s")
    plan = compute_plan(load(org), inventory, runtime)
    assert actions(plan) == {"bob": Action.RESTART}
    assert plan.changes[0].reasons == ["heartbeat_interval: 1800 → 10"]
    assert plan.summary() == "Plan: 0 to hire, 1 to change, 0 to retire."


def test_prompt_file_change_is_in_place(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    (org / "animas/carol/identity.md").write_text("# Carol\n\nNow terse.\n")
    plan = compute_plan(load(org), inventory, runtime)
    assert actions(plan) == {"carol": Action.CHANGE}
    assert plan.changes[0].reasons == ["identity.md changed"]


def test_org_chart_change_reaches_the_supervisor_in_place(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    edit(org / "animas/carol/anima.yaml", "supervisor: alice", "supervisor: bob")
    plan = compute_plan(load(org), inventory, runtime)
    assert actions(plan) == {"alice": Action.CHANGE, "bob": Action.CHANGE, "carol": Action.CHANGE}
    carol = next(c for c in plan.changes if c.name == "carol")
    assert "org chart: supervisor alice → bob" in carol.reasons


def test_removed_anima_is_retired(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    import shutil

    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    shutil.rmtree(org / "animas/carol")
    edit(org / "workflows/task.yaml", "anima: carol", "anima: alice")  # its reviewer must be an Anima
    plan = compute_plan(load(org), inventory, runtime)
    assert actions(plan)["carol"] == Action.RETIRE
    assert plan.summary().endswith("1 to retire; workflows: 1 to change.")
    assert plan.changes[0].name == "carol"  # retire first


def test_dead_supervisor_means_restart(org: Path) -> None:
    spec = load(org)
    plan = compute_plan(spec, applied(spec), RuntimeStatus(supervisor_pid=2**22 + 12345))
    assert set(actions(plan).values()) == {Action.RESTART}
    assert "supervisor is not running" in plan.changes[0].reasons[0]


def test_stopped_by_down_is_hired_again(org: Path) -> None:
    spec = load(org)
    plan = compute_plan(spec, applied(spec, status="stopped"), RuntimeStatus())
    assert set(actions(plan).values()) == {Action.HIRE}
    assert "stopped by `orgctl down`" in plan.changes[0].reasons[0]


def test_disable_and_enable(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: false")
    disabled = load(org)
    plan = compute_plan(disabled, inventory, runtime)
    assert actions(plan) == {"bob": Action.CHANGE}
    assert "enabled: true → false" in plan.changes[0].reasons[0]
    inventory.animas["bob"] = inventory_entry(disabled.animas["bob"], revision="r2", status="disabled")
    assert not compute_plan(disabled, inventory, runtime).has_changes
    plan = compute_plan(spec, inventory, runtime)
    assert actions(plan) == {"bob": Action.CHANGE} and "start it" in plan.changes[0].reasons[0]


def test_plan_json_shape(org: Path) -> None:
    data = compute_plan(load(org), Inventory(), RuntimeStatus()).to_json()
    assert data["summary"] == {"hire": 3, "change": 0, "restart": 0, "retire": 0}
    assert data["changes"][0] | {"spec_hash": None} == {
        "name": "alice", "action": "hire", "symbol": "+", "reasons": ["new in the repo"], "spec_hash": None,
        "paused": False, "drift": []}


def test_writing_an_inherited_default_explicitly_is_no_change(org: Path, running) -> None:  # type: ignore[no-untyped-def]
    spec = load(org)
    inventory, runtime = applied(spec), running(spec)
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nmodel: local/smollm2\ntimezone: UTC")
    assert not compute_plan(load(org), inventory, runtime).has_changes


def test_identity_frontmatter_stays_out_of_the_prompt(org: Path) -> None:
    (org / "animas/bob/identity.md").write_text("---\nauthor: hr\n---\n# Bob\n\nCareful.\n")
    assert load(org).animas["bob"].identity == "# Bob\n\nCareful."
