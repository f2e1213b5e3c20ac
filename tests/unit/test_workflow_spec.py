"""``workflows/<name>.yaml`` as spec (orgctl/desired/workflows.py): loaded with the org, every problem reported at
its file and line by `orgctl validate`, guards parsed with cel-python, and the template's workflow valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
from orgctl.desired.workflows import FINISH, guard_names
from orgctl.errors import SpecError
from tests.conftest import commit_all, run_cli

FLOW = """\
description: a small pipeline
agents:
  lead: {anima: alice}
  worker: {anima: bob}
phases:
  - id: triage
    agent: lead
    decision:
      kind: {type: string, enum: [code, docs]}
  - id: build
    agent: worker
    skip_if: 'decisions.triage.kind == "docs"'
  - id: review
    agent: lead
    max_rework_attempts: 2
    on_verdict:
      rework: build
"""


def problems(org: Path, text: str, name: str = "flow.yaml") -> list[tuple[int, str]]:
    """The diagnostics of ``workflows/<name>`` holding ``text``, as (line, reason); [] when the org loads."""
    (org / "workflows" / name).write_text(text)
    try:
        load_org(WorkTreeSource(org))
    except SpecError as e:
        return [(d.line, d.reason) for d in e.diagnostics if d.file == f"workflows/{name}"]
    return []


def line_of(text: str, needle: str) -> int:
    """The line where ``needle`` (which may span lines) first starts in ``text``."""
    return text[:text.index(needle)].count("\n") + 1


def test_the_template_workflow_loads_with_the_org(org: Path) -> None:
    spec = load_org(GitRevisionSource(org, "HEAD"))
    task = spec.workflows["task"]
    assert [p.id for p in task.spec.phases] == ["triage", "implement", "review", "test"]
    assert {a.anima for a in task.spec.agents.values()} == {"alice", "bob", "carol"}
    review = task.phase("review")
    assert task.offered(review) == ["advance", "rework", "skip", "fail"]
    assert task.offered(task.phase("triage")) == ["advance", "skip", "fail"]  # rework is routed nowhere
    assert task.default_target(task.phase("test"), "advance") == FINISH


def test_a_valid_workflow_loads_and_its_digest_ignores_comments(org: Path) -> None:
    assert problems(org, FLOW) == []
    first = load_org(WorkTreeSource(org)).workflows["flow"].digest
    (org / "workflows" / "flow.yaml").write_text("# a comment\n" + FLOW)
    assert load_org(WorkTreeSource(org)).workflows["flow"].digest == first
    (org / "workflows" / "flow.yaml").write_text(FLOW.replace("max_rework_attempts: 2", "max_rework_attempts: 3"))
    assert load_org(WorkTreeSource(org)).workflows["flow"].digest != first


@pytest.mark.parametrize(("old", "new", "needle", "reason"), [
    ("lead: {anima: alice}", "lead: {anima: zed}", "lead:",
     "agent 'lead': unknown Anima 'zed': there is no animas/zed/"),
    ("agent: worker", "agent: nobody", "agent: nobody", "phase 'build': unknown agent 'nobody' (agents: lead, worker)"),
    ("rework: build", "rework: deploy", "rework: deploy",
     "phase 'review': rework goes to unknown phase 'deploy' (phases: triage, build, review; or finish, fail)"),
    ("    max_rework_attempts: 2\n", "", "on_verdict:",
     "phase 'review' routes back to 'build': a rework loop needs a limit (max_rework_attempts: N)"),
    ("skip_if: 'decisions.triage.kind == \"docs\"'", "skip_if: 'decisions.triage.kind =='", "skip_if:",
     "phase 'build': guard does not parse as CEL: syntax error at column 23 (near '==')"),
    ("skip_if: 'decisions.triage.kind == \"docs\"'", "skip_if: 'triage.kind == \"docs\"'", "skip_if:",
     "phase 'build': guard uses unknown variable triage (a skip_if guard sees task, subject, decisions, run)"),
    ("skip_if: 'decisions.triage.kind == \"docs\"'", "skip_if: 'decision.verdict == \"fail\"'", "skip_if:",
     "phase 'build': guard uses unknown variable decision (a skip_if guard sees task, subject, decisions, run)"),
    ("id: review", "id: finish", "id: finish", "phase id 'finish' is reserved: it is the target that ends a run"),
    ("id: review", "id: build", "id: build\n    agent: lead",
     "duplicate phase id 'build' (first at phases[1])"),
    ("kind: {type: string", "verdict: {type: string", "verdict:",
     "phase 'triage': `verdict` is a core decision field (verdict, reason, confidence, risk, evidence)"),
    ("worker: {anima: bob}", "worker: {anima: bob, model: ollama/llama3}", "worker:",
     "agent 'worker' is bound to 'bob': `model` is not allowed (it runs on the Anima's model)"),
    ("worker: {anima: bob}", "worker: {anima: bob, mcp_servers: [files]}", "worker:",
     "agent 'worker': unknown MCP server 'files' (the workflow's mcp_servers: none are defined)"),
    ("worker: {anima: bob}", "worker: {memory: anima}", "worker:",
     "agent 'worker' is standalone (no `anima:`): it has no memory beyond the run's record (memory: run)"),
    ("worker: {anima: bob}", "worker: {permissions: {tools: [run_command, send_message]}}", "worker:",
     "agent 'worker' is standalone: tool 'send_message' is not available to it (it has no memory and talks only "
     "through the run; it may list run_command and mcp:<server>[.<tool>])"),
    ("worker: {anima: bob}", "worker: {permissions: {tools: [run_command], ask: [git push]}}", "worker:",
     "agent 'worker' is standalone: `ask:` needs an Anima to resume after a person approves (use deny:, or bind "
     "the agent to an Anima)"),
    ("max_rework_attempts: 2", "max_rework_attempts: many", "max_rework_attempts",
     "phases.2.max_rework_attempts: Input should be a valid integer"),
    ("kind: {type: string, enum: [code, docs]}", "kind: {type: boolean, enum: [code]}", "kind:",
     "phases.0.decision.kind: enum values must all be of type boolean (booleans take no enum)"),
])
def test_each_problem_is_reported_at_its_line(org: Path, old: str, new: str, needle: str, reason: str) -> None:
    text = FLOW.replace(old, new, 1)
    assert text != FLOW
    assert problems(org, text) == [(line_of(text, needle), reason)]


def test_an_agent_name_is_a_plain_word(org: Path) -> None:
    """A standalone agent's name becomes part of a queue folder and a workspace name: no path in it."""
    text = FLOW.replace("worker", "../w")
    assert problems(org, text) == [(line_of(text, "../w:"), "agent name '../w': use lowercase letters, digits, '-' "
                                                            "and '_', starting with a letter (at most 63 characters)")]


