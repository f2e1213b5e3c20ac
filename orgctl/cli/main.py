"""``orgctl``: the command group, and the one place that turns errors into exit codes."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click
from click.utils import make_default_short_help

from orgctl import __version__
from orgctl.errors import OrgctlError, SpecError

DEBUG_ENV = "ORGCTL_DEBUG"
ERROR_EXIT = 1
"""Every error exits 1, usage errors too (click's own is 2): 2 means "there are changes" (``plan
--detailed-exitcode``, Terraform's contract), so a CI step never reads a typo as a pending change."""


def report_error(err: OrgctlError) -> None:
    """Print a user error to stderr: message, each diagnostic, and the hint."""
    click.secho(f"Error: {err.message}", fg="red", err=True)
    if isinstance(err, SpecError):
        for d in err.diagnostics:
            click.echo(f"  {d}", err=True)
    if err.hint:
        click.echo(f"Hint: {err.hint}", err=True)


#: Every command: the module under ``orgctl.cli`` that defines it, and its one-line help. Commands are
#: imported only when they run, so ``orgctl --help`` loads no command module and ``orgctl status`` only its
#: own (start-up: bench/startup.py). tests/unit/test_cli_table.py checks each line against the command.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("commands", "Create a new org repo in DIRECTORY from the template: three Animas and one commit."),
    "validate": ("commands", "Check the org spec (work tree by default); report every problem with file:line."),
    "hire": ("hiring", "Create a new Anima's files from its role or a character sheet; with --pr, as a pull "
                       "request."),
    "plan": ("commands", "Show what apply would do: desired state (git) against observed state (what runs)."),
    "chart": ("commands", "Draw the org chart at a revision (or the change since --base) as Mermaid, SVG or DOT."),
    "apply": ("commands", "Converge the running organization on the desired state (hire, change, restart, retire)."),
    "controller": ("controller", "The GitOps controller: keep the running org converged on the tracked branch "
                                 "(`controller [DIR]`)."),
    "reconcile": ("controller", "Ask the running controller for a pass now, and show when and how it was handled."),
    "status": ("statuses", "Show each Anima's state, sync, health and Ready condition, its revision, last heartbeat "
                           "and restarts."),
    "history": ("commands", "List past applies: when, which revision, what the plan held, the result and how long "
                            "it took."),
    "force-unlock": ("commands", "Break a state lock whose holder is stuck (LOCK_ID: from the error that named the "
                                 "holder)."),
    "down": ("commands", "Stop everything orgctl started for this org (Animas, supervisor, model server), nothing "
                         "else."),
    "suspend": ("suspensions", "Stop reconciling NAME (or, with --all, the whole org) and leave it exactly as it is."),
    "pause": ("suspensions", "Stop NAME and keep it stopped (apply records its spec changes, starts it only after "
                             "resume)."),
    "resume": ("suspensions", "Undo `pause NAME` (start it again, with the spec applied meanwhile), `suspend NAME` "
                              "or `suspend --all`."),
    "tick": ("tick", "Run one bounded pass of a tick org: due heartbeats, cron, tasks and memory passes; state to "
                     "orgctl/state."),
    "pull": ("memory", "Bring the memory the Animas committed into this checkout (a fast-forward, or a merge)."),
    "consolidate": ("memory", "File each Anima's day into knowledge and procedures; one git commit per Anima."),
    "forget": ("memory", "Downscale, archive and forget unused memory (protected notes never); one git commit per "
                         "Anima."),
    "memory": ("memory", "Search, review and repair the Animas' memory: reindex, search, show, log, diff, revert."),
    "workflow": ("workflows", "Run workflows (workflows/<name>.yaml): phases run by Animas, ended by verdicts."),
    "dashboard": ("dashboard", "Serve the org's read-only dashboard: the org chart live, each Anima, the work, the "
                               "plan."),
    "mcp": ("mcpserve", "The org over the Model Context Protocol: `mcp serve` gives an MCP client read-only tools."),
    "task": ("work", "Give an Anima work (human tasks always come first in its queue)."),
    "tasks": ("work", "Show task queues (one Anima's, or everyone's), with stale and overdue flags."),
    "chat": ("work", "Say TEXT to NAME and wait for its answer (the transcript is kept in the state dir)."),
    "send": ("work", "Send a DM: from `human` to an Anima, or as an Anima (under the messaging rules)."),
    "inbox": ("work", "Show NAME's inbox (default: `human`, where Animas report to people)."),
    "board": ("work", "Read the Board (or `board post CHANNEL TEXT`)."),
    "events": ("work", "Show what happened (the operator's view, newest last): repeats folded with a count, as "
                       "kubectl shows them."),
    "approvals": ("work", "Actions waiting for a person's decision (commands under an `ask` rule)."),
    "approve": ("work", "Approve a held action; the Anima runs it and is told."),
    "deny": ("work", "Deny a held action; the Anima is told and it does not run."),
    "can-i": ("work", "Would NAME be allowed to run COMMAND, use TOOL, read or write PATH? Exit 0 yes, 1 no."),
    "usage": ("work", "Model calls, tokens and cost per Anima and model, with each Anima's budget state."),
    "receive": ("work", "Serve the inbound webhook: outside messages into Animas' inboxes, always untrusted."),
    "pr": ("pr", "Pull requests on GitHub: `pr comment` posts the plan of one and keeps it current."),
    "proposals": ("proposals", "List spec changes proposed by Animas (branches orgctl/proposals/*), or "
                               "`proposals show BRANCH`."),
}


class OrgctlGroup(click.Group):
    """Maps :class:`OrgctlError` to its message and exit code; ``ORGCTL_DEBUG=1`` keeps tracebacks.

    Commands load lazily from :data:`COMMANDS` (click's documented lazy-loading pattern), and the
    command list in ``--help`` is written from the table, without importing any command module.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            importlib.import_module(f"orgctl.cli.{COMMANDS[cmd_name][0]}")  # it registers itself on `cli`
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, make_default_short_help(COMMANDS[n][1] if n in COMMANDS else
                                            (self.get_command(ctx, n) or click.Command(n)).get_short_help_str(limit),
                                            limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # `orgctl --bogus`
            e.exit_code = ERROR_EXIT
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a subcommand's typo, unknown option or bad value: an error, not "changes"
            e.exit_code = ERROR_EXIT
            raise
        except OrgctlError as e:
            if os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes"):
                raise
            report_error(e)
            ctx.exit(e.exit_code)


def _change_directory(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    for folder in value:  # git's -C, cumulative: `-C a -C b` is a/b; every later relative path is read from there
        try:
            os.chdir(folder)
        except OSError as e:
            raise click.BadParameter(f"cannot change to {folder!r}: {e.strerror}", ctx=ctx, param=param) from None


@click.group(cls=OrgctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orgctl")
@click.option("-C", "chdir", metavar="DIR", expose_value=False, is_eager=True, callback=_change_directory,
              multiple=True, type=click.Path(file_okay=False),
              help="Run as if orgctl was started in DIR (git's -C).")
def cli() -> None:
    """Run an organization of LLM agents (Animas) from a git repository.

    Desired state is the org repo (git); `plan` shows what would change in the
    running organization and `apply` makes it so.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="orgctl")

