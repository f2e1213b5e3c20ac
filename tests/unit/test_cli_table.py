"""The CLI's lazy command table (orgctl.cli.main.COMMANDS) stays true to the commands it loads."""

from __future__ import annotations

import subprocess
import sys

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
