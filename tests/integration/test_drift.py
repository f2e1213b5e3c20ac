"""Drift by content hash on real parts: a real org, the real supervisor and Anima processes, files edited by hand.

`plan` shows drift under "Changed outside orgctl" and `apply` converges it back; the controller (a real child
process, see test_controller.ControllerRunner) heals it by default and only reports it with `--drift warn`.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from orgctl.gitops.drifting import snapshot_spec_hash
from orgctl.paths import StatePaths
from orgctl.state.files import read_json, write_json
from orgctl.state.inventories import load_inventory
from orgctl.state.runtimes import load_runtime
from tests.conftest import run_cli, wait_for
from tests.integration.test_controller import ControllerRunner, anima_pids, applied_head, controller_status


def _apply(org: Path) -> None:
    result = run_cli("apply", str(org), "--auto-approve")
    assert result.exit_code == 0, result.output


def _edit_snapshot(state: StatePaths, name: str, **spec: Any) -> None:
    snapshot = read_json(state.spec_snapshot(name))
    snapshot["spec"].update(spec)
    write_json(state.spec_snapshot(name), snapshot)


def _drift_events() -> list[dict[str, Any]]:
    return json.loads(run_cli("events", "--reason", "DriftDetected", "--json").output)


def test_plan_shows_what_changed_outside_orgctl_and_apply_converges_it(running: Path, state: StatePaths) -> None:
    org = running
    _apply(org)
    applied = load_inventory(state.inventory).animas["bob"].spec_hash
    wait_for(lambda: len(anima_pids(state)) == 3, what="running")

    # runtime-owned data is not drift: timestamps in the snapshot, memory files, counters
    snapshot = read_json(state.spec_snapshot("bob"))
    write_json(state.spec_snapshot("bob"), snapshot | {"applied_at": "2001-01-01T00:00:00+00:00"})
    (org / "animas/bob/memory/knowledge").mkdir(parents=True, exist_ok=True)
    (org / "animas/bob/memory/knowledge/note.md").write_text("learned something\n")
    assert "No changes." in run_cli("plan", str(org)).output

    _edit_snapshot(state, "bob", model="openai/gpt-4o-mini")
    inventory = json.loads(state.inventory.read_text())
    inventory["animas"]["carol"]["config"]["heartbeat_interval"] = 60  # observed state tampered with
    state.inventory.write_text(json.dumps(inventory))
    plan = run_cli("plan", str(org), "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert "Changed outside orgctl" in plan.output
    assert "bob: its spec snapshot was edited outside orgctl" in plan.output
    assert "carol: its inventory record was edited outside orgctl" in plan.output
    assert "-/+ bob" in plan.output and "-/+ carol" in plan.output and "alice" not in plan.output

    _apply(org)
    assert snapshot_spec_hash(state.spec_snapshot("bob")) == applied
    assert not load_inventory(state.inventory).animas["carol"].tampered()
    assert "No changes." in run_cli("plan", str(org)).output


def test_a_process_reloaded_on_a_hand_edited_snapshot_is_drift(running: Path, state: StatePaths) -> None:
    org = running
    _apply(org)
    pids = wait_for(lambda: (p := anima_pids(state)) and len(p) == 3 and p, what="running")
    applied = load_inventory(state.inventory).animas["bob"].spec_hash
    wait_for(lambda: load_runtime(state.runtime).animas["bob"].spec_hash == applied, what="bob reports its spec")
    _edit_snapshot(state, "bob", heartbeat_interval=61)
    os.kill(pids["bob"], signal.SIGHUP)  # "restarted by hand with another setting": it reloads the edited file
    wait_for(lambda: load_runtime(state.runtime).animas["bob"].spec_hash not in (None, applied),
             what="bob reports the hand-edited spec")
    plan = run_cli("plan", str(org)).output
    assert "bob: its process runs another spec" in plan and "bob: its spec snapshot was edited" in plan


def test_the_controller_heals_drift_by_default(running: Path, state: StatePaths) -> None:
    org = running
    with ControllerRunner(org, state, "--resync-interval", "1"):
        applied_head(org, state)
        applied = load_inventory(state.inventory).animas["bob"].spec_hash
        before = anima_pids(state)["bob"]
        _edit_snapshot(state, "bob", model="openai/gpt-4o-mini")
        wait_for(_drift_events, what="a DriftDetected event")
        wait_for(lambda: snapshot_spec_hash(state.spec_snapshot("bob")) == applied, what="the snapshot healed")
        wait_for(lambda: anima_pids(state).get("bob") not in (None, before), what="bob restarted on the applied spec")
        event = _drift_events()[-1]
        assert event["type"] == "Warning" and "converging it back" in event["message"]


def test_with_drift_warn_the_controller_reports_and_leaves_it(running: Path, state: StatePaths) -> None:
    org = running
    with ControllerRunner(org, state, "--resync-interval", "1", "--drift", "warn"):
        applied_head(org, state)
        _edit_snapshot(state, "bob", model="openai/gpt-4o-mini")
        wait_for(_drift_events, what="a DriftDetected event")
        bob = wait_for(lambda: (a := controller_status(state)["animas"]["bob"])["sync"] == "OutOfSync" and a,
                       what="bob OutOfSync")
        ready = bob["conditions"][0]
        assert ready["status"] == "False" and ready["reason"] == "Drifted" and "snapshot was edited" in ready["message"]
        assert read_json(state.spec_snapshot("bob"))["spec"]["model"] == "openai/gpt-4o-mini"  # left as it is
        assert "not converged (--drift warn)" in _drift_events()[-1]["message"]
        assert len(_drift_events()) == 1  # reported once, not once per pass
