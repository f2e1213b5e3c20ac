"""Org tools on real parts: a real org repo from the template, real state files, and a real supervisor.

The team: alice (manager) over bob and carol; dave reports to bob, so he is
an indirect report of alice. alice is granted every org tool; bob the
dashboard, the audit and pause; carol none. The refusal, dashboard and audit
tests read and write real state files with no process running; the pause /
resume / restart calls there go to a recorded fake control. The last test
drives the real supervisor with real Anima processes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.models import AnimaSpec
from orgctl.desired.sources import GitRevisionSource
from orgctl.errors import RuntimeFailure
from orgctl.gitops.applying import inventory_entry
from orgctl.paths import StatePaths
from orgctl.runtime.organization import Organization
from orgctl.runtime.orgtools import (
    Audit,
    ControlResult,
    Dashboard,
    OrgTools,
    ProposalResult,
    Refusal,
    hierarchy_refusal,
    subtree,
)
from orgctl.state.events import Event, read_events
from orgctl.state.files import pid_alive
from orgctl.state.inventories import Inventory, save_inventory
from orgctl.state.runtimes import load_runtime
from orgctl.work.tasks import Task
from tests.conftest import commit_all, edit, git, run_cli

T = TypeVar("T")
ALL_TOOLS = "org_dashboard, audit_subordinate, pause_anima, resume_anima, restart_anima, propose_change"


@pytest.fixture
def team(org: Path) -> Path:
    """The template org plus dave under bob; alice has every org tool, bob three of them."""
    edit(org / "animas/alice/permissions.md", "org_dashboard, audit_subordinate, restart_anima, propose_change]",
         f"{ALL_TOOLS}]")
    edit(org / "animas/bob/permissions.md", "run_command, search_memory]",
         "run_command, search_memory, org_dashboard, audit_subordinate, pause_anima]")
    dave = org / "animas/dave"
    dave.mkdir()
    (dave / "anima.yaml").write_text("role: engineer\nsupervisor: bob\nenabled: true\n")
    (dave / "identity.md").write_text("# Dave\n\nA junior engineer.\n")
    (dave / "permissions.md").write_text("---\ntools: [send_message]\n---\n# Permissions\n")
    commit_all(org, "dave joins under bob; managers get org tools")
    return org


@pytest.fixture
def specs(team: Path) -> dict[str, AnimaSpec]:
    return load_org(GitRevisionSource(team, "HEAD")).animas


class RecordedControl:
    """Stands in for the supervisor socket: records (op, name) and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: str | None = None

    def __call__(self, op: str, name: str) -> object:
        if self.fail:
            raise RuntimeFailure(self.fail)
        self.calls.append((op, name))
        return {"ok": True}


@pytest.fixture
def control() -> RecordedControl:
    return RecordedControl()


@pytest.fixture
def tools(team: Path, specs: dict[str, AnimaSpec], state: StatePaths, control: RecordedControl) -> OrgTools:
    state.ensure()
    head = git(team, "rev-parse", "HEAD").strip()
    save_inventory(state.inventory, Inventory(revision=head, animas={
        n: inventory_entry(s, revision=head, status="active") for n, s in specs.items()}))
    return OrgTools(paths=state, specs=specs, control=control, org_dir=team)


def tool_events(state: StatePaths, reason: str | None = None) -> list[Event]:
    return [e for e in read_events(state.work.events, reason=reason) if "tool" in e.fields]


# ---------------------------------------------------------------- the chart


