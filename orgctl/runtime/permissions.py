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
   the whole line gets the strictest of its segments' outcomes. ``ask`` and
   ``deny`` rules hold any segment, wrappers unwrapped, that carries their
   words in order (options between them, abbreviations of their options:
   ``git --no-pager push`` is held by ``git push``). An allow rule matches
   the line exactly as it will run: one program, named as in the rule, and
   its arguments (``*`` one word, a trailing ``...`` any further words), with
   no shell syntax -- no pipe, redirection, variable, assignment or wrapper
   (``env``, ``nice``, ``sh -c``), which would run something other than what
   the rule names. In the words a wildcard matched, an option of
   :data:`RISKY_OPTIONS` (it writes a file or runs a program) is refused,
   whatever the rule.

What may start is decided here; how it runs -- confined by the kernel -- is
:mod:`orgctl.runtime.sandboxing`.

A ``permissions.md`` that does not validate yields :meth:`Policy.deny_all`:
fail-closed, never fail-open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orgctl.desired.models import SandboxConfig
from orgctl.desired.permissions import TOOLS, CommandRule, PermissionsFrontmatter
from orgctl.runtime import guards, sandboxing

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


RISKY_OPTIONS: dict[str, tuple[str, ...]] = {
    "git": ("--output", "-o", "--output-directory", "--exec", "-x", "--extcmd", "--upload-pack", "-u",
            "--receive-pack", "-c", "-C", "--config-env", "--exec-path", "--git-dir", "--work-tree",
            "--open-files-in-pager", "-O", "--ext-diff", "--textconv", "--template", "--tool"),
    "pytest": ("--basetemp", "-p", "-c", "--config-file", "--rootdir", "--confcutdir", "--override-ini", "-o",
               "--junitxml", "--junit-xml", "--result-log", "--resultlog", "--report-log", "--log-file", "--debug",
               "--pastebin"),
    "find": ("-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"),
    "tar": ("--to-command", "--use-compress-program", "-I", "--checkpoint-action", "--info-script",
            "--new-volume-script", "-F", "--rsh-command"),
    "rsync": ("-e", "--rsh", "--rsync-path"),
    "sort": ("-o", "--output", "--compress-program"),
    "sed": ("-i", "--in-place"),
    "curl": ("-o", "--output", "-O", "--remote-name", "--remote-name-all", "--output-dir", "-K", "--config", "-T",
             "--upload-file", "-D", "--dump-header", "-c", "--cookie-jar", "--trace", "--trace-ascii", "--libcurl",
             "--stderr", "-w", "--write-out", "--etag-save", "--hsts", "--alt-svc"),
    "wget": ("-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P", "--directory-prefix",
             "-i", "--input-file", "-e", "--execute"),
    "zip": ("-T", "--test", "--unzip-command"),
}
"""Options that write a file or run a program, by program: refused in the words a ``*`` or ``...`` of an
allow rule matched (a person who writes one into the pattern itself allows it). Long options match with a
value (``--output=x``) and abbreviated (``--out``, as git and getopt accept); a short one anywhere in a
cluster (``-qp``), and tar's first word without a dash as one (``tar cIf``); find's predicates word for word.
``python -m pytest`` is pytest. The table is a floor, not a proof: the sandbox confines whatever gets through
(docs/sandbox.md)."""


def _program(argv: tuple[str, ...]) -> str:
    """The program whose options ``argv`` carries: the basename, or the module of ``python -m MOD``."""
    prog = os.path.basename(argv[0])
    if prog.startswith("python") and argv[1:2] == ("-m",) and len(argv) > 2:
        return argv[2]
    return prog


def stands_for(pattern_word: str, word: str) -> bool:
    """True when ``word`` of a command line is ``pattern_word`` of a rule or table: equal (``*`` is any word),
    a long option with a value or abbreviated (``--amend=x``, ``--amen`` for ``--amend``), a short option
    anywhere in a cluster (``-xf`` for ``-f``). A single-dash word option (find's ``-exec``) only as itself."""
    if pattern_word in ("*", word):
        return True
    if pattern_word.startswith("--"):
        name = word.split("=", 1)[0]
        return word.startswith("--") and len(name) > 2 and pattern_word.startswith(name)
    if len(pattern_word) == 2 and pattern_word[0] == "-" and pattern_word[1] != "-":
        return word.startswith("-") and not word.startswith("--") and pattern_word[1] in word[1:]
    return False


