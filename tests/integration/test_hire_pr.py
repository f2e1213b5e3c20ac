"""`orgctl hire` (work tree, --from-md, --pr) and an Anima's proposals published from the runtime's clone: on
real org repos with a bare remote on disk.

GitHub's API cannot be reached here: where a pull request is opened, the HTTP is replayed with betamax
(record mode "none") from tests/cassettes/github/pull_create.json, built from GitHub's documented REST
responses (not recorded); the request orgctl sent is captured and asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops import github as github_module
from orgctl.gitops.clones import RuntimeClone
from orgctl.gitops.github import GitHub
from orgctl.gitops.planning import applied_as
from orgctl.paths import StatePaths
from orgctl.runtime.orgtools import OrgTools, ProposalResult
from orgctl.state.inventories import save_inventory
from tests.conftest import add_bare_remote, git, run_cli
from tests.unit.test_github import REPO, TOKEN, replay

SHEET = """---
role: engineer
supervisor: bob
heartbeat_interval: 45m
---
# Dave

## Identity

Dave is careful and terse. He reads the logs before he guesses.

## Role guidelines

- Run the tests before saying anything passed.

## Permissions

```yaml
tools: [send_message, search_memory, run_command]
commands: ["pytest -q"]
file_roots: [common_knowledge]
```
Dave runs the test suite and nothing else.

## Scheduled tasks