def test_subtree_and_hierarchy(specs: dict[str, AnimaSpec]) -> None:
    assert subtree(specs, "alice") == [("alice", 0), ("bob", 1), ("dave", 2), ("carol", 1)]
    assert subtree(specs, "bob") == [("bob", 0), ("dave", 1)]
    assert subtree(specs, "carol") == [("carol", 0)]
    assert hierarchy_refusal(specs, "alice", "dave") is None  # indirect
    assert hierarchy_refusal(specs, "alice", "bob") is None  # direct
    assert "above bob" in (hierarchy_refusal(specs, "bob", "alice") or "")
    assert "peer" in (hierarchy_refusal(specs, "bob", "carol") or "")
    assert "not in carol's team" in (hierarchy_refusal(specs, "carol", "dave") or "")
    assert "itself" in (hierarchy_refusal(specs, "bob", "bob") or "")
    assert hierarchy_refusal(specs, "bob", "bob", allow_self=True) is None


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("call", "reason"), [
    (lambda t: t.audit_subordinate("bob", "alice"), "alice is above bob in the org chart"),
    (lambda t: t.audit_subordinate("bob", "carol"), "carol is a peer of bob"),
    (lambda t: t.audit_subordinate("alice", "alice"), "alice cannot use this on itself"),
    (lambda t: t.audit_subordinate("alice", "zed"), "no applied Anima named 'zed'"),
    (lambda t: t.pause("bob", "alice"), "alice is above bob"),
    (lambda t: t.pause("bob", "carol"), "carol is a peer of bob"),
    (lambda t: t.pause("bob", "bob"), "bob cannot use this on itself"),
    (lambda t: t.restart("bob", "dave"), "bob's permissions.md does not grant restart_anima"),
    (lambda t: t.org_dashboard("carol"), "carol's permissions.md does not grant org_dashboard"),
    (lambda t: t.org_dashboard("mallory"), "no applied Anima named 'mallory'"),
    (lambda t: t.pause("alice", "bob", trust="untrusted"), "untrusted data"),
    (lambda t: t.propose_set_model("bob", "dave", "anthropic/claude-sonnet-4-5"),
     "does not grant propose_change"),
    (lambda t: t.propose_set_model("alice", "zed", "anthropic/claude-sonnet-4-5"), "no applied Anima"),
    (lambda t: t.propose_hire("alice", "erin", "engineer", "zed"), "no applied Anima named 'zed'"),
])
def test_refusals_say_why_emit_an_event_and_do_nothing(tools: OrgTools, state: StatePaths, team: Path,
                                                       control: RecordedControl,
                                                       call: Callable[[OrgTools], object], reason: str) -> None:
    branches = git(team, "branch", "--list")
    result = call(tools)
    assert isinstance(result, Refusal) and not result.ok
    assert reason in result.reason and result.text().endswith(result.reason)
    assert control.calls == [] and not tools.paused()
    assert git(team, "branch", "--list") == branches
    [event] = tool_events(state)
    assert event.reason == "OrgToolRefused" and event.type == "Warning" and event.anima == result.caller
    assert event.fields["tool"] == result.tool and reason in event.message


# ---------------------------------------------------------------- dashboard and audit


def test_dashboard_shows_the_subtree_with_states_and_queues(tools: OrgTools, specs: dict[str, AnimaSpec],
                                                            state: StatePaths) -> None:
    work = Organization(paths=state, specs=specs)
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="seconds")
    work.queue("bob").create(Task(title="stale one", assignee="bob", requester="alice", created_at=old,
                                  updated_at=old))
    work.add_task("bob", "overdue one", due=datetime.now(UTC) - timedelta(minutes=5))
    done = work.add_task("bob", "finished one")
    work.queue("bob").update(done.id, by="bob", status="done")
    work.add_task("dave", "fresh one")
    work.human_message("dave", "are you there?")

    board = tools.org_dashboard("alice")
    assert isinstance(board, Dashboard)
    assert [(r.name, r.depth, r.supervisor) for r in board.rows] == [
        ("alice", 0, None), ("bob", 1, "alice"), ("dave", 2, "bob"), ("carol", 1, "alice")]
    rows = {r.name: r for r in board.rows}
    assert (rows["bob"].open, rows["bob"].stale, rows["bob"].overdue) == (2, 1, 1)
    assert (rows["dave"].open, rows["dave"].unread) == (1, 1)
    assert rows["carol"].open == 0
    assert {r.state for r in board.rows} == {"not running"}  # applied, no supervisor runs them

    text = board.text()
    assert text.splitlines() == [
        "alice's team (4 Animas; tasks open/stale/overdue):",
        "- alice (manager) not running: tasks 0/0/0",
        "  - bob (engineer) not running: tasks 2/1/1",
        "    - dave (engineer) not running: tasks 1/0/0, 1 unread",
        "  - carol (researcher) not running: tasks 0/0/0"]
    short = board.text(max_chars=100)
    assert len(short) <= 120 and short.endswith("more lines")

    mine = tools.org_dashboard("bob")
    assert isinstance(mine, Dashboard) and [r.name for r in mine.rows] == ["bob", "dave"]
    used = tool_events(state, "OrgToolUsed")
    assert [(e.anima, e.fields["tool"]) for e in used] == [("alice", "org_dashboard"), ("bob", "org_dashboard")]


