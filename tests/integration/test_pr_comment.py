"""`orgctl pr comment` on a real org repo: the plan of a pull request posted as one comment, updated (never
duplicated) on the next push, with the commit status orgctl/plan; and the comment's Mermaid charts against a
golden file.

GitHub's API cannot be reached here: the HTTP is replayed with betamax (record mode "none", so an unrecorded
request fails) around the github3 session of the client the command builds. The cassettes
(tests/cassettes/github/pr_comment_*.json) are composed from the ones tests/unit/test_github.py uses, which are
built from GitHub's documented REST responses, not recorded; their comment marker is the one this command
writes. Requests are matched on method and URI; the bodies orgctl sent are captured and asserted here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orgctl.gitops import github as github_module
from orgctl.gitops.github import GitHub
from tests.conftest import commit_all, edit, git, rebind_workflows, run_cli
from tests.unit.test_github import REPO, SHA, TOKEN, replay

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.fixture
def pull(org: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A pull request event of a GitHub Actions run (number 1347 of octocat/Hello-World) whose base is the org's
    first commit; GITHUB_TOKEN set."""
    base = git(org, "rev-parse", "HEAD").strip()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 1347, "base": {"sha": base}, "head": {"sha": SHA}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    yield org


def replayed(monkeypatch: pytest.MonkeyPatch, cassette: str) -> Any:
    """Make the command's client the one replaying ``cassette``; returns the replay context."""
    client = GitHub(TOKEN)
    context = replay(cassette, gh=client)
    monkeypatch.setattr(github_module.GitHub, "from_env", classmethod(lambda cls, url=None: client))
    return context


def hire_dave(org: Path) -> None:
    shutil.copytree(org / "animas/bob", org / "animas/dave")
    shutil.rmtree(org / "animas/dave/memory")
    commit_all(org, "hire dave")


