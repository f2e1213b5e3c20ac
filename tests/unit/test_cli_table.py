"""The CLI's lazy command table (orgctl.cli.main.COMMANDS) stays true to the commands it loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from orgctl.cli.main import COMMANDS, cli


def test_every_command_is_in_the_table_with_its_own_module_and_help() -> None:
    ctx = click.Context(cli)
    for name, (module, short) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert (command.callback.__module__ if command.callback else "") == f"orgctl.cli.{module}" or \
            isinstance(command, click.Group), name
        assert command.get_short_help_str(limit=1000) == short, f"{name}: the table's help differs from the docstring"
    assert sorted(cli.commands) == sorted(COMMANDS), "a command registered outside the table"


def test_help_lists_every_command_without_importing_a_command_module() -> None:
    code = ("import sys; from orgctl.cli.main import main; sys.argv = ['orgctl', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('orgctl.cli.') and m != 'orgctl.cli.main'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    for name in COMMANDS:
        assert f"  {name} " in out


def test_the_fast_help_is_what_click_prints_and_is_up_to_date() -> None:
    """`orgctl --help` is served from orgctl/cli/helptext.py without click: it must be click's own text."""
    from orgctl.cli.helptext import HELP
    from scripts.gen_help import render

    assert render() == HELP, "run .venv/bin/python scripts/gen_help.py"
    env = {**os.environ, "COLUMNS": "100"}
    fast = subprocess.run([sys.executable, "-c", "from orgctl.cli.fast import main; main()", "--help"],
                          capture_output=True, text=True, env=env, check=True)
    code = "import sys; sys.argv = ['orgctl', '--help']; from orgctl.cli.main import main; main()"
    full = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert fast.stdout == full.stdout == HELP
    imported = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['orgctl', '--help']\n"
                               "from orgctl.cli.fast import main; main(); print('click' in sys.modules)"],
                              capture_output=True, text=True, env=env, check=True).stdout
    assert imported.endswith("False\n")


def test_the_fast_status_prints_what_the_click_command_prints(tmp_path: Path) -> None:
    """Same stdout, stderr and exit code for `status`, `status --json` and a state dir from a newer orgctl
    (the fast path hands errors to click), as real processes."""
    from orgctl.paths import state_paths

    org = tmp_path / "acme"
    org.mkdir()
    env = {**os.environ, "ORGCTL_STATE_DIR": str(tmp_path / "state")}
    paths = state_paths(org.resolve())
    paths.root.mkdir(parents=True)
    (paths.root / "inventory.json").write_text(json.dumps({"revision": "abc1234def", "animas": {}}))
    (paths.root / "format.json").write_text('{"format_version": 1}')

    def both(*args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        fast = subprocess.run([sys.executable, "-c", "from orgctl.cli.fast import main; main()", *args],
                              capture_output=True, text=True, env=env)
        full = subprocess.run([sys.executable, "-m", "orgctl", *args], capture_output=True, text=True, env=env)
        return fast, full

    for args in (("status", str(org)), ("status", "--json", str(org))):
        fast, full = both(*args)
        assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr), args
        assert fast.returncode == 0 and fast.stdout
    (paths.root / "format.json").write_text('{"format_version": 99}')
    fast, full = both("status", str(org))
    assert fast.returncode == full.returncode == 1 and fast.stderr == full.stderr and "format" in fast.stderr