def test_audit_shows_a_reports_recent_activity_and_nothing_else(tools: OrgTools, specs: dict[str, AnimaSpec],
                                                                state: StatePaths) -> None:
    work = Organization(paths=state, specs=specs)
    task = work.queue("bob").create(Task(title="fix the build", assignee="bob", requester="alice"))
    sub, why = work.delegate("bob", task.id, "dave")
    assert sub is not None, why
    work.queue("dave").update(sub.id, by="dave", status="in_progress", note="started")
    assert work.send("dave", "bob", "question", "Which branch is broken?").accepted
    assert work.send("carol", "alice", "report", "Research is done").accepted  # not dave's: must not show

    audit = tools.audit_subordinate("alice", "dave")
    assert isinstance(audit, Audit) and audit.target == "dave" and audit.state == "not running"
    assert [(t.op, t.status, t.by) for t in audit.transitions] == [("create", "pending", "bob"),
                                                                  ("update", "in_progress", "dave")]
    assert [(m.sender, m.recipient, m.intent) for m in audit.messages] == [("bob", "dave", "delegation"),
                                                                          ("dave", "bob", "question")]
    assert any(e.reason == "MessageSent" and e.anima == "dave" for e in audit.events)
    assert all(e.anima == "dave" or e.object == "anima/dave" for e in audit.events)
    assert "Research is done" not in audit.text()
    assert "dave -> bob (question): Which branch is broken?" in audit.text()

    one = tools.audit_subordinate("bob", "dave", limit=1)
    assert isinstance(one, Audit) and len(one.transitions) == 1 and one.transitions[0].status == "in_progress"
    assert len(one.messages) == 1 and len(one.events) == 1
    assert len(one.text(max_chars=80)) <= 100
    # the audit itself is an event about dave, and shows in the next audit
    again = tools.audit_subordinate("alice", "dave", limit=100)
    assert isinstance(again, Audit) and any(e.reason == "OrgToolUsed" for e in again.events)


# ---------------------------------------------------------------- control (recorded)


def test_pause_resume_restart_through_the_control(tools: OrgTools, control: RecordedControl,
                                                  state: StatePaths) -> None:
    paused = tools.pause("alice", "dave", reason="too many   failing runs\nfor now")
    assert isinstance(paused, ControlResult) and paused.ok
    assert control.calls == [("stop", "dave")]
    assert tools.paused()["dave"].by == "alice" and tools.paused()["dave"].reason == "too many failing runs for now"
    board = tools.org_dashboard("alice")
    assert isinstance(board, Dashboard)
    assert {r.name: (r.state, r.paused_by) for r in board.rows}["dave"] == ("paused", "alice")
    assert "dave (engineer) paused by alice" in board.text()

    assert "already paused" in getattr(tools.pause("bob", "dave"), "reason", "")
    assert "resume it instead" in getattr(tools.restart("alice", "dave"), "reason", "")
    assert "bob is not paused" in getattr(tools.resume("alice", "bob"), "reason", "")

    resumed = tools.resume("alice", "dave")
    assert isinstance(resumed, ControlResult) and resumed.ok and not tools.paused()
    restarted = tools.restart("alice", "bob")
    assert isinstance(restarted, ControlResult) and restarted.ok
    assert control.calls == [("stop", "dave"), ("start", "dave"), ("restart", "bob")]
    used = [(e.fields["tool"], e.fields["target"]) for e in tool_events(state, "OrgToolUsed")]
    assert used == [("pause_anima", "dave"), ("org_dashboard", None), ("resume_anima", "dave"),
                    ("restart_anima", "bob")]


def test_a_failed_control_is_reported_and_leaves_no_pause(tools: OrgTools, control: RecordedControl,
                                                          state: StatePaths) -> None:
    control.fail = "supervisor at /x did not answer 'stop'"
    result = tools.pause("alice", "bob")
    assert isinstance(result, ControlResult) and not result.ok and "did not answer" in result.message
    assert not tools.paused()
    [event] = tool_events(state, "OrgToolFailed")
    assert event.type == "Warning" and event.fields["target"] == "bob"


def test_only_what_the_spec_means_to_run_can_be_controlled(tools: OrgTools, specs: dict[str, AnimaSpec],
                                                           state: StatePaths, control: RecordedControl) -> None:
    inventory = Inventory(animas={"bob": inventory_entry(specs["bob"], revision=None, status="disabled"),
                                  "dave": inventory_entry(specs["dave"], revision=None, status="stopped")})
    save_inventory(state.inventory, inventory)
    assert "bob is disabled" in getattr(tools.restart("alice", "bob"), "reason", "")
    assert "dave is stopped" in getattr(tools.pause("alice", "dave"), "reason", "")
    assert "carol has not been applied" in getattr(tools.restart("alice", "carol"), "reason", "")
    assert control.calls == []