def test_the_plan_is_posted_once_and_updated_on_the_next_push(pull: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hire_dave(pull)
    with replayed(monkeypatch, "pr_comment_two_pushes") as (_, sent):
        first = run_cli("pr", "comment", "-C", str(pull))
        assert first.exit_code == 0, first.output
        assert "Posted the plan comment on octocat/Hello-World#1347" in first.output
        shutil.rmtree(pull / "animas/carol")
        rebind_workflows(pull, "carol")
        commit_all(pull, "and retire carol")
        second = run_cli("pr", "comment", "-C", str(pull))
        assert second.exit_code == 0, second.output
        assert "Updated the plan comment" in second.output
    assert [(s.method, s.path) for s in sent if s.method != "GET"] == [
        ("POST", f"/repos/{REPO}/issues/1347/comments"), ("POST", f"/repos/{REPO}/statuses/{SHA}"),
        ("PATCH", f"/repos/{REPO}/issues/comments/2"), ("POST", f"/repos/{REPO}/statuses/{SHA}")]
    posted, status1, edited, status2 = (s.json for s in sent if s.method != "GET")
    assert posted["body"].startswith("<!-- orgctl:plan dir=. -->")
    assert "**Plan: 1 to hire, 3 to change, 0 to retire.**" in posted["body"]  # dave, and his peers and boss
    assert "```mermaid" in posted["body"] and "<details><summary>Full plan</summary>" in posted["body"]
    assert "| `+` | `dave` | hire | `new in the repo` |" in posted["body"]
    assert "**Plan: 1 to hire, 2 to change, 1 to retire; workflows: 1 to change.**" in edited["body"]
    assert status1 == {"state": "success", "description": "Plan: 1 to hire, 3 to change, 0 to retire.",
                       "context": "orgctl/plan",
                       "target_url": "https://github.com/octocat/Hello-World/pull/1347#issuecomment-2"}
    assert status2["description"] == "Plan: 1 to hire, 2 to change, 1 to retire; workflows: 1 to change."


def test_an_invalid_change_is_a_failing_status_and_a_comment_with_file_and_line(
        pull: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(pull / "animas/bob/anima.yaml", "role: engineer", "role: engineer\nheartbeat_intervall: 5m")
    commit_all(pull, "a typo")
    with replayed(monkeypatch, "pr_comment_invalid") as (_, sent):
        result = run_cli("pr", "comment", "-C", str(pull))
    assert result.exit_code == 1 and "Traceback" not in result.output
    body = next(s.json["body"] for s in sent if s.method == "POST" and s.path.endswith("/comments"))
    assert "the spec does not validate" in body and "animas/bob/anima.yaml:" in body
    status = next(s.json for s in sent if "/statuses/" in s.path)
    assert status["state"] == "failure" and status["description"].startswith("Invalid spec: ")


def test_without_a_token_nothing_is_posted_and_print_shows_the_comment(pull: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    hire_dave(pull)
    refused = run_cli("pr", "comment", "-C", str(pull))
    assert refused.exit_code == 1 and "GITHUB_TOKEN is not set" in refused.output and TOKEN not in refused.output
    shown = run_cli("pr", "comment", "--print", "-C", str(pull))
    assert shown.exit_code == 0 and shown.output.startswith("<!-- orgctl:plan dir=. -->")
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    monkeypatch.delenv("GITHUB_REPOSITORY")
    missing = run_cli("pr", "comment", "-C", str(pull))
    assert missing.exit_code == 1 and "--repo OWNER/NAME" in missing.output and "--pr N" in missing.output


def test_what_the_pull_request_author_wrote_stays_inside_a_code_fence(pull: Path) -> None:
    """A role is free text in the PR: refused by the loader, it reaches the comment only inside a fence that
    backticks of its own cannot close, so it can neither inject HTML nor pose as the bot's words."""
    hire_dave(pull)
    edit(pull / "animas/dave/anima.yaml", "role: engineer", 'role: "```\\n<img src=x onerror=alert(1)> ````"')
    commit_all(pull, "a hostile role")
    shown = run_cli("pr", "comment", "--print", "-C", str(pull))
    assert shown.exit_code == 1 and "the spec does not validate" in shown.output
    body = shown.output[:shown.output.index("<sub>")]
    fence = next(line for line in body.splitlines() if line.startswith("```"))
    assert len(fence) == 5  # longer than the four backticks the role carries
    inside = body.split(fence)[1]
    assert "<img" in inside and "<img" not in body.replace(inside, "")


def test_the_before_and_after_charts_of_a_known_change_match_the_golden_file(org: Path) -> None:
    """Hire dave under bob, retire carol, change bob's permissions, move alice to another model."""
    from orgctl.cli.commands import plan_base
    from orgctl.cli.rendering import mermaid_before_after

    base = git(org, "rev-parse", "HEAD").strip()
    shutil.copytree(org / "animas/bob", org / "animas/dave")
    shutil.rmtree(org / "animas/dave/memory")
    edit(org / "animas/dave/anima.yaml", "supervisor: alice", "supervisor: bob")
    shutil.rmtree(org / "animas/carol")
    rebind_workflows(org, "carol")
    edit(org / "animas/bob/permissions.md", "# ", "# Changed.\n\n# ")
    edit(org / "animas/alice/anima.yaml", "role: manager", "role: manager\nmodel: anthropic/claude-sonnet-4-5")
    head = commit_all(org, "the known change")
    plan, desired, inventory = plan_base(org, base, head)
    before, after = mermaid_before_after(plan, desired, inventory)
    got = f"%% before\n{before}\n%% after\n{after}\n"
    golden = GOLDEN / "chart_hire_retire_change.mmd"
    assert got == golden.read_text(), f"the chart changed; if that is right, write it to {golden}:\n{got}"


def test_a_plan_of_a_thousand_hires_stays_under_github_s_comment_limit(org: Path) -> None:
    """GitHub refuses a comment body over 65,536 characters: a huge plan drops its charts and details and
    clips its table, and says how to see the rest."""
    from orgctl.cli import prview
    from orgctl.cli.commands import plan_base

    base = git(org, "rev-parse", "HEAD").strip()
    for i in range(1000):
        shutil.copytree(org / "animas/bob", org / "animas" / f"worker{i:04d}", ignore=shutil.ignore_patterns("memory"))
    head = commit_all(org, "a thousand hires")
    plan, desired, inventory = plan_base(org, base, head)
    body, verdict = prview.plan_comment(plan, desired, inventory, where=".")
    assert len(body) <= prview.MAX_BODY and len(plan.changes) >= 1000
    assert "more |" in body and "too large for a comment" in body and "```mermaid" not in body
    assert verdict.state == "success" and verdict.description.startswith("Plan: 1000 to hire")


def test_a_memory_only_change_reads_as_what_was_learned_and_forgotten(org: Path) -> None:
    """Knowledge and procedures note by note; the days' raw records (episodes, activity log) only counted."""
    memory = org / "animas/bob/memory"
    (memory / "knowledge/rota.md").write_text("# Rota\n\n- bob is on call on Mondays.\n")
    (memory / "episodes/2026-12-07.md").write_text("# Episodes of bob\n\n## 09:00 heartbeat\n\n- Did: nothing\n")
    commit_all(org, "memory")
    (memory / "knowledge/rota.md").unlink()
    commit_all(org, "forgotten")
    shown = run_cli("pr", "comment", "--print", "--base", "HEAD~2", "-C", str(org))
    assert shown.exit_code == 0, shown.output
    assert "this change touches memory only" in shown.output
    assert "recorded  bob: 1 episodes file(s)" in shown.output and "Did: nothing" not in shown.output
    once = run_cli("pr", "comment", "--print", "--base", "HEAD~2", "--head", "HEAD~1", "-C", str(org))
    assert 'learned   bob: knowledge/rota.md  "Rota"' in once.output and "+ - bob is on call on Mondays." in once.output
    gone = run_cli("pr", "comment", "--print", "--base", "HEAD~1", "-C", str(org))
    assert 'forgot    bob: knowledge/rota.md  "Rota"' in gone.output
