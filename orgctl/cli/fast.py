"""The ``orgctl`` entry point: ``--help`` and ``status`` without importing click.

Those two are what people (and scripts, ``watch orgctl status``) run most, and click's import is
most of their start-up (bench/startup.py: about 30 ms of a 50 ms run). So the console script
starts here: ``orgctl --help`` prints the help text click renders (generated into
:mod:`orgctl.cli.helptext` by ``scripts/gen_help.py``, kept equal by a test) when the terminal is at
least 80 columns wide, and ``orgctl status [DIR] [--json]`` runs :func:`orgctl.cli.statusview.run_status`.
Anything else, any other flag, and any error goes to the click CLI (:func:`orgctl.cli.main.main`),
which parses and reports as usual. The idea is git's and Mercurial's: a fast path for the hot
commands in front of the full command dispatcher.
"""

from __future__ import annotations

import os
import sys

HELP_WIDTH = 80
"""Columns click renders ``--help`` for when the terminal is at least this wide (its ``max_width``)."""


def _columns() -> int:
    """The terminal's width as click sees it (``shutil.get_terminal_size``: ``COLUMNS``, then the tty, else 80)."""
    import shutil

    return shutil.get_terminal_size().columns


def _status_args(args: list[str]) -> tuple[str, bool] | None:
    """``(DIR, as_json)`` for ``status [DIR | -C DIR] [--json]``; None for anything else (click handles it)."""
    positional = [a for a in args if a != "--json"]
    if positional[:1] in (["-C"], ["--org"]) and len(positional) == 2:
        positional = positional[1:]
    if len(positional) > 1 or any(a.startswith("-") for a in positional):
        return None
    org_dir = positional[0] if positional else "."
    if os.path.exists(org_dir) and not os.path.isdir(org_dir):
        return None  # click's error message: "Directory ... is a file."
    return org_dir, "--json" in args


def main() -> None:
    """Console-script entry point (see module docstring)."""
    try:
        _main(sys.argv[1:])
    except BrokenPipeError:  # `orgctl status | head`: the reader left; say nothing more (Python's own recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _main(args: list[str]) -> None:
    if args in (["--help"], ["-h"]) and _columns() >= HELP_WIDTH:
        from orgctl.cli.helptext import HELP

        sys.stdout.write(HELP)
        return
    if args[:1] == ["status"] and (parsed := _status_args(args[1:])) is not None:
        from orgctl.cli.statusview import run_status

        if run_status(parsed[0], as_json=parsed[1]):
            return
    from orgctl.cli.main import main as click_main

    click_main()
