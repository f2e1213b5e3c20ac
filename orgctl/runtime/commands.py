"""Running an allowed command: in the kernel's sandbox, no shell unless needed, a timeout, an output cap,
a minimal environment.

Called by the task cycle, cron and approvals after :class:`~orgctl.runtime.permissions.Policy`
said ``allow``. The command runs in the Anima's workspace (a clone of the org
repo in the state dir) under the Anima's sandbox profile
(:mod:`orgctl.runtime.sandboxing`), with an environment that carries no model
keys or tokens: only ``PATH``, ``HOME`` and ``TMPDIR`` (the sandbox's private
``/tmp``), ``LANG`` and git's identity, with no git config but the repo's. A line without
pipes or redirections runs as one argv with no shell; one with them runs
under ``/bin/sh -c`` (every segment was checked already).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from orgctl.runtime import guards, sandboxing, spawning
from orgctl.work.tasks import StepRecord

OUTPUT_CAP = 8 * 1024  # bytes of stdout+stderr kept


@dataclass(frozen=True)
class CommandResult:
    """What a command did: exit code (None when it timed out), output (capped), seconds taken."""

    command: str
    exit_code: int | None
    output: str
    truncated: bool
    duration_s: float
    timed_out: bool = False

    def summary(self, *, lines: int = 12) -> str:
        """``$ cmd`` / ``exit 0`` / the first ``lines`` lines of output, for reports and episodes."""
        status = "timed out" if self.timed_out else f"exit {self.exit_code}"
        body = "\n".join(self.output.strip().splitlines()[:lines]) or "(no output)"
        more = "\n…" if self.truncated or len(self.output.strip().splitlines()) > lines else ""
        return f"$ {self.command}\n{status}\n{body}{more}"

    def record(self) -> StepRecord:
        """This run as a task's typed step record (output clipped, digested whole)."""
        return StepRecord.ran(self.command, exit_code=self.exit_code, output=self.output, timed_out=self.timed_out)


def command_path(workspace: Path) -> str:
    """orgctl's ``PATH`` with only absolute entries outside the workspace: an empty entry, ``.`` or a
    relative one would name the workspace, where a command can plant a program that a rule names."""
    ws = os.path.realpath(workspace)
    entries = [p for p in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
               if os.path.isabs(p) and not (os.path.realpath(p) + os.sep).startswith(ws + os.sep)]
    return os.pathsep.join(dict.fromkeys(entries)) or "/usr/bin:/bin"


def minimal_env(workspace: Path, *, confined: bool = True) -> dict[str, str]:
    """The environment commands get: nothing secret, nothing of the user's shell, no git config but the
    repo's own. ``HOME`` is the sandbox's private ``/tmp`` (dotfiles written there go with the command), or
    the workspace when unconfined."""
    home = sandboxing.SANDBOX_TMP if confined else str(workspace)
    return {"PATH": command_path(workspace), "HOME": home,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "orgctl-anima", "GIT_AUTHOR_EMAIL": "orgctl-anima@users.noreply.localhost",
            "GIT_COMMITTER_NAME": "orgctl-anima", "GIT_COMMITTER_EMAIL": "orgctl-anima@users.noreply.localhost",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "PAGER": "cat", "TMPDIR": sandboxing.SANDBOX_TMP}


def run_command(command: str, *, sandbox: sandboxing.Profile, cap: int = OUTPUT_CAP) -> CommandResult:
    """Run ``command`` (already permitted) in the workspace of ``sandbox``, confined by it, killed with every
    process it started at ``sandbox.limits.timeout_seconds``. Never raises for the command's own failure.

    Raises :class:`guards.CommandParseError` only if the line cannot be split (callers checked it first), and
    :class:`sandboxing.SandboxUnavailable` when the sandbox refuses (the policy denied it already).
    """
    segments, needs_shell = guards.split_segments(command)
    argv = ["/bin/sh", "-c", command] if needs_shell else list(segments[0]) if segments else shlex.split(command)
    done = spawning.spawn(argv, profile=sandbox, env=minimal_env(sandbox.workspace, confined=sandbox.mode != "off"),
                            cap=cap)
    data = done.output
    if done.exit_code == 1 and data.startswith(b"bwrap: execvp "):  # the program is not there, inside
        return CommandResult(command, 127, f"cannot start: {data[6:].decode(errors='replace').strip()}", False,
                             done.duration_s)
    return CommandResult(command=command, exit_code=done.exit_code,
                         output=data[:cap].decode("utf-8", errors="replace"), truncated=done.total > cap,
                         duration_s=done.duration_s, timed_out=done.timed_out)
