"""Hostile and broken input to the pull-request door (`pr comment`, `plan --base`, `hire`, `-C`), each found by a
red-team pass on real org repos: what an author of a pull request, a character sheet or an event file controls
must not inject markup, options, aliases or tracebacks, nor overwrite an Anima, nor leak a token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orgctl.cli import prview
from tests.conftest import add_bare_remote, commit_all, edit, git, run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_github(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GITHUB_TOKEN", "GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH"):
        monkeypatch.delenv(key, raising=False)


def comment(org: Path, *args: str) -> tuple[int, str]:
    result = run_cli("pr", "comment", "--print", "--base", "HEAD~1", "-C", str(org), *args)
    return result.exit_code, result.output


def outside_code(markdown: str) -> str:
    """The text of a comment that is neither in a fence nor in an inline code span: where markup would act."""
    no_fences = re.sub(r"(?ms)^(`{3,})[^\n]*\n.*?^\1\s*$", "", markdown)
    return re.sub(r"`[^`\n]*`", "", no_fences)


def test_markdown_in_a_model_string_or_the_org_name_stays_inside_code_spans(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "role: engineer",
         'role: engineer\nmodel: "openai/[Approved](https://evil.example/x)![t](https://evil.example/p.png)@octocat**LGTM**"')
    edit(org / "org.yaml", "name: acme", 'name: "acme\\r\\r**Security review: approved** [details](https://evil.example)"')
    commit_all(org, "hostile text")
    code, body = comment(org)
    assert code == 0, body
    free = outside_code(body)
    for attack in ("](https://evil", "@octocat", "**LGTM", "**Security review"):
        assert attack not in free, attack
    assert "evil.example" in body  # shown, as the characters it is


def test_a_huge_memory_note_and_seven_hundred_invalid_animas_stay_under_the_limit(org: Path) -> None:
    (org / "animas/bob/memory/knowledge/huge.md").write_text("# Huge\n\n" + "\n".join("x" * 20_000 for _ in range(5)))
    commit_all(org, "a note of huge lines")
    code, body = comment(org)
    assert code == 0 and len(body) <= prview.MAX_BODY and "huge.md" in body
    for i in range(700):
        folder = org / "animas" / f"bad{i:03d}"
        folder.mkdir()
        (folder / "anima.yaml").write_text("role: wizard\n")
    commit_all(org, "seven hundred invalid Animas")
    code, output = comment(org)
    body = output[:output.index("</sub>") + len("</sub>")]  # what is posted; validate's own errors follow on stderr
    assert code == 1 and len(body) <= prview.MAX_BODY and "clipped" in body


def test_a_change_that_repairs_an_invalid_base_passes(org: Path) -> None:
    edit(org / "org.yaml", "name: acme", "name: acme\nbogus_key: 1")
    commit_all(org, "break main")
    edit(org / "org.yaml", "name: acme\nbogus_key: 1", "name: acme")
    commit_all(org, "the fix")
    code, body = comment(org)
    assert code == 0, body
    assert "makes the spec valid again" in body and "org.yaml:" in body
    base = run_cli("plan", "--base", "HEAD~1", "-C", str(org))
    assert base.exit_code == 1 and "the base revision HEAD~1 does not validate" in base.output


@pytest.mark.parametrize("base", ["--independent", "--octopus", "--output=/tmp/orgctl-pwned"])
def test_a_base_that_looks_like_an_option_is_refused(org: Path, base: str) -> None:
    result = run_cli("pr", "comment", "--print", f"--base={base}", "-C", str(org))
    assert result.exit_code == 1 and "Traceback" not in result.output
    memory = run_cli("memory", "diff", "-C", str(org), "--", f"{base}..HEAD")
    assert memory.exit_code == 1
    assert not Path("/tmp/orgctl-pwned").exists()


@pytest.mark.parametrize("event", [
    '{"pull_request": "x"}', '{"pull_request": {"number": "abc"}}', '{"pull_request": {"number": 1e400}}',
    '{"pull_request": {"number": 3, "base": "main"}}', "not json", "[1, 2]",
])
def test_a_broken_event_file_is_a_clear_error(org: Path, tmp_path: Path, event: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "event.json"
    path.write_text(event)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    monkeypatch.setenv("GITHUB_REPOSITORY", "octocat/Hello-World")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake_never_used_0000000000000000")
    result = subprocess.run([sys.executable, "-m", "orgctl", "pr", "comment", "-C", str(org)], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "say which pull request" in result.stderr


def test_hire_pr_never_overwrites_an_anima(org: Path, tmp_path: Path) -> None:
    remote = add_bare_remote(org, tmp_path)
    result = run_cli("hire", "carol", "--role", "writer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert result.exit_code == 1 and "already exists" in result.output
    assert git(org, "branch", "--list", "orgctl/hire/*") == "" and git(remote, "branch", "--list", "orgctl/*") == ""


def test_a_refused_push_leaves_no_branch_so_it_can_be_run_again(org: Path, tmp_path: Path) -> None:
    remote = add_bare_remote(org, tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n")
    hook.chmod(0o755)
    refused = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert refused.exit_code == 1 and "no pushes today" in refused.output
    assert git(org, "branch", "--list", "orgctl/hire/dave") == ""
    hook.unlink()
    again = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert again.exit_code == 0, again.output


def test_credentials_in_the_remote_url_are_never_printed(org: Path, tmp_path: Path) -> None:
    from orgctl.gitops.publishing import shown

    assert shown("https://x-access-token:ghp_SECRET@github.com/o/r.git") == "https://github.com/o/r.git"
    git(org, "remote", "add", "origin", "https://x-access-token:ghp_SECRET123@127.0.0.1:9/o/r.git")
    git(org, "config", "branch.main.remote", "origin")
    result = run_cli("hire", "dave", "--role", "engineer", "--supervisor", "bob", "--pr", "-C", str(org))
    assert result.exit_code == 1 and "ghp_SECRET123" not in result.output and "127.0.0.1" in result.output


@pytest.mark.parametrize(("sheet", "says"), [
    ("---\nrole: &r engineer\nsupervisor: bob\nx: [*r, *r]\n---\n## Identity\nhi\n", "aliases"),
    ("---\nrole: engineer\nsupervisor: bob\n---\n# Dave\nNever push to main.\n## Identity\nhi\n", ":6: text outside"),
    ("---\nrole: engineer\nsupervisor: bob\n---\n##Identiy\nhi\n", "unknown section 'Identiy'"),
])
def test_a_sheet_that_would_blow_up_or_lose_text_is_refused(org: Path, tmp_path: Path, sheet: str, says: str) -> None:
    path = tmp_path / "sheet.md"
    path.write_text(sheet)
    result = run_cli("hire", "dave", "--from-md", str(path), "-C", str(org))
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output
    assert git(org, "status", "--porcelain") == ""


def test_a_yaml_alias_bomb_in_a_spec_file_is_a_diagnostic(org: Path) -> None:
    bomb = "role: engineer\nsupervisor: alice\nx0: &a [y, y, y, y, y, y, y, y, y]\n" + "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
    (org / "animas/bob/anima.yaml").write_text(bomb)
    result = run_cli("validate", str(org))
    assert result.exit_code == 1 and "animas/bob/anima.yaml:4: YAML aliases" in result.output


def test_dash_c_is_cumulative_and_a_missing_folder_is_an_error(org: Path) -> None:
    parent, name = org.parent, org.name
    result = subprocess.run([sys.executable, "-m", "orgctl", "-C", str(parent), "-C", name, "validate"],
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and "Valid: org 'acme'" in result.stdout, result.stderr
    for command in (["status"], ["events"], ["history"], ["tasks"], ["usage"], ["suspend", "--all"]):
        missing = run_cli(*command, "-C", str(org / "nope"))
        assert missing.exit_code == 1 and "does not exist" in missing.output, (command, missing.output)