def test_proposals_through_the_tools_are_branches(tools: OrgTools, team: Path, state: StatePaths) -> None:
    made = tools.propose_set_model("alice", "dave", "anthropic/claude-sonnet-4-5")
    assert isinstance(made, ProposalResult) and made.ok and made.proposal is not None
    assert made.proposal.branch.startswith("orgctl/proposals/alice/") and "plan and apply" in made.text()
    hire = tools.propose_hire("alice", "erin", "writer", "bob")
    assert isinstance(hire, ProposalResult) and hire.ok
    mine = tools.propose_skill("alice", "alice", "weekly-review", "How alice reviews the week", "Read episodes.")
    assert isinstance(mine, ProposalResult) and mine.ok
    bad = tools.propose_set_model("alice", "bob", "local/nope")
    assert isinstance(bad, Refusal) and "unknown embedded model" in bad.reason
    assert git(team, "status", "--porcelain") == "" and git(team, "branch", "--show-current").strip() == "main"
    assert len(git(team, "for-each-ref", "refs/heads/orgctl/proposals/").splitlines()) == 3
    assert [e.fields["tool"] for e in tool_events(state)] == ["propose_change"] * 4


# ---------------------------------------------------------------- the real supervisor


from tests.integration.test_apply_lifecycle import wait_for  # noqa: E402


def running_pids(state: StatePaths, names: set[str]) -> dict[str, int]:
    def ready() -> dict[str, int] | None:
        rt = load_runtime(state.runtime)
        procs = {n: p for n, p in rt.animas.items() if n in names}
        if set(procs) == names and all(p.state in ("running", "resting") and p.pid for p in procs.values()):
            return {n: p.pid for n, p in procs.items() if p.pid}
        return None
    return wait_for(ready)


def test_pause_resume_restart_on_a_real_supervisor(team: Path, running: Path, state: StatePaths) -> None:
    assert run_cli("apply", str(team), "--auto-approve").exit_code == 0
    everyone = {"alice", "bob", "carol", "dave"}
    before = running_pids(state, everyone)
    specs = load_org(GitRevisionSource(team, "HEAD")).animas
    tools = OrgTools(paths=state, specs=specs, org_dir=team)  # the real control: the supervisor's socket

    refused = tools.pause("bob", "alice")
    assert isinstance(refused, Refusal) and "above bob" in refused.reason

    paused = tools.pause("alice", "dave", reason="investigating")
    assert isinstance(paused, ControlResult) and paused.ok, paused
    wait_for(lambda: not pid_alive(before["dave"]))
    assert "dave" not in load_runtime(state.runtime).animas
    board = tools.org_dashboard("alice")
    assert isinstance(board, Dashboard)
    states = {r.name: r.state for r in board.rows}
    assert states["dave"] == "paused" and {states[n] for n in ("alice", "bob", "carol")} <= {"running", "resting"}

    resumed = tools.resume("alice", "dave")
    assert isinstance(resumed, ControlResult) and resumed.ok
    dave = running_pids(state, {"dave"})["dave"]
    assert dave != before["dave"]

    restarted = tools.restart("alice", "bob")
    assert isinstance(restarted, ControlResult) and restarted.ok
    after = running_pids(state, everyone)
    assert after["bob"] != before["bob"] and not pid_alive(before["bob"])
    assert after["alice"] == before["alice"] and after["carol"] == before["carol"]

    proposed = tools.propose_set_model("alice", "bob", "anthropic/claude-sonnet-4-5")
    assert isinstance(proposed, ProposalResult) and proposed.ok
    assert running_pids(state, everyone) == after  # a proposal is never a live change
    assert run_cli("plan", str(team), "--detailed-exitcode").exit_code == 0  # HEAD did not move either
    reasons = [(e.reason, e.fields["tool"]) for e in tool_events(state)]
    assert reasons == [("OrgToolRefused", "pause_anima"), ("OrgToolUsed", "pause_anima"),
                       ("OrgToolUsed", "org_dashboard"), ("OrgToolUsed", "resume_anima"),
                       ("OrgToolUsed", "restart_anima"), ("OrgToolUsed", "propose_change")]
