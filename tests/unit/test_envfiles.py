"""The org's env file: which file, precedence over it, and the files it refuses (real git, real files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orgctl.cli.main import cli
from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths
from orgctl.state.envfiles import ENV_FILE_ENV, env_file_path, load_env_file
from tests.conftest import commit_all, git


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_no_env_file_is_nothing(org: Path) -> None:
    assert env_file_path(org, {}) is None
    assert load_env_file(org, {}) == {}


def test_reads_the_orgs_dot_env_with_the_environment_winning(org: Path) -> None:
    write_private(org / ".env", "# model keys\nOPENAI_API_KEY=from-file\nexport SLACK_BOT_TOKEN='tok en'\n"
                                "ANTHROPIC_API_KEY=\"a\\nb\"\nBARE\n")
    env = {"OPENAI_API_KEY": "from-env", "UNRELATED": "x"}
    assert load_env_file(org, env) == {"OPENAI_API_KEY": "from-env", "SLACK_BOT_TOKEN": "tok en",
                                       "ANTHROPIC_API_KEY": "a\nb"}


def test_no_interpolation(org: Path) -> None:
    write_private(org / ".env", "PASSWORD=pa$$w${HOME}rd\nCOPY=${PASSWORD}\n")
    assert load_env_file(org, {"HOME": "/root"}) == {"PASSWORD": "pa$$w${HOME}rd", "COPY": "${PASSWORD}"}


def test_the_template_ignores_dot_env(org: Path) -> None:
    write_private(org / ".env", "K=v\n")
    assert git(org, "status", "--porcelain") == ""
    assert git(org, "check-ignore", ".env").strip() == ".env"


def test_orgctl_env_file_wins_over_dot_env(org: Path, tmp_path: Path) -> None:
    write_private(org / ".env", "K=dot-env\n")
    other = write_private(tmp_path / "acme.env", "K=named\n")
    assert load_env_file(org, {ENV_FILE_ENV: str(other)}) == {"K": "named"}


def test_a_named_env_file_that_is_missing_is_an_error(org: Path, tmp_path: Path) -> None:
    with pytest.raises(OrgctlError, match="does not exist") as info:
        load_env_file(org, {ENV_FILE_ENV: str(tmp_path / "nope.env")})
    assert "nope.env" in info.value.message


def test_a_tracked_env_file_is_refused(org: Path) -> None:
    write_private(org / ".env", "OPENAI_API_KEY=oops\n")
    git(org, "add", "--force", ".env")  # staged is enough: the next commit would carry it
    with pytest.raises(OrgctlError, match="tracked by git") as info:
        load_env_file(org, {})
    assert str(org / ".env") in info.value.message and "git rm --cached" in (info.value.hint or "")
    commit_all(org, "oops")
    with pytest.raises(OrgctlError, match="tracked by git"):
        load_env_file(org, {})


def test_a_named_env_file_tracked_in_another_repo_is_refused(org: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    git(dotfiles, "init", "-q")
    named = write_private(dotfiles / "acme.env", "K=v\n")
    assert load_env_file(org, {ENV_FILE_ENV: str(named)}) == {"K": "v"}  # untracked: fine
    commit_all(dotfiles, "env")
    with pytest.raises(OrgctlError, match="tracked by git"):
        load_env_file(org, {ENV_FILE_ENV: str(named)})


def test_a_symlink_is_refused(org: Path, tmp_path: Path) -> None:
    target = write_private(tmp_path / "real.env", "K=v\n")
    (org / ".env").symlink_to(target)
    with pytest.raises(OrgctlError, match="symlink") as info:
        load_env_file(org, {})
    assert str(org / ".env") in info.value.message
    with pytest.raises(OrgctlError, match="symlink"):
        load_env_file(org, {ENV_FILE_ENV: str(org / ".env")})


def test_a_dangling_symlink_is_refused_not_ignored(org: Path, tmp_path: Path) -> None:
    (org / ".env").symlink_to(tmp_path / "gone.env")
    with pytest.raises(OrgctlError, match="symlink"):
        load_env_file(org, {})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_an_env_file_open_to_others_is_refused(org: Path, mode: int) -> None:
    path = write_private(org / ".env", "K=v\n")
    path.chmod(mode)
    with pytest.raises(OrgctlError, match="accessible by others") as info:
        load_env_file(org, {})
    assert f"mode {mode:03o}" in info.value.message and info.value.hint == f"chmod 600 {path}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_modes_are_accepted(org: Path, mode: int) -> None:
    path = write_private(org / ".env", "K=v\n")
    path.chmod(mode)
    assert load_env_file(org, {}) == {"K": "v"}


def test_a_directory_is_refused(org: Path) -> None:
    (org / ".env").mkdir(mode=0o700)
    with pytest.raises(OrgctlError, match="not a regular file"):
        load_env_file(org, {})


def test_the_supervisor_merges_the_env_file_into_its_environment(org: Path, tmp_path: Path) -> None:
    """`serve` loads the file before anything else; a refused file stops it with the message, no traceback."""
    write_private(org / ".env", "ORGCTL_TEST_KEY=from-file\n")
    code = ("import os, sys; from pathlib import Path; import orgctl.runtime.supervisor as s; "
            "from orgctl.paths import StatePaths\n"
            "class Stop(Exception): pass\n"
            "def stop(self): raise Stop()\n"
            "StatePaths.ensure = stop\n"  # stop right after the env file is merged
            "try: s.serve(paths=StatePaths(Path(sys.argv[2])), org_dir=Path(sys.argv[1]))\n"
            "except Stop: print(os.environ.get('ORGCTL_TEST_KEY'))\n")
    env = {k: v for k, v in os.environ.items() if k != "ORGCTL_TEST_KEY"}
    run = lambda: subprocess.run([sys.executable, "-c", code, str(org), str(tmp_path / "st")],  # noqa: E731
                                 capture_output=True, text=True, env=env, timeout=60)
    proc = run()
    assert proc.returncode == 0 and proc.stdout.strip() == "from-file", proc
    (org / ".env").chmod(0o644)
    proc = run()
    assert proc.returncode == 1 and "accessible by others" in proc.stderr and "chmod 600" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_apply_refuses_a_bad_env_file_before_starting_anything(org: Path, state: StatePaths) -> None:
    (org / ".env").write_text("OPENAI_API_KEY=x\n")
    (org / ".env").chmod(0o644)
    result = CliRunner().invoke(cli, ["apply", str(org), "--auto-approve"])
    assert result.exit_code == 1 and "accessible by others" in result.output and "chmod 600" in result.output
    assert not state.supervisor_pid.exists() and not state.inventory.exists()
