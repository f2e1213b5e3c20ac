"""The permission language: exact allow patterns, ``*`` and a trailing ``...``, risky options in open words,
and the warnings that migrate a schema-1 repo (its patterns were prefixes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.desired.models import SandboxConfig
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.runtime.permissions import Policy, risky_option, wildcard_words
from tests.conftest import edit, run_cli


def policy(*commands: str, ask: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> Policy:
    perms = PermissionsFrontmatter(tools=["run_command"], commands=list(commands), ask=list(ask), deny=list(deny))
    return Policy(perms, workspace=Path("/nonexistent/workspaces/bob"), sandbox=SandboxConfig(mode="off"))


@pytest.mark.parametrize(("pattern", "argv", "words"), [
    ("git status --short", "git status --short", ()),
    ("git status --short", "git status --short --ignored", None),  # exact: no trailing words
    ("git status", "git status --short", None),
    ("git log -n *", "git log -n 5", ("5",)),
    ("git log -n *", "git log -n", None),
    ("git show ...", "git show", ()),
    ("git show ...", "git show HEAD --stat", ("HEAD", "--stat")),
    ("/usr/bin/git status", "/usr/bin/git status", ()),
    ("git status", "/usr/bin/git status", None),  # the program as written: another file named git would run
    ("git status", "./git status", None),
])
def test_allow_patterns_match_exactly_unless_they_say_otherwise(pattern: str, argv: str,
                                                               words: tuple[str, ...] | None) -> None:
    assert wildcard_words(tuple(pattern.split()), tuple(argv.split())) == words


def test_the_three_holes_of_the_prefix_days_are_closed() -> None:
    bob = policy("git log --oneline --since=1.week", "git diff --stat HEAD~1", "pytest -q")
    for hole in ("git log --oneline --since=1.week --output=/root/.bashrc", "git diff --stat HEAD~1 --output=/root/x",
                 "pytest -q --basetemp=/root"):
        verdict = bob.can_run(hole)
        assert verdict.outcome == "deny" and "matches no rule" in verdict.rule, hole
    assert bob.can_run("git log --oneline --since=1.week").allowed


@pytest.mark.parametrize("command", [
    "git log --output=/root/.bashrc", "git log --outp=/root/x", "git log --output /root/x", "git log -c core.pager=x",
    "git log --exec=sh", "git log --upload-pack=evil", "git log -O", "git log --open-files-in-pager=vim",
    "pytest --basetemp=/root", "pytest -p evil_plugin", "pytest -qp evil", "pytest -pevil", "pytest --rootdir=/",
    "python -m pytest --basetemp=/root", "pytest -o cache_dir=/root", "pytest --junitxml=/root/x.xml",
    "find . -exec rm {} ;", "find . -delete", "find . -fprint /root/x", "tar -xf a.tar --to-command=sh",
    "sed -i s/a/b/ f", "sed -ni p f", "curl -o /root/x http://h", "curl -sSo /root/x http://h", "sort -o /root/x f",
    "rsync -e sh a b", "wget -O /root/x http://h", "git clone -u evil src dst", "git rebase -x evil",
    "git difftool --extcmd=evil", "git format-patch --output-directory=/root", "curl --remote-name-all file:///x",
    "curl -w %output{/root/x} http://h", "pytest --log-file=/root/x",
])
def test_risky_options_are_refused_in_the_words_a_wildcard_left_open(command: str) -> None:
    program = command.split()[0] if command.split()[0] != "python" else "pytest"
    verdict = policy(f"{program} ...", "python -m pytest ...").can_run(command)
    assert verdict.outcome == "deny" and "writes files or runs programs" in verdict.rule, (command, verdict)


@pytest.mark.parametrize("command", ["git log --oneline -5", "git log -p", "git log --stat", "pytest -q -k slow",
                                     "pytest -x tests/", "find . -name '*.py'", "sed -n 1,5p f", "curl -sS http://h"])
def test_harmless_options_stay_allowed_behind_a_wildcard(command: str) -> None:
    assert policy(f"{command.split()[0]} ...").can_run(command).allowed, command


def test_a_risky_option_written_into_the_pattern_is_the_person_s_choice() -> None:
    assert policy("git log --output=report.txt").can_run("git log --output=report.txt").allowed
    assert risky_option("git", "--oneline") is None and risky_option("git", "--out") == "--output"


def test_ask_and_deny_match_as_prefixes_so_they_only_get_stricter() -> None:
    bob = policy("git push ...", ask=("git push",), deny=("git push --force",))
    assert bob.can_run("git push origin main").outcome == "ask"
    assert bob.can_run("git push --force origin main").outcome == "deny"


@pytest.mark.parametrize(("command", "outcome"), [
    ("git --no-pager push", "ask"), ("git -p push origin main", "ask"), ("env GIT_DIR=x git push", "ask"),
    ("git commit --amen", "deny"), ("git --no-pager commit --amend", "deny"), ("git commit -a --amend=x", "deny"),
])
def test_ask_and_deny_hold_their_words_through_global_options_and_abbreviations(command: str, outcome: str) -> None:
    """Found by a red-team read: ``git --no-pager push`` passed ``ask: [git push]`` as a word prefix."""
    bob = policy("git ...", ask=("git push",), deny=("git commit --amend",))
    assert bob.can_run(command).outcome == outcome, command


@pytest.mark.parametrize("command", [
    "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.fsmonitor GIT_CONFIG_VALUE_0=evil git status --short",
    "env LD_PRELOAD=/tmp/x.so git status --short", "nice git status --short", "timeout 5 git status --short",
    "command git status --short", "git status --short > .gitconfig", "git status --short >> /tmp/x",
    "PATH=/tmp:$PATH git status --short", "./git status --short", "/tmp/git status --short",
    "sh -c 'git status --short'", "git status --short | tee x",
])
def test_an_exact_rule_allows_only_the_line_it_names(command: str) -> None:
    """Found by a red-team read: the rule matched the line with its wrappers and assignments unwrapped, while
    the line ran as written (an fsmonitor program through GIT_CONFIG_*, an LD_PRELOAD, a redirection)."""
    bob = policy("git status --short")
    assert bob.can_run("git status --short").allowed
    assert not bob.can_run(command).allowed, command


def test_tar_s_old_style_first_word_is_read_as_a_cluster() -> None:
    verdict = policy("tar ...").can_run("tar cIf 'sh -c id' a.tar README")
    assert verdict.outcome == "deny" and "-I" in verdict.rule


def test_a_misplaced_ellipsis_is_a_validation_error_with_file_and_line(org: Path) -> None:
    edit(org / "animas/bob/permissions.md", "  - command: pytest -q\n", "  - command: pytest ... -q\n")
    result = run_cli("validate", str(org))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "animas/bob/permissions.md:" in result.output and "`...` may only end a pattern" in result.output


def test_a_schema_1_repo_gets_a_warning_per_pattern_that_was_a_prefix(org: Path) -> None:
    edit(org / "org.yaml", "schema_version: 2", "schema_version: 1")
    result = run_cli("validate", str(org))
    assert result.exit_code == 0, result.output
    assert "warning: animas/bob/permissions.md:" in result.output
    assert "`git status --short` now allows exactly that command" in result.output
    assert "write `git status --short ...`" in result.output and "4 warnings" in result.output
    edit(org / "org.yaml", "schema_version: 1", "schema_version: 2")
    assert "warning" not in run_cli("validate", str(org)).output


def test_sandbox_off_is_accepted_and_warned_about_with_its_line(org: Path) -> None:
    (org / "org.yaml").write_text((org / "org.yaml").read_text() + "sandbox: off\n")
    result = run_cli("validate", str(org))
    assert result.exit_code == 0, result.output
    assert "warning: org.yaml:" in result.output and "sandbox: off" in result.output and "1 warning." in result.output


def test_a_bad_sandbox_setting_fails_validate_with_file_line_and_reason(org: Path) -> None:
    (org / "org.yaml").write_text((org / "org.yaml").read_text() + "sandbox:\n  read_only: [relative/path]\n")
    result = run_cli("validate", str(org))
    assert result.exit_code == 1 and "org.yaml:" in result.output and "not an absolute path" in result.output
    assert "Traceback" not in result.output


def test_a_cron_command_its_anima_may_not_run_is_a_validate_warning(org: Path) -> None:
    """The template's own cron ran `git status` under a rule for `git status --short`: refused at every fire,
    and nothing said so until a command ran."""
    assert "warning" not in run_cli("validate", str(org)).output
    edit(org / "animas/bob/cron.md", "command: git status --short", "command: git status")
    result = run_cli("validate", str(org))
    assert result.exit_code == 0 and "warning: animas/bob/cron.md:3: cron 'Daily build check' runs 'git status'" \
        in result.output and "refused at every fire" in result.output