def risky_option(program: str, word: str) -> str | None:
    """The :data:`RISKY_OPTIONS` entry of ``program`` that ``word`` is (or abbreviates, or clusters), or None."""
    return next((opt for opt in RISKY_OPTIONS.get(program, ()) if stands_for(opt, word)), None)


def wildcard_words(pattern: tuple[str, ...], argv: tuple[str, ...]) -> tuple[str, ...] | None:
    """The words of ``argv`` that allow rule ``pattern``'s wildcards matched, or None when it does not match.

    Word for word: ``*`` matches one word; a trailing ``...`` any further words (none too); the program as
    written (``git`` is not ``./git`` nor ``/tmp/git``: another file of that name would run).
    """
    open_end = bool(pattern) and pattern[-1] == "..."
    words = pattern[:-1] if open_end else pattern
    if not words or len(argv) < len(words) or (not open_end and len(argv) != len(words)):
        return None
    if not all(p == "*" or p == a for p, a in zip(words, argv, strict=False)):
        return None
    matched = tuple(a for p, a in zip(words, argv, strict=False) if p == "*")
    return matched + (argv[len(words):] if open_end else ())


def matches(pattern: tuple[str, ...], argv: tuple[str, ...]) -> bool:
    """True when allow rule ``pattern`` matches ``argv`` (see :func:`wildcard_words`)."""
    return wildcard_words(pattern, argv) is not None


def holds(pattern: tuple[str, ...], argv: tuple[str, ...]) -> bool:
    """True when ask or deny rule ``pattern`` holds ``argv``: the same program (by basename) and the pattern's
    words in order, anything between them (``git --no-pager push`` for ``git push``), options also
    abbreviated or clustered. Matching more is the safe direction for a rule that holds or refuses."""
    words = pattern[:-1] if pattern and pattern[-1] == "..." else pattern
    if not words or not argv or (words[0] != "*" and os.path.basename(argv[0]) != os.path.basename(words[0])):
        return False
    rest = iter(argv[1:])
    return all(any(stands_for(p, a) for a in rest) for p in words[1:])


class Policy:
    """The permissions of one Anima. ``workspace`` is where relative paths and file roots resolve and where
    commands run; ``sandbox`` is org.yaml's ``sandbox:`` (default: on), from which :attr:`sandbox_profile`
    says how they run."""

    def __init__(self, permissions: PermissionsFrontmatter, *, workspace: Path, source: str = "permissions.md",
                 invalid: str | None = None, sandbox: SandboxConfig | None = None) -> None:
        self.permissions = permissions
        self.workspace = Path(workspace)
        self.source = source
        self.invalid = invalid
        self.sandbox = sandbox or SandboxConfig()
        self._runnable: list[CommandRule] | None = None
        self._profile: sandboxing.Profile | None = None

    @property
    def sandbox_profile(self) -> sandboxing.Profile:
        """The sandbox every command of this Anima runs in (built once; the probe runs on first use)."""
        if self._profile is None:
            self._profile = sandboxing.profile_for(permissions=self.permissions, config=self.sandbox,
                                                   workspace=self.workspace)
        return self._profile

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

    def _held(self, argv: tuple[str, ...]) -> Verdict | None:
        for outcome, key, rules in (("deny", "deny", self.permissions.deny), ("ask", "ask", self.permissions.ask)):
            for rule in rules:
                if holds(rule.argv(), argv):
                    return Verdict(outcome, f"{self.source} {key}: {rule.command}")  # type: ignore[arg-type]
        return None

    def _allowed(self, argv: tuple[str, ...]) -> Verdict:
        risky: Verdict | None = None
        for rule in self.permissions.commands:
            wild = wildcard_words(rule.argv(), argv)
            if wild is None:
                continue
            program = _program(argv)
            if program == "tar" and len(argv) > 1 and argv[1] in wild and not argv[1].startswith("-"):
                wild = (*wild, "-" + argv[1])  # tar's old style: `tar cIf X` is `tar -c -I X -f`
            hit = next(((w, opt) for w in wild if (opt := risky_option(program, w))), None)
            if hit is None:
                return Verdict("allow", f"{self.source} commands: {rule.command}")
            risky = risky or Verdict("deny", f"{hit[0]!r} is {program}'s {hit[1]}, which writes files or runs "
                                             f"programs: refused in the words `{rule.command}` leaves open")
        if risky is not None:
            return risky
        return Verdict("deny", f"{' '.join(argv)!r} matches no rule in {self.source} (default deny; an allowed "
                               "command matches exactly, `...` allows further words)")

    def can_run(self, command: str) -> Verdict:
        """Decide a whole command line (see the module docstring for the order), the sandbox included: a
        command permitted where no sandbox can start is denied with the reason (fail closed)."""
        verdict = self.permits(command)
        if verdict.outcome != "deny" and (refusal := self.sandbox_profile.refusal):
            return Verdict("deny", refusal)
        return verdict

    def permits(self, command: str) -> Verdict:
        """What ``permissions.md`` and the hard blocks say of ``command``, before the sandbox is asked."""
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
        verdict = max((self._held(seg) or self._allowed(seg) for seg in guard.segments),
                      key=lambda v: _RANK[v.outcome])
        if verdict.outcome == "allow" and (guard.needs_shell or len(guard.segments) != 1):
            return Verdict("deny", "an allowed command runs as one program and its arguments; this line has shell "
                                   "syntax (a pipe, redirection, variable, assignment, glob or wrapper), which would "
                                   "run something no rule names (an `ask:` rule lets a person decide such lines)")
        return verdict  # an ask: a person sees the literal line before it runs

    def runnable(self) -> list[CommandRule]:
        """The allowed commands an Anima can run as written (no ``*``; a trailing ``...`` left off), as choices
        with descriptions.

        Computed once per policy (a policy never changes; a new spec makes a new one): each
        check parses the command through the guards, which cost milliseconds per task cycle.
        """
        if self._runnable is None:
            written = [r.model_copy(update={"command": r.command.removesuffix("...").rstrip()})
                       if r.argv()[-1] == "..." else r for r in self.permissions.commands if "*" not in r.argv()]
            # permitted ones, sandbox or not: where none can start, the attempt is refused with a Warning event
            self._runnable = [] if self.invalid or "run_command" not in self.permissions.tools else [
                r for r in written if self.permits(r.command).allowed]
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