def test_a_standalone_agent_gets_the_org_default_model_and_a_change_of_it_changes_the_workflow(org: Path) -> None:
    """What runs is in the snapshot: a standalone agent that names no model runs org.yaml's ``defaults.model``,
    written into the applied workflow, so changing the default shows as a change of the workflow in ``plan``."""
    text = FLOW.replace("worker: {anima: bob}", "worker: {system_prompt: Build it.}")
    assert problems(org, text) == []
    first = load_org(WorkTreeSource(org)).workflows["flow"]
    assert first.spec.agents["worker"].model == "local/smollm2" and first.spec.agents["lead"].model is None
    assert first.runner("worker") == "worker@flow" and first.runner("lead") == "alice"
    org_yaml = org / "org.yaml"
    org_yaml.write_text(org_yaml.read_text().replace("  model: local/smollm2", "  model: anthropic/claude-haiku-4-5",
                                                     1))
    again = load_org(WorkTreeSource(org)).workflows["flow"]
    assert again.spec.agents["worker"].model == "anthropic/claude-haiku-4-5" and again.digest != first.digest


def test_an_unreachable_phase_is_an_error(org: Path) -> None:
    text = FLOW.replace("  - id: build\n", "  - id: build\n    on_verdict: {advance: finish, skip: finish}\n")
    # build always finishes: review is reached by nothing
    assert problems(org, text) == [(line_of(text, "id: review"),
                                    "phase 'review' is unreachable: no route from the first phase leads to it")]


def test_a_conditional_route_keeps_the_default_as_the_fallback(org: Path) -> None:
    """``advance: [{when, goto}]`` with no unconditional route: the next phase stays reachable by default."""
    text = FLOW.replace("  - id: build\n", "  - id: build\n    on_verdict:\n      advance:\n"
                                          "        - {when: 'decisions.triage.kind == \"docs\"', goto: finish}\n")
    assert problems(org, text) == []


def test_files_that_are_no_workflow_and_hostile_names_are_refused(org: Path) -> None:
    (org / "workflows" / "notes.txt").write_text("todo")
    (org / "workflows" / "..yaml").write_text(FLOW)
    (org / "workflows" / "real.yaml").write_text(FLOW)
    (org / "workflows" / "link.yaml").symlink_to(org / "workflows" / "real.yaml")
    with pytest.raises(SpecError) as info:
        load_org(WorkTreeSource(org))
    assert sorted((d.file, d.reason.split(":")[0]) for d in info.value.diagnostics) == [
        ("workflows/..yaml", "unsafe workflow name '.'"),
        ("workflows/link.yaml", "is a symbolic link (to '" + str(org / "workflows" / "real.yaml") + "')"),
        ("workflows/notes.txt", "not a workflow"),
    ]


def test_a_secret_in_a_workflow_is_refused(org: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
    text = FLOW + "mcp_servers:\n  gh: {command: [gh-mcp], env: {GITHUB_TOKEN: " + token + "}}\n"
    found = problems(org, text)
    assert found and all("secret" in r or "token" in r.lower() or "key" in r.lower() for _, r in found), found


def test_validate_reports_a_broken_workflow_with_file_and_line_and_plan_refuses(org: Path) -> None:
    (org / "workflows" / "flow.yaml").write_text(FLOW.replace("agent: worker", "agent: nobody"))
    commit_all(org, "a broken workflow")
    result = run_cli("validate", str(org))
    assert result.exit_code == 1
    assert f"workflows/flow.yaml:{line_of(FLOW, 'agent: worker')}: phase 'build': unknown agent" in result.output
    assert "Traceback" not in result.output


def test_guard_names_are_the_free_variables() -> None:
    assert guard_names('decisions.all(d, d != "x") && run.attempts.review < 2 && has(task.title)') == {
        "decisions", "run", "task"}
    assert guard_names("[1, 2].exists(x, x > y)") == {"y"}
