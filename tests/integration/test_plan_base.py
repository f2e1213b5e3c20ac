"""`orgctl plan --base REV`: a pull request's plan, the change of desired state between two revisions of a real
org repo, with no observed state read (nothing is applied or running in these tests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from orgctl.paths import StatePaths
from tests.conftest import commit_all, edit, git, rebind_workflows, run_cli


def plan_json(org: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("plan", "--base", "HEAD~1", "--json", str(org), *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def actions(plan: dict) -> dict[str, tuple[str, list[str]]]:  # type: ignore[type-arg]
    return {c["name"]: (c["action"], c["reasons"]) for c in plan["changes"]}


def test_a_hire_a_change_a_retirement_and_a_permissions_change(org: Path, state: StatePaths) -> None:
    base = git(org, "rev-parse", "HEAD").strip()
    shutil.copytree(org / "animas/bob", org / "animas/dave")
    shutil.rmtree(org / "animas/dave/memory")
    shutil.rmtree(org / "animas/carol")
    rebind_workflows(org, "carol")
    edit(org / "animas/bob/permissions.md", "# ", "# Changed.\n\n# ")
    edit(org / "animas/alice/anima.yaml", "role: manager", "role: manager\nmodel: anthropic/claude-sonnet-4-5")
    head = commit_all(org, "hire dave, retire carol, widen bob, move alice to sonnet")
    plan = plan_json(org)
    assert plan["base"] == base and plan["revision"] == head
    got = actions(plan)
    assert got["dave"] == ("hire", ["new in the repo"])
    assert got["carol"][0] == "retire" and "archive its memory" in got["carol"][1][0]
    assert got["bob"] == ("change", ["permissions.md changed", "org chart: peers +dave -carol"])
    assert got["alice"][0] == "restart" and any(r.startswith("model: ") and r.endswith(
        "anthropic/claude-sonnet-4-5") for r in got["alice"][1]), got["alice"]
    assert plan["summary"] == {"hire": 1, "change": 2, "restart": 1, "retire": 1}
    assert not state.inventory.exists() and not state.runtime.exists()  # no observed state was read or written

    text = run_cli("plan", "--base", base, str(org))
    assert text.exit_code == 0
    assert f"from revision {base[:7]} to {head[:7]}" in text.output
    assert "Plan: 1 to hire, 2 to change, 1 to retire; workflows: 1 to change." in text.output
    assert "~ workflow task will be changed" in text.output
    for line in ("+ dave will be hired", "- carol will be retired", "~ bob will be changed in place",
                 "-/+ alice will be restarted"):
        assert line in text.output
    assert run_cli("plan", "--base", base, "--detailed-exitcode", str(org)).exit_code == 2


def test_no_change_of_desired_state_and_memory_only_commits(org: Path) -> None:
    (org / "animas/bob/memory/knowledge/rota.md").write_text("# Rota\n\nbob is on call on Mondays.\n")
    commit_all(org, "memory only")
    plan = plan_json(org)
    assert plan["changes"] == [] and plan["summary"]["hire"] == 0
    result = run_cli("plan", "--base", "HEAD~1", "--detailed-exitcode", str(org))
    assert result.exit_code == 0 and "No changes. The desired state is the same at both revisions." in result.output


def test_disable_and_reenable_and_a_move_in_the_org_chart(org: Path) -> None:
    edit(org / "animas/carol/anima.yaml", "enabled: true", "enabled: false")
    edit(org / "animas/bob/anima.yaml", "supervisor: alice", "supervisor: carol")
    commit_all(org, "carol off, bob under carol")
    got = actions(plan_json(org))
    assert got["carol"][0] == "change" and "enabled: true → false" in got["carol"][1][0]
    assert got["bob"][0] == "change" and "org chart: supervisor alice → carol" in got["bob"][1]
    edit(org / "animas/carol/anima.yaml", "enabled: false", "enabled: true")
    commit_all(org, "carol back")
    assert actions(plan_json(org))["carol"] == ("change", ["enabled: false → true: start it"])


def test_errors_exit_1_and_name_the_file(org: Path) -> None:
    unknown = run_cli("plan", "--base", "no-such-rev", "--detailed-exitcode", str(org))
    assert unknown.exit_code == 1 and "no-such-rev" in unknown.output
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: engineer\nheartbeat_intervall: 5m")
    commit_all(org, "a typo")
    broken = run_cli("plan", "--base", "HEAD~1", "--detailed-exitcode", str(org))
    assert broken.exit_code == 1 and "animas/bob/anima.yaml:" in broken.output and "Traceback" not in broken.output
    saved = run_cli("plan", "--base", "HEAD~1", "--out", str(org / "p.json"), str(org))
    assert saved.exit_code == 1 and not (org / "p.json").exists()


def test_org_settings_that_no_anima_shows_are_planned_too(org: Path) -> None:
    """A PR that moves the org to tick mode is a change, not "No changes"."""
    edit(org / "org.yaml", "name: acme", "name: acme\nruntime: tick\nshards: 3")
    commit_all(org, "tick mode")
    plan = plan_json(org)
    assert plan["changes"] == [] and plan["settings"] == ["runtime: controller → tick", "shards: 1 → 3"]
    text = run_cli("plan", "--base", "HEAD~1", "--detailed-exitcode", str(org))
    assert text.exit_code == 2 and "~ org.yaml runtime: controller → tick" in text.output
    assert "Plan: 0 to hire, 0 to change, 0 to retire; org settings: runtime, shards." in text.output
