"""The CLI's contracts a CI step relies on: exit codes (2 means changes and nothing else) and where the org is
(``-C DIR`` on every command, ``[DIR]`` where it is the only positional)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from orgctl.cli.main import cli
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def leaves(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            out += leaves(command, ctx, (*path, name))
        else:
            out.append((" ".join((*path, name)), command))
    return out


def test_every_command_takes_dash_c_and_dir_where_it_is_the_only_positional() -> None:
    commands = leaves(cli, click.Context(cli))
    assert len(commands) >= 38
    for name, command in commands:
        flags = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}
        assert "-C" in flags, f"{name} has no -C DIR"
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        assert arguments, f"{name}: it has no positional at all, so it should take [DIR]"


@pytest.mark.parametrize("args", [
    ["plan", "--detailed-exitcode", "--bogus"],  # the case: a typo is not "there are changes"
    ["--bogus"], ["no-such-command"], ["memory", "--bogus"], ["plan", "-r"], ["tasks", "--limit", "x"],
    ["apply", "--timeout"], ["events", "--limit", "0"],
])
def test_every_usage_error_exits_1_never_2(args: list[str]) -> None:
    result = console(args)
    assert result.returncode == 1, (args, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.strip()


def console(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The real console script, as a CI step runs it (click's standalone exit codes included)."""
    return subprocess.run([sys.executable, "-m", "orgctl", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80"})


def test_plan_detailed_exitcode_is_2_only_for_changes(org: Path) -> None:
    assert run_cli("plan", "--detailed-exitcode", str(org)).exit_code == 2  # three to hire
    assert run_cli("plan", "--detailed-exitcode", "-C", str(org)).exit_code == 2
    missing = run_cli("plan", "--detailed-exitcode", str(org / "nope"))
    assert missing.exit_code == 1


def test_dir_and_dash_c_agree_and_conflict_is_an_error(org: Path, tmp_path: Path) -> None:
    by_dir = run_cli("validate", str(org))
    by_flag = run_cli("validate", "-C", str(org))
    assert by_dir.exit_code == by_flag.exit_code == 0 and by_dir.output == by_flag.output
    both = run_cli("validate", str(org), "-C", str(tmp_path))
    assert both.exit_code == 1 and "given twice" in both.output
    events = run_cli("events", str(org))  # `orgctl events demo/acme` used to be refused
    assert events.exit_code == 0, events.output


def test_git_style_dash_c_before_the_command(org: Path) -> None:
    """``orgctl -C DIR validate`` runs as if started in DIR, as git does."""
    result = subprocess.run([sys.executable, "-m", "orgctl", "-C", str(org), "validate"], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and "Valid: org 'acme'" in result.stdout, result.stderr
    missing = subprocess.run([sys.executable, "-m", "orgctl", "-C", str(org / "nope"), "validate"],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_tick_matrix_lists_the_shards_of_a_tick_org_and_none_of_a_controller_org(org: Path) -> None:
    """What the template's scheduled workflow reads to fan a tick out over a matrix."""
    import json

    from tests.conftest import commit_all, edit

    assert json.loads(run_cli("tick", "--matrix", str(org)).output) == {"include": []}
    edit(org / "org.yaml", "name: acme", "name: acme\nruntime: tick\nshards: 3")
    commit_all(org, "tick, three shards")
    assert json.loads(run_cli("tick", "--matrix", "-C", str(org)).output) == {
        "include": [{"shard": "1/3"}, {"shard": "2/3"}, {"shard": "3/3"}]}
    edit(org / "org.yaml", "shards: 3", "shards: 0")
    commit_all(org, "no shards")
    broken = run_cli("tick", "--matrix", str(org))
    assert broken.exit_code == 1 and "org.yaml:" in broken.output