def _sandbox_config(org_dir: Path) -> SandboxConfig | str:
    """``sandbox:`` of ``org.yaml`` in the work tree, or the reason it cannot be read."""
    from orgctl.desired.documents import parse_yaml
    from orgctl.desired.loading import ORG_FILE, validate_model
    from orgctl.desired.models import OrgFile

    path = Path(org_dir) / ORG_FILE
    if path.is_symlink() or not path.is_file():
        return f"{ORG_FILE} is missing or not a regular file"
    located, diags = parse_yaml(path.read_text(encoding="utf-8", errors="replace"), file=ORG_FILE)
    org, errs = validate_model(OrgFile, located, file=ORG_FILE) if located is not None else (None, [])
    return org.sandbox if org is not None else str((diags or errs)[0])


def policy_for(org_dir: Path, name: str, *, workspace: Path) -> Policy:
    """The policy of Anima ``name`` from ``animas/<name>/permissions.md`` and org.yaml's ``sandbox:`` in the
    work tree at ``org_dir``.

    Fail-closed: a missing, unreadable, symlinked or invalid file gives :meth:`Policy.deny_all`
    with the file, line and reason.
    """
    from orgctl.desired.documents import parse_markdown
    from orgctl.desired.loading import check_name, validate_model

    rel = f"animas/{name}/permissions.md"
    if problem := check_name(name):
        return Policy.deny_all(f"invalid Anima name: {problem}", workspace=workspace)
    sandbox = _sandbox_config(org_dir)
    if isinstance(sandbox, str):
        return Policy.deny_all(sandbox, workspace=workspace)
    path = Path(org_dir) / rel
    if path.is_symlink() or not path.is_file():
        return Policy.deny_all(f"{rel} is missing or not a regular file", workspace=workspace)
    doc, diags = parse_markdown(path.read_text(encoding="utf-8", errors="replace"), file=rel)
    if doc is None or diags:
        return Policy.deny_all(str(diags[0]) if diags else f"{rel}: unreadable", workspace=workspace)
    if doc.frontmatter is None:
        return Policy(PermissionsFrontmatter(), workspace=workspace, source=rel, sandbox=sandbox)
    perms, diags = validate_model(PermissionsFrontmatter, doc.frontmatter, file=rel)
    if perms is None:
        return Policy.deny_all(str(diags[0]), workspace=workspace)
    return Policy(perms, workspace=workspace, source=rel, sandbox=sandbox)
