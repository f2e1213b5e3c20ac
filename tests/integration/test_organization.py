"""Work in flight on real files and real processes: messaging rules, durable inboxes, task graphs, permissions.

No model is called here: these are the framework's guarantees, which must hold whatever a model answers.
The org comes from the real template via `orgctl init`; specs are loaded from its HEAD.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.errors import WorkError
from orgctl.paths import StatePaths
from orgctl.runtime.organization import Organization
from orgctl.runtime.permissions import policy_for
from orgctl.state.events import read_events
from orgctl.work.messages import Inbox, Message
from tests.conftest import run_cli


@pytest.fixture
def work(org: Path, state: StatePaths) -> Organization:
    spec = load_org(GitRevisionSource(org, "HEAD"))
    return Organization(paths=state.ensure(), specs=spec.animas)


def test_acknowledgement_loop_is_cut_at_once_and_a_ping_pong_within_six(work: Organization) -> None:
    refused = work.send("bob", "alice", "report", "Thanks, great job! Really appreciate it.")
    assert not refused.accepted and "Board" in refused.reason

    accepted = 0
    for i in range(10):  # two Animas bouncing content back and forth: report up, question down
        a = work.send("bob", "alice", "report", f"Status update number {i}: the build is green")
        b = work.send("alice", "bob", "question", f"Question number {i}: what is the next step?")
        accepted += a.accepted + b.accepted
        if not (a.accepted and b.accepted):
            break
    assert accepted <= 6
    reasons = [e for e in work_events(work) if e["reason"] == "MessageRefused"]
    assert any("depth limit" in e["message"] for e in reasons)


def work_events(work: Organization) -> list[dict]:  # type: ignore[type-arg]
    from orgctl.state.events import read_events

    return [e.model_dump() for e in read_events(work.work.events)]


def test_a_chain_through_a_third_anima_is_cut(work: Organization) -> None:
    first = work.send("bob", "carol", "question", "Can you look into the flaky deploy?").message
    assert first is not None
    second = work.send("carol", "alice", "question", "Bob asks about the flaky deploy: who owns it?",
                       parent=first).message
    assert second is not None and second.chain == ["bob", "carol", "alice"] or second.chain == ["bob", "carol"]
    third = work.send("alice", "bob", "question", "Who owns the flaky deploy?", parent=second)
    assert not third.accepted and "loop cut" in third.reason


def test_hierarchy_discipline_explains_the_refusal(work: Organization) -> None:
    assert "direct reports" in work.send("bob", "carol", "delegation", "Please do the report").reason
    assert "supervisor" in work.send("alice", "bob", "report", "Here is my report").reason
    assert work.send("bob", "alice", "report", "Tests pass on main").accepted
    assert "intent" in work.send("bob", "alice", "fyi", "Just so you know").reason


def test_duplicate_send_in_one_run_is_refused(work: Organization) -> None:
    assert work.send("bob", "alice", "question", "Should I upgrade the parser?").accepted
    again = work.send("bob", "alice", "question", "Should I upgrade the parser?")
    assert not again.accepted and "already sent" in again.reason


def test_hourly_cap(org: Path, state: StatePaths) -> None:
    spec = load_org(GitRevisionSource(org, "HEAD"))
    bob = spec.animas["bob"].model_copy(update={"messaging": spec.animas["bob"].messaging.model_copy(
        update={"per_hour": 3, "pair_depth": 50})})
    work = Organization(paths=state.ensure(), specs={**spec.animas, "bob": bob})
    results = [work.send("bob", "alice", "report", f"Report {i}: step {i} is done") for i in range(5)]
    assert [r.accepted for r in results] == [True, True, True, False, False]
    assert "hourly limit" in results[3].reason


def test_a_sender_killed_mid_delivery_loses_no_accepted_message(tmp_path: Path) -> None:
    """A real child process delivers messages and is SIGKILLed; every message it reported accepted is there."""
    inbox_dir = tmp_path / "inbox"
    script = textwrap.dedent(f"""
        import sys
        from orgctl.work.messages import Inbox, Message
        inbox = Inbox({str(inbox_dir)!r})
        for i in range(100000):
            m = inbox.deliver(Message(sender="bob", recipient="alice", intent="report", text="x" * 2000 + str(i)))
            print(m.name.split(".")[1], flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout is not None
    accepted = [proc.stdout.readline().strip() for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    accepted += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    proc.stdout.close()
    ids = {m.id for m in Inbox(inbox_dir).unread()}
    assert set(accepted) <= ids and len(ids) >= 50
    assert all(m.text.startswith("x" * 2000) for m in Inbox(inbox_dir).unread())  # nothing torn in new/


def test_unread_survives_until_the_cycle_marks_it_read(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    m = Message(sender="human", recipient="alice", intent="question", text="Where are we?")
    inbox.deliver(m)
    assert [x.id for x in Inbox(tmp_path / "inbox").unread()] == [m.id]  # a new reader (restarted process) sees it
    assert inbox.mark_read(m.id) and inbox.unread() == [] and [x.id for x in inbox.read()] == [m.id]


def test_a_task_graph_runs_in_dependency_order_and_a_cycle_is_refused(work: Organization) -> None:
    with pytest.raises(WorkError, match="cycle: a -> b -> a|cycle: b -> a -> b"):
        work.plan_tasks("bob", [{"key": "a", "title": "A", "after": ["b"]}, {"key": "b", "title": "B", "after": ["a"]}])
    assert work.queue("bob").all() == []
    planned = work.plan_tasks("bob", [{"key": "test", "title": "Run the tests", "after": ["build"]},
                                      {"key": "build", "title": "Build"},
                                      {"key": "lint", "title": "Lint"}])
    by_title = {t.title: t for t in planned}
    ready = {t.title for t in work.queue("bob").ready()}
    assert ready == {"Build", "Lint"}  # independent tasks are ready together
    work.finish("bob", by_title["Build"].id, status="done", result="built")
    assert "Run the tests" in {t.title for t in work.queue("bob").ready()}


def test_delegation_goes_down_and_the_result_comes_back_up(work: Organization) -> None:
    task = work.add_task("alice", "Find out what changed this week")
    sub, reason = work.delegate("alice", task.id, "bob")
    assert sub is not None, reason
    assert work.queue("alice").get(task.id).status == "delegated"  # type: ignore[union-attr]
    assert [m.intent for m in work.inbox("bob").unread()] == ["delegation"]
    refused, why = work.delegate("alice", task.id, "dave")
    assert refused is None and "direct reports" in why
    work.finish("bob", sub.id, status="done", result="$ git log\nexit 0\nabc123 a change")
    reports = work.inbox("alice").unread()
    assert reports[-1].intent == "report" and "abc123" in reports[-1].text
    assert work.all_subtasks_final(work.queue("alice").get(task.id))  # type: ignore[arg-type]
    work.finish("alice", task.id, status="done", result="one change: abc123")
    human = work.inbox("human").unread()
    assert human[-1].task_id == task.id and "one change" in human[-1].text


def test_invalid_permissions_deny_everything(org: Path, state: StatePaths) -> None:
    (org / "animas/bob/permissions.md").write_text("---\ntools: [run_command\ncommands: [git log]\n---\n")
    policy = policy_for(org, "bob", workspace=state.workspace("bob"))
    assert not policy.can_run("git log").allowed and "invalid" in policy.can_run("git log").rule
    assert not policy.can_use("send_message").allowed
    result = run_cli("can-i", "bob", "run", "git log", "-C", str(org))
    assert result.exit_code == 1 and result.output.startswith("no:") and "invalid" in result.output


def test_can_i_uses_the_runtime_policy(org: Path) -> None:
    yes = run_cli("can-i", "bob", "run", "git log --oneline --since=1.week", "-C", str(org))
    assert yes.exit_code == 0 and yes.output.startswith("yes:") and "commands: git log" in yes.output
    push = run_cli("can-i", "bob", "run", "git push origin main", "-C", str(org))
    assert push.exit_code == 1 and push.output.startswith("ask")
    force = run_cli("can-i", "bob", "run", "git push --force origin main", "-C", str(org))
    assert force.exit_code == 1 and "hard block" in force.output  # deny rule too, but the hard block is checked first
    wipe = run_cli("can-i", "bob", "run", "git log; rm -rf /", "-C", str(org))
    assert wipe.exit_code == 1 and "hard block" in wipe.output
    assert run_cli("can-i", "alice", "use", "call_human", "-C", str(org)).exit_code == 0
    assert run_cli("can-i", "carol", "use", "call_human", "-C", str(org)).exit_code == 1
    escape = run_cli("can-i", "carol", "read", "common_knowledge/../../etc/passwd", "-C", str(org))
    assert escape.exit_code == 1 and "outside every file root" in escape.output


def test_human_work_via_cli(org: Path, state: StatePaths) -> None:
    from orgctl.desired.models import AnimaSpec
    from orgctl.state.snapshots import Snapshot, write_snapshot

    spec = load_org(GitRevisionSource(org, "HEAD"))
    for name, a in spec.animas.items():
        assert isinstance(a, AnimaSpec)
        write_snapshot(state.ensure().spec_snapshot(name), Snapshot(spec=a, revision=spec.revision, org_name="acme",
                                                                   memory_dir=str(org / "animas" / name / "memory"),
                                                                   applied_at="now"))
    added = run_cli("task", "add", "alice", "Write the weekly report", "--due", "2h", "-C", str(org))
    assert added.exit_code == 0 and "queued for alice" in added.output
    listed = run_cli("tasks", "alice", "-C", str(org))
    assert "Write the weekly report" in listed.output and "pending" in listed.output
    assert run_cli("task", "add", "nobody", "x", "-C", str(org)).exit_code == 1
    posted = run_cli("board", "post", "#general", "Welcome @bob", "-C", str(org))
    assert posted.exit_code == 0
    assert "Welcome @bob" in run_cli("board", "-C", str(org)).output
    bad = run_cli("board", "post", "../etc", "x", "-C", str(org))
    assert bad.exit_code == 1 and "invalid channel" in bad.output
    sent = run_cli("send", "human", "bob", "How are the tests?", "-C", str(org))
    assert sent.exit_code == 0
    refused = run_cli("send", "bob", "carol", "Do this", "--intent", "delegation", "-C", str(org))
    assert refused.exit_code == 1 and "direct reports" in refused.output
    events = run_cli("events", "-C", str(org)).output
    assert "TaskCreated" in events and "MessageRefused" in events and "BoardPost" in events
    time.sleep(0)


class _NoModel:
    """A model client that fails the test when called: these beats must be framework steps only."""

    def complete(self, request):  # type: ignore[no-untyped-def]
        raise AssertionError(f"no model call expected, got {request.purpose}")


def test_a_manager_sees_an_overdue_report_and_audits_it_without_a_model_call(
        work: Organization, org: Path, state: StatePaths) -> None:
    from datetime import timedelta

    from orgctl.memory.stores import MemoryStore
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.escalating import escalate_overdue
    from orgctl.runtime.permissions import Policy
    from orgctl.state.inventories import now_iso
    from orgctl.state.snapshots import Snapshot, write_snapshot

    for name, spec in work.specs.items():  # the runtime reads specs from the applied snapshots
        write_snapshot(state.spec_snapshot(name), Snapshot(spec=spec, revision=None, org_name="acme",
                                                           memory_dir=str(org / "animas" / name / "memory"),
                                                           applied_at=now_iso()))
    task = work.add_task("alice", "Check the release notes")
    sub, _ = work.delegate("alice", task.id, "bob")
    assert sub is not None
    later = datetime.fromisoformat(sub.due or "") + timedelta(minutes=1)
    assert escalate_overdue(state, now=later) == ["alice"]
    spec = work.specs["alice"]
    alice = Agent(spec=spec, org=work, client=_NoModel(), store=MemoryStore(org / "animas/alice/memory", anima="alice"),
                  policy=Policy(spec.permissions, workspace=state.workspace("alice")), revision=None)
    trace = alice.heartbeat(now=later)
    assert not trace.failed and trace.usage.calls == 0
    assert any(line.startswith("team: bob is") and "overdue" in line for line in trace.observed), trace.observed
    assert any(line.startswith("audit of bob:") and sub.id in line for line in trace.observed), trace.observed
    assert "audited bob" in trace.did
    assert [e.fields["tool"] for e in read_events(state.work.events, reason="OrgToolUsed")] == ["audit_subordinate"]


def test_a_reply_is_written_from_real_facts_in_the_prompt(work: Organization, org: Path, state: StatePaths) -> None:
    """The reply call carries the Anima's real queue and last result (the model is not under test here)."""
    from orgctl.llm.requests import CompletionResult, Usage
    from orgctl.memory.stores import MemoryStore
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.permissions import Policy

    class Recorder:
        def __init__(self) -> None:
            self.prompts: list[str] = []

        def complete(self, request):  # type: ignore[no-untyped-def]
            self.prompts.append(request.messages[-1].content)
            return CompletionResult(content="Bob reported the log.", usage=Usage(calls=1), model=request.model)

    done = work.add_task("bob", "Show the last commits")
    work.finish("bob", done.id, status="done", result="$ git log --oneline -3 (exit 0)\nabc123 init")
    work.add_task("bob", "Check the build")
    work.human_message("bob", "What did you find?", intent="chat")
    spec = work.specs["bob"]
    client = Recorder()
    bob = Agent(spec=spec, org=work, client=client, store=MemoryStore(org / "animas/bob/memory", anima="bob"),
                policy=Policy(spec.permissions, workspace=state.workspace("bob")), revision=None)
    trace = bob.heartbeat(now=datetime.now().astimezone())
    assert not trace.failed
    [prompt] = [p for p in client.prompts if "What did you find?" in p]
    assert "open tasks: Check the build (pending)" in prompt
    assert "last finished: Show the last commits: $ git log --oneline -3 (exit 0)" in prompt



class ScriptedTaskModel:
    """A model client for the task cycle: each choice takes the first option ``picks`` accepts (else the first
    offered), each report sentence is ``says``; it records the purposes asked and the options offered."""

    def __init__(self, says: str, picks=lambda option: option.startswith("run ")) -> None:  # type: ignore[no-untyped-def]
        self.says, self.picks = says, picks
        self.purposes: list[str] = []
        self.offered: list[list[str]] = []

    def complete(self, request):  # type: ignore[no-untyped-def]
        from orgctl.llm.requests import CompletionResult, Usage

        self.purposes.append(request.purpose)
        if request.schema_:
            enum = request.schema_["properties"]["choice"]["enum"]
            self.offered.append(list(enum))
            pick = next((k for k in enum if self.picks(k)), enum[0])
            return CompletionResult(content=f'{{"choice": "{pick}"}}', usage=Usage(calls=1), model=request.model)
        return CompletionResult(content=self.says, usage=Usage(calls=1), model=request.model)


def bob_on_task(work: Organization, state: StatePaths, title: str, client: ScriptedTaskModel, *,
                spec=None):  # type: ignore[no-untyped-def]
    """``(bob as an Agent on ``client``, the id of his in-progress task ``title``)``, his workspace made;
    ``spec`` replaces his (other permissions)."""
    from orgctl.memory.stores import MemoryStore
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.permissions import Policy

    spec = spec or work.specs["bob"]
    workspace = state.workspace("bob")
    workspace.mkdir(parents=True, exist_ok=True)
    task = work.add_task("bob", title)
    work.queue("bob").update(task.id, by="bob", status="in_progress")
    return Agent(spec=spec, org=work, client=client, store=MemoryStore(state.root / "mem-bob", anima="bob"),
                 policy=Policy(spec.permissions, workspace=workspace), revision=None), task.id


def test_a_command_that_answered_the_task_leaves_only_its_exits(work: Organization, state: StatePaths) -> None:
    """After a command succeeded with output, the task cycle offers ``done`` alone: no model choice.

    Real commands run in bob's real workspace; the model client records what it is asked. Before the
    rule, the embedded model ran every permitted command before it picked ``done``.
    """
    from orgctl.runtime.tasking import run_task

    workspace = state.workspace("bob")
    workspace.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "first"], check=True)
    client = ScriptedTaskModel("The log shows the commits.")
    bob, task_id = bob_on_task(work, state, "Show what changed in the git log", client)
    run_task(bob, task_id, now=lambda: datetime.now().astimezone())
    done = work.queue("bob").get(task_id)
    assert done is not None and done.status == "done"
    ran = [line for line in done.log if line.startswith("ran $ ")]
    assert len(ran) == 1 and "\nexit 0\n" in ran[0] and "first" in ran[0], done.log
    assert client.purposes == ["task", "report"]  # one choice, then the report sentence; "done" needed no call


def test_the_board_cursor_moves_past_a_line_that_does_not_parse(tmp_path: Path) -> None:
    """A torn or foreign line still takes its number, so it cannot pin the cursor and replay the post after it."""
    from orgctl.work.board import Board

    board = Board(tmp_path / "board")
    board.post(channel="general", sender="alice", text="hello")
    with open(tmp_path / "board" / "general.jsonl", "a", encoding="utf-8") as f:
        f.write("not json\n")
    board.post(channel="general", sender="carol", text="release at 5")
    assert [p.text for p in board.unseen(reader="bob", cursors=tmp_path / "cursors")] == ["hello", "release at 5"]
    board.mark_seen(reader="bob", cursors=tmp_path / "cursors")
    cursor = tmp_path / "cursors" / "bob.board.json"
    assert board.unseen(reader="bob", cursors=tmp_path / "cursors") == []
    written = cursor.stat().st_mtime_ns
    board.mark_seen(reader="bob", cursors=tmp_path / "cursors")  # nothing moved: no rewrite
    assert cursor.stat().st_mtime_ns == written


def test_a_refused_command_with_a_colon_is_not_offered_again(work: Organization, state: StatePaths,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The task's typed step records say which commands were tried, whatever they contain.

    Before them a refused ``git log --format=%h:%s`` was read back from its log line cut at the ":" and
    offered again at every step. Here the sandbox cannot start (``ORGCTL_BWRAP`` names no program), so the
    command is refused for real, by the runtime's own policy; the model picks the first command on offer.
    """
    from orgctl.desired.permissions import CommandRule
    from orgctl.runtime.tasking import run_task

    monkeypatch.setenv("ORGCTL_BWRAP", str(state.root / "no-such-bwrap"))
    spec = work.specs["bob"]
    colon = "git log --format=%h:%s"
    permissions = spec.permissions.model_copy(update={"commands": [
        CommandRule(command=colon, description="list the commits of the git log, one per line"),
        CommandRule(command="git status --short", description="check the git repo for changes")]})
    client = ScriptedTaskModel("Nothing ran.")
    bob, task_id = bob_on_task(work, state, "List the commits in the git log", client,
                               spec=spec.model_copy(update={"permissions": permissions}))
    run_task(bob, task_id, now=lambda: datetime.now().astimezone())
    done = work.queue("bob").get(task_id)
    assert done is not None
    offered = client.offered
    tried = [(r.kind, r.command) for r in done.records]
    assert tried.count(("refused", colon)) == 1, tried
    assert ("refused", "git status --short") in tried, tried  # the next step offered the other command
    assert sum(f"run {colon}" in enum for enum in offered) == 1, offered
    assert any(line == f"refused $ {colon}: " + done.records[0].refusal for line in done.log), done.log


def test_a_report_never_claims_what_its_evidence_contradicts(work: Organization, state: StatePaths) -> None:
    """The measured case of issue 23: `pytest -q` in a workspace with no tests exits 5 (none collected) and the
    model's sentence says "The test suite passed." The report states the outcome from the exit code, leaves
    the sentence out and says why, and a Warning event records it. Real command, real sandbox, real pytest."""
    from orgctl.runtime.tasking import run_task

    workspace = state.workspace("bob")
    workspace.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    client = ScriptedTaskModel("The test suite passed.", picks=lambda option: "pytest" in option)
    bob, task_id = bob_on_task(work, state, "Run the test suite and tell me whether it passes", client)
    run_task(bob, task_id, now=lambda: datetime.now().astimezone())
    done = work.queue("bob").get(task_id)
    assert done is not None and done.status == "done", done
    ran = [r for r in done.records if r.kind == "ran"]
    assert [(r.command, r.exit_code) for r in ran] == [("pytest -q", 5)], done.log
    assert "Outcome: `pytest -q` exited 5: no tests were collected: nothing ran." in done.result
    assert "Note: The test suite passed." not in done.result and "The model's sentence was left out" in done.result
    warnings = [e for e in read_events(state.work.events) if e.reason == "ReportContradicted"]
    assert len(warnings) == 1 and "The test suite passed." in warnings[0].message
