"""The one root of orgctl's errors.

Every error a user can cause or fix is an :class:`OrgctlError`. The CLI maps
these to an exit code and a message in exactly one place
(:mod:`orgctl.cli.main`); anything else is a bug and keeps its traceback.
Set ``ORGCTL_DEBUG=1`` to see the traceback of user errors too.
"""

from __future__ import annotations

from typing import NamedTuple


class OrgctlError(Exception):
    """A failure the user can act on.

    ``hint`` is an optional second line that says how to fix it.
    ``exit_code`` is what the CLI exits with (1 unless a subclass says otherwise).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Diagnostic(NamedTuple):
    """One problem found in the org repo; immutable, ordered by file, line, reason.

    ``file`` is relative to the repo root (POSIX separators); ``line`` is
    1-based, or 0 when the problem is about the file as a whole (e.g. a
    missing file); ``reason`` is one sentence. (A NamedTuple rather than a
    dataclass: every command imports this module, and ``dataclasses`` costs
    start-up time.)
    """

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class SpecError(OrgctlError):
    """The desired state (the org repo) is invalid. Carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        n = len(self.diagnostics)
        super().__init__(
            f"{n} problem{'s' if n != 1 else ''} in the org spec; nothing was changed",
            hint="fix them and run `orgctl validate`",
        )


class WorkError(OrgctlError):
    """Work in flight that cannot be done as asked: an unknown task or approval, one already decided, a
    bad Board channel, a plan of tasks with a cycle. Nothing was written."""


class GitError(OrgctlError):
    """A git operation failed (unknown revision, not a repository, commit refused)."""


class StateError(OrgctlError):
    """Observed state is unreadable or held by someone else (e.g. the state lock)."""


class RuntimeFailure(OrgctlError):
    """The local runtime (supervisor, Anima processes, model server) failed."""


class ModelError(OrgctlError):
    """A model call failed or returned an answer that does not fit its schema."""


class BudgetExceeded(ModelError):
    """A hard spend limit (per Anima or org-wide, per day or month) forbids another model call."""