### Morning tests
schedule: 0 9 * * 1-5
type: command
command: pytest -q
"""


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GITHUB_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH"):
        monkeypatch.delenv(key, raising=False)


def test_hire_writes_the_role_s_files_into_the_work_tree_and_validates(org: Path) -> None:
    result = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "-C", str(org))
    assert result.exit_code == 0, result.output
    assert git(org, "status", "--porcelain").strip() == "?? animas/dave/"
    assert (org / "animas/dave/anima.yaml").read_text().splitlines()[1:] == [
        "role: engineer", "supervisor: bob", "enabled: true"]
    assert "commands: []" in (org / "animas/dave/permissions.md").read_text()  # least privilege
    assert run_cli("validate", str(org)).exit_code == 0
    again = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "-C", str(org))
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize(("args", "says"), [
    (["../evil", "--role", "engineer", "--supervisor", "bob"], "unsafe Anima name"),
    (["dave", "--role", "engineer", "--supervisor", "nobody"], "no Anima named 'nobody'"),
    (["dave", "--role", "wizard", "--supervisor", "bob"], "unknown role"),
    (["dave", "--supervisor", "bob"], "--role"),
])
def test_a_bad_hire_changes_nothing(org: Path, args: list[str], says: str) -> None:
    result = run_cli("hire", *args, "-C", str(org))
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output
    assert git(org, "status", "--porcelain") == ""


def test_hire_from_a_character_sheet(org: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "dave.md"
    sheet.write_text(SHEET)
    result = run_cli("hire", "dave", "--from-md", str(sheet), "-C", str(org))
    assert result.exit_code == 0, result.output
    spec = load_org_work_tree(org).animas["dave"]
    assert spec.role == "engineer" and spec.org.supervisor == "bob" and spec.heartbeat_interval == 45 * 60
    assert "reads the logs before he guesses" in (org / "animas/dave/identity.md").read_text()
    assert "Run the tests before saying" in (org / "animas/dave/injection.md").read_text()
    assert [rule.command for rule in spec.permissions.commands] == ["pytest -q"]
    assert [t.title for t in spec.cron] == ["Morning tests"] and spec.cron[0].command == "pytest -q"


def test_a_sheet_with_an_unknown_section_or_a_symlink_is_refused_with_its_line(org: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "dave.md"
    sheet.write_text(SHEET.replace("## Role guidelines", "## Role guidlines"))
    result = run_cli("hire", "dave", "--from-md", str(sheet), "-C", str(org))
    assert result.exit_code == 1 and f"{sheet}:12: unknown section 'Role guidlines'" in result.output
    link = tmp_path / "link.md"
    link.symlink_to("/etc/passwd")
    refused = run_cli("hire", "dave", "--from-md", str(link), "-C", str(org))
    assert refused.exit_code == 1 and "not a regular file" in refused.output
    assert git(org, "status", "--porcelain") == ""


def load_org_work_tree(org: Path):  # type: ignore[no-untyped-def]
    from orgctl.desired.sources import WorkTreeSource

    return load_org(WorkTreeSource(org))


def test_hire_pr_without_a_token_pushes_the_branch_and_says_what_to_open(org: Path, tmp_path: Path) -> None:
    remote = add_bare_remote(org, tmp_path)
    result = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert result.exit_code == 0, result.output
    assert git(org, "status", "--porcelain") == ""  # the work tree is untouched
    assert "orgctl/hire/dave" in git(remote, "branch", "--list", "orgctl/hire/dave")
    spec = load_org(GitRevisionSource(remote, "orgctl/hire/dave"))
    assert spec.animas["dave"].org.supervisor == "bob"
    assert "open a pull request from it into main" in result.output
    again = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert again.exit_code == 1 and "already exists" in again.output


def test_hire_pr_with_a_token_opens_the_pull_request(org: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    add_bare_remote(org, tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    client = GitHub(TOKEN)
    monkeypatch.setattr(github_module.GitHub, "from_env", classmethod(lambda cls, url=None: client))
    with replay("pull_create", gh=client) as (_, sent):
        result = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "--repo", REPO,
                         "-C", str(org))
    assert result.exit_code == 0, result.output
    [post] = [s for s in sent if s.method == "POST"]
    assert post.path == f"/repos/{REPO}/pulls"
    assert post.json["head"] == "orgctl/hire/dave" and post.json["base"] == "main"
    assert post.json["title"] == "Hire dave (engineer) reporting to bob"
    assert "Opened pull request #" in result.output


def test_an_anima_s_proposal_is_made_in_the_runtime_clone_and_pushed_to_the_org_s_remote(
        org: Path, tmp_path: Path, state: StatePaths) -> None:
    """Not a branch in the person's checkout: the clone fetches the tracked branch, commits the proposal on it,
    and pushes the branch to the org's remote."""
    remote = add_bare_remote(org, tmp_path)
    state.ensure()
    clone = RuntimeClone.for_checkout(org, state.clone)
    spec = load_org(GitRevisionSource(org, "HEAD"))
    save_inventory(state.inventory, applied_as(spec))
    edit_perm = org / "animas/alice/permissions.md"
    assert "propose_change" in edit_perm.read_text()
    tools = OrgTools(paths=state, specs=spec.animas, org_dir=org)
    made = tools.propose_hire("alice", "erin", "writer", "alice")
    assert isinstance(made, ProposalResult) and made.ok, made
    branch = made.proposal.branch
    assert branch in git(remote, "branch", "--list", "orgctl/proposals/*")
    assert git(org, "for-each-ref", "refs/heads/orgctl/proposals/") == ""  # nothing in the person's checkout
    assert f"Pushed {branch} to {clone.source}" in made.message
    assert made.proposal.base == git(remote, "rev-parse", "main").strip()


def test_proposals_pushed_to_the_remote_are_listed_once_fetched(org: Path, tmp_path: Path, state: StatePaths) -> None:
    add_bare_remote(org, tmp_path)
    state.ensure()
    RuntimeClone.for_checkout(org, state.clone)
    spec = load_org(GitRevisionSource(org, "HEAD"))
    save_inventory(state.inventory, applied_as(spec))
    made = OrgTools(paths=state, specs=spec.animas, org_dir=org).propose_set_model("alice", "bob", "local/smollm2")
    assert isinstance(made, ProposalResult) and made.ok, made
    assert run_cli("proposals", "-C", str(org)).output.strip() == "No proposals."
    git(org, "fetch", "--quiet", "origin")
    listed = run_cli("proposals", "-C", str(org))
    assert made.proposal.branch in listed.output and "alice" in listed.output
    shown = run_cli("proposals", "show", made.proposal.branch, "-C", str(org))
    assert shown.exit_code == 0 and "local/smollm2" in shown.output
