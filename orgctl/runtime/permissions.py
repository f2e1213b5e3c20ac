"""Permission decisions: may this Anima use a tool, run a command, read a path?

One code path for the runtime and for ``orgctl can-i`` (as ``kubectl auth
can-i`` answers through the API server's own authorizer). Every answer is a
:class:`Verdict` naming the rule that decided it.

Order of checks for a command, strictest first:

1. the hard blocks of :mod:`orgctl.runtime.guards` (destructive commands,
   checked per pipeline segment through wrappers; no permission lifts them);
2. the ``run_command`` tool must be granted;
3. per segment, ``deny`` beats ``ask`` beats ``allow`` (the order Claude
   Code's and Codex's sandboxes use); a segment no rule matches is denied;
   the whole line gets the strictest of its segments' outcomes.

A ``permissions.md`` that does not validate yields :meth:`Policy.deny_all`:
fail-closed, never fail-open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orgctl.desired.permissions import TOOLS, CommandRule, PermissionsFrontmatter
from orgctl.runtime import guards

Outcome = Literal["allow", "ask", "deny"]
_RANK: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}


@dataclass(frozen=True)
class Verdict:
    """``outcome`` and the ``rule`` (one human sentence) that decided it."""

    outcome: Outcome
    rule: str

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


def matches(pattern: tuple[str, ...], argv: tuple[str, ...]) -> bool:
    """True when ``pattern`` is an argv prefix of ``argv``; ``*`` in the pattern matches one argument.

    Program names compare by basename (``/usr/bin/git`` matches ``git``).
    """
    if len(argv) < len(pattern) or not pattern:
        return False
    if os.path.basename(argv[0]) != os.path.basename(pattern[0]) and pattern[0] != "*":
        return False
    return all(p == "*" or p == a for p, a in zip(pattern[1:], argv[1:], strict=False))


class Policy:
    """The permissions of one Anima. ``workspace`` is where relative paths and file roots resolve."""

    def __init__(self, permissions: PermissionsFrontmatter, *, workspace: Path, source: str = "permissions.md",
                 invalid: str | None = None) -> None:
        self.permissions = permissions
        self.workspace = Path(workspace)
        self.source = source
        self.invalid = invalid
        self._runnable: list[CommandRule] | None = None

    @classmethod
    def deny_all(cls, reason: str, *, workspace: Path) -> Policy:
        """A policy that denies everything, because ``reason`` (e.g. the file is invalid)."""
        return cls(PermissionsFrontmatter(), workspace=workspace, invalid=reason)

    # ------------------------------------------------------------ tools

    def can_use(self, tool: str) -> Verdict:
        if self.invalid:
            return Verdict("deny", f"{self.source} is invalid, so everything is denied: {self.invalid}")
        if tool not in TOOLS:
            return Verdict("deny", f"unknown tool {tool!r}")
        if tool in self.permissions.tools:
            return Verdict("allow", f"{self.source} tools: {tool}")
        return Verdict("deny", f"tool {tool!r} is not listed in {self.source} (default deny)")

    # ------------------------------------------------------------ commands

    def _segment(self, argv: tuple[str, ...]) -> Verdict:
        for outcome, rules in (("deny", self.permissions.deny), ("ask", self.permissions.ask),
                               ("allow", self.permissions.commands)):
            for rule in rules:
                if matches(rule.argv(), argv):
                    key = {"allow": "commands", "ask": "ask", "deny": "deny"}[outcome]
                    return Verdict(outcome, f"{self.source} {key}: {rule.command}")  # type: ignore[arg-type]
        return Verdict("deny", f"{' '.join(argv)!r} matches no rule in {self.source} (default deny)")

    def can_run(self, command: str) -> Verdict:
        """Decide a whole command line (see the module docstring for the order)."""
        if self.invalid:
            return Verdict("deny", f"{self.source} is invalid, so everything is denied: {self.invalid}")
        guard = guards.check_command(command)
        if guard.blocked:
            return Verdict("deny", guard.reason)
        tool = self.can_use("run_command")
        if not tool.allowed:
            return tool
        if not guard.segments:
            return Verdict("deny", "empty command")
        verdicts = [self._segment(seg) for seg in guard.segments]
        return max(verdicts, key=lambda v: _RANK[v.outcome])

    def runnable(self) -> list[CommandRule]:
        """The allowed commands an Anima can run as written (no ``*``), as choices with descriptions.

        Computed once per policy (a policy never changes; a new spec makes a new one): each
        check parses the command through the guards, which cost milliseconds per task cycle.
        """
        if self._runnable is None:
            self._runnable = [] if self.invalid or "run_command" not in self.permissions.tools else [
                r for r in self.permissions.commands if "*" not in r.argv() and self.can_run(r.command).allowed]
        return list(self._runnable)

    # ------------------------------------------------------------ files

    def _inside_roots(self, path: str) -> tuple[Path | None, str]:
        target = Path(os.path.realpath(self.workspace / path))  # follows symlinks and '..'
        for root in self.permissions.file_roots:
            base = Path(os.path.realpath(self.workspace / root))
            if target == base or base in target.parents:
                return target, root
        return None, ""

    def can_read(self, path: str) -> Verdict:
        """Paths resolve against the workspace; symlinks and ``..`` are resolved before the check."""
        if self.invalid:
            return Verdict("deny", f"{self.source} is invalid, so everything is denied: {self.invalid}")
        target, root = self._inside_roots(path)
        if target is None:
            return Verdict("deny", f"{path!r} is outside every file root in {self.source} "
                                   f"({', '.join(self.permissions.file_roots) or 'none'}), after resolving links")
        return Verdict("allow", f"{self.source} file_roots: {root}")

    def can_write(self, path: str) -> Verdict:
        tool = self.can_use("write_file")
        if not tool.allowed:
            return tool
        return self.can_read(path)


def policy_for(org_dir: Path, name: str, *, workspace: Path) -> Policy:
    """The policy of Anima ``name`` from ``animas/<name>/permissions.md`` in the work tree at ``org_dir``.

    Fail-closed: a missing, unreadable, symlinked or invalid file gives :meth:`Policy.deny_all`
    with the file, line and reason.
    """
    from orgctl.desired.documents import parse_markdown
    from orgctl.desired.loading import check_name, validate_model

    rel = f"animas/{name}/permissions.md"
    if problem := check_name(name):
        return Policy.deny_all(f"invalid Anima name: {problem}", workspace=workspace)
    path = Path(org_dir) / rel
    if path.is_symlink() or not path.is_file():
        return Policy.deny_all(f"{rel} is missing or not a regular file", workspace=workspace)
    doc, diags = parse_markdown(path.read_text(encoding="utf-8", errors="replace"), file=rel)
    if doc is None or diags:
        return Policy.deny_all(str(diags[0]) if diags else f"{rel}: unreadable", workspace=workspace)
    if doc.frontmatter is None:
        return Policy(PermissionsFrontmatter(), workspace=workspace, source=rel)
    perms, diags = validate_model(PermissionsFrontmatter, doc.frontmatter, file=rel)
    if perms is None:
        return Policy.deny_all(str(diags[0]), workspace=workspace)
    return Policy(perms, workspace=workspace, source=rel)
