"""Proposals as branches on real git repos made by `orgctl init` from the real template.

A proposal is one commit on its own branch, built with git plumbing: the
person's checkout (work tree, index, checked-out branch) must be exactly as
it was, and an invalid proposal must leave no ref behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orgctl.desired.documents import parse_markdown
from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops import proposals
from orgctl.gitops.proposals import ProposalRefused
from tests.conftest import commit_all, edit, git, run_cli


def refs(org: Path) -> list[str]:
    return git(org, "for-each-ref", "--format=%(refname)").split()


def checkout_state(org: Path) -> tuple[str, str, str, str, bytes]:
    """Everything a person would notice: status, branch, HEAD, staged diff, and the index file itself."""
    return (git(org, "status", "--porcelain", "--untracked-files=all"), git(org, "branch", "--show-current"),
            git(org, "rev-parse", "HEAD"), git(org, "diff", "--cached"), (org / ".git/index").read_bytes())


def test_a_proposal_is_one_commit_on_its_branch_and_the_checkout_is_untouched(org: Path) -> None:
    # The person is mid-work: a staged spec edit, an unstaged one and an untracked file.
    edit(org / "animas/carol/identity.md", "A patient researcher", "A very patient researcher")
    git(org, "add", "animas/carol/identity.md")
    edit(org / "animas/alice/injection.md", "one goal at a time", "one goal at a time, always")
    (org / "notes.txt").write_text("my scratch notes\n")
    before = checkout_state(org)
    base = git(org, "rev-parse", "HEAD").strip()

    made = proposals.propose_set_model(org, "bob", "bob", "anthropic/claude-sonnet-4-5")

    assert checkout_state(org) == before
    assert made.branch.startswith("orgctl/proposals/bob/set-bob-s-model-to-") and made.branch.endswith(made.commit[:8])
    assert made.anima == "bob" and made.base == base and made.files == ["animas/bob/anima.yaml"]
    assert made.tracked == "main" and not made.merged
    assert git(org, "rev-parse", made.branch).strip() == made.commit
    assert git(org, "rev-parse", f"{made.commit}^").strip() == base  # exactly one commit on top of the base
    assert git(org, "show", "--name-only", "--format=", made.commit).split() == ["animas/bob/anima.yaml"]
    assert "model: anthropic/claude-sonnet-4-5" in git(org, "show", f"{made.branch}:animas/bob/anima.yaml")
    assert "model:" not in (org / "animas/bob/anima.yaml").read_text()  # the work tree does not have it
    assert git(org, "log", "-1", "--format=%an <%ae>|%cn", made.commit).strip() == \
        "bob (orgctl Anima) <bob@animas.orgctl.invalid>|orgctl-bot"
    assert git(org, "log", "-1", "--format=%(trailers:key=Proposed-by,valueonly)", made.commit).strip() == "bob"
    assert load_org(GitRevisionSource(org, made.branch)).animas["bob"].model == "anthropic/claude-sonnet-4-5"
    assert load_org(GitRevisionSource(org, "HEAD")).animas["bob"].model == "local/smollm2"


@pytest.mark.parametrize(("files", "reason"), [
    ({"../x": "y"}, "'..'"),
    ({"animas/bob/../../outside.yaml": "y"}, "'..'"),
    ({"/etc/passwd": "y"}, "absolute"),
    ({"animas\\bob\\identity.md": "y"}, "backslash"),
    ({".git/config": "y"}, "only org.yaml"),
    ({"animas/bob/memory/episodes/2026-01-01.md": "forged"}, "memory is written by the runtime only"),
    ({"animas/bob/notes.txt": "y"}, "not a spec file"),
    ({"animas/bob/skills/Bad Name.md": "y"}, "not a spec file"),
    ({"workflows/deploy.yaml": "y"}, "only org.yaml"),
    ({}, "changes no file"),
    ({"animas/bob/identity.md": None, "animas/bob/anima.yaml": "role: engineer\nsupervisor: alice\nbogus: 1\n"},
     "the proposed spec is invalid"),
])
def test_an_invalid_proposal_is_refused_and_leaves_no_ref(org: Path, files: dict[str, str | None],
                                                          reason: str) -> None:
    before, state = refs(org), checkout_state(org)
    with pytest.raises(ProposalRefused, match=reason):
        proposals.propose_change(org, anima="bob", title="Something", files=files)
    assert refs(org) == before and checkout_state(org) == state


def test_the_loader_explains_a_bad_model(org: Path) -> None:
    for model in ("local/nope", "not a model", "x\nsupervisor: null"):
        with pytest.raises(ProposalRefused) as caught:
            proposals.propose_set_model(org, "bob", "bob", model)
        assert [str(d) for d in caught.value.diagnostics][0].startswith("animas/bob/anima.yaml:5: model:")
    assert refs(org) == ["refs/heads/main"]
    assert proposals.list_proposals(org) == []


def test_other_refusals(org: Path) -> None:
    with pytest.raises(ProposalRefused, match="not an Anima"):
        proposals.propose_change(org, anima="mallory", title="t", files={"animas/bob/identity.md": "# Bob\n"})
    with pytest.raises(ProposalRefused, match="changes nothing"):
        proposals.propose_change(org, anima="bob", title="t",
                                 files={"animas/bob/identity.md": (org / "animas/bob/identity.md").read_text()})
    with pytest.raises(ProposalRefused, match="already exists"):
        proposals.propose_hire(org, "alice", "carol", "engineer", "alice")
    with pytest.raises(ProposalRefused, match="no Anima named 'zed'"):
        proposals.propose_hire(org, "alice", "dave", "engineer", "zed")
    with pytest.raises(ProposalRefused, match="unknown role"):
        proposals.propose_hire(org, "alice", "dave", "astronaut", "alice")
    with pytest.raises(ProposalRefused, match="invalid skill name"):
        proposals.propose_skill(org, "bob", "bob", "../evil", "d", "b")
    assert refs(org) == ["refs/heads/main"]


def test_a_merged_hire_goes_through_plan_like_any_change(org: Path) -> None:
    made = proposals.propose_hire(org, "alice", "dave", "engineer", "bob", identity="Dave fixes flaky tests.")
    assert made.files == [f"animas/dave/{f}" for f in
                          ("anima.yaml", "cron.md", "identity.md", "injection.md", "permissions.md")]
    assert not (org / "animas/dave").exists()
    def planned() -> dict[str, str]:
        return {c["name"]: c["action"] for c in json.loads(run_cli("plan", str(org), "--json").output)["changes"]}

    assert set(planned()) == {"alice", "bob", "carol"}  # nothing of dave before a person merges it

    git(org, "merge", "-q", "--ff-only", made.branch)
    [listed] = proposals.list_proposals(org)
    assert listed.merged and listed.branch == made.branch
    spec = load_org(GitRevisionSource(org, "HEAD")).animas["dave"]
    assert spec.org.supervisor == "bob" and spec.org.chain == ["bob", "alice"]
    assert spec.permissions.tools == ["send_message", "post_board", "search_memory"]
    assert spec.permissions.commands == [] and "Dave fixes flaky tests." in spec.identity
    assert planned()["dave"] == "hire"
    # like the template's, the new anima.yaml names its schema for editors (the org keeps it in .schemas/)
    first = (org / "animas/dave/anima.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../.schemas/anima.schema.json"


def test_a_hire_in_an_org_without_schemas_names_none(org: Path) -> None:
    git(org, "rm", "-rq", ".schemas")
    commit_all(org, "no schemas here")
    made = proposals.propose_hire(org, "alice", "dave", "engineer", "bob")
    assert proposals.read_at(org, "animas/dave/anima.yaml", rev=made.commit).startswith("role: engineer\n")


def test_a_squash_merged_proposal_counts_as_merged(org: Path) -> None:
    made = proposals.propose_skill(org, "bob", "bob", "flaky-tests", "Find flaky tests: run them three times",
                                   "Run `pytest -q` three times and compare the failures.")
    doc, errors = parse_markdown(git(org, "show", f"{made.branch}:animas/bob/skills/flaky-tests.md"),
                                 file="animas/bob/skills/flaky-tests.md")
    assert not errors and doc is not None and doc.frontmatter is not None
    assert doc.frontmatter.data == {"name": "flaky-tests", "description": "Find flaky tests: run them three times"}
    assert "three times and compare" in doc.body
    load_org(GitRevisionSource(org, made.branch))  # still a valid org

    (org / "README.md").write_text("an unrelated change on main\n")
    commit_all(org, "readme")
    assert not proposals.get_proposal(org, made.branch).merged
    git(org, "merge", "-q", "--squash", made.branch)
    commit_all(org, "bob's skill (squashed)")
    assert proposals.get_proposal(org, made.branch.removeprefix("orgctl/proposals/")).merged


def test_cli_lists_and_shows_proposals(org: Path) -> None:
    assert run_cli("proposals", "-C", str(org)).output.strip() == "No proposals."
    made = proposals.propose_set_model(org, "alice", "bob", "anthropic/claude-sonnet-4-5")
    other = proposals.propose_hire(org, "alice", "dave", "engineer", "bob")

    result = run_cli("proposals", "--json", "-C", str(org))
    assert result.exit_code == 0, result.output
    listed = {p["branch"]: p for p in json.loads(result.output)}
    assert set(listed) == {made.branch, other.branch}
    assert listed[made.branch] == made.model_dump(mode="json")
    assert listed[made.branch]["anima"] == "alice" and listed[made.branch]["merged"] is False

    table = run_cli("proposals", "-C", str(org)).output
    assert "BRANCH" in table and made.branch in table and "Hire dave (engineer) reporting to bob" in table

    shown = run_cli("proposals", "show", made.branch, "-C", str(org))
    assert shown.exit_code == 0, shown.output
    assert "+model: anthropic/claude-sonnet-4-5" in shown.output and "by alice" in shown.output

    missing = run_cli("proposals", "show", "alice/nothing-here", "-C", str(org))
    assert missing.exit_code == 1 and "no proposal branch" in missing.output


def test_a_task_asking_for_a_hire_becomes_a_proposal_branch_not_a_live_change(org: Path) -> None:
    """A person's task "hire a researcher named dave" to alice, through her real heartbeat.

    The framework reads the name and role out of the task (the model only picks among complete
    proposals: here a recording client picks the proposal). The result is a branch in the org repo
    the supervisor's record names, the checkout untouched, no Anima hired, and the task done with
    the branch in its result, reported to the person.
    """
    from datetime import datetime

    from orgctl.llm.requests import CompletionResult, Usage
    from orgctl.memory.stores import MemoryStore
    from orgctl.paths import state_paths
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.permissions import Policy
    from orgctl.state.files import write_json

    class Picker:
        def __init__(self) -> None:
            self.offered: list[list[str]] = []

        def complete(self, request):  # type: ignore[no-untyped-def]
            enum = request.schema_["properties"]["choice"]["enum"]
            self.offered.append(enum)
            pick = next(k for k in enum if k.startswith("propose "))
            return CompletionResult(content=json.dumps({"choice": pick}), usage=Usage(calls=1), model=request.model)

    state = state_paths(org).ensure()
    write_json(state.supervisor_pid, {"pid": 0, "org_dir": str(org)})  # the record `serve` writes
    specs = load_org(GitRevisionSource(org, "HEAD")).animas
    work = Organization(paths=state, specs=specs)
    task = work.add_task("alice", "Hire a researcher named Dave for the data work")
    before = checkout_state(org)
    client = Picker()
    alice = Agent(spec=specs["alice"], org=work, client=client, store=MemoryStore(state.root / "mem", anima="alice"),
                  policy=Policy(specs["alice"].permissions, workspace=state.workspace("alice")), revision=None)
    trace = alice.heartbeat(now=datetime.now().astimezone())
    assert not trace.failed, trace
    assert client.offered and "propose hiring dave as researcher" in client.offered[0]
    assert checkout_state(org) == before
    [branch] = [r for r in refs(org) if r.startswith("refs/heads/orgctl/proposals/alice/")]
    assert "role: researcher" in git(org, "show", f"{branch}:animas/dave/anima.yaml")
    assert "supervisor: alice" in git(org, "show", f"{branch}:animas/dave/anima.yaml")
    assert not (org / "animas/dave").exists() and "dave" not in load_org(GitRevisionSource(org, "HEAD")).animas
    done = work.queue("alice").get(task.id)
    assert done is not None and done.status == "done" and branch.removeprefix("refs/heads/") in (done.result or "")
    [report] = [m for m in work.inbox("human").unread() if m.task_id == task.id]
    assert "orgctl/proposals/alice/" in report.text
