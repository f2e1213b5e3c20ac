"""``orgctl``: the command group, and the one place that turns errors into exit codes."""

from __future__ import annotations

import os
from typing import Any

import click

from orgctl import __version__
from orgctl.errors import OrgctlError, SpecError

DEBUG_ENV = "ORGCTL_DEBUG"


def report_error(err: OrgctlError) -> None:
    """Print a user error to stderr: message, each diagnostic, and the hint."""
    click.secho(f"Error: {err.message}", fg="red", err=True)
    if isinstance(err, SpecError):
        for d in err.diagnostics:
            click.echo(f"  {d}", err=True)
    if err.hint:
        click.echo(f"Hint: {err.hint}", err=True)


class OrgctlGroup(click.Group):
    """Maps :class:`OrgctlError` to its message and exit code; ``ORGCTL_DEBUG=1`` keeps tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrgctlError as e:
            if os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes"):
                raise
            report_error(e)
            ctx.exit(e.exit_code)


@click.group(cls=OrgctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orgctl")
def cli() -> None:
    """Run an organization of LLM agents (Animas) from a git repository.

    Desired state is the org repo (git); `plan` shows what would change in the
    running organization and `apply` makes it so.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="orgctl")


# The commands register themselves on `cli`; imported last because they import `cli`.
from orgctl.cli import commands, controller, proposals, suspensions, work  # noqa: E402,F401
