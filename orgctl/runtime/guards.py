"""Hard blocks: destructive commands no permission can lift, checked before any permission rule.

Called by :class:`orgctl.runtime.permissions.Policy` for every command an
Anima (or cron) would run. A line is split into simple commands (pipeline
segments, ``;``, ``&&``, ``||``, ``&``) after shell-word unquoting and
variable expansion; wrappers (``sh -c``, ``bash -lc``, ``env``, ``sudo``,
``xargs``, ``find -exec``, ``eval``, ``nice``, ``timeout`` …) are unwrapped and
what they run is checked too. What cannot be parsed safely (command
substitution, backticks, here-documents, function definitions) is refused:
fail closed. The rule list follows the deny patterns agent sandboxes ship
(AnimaWorks' global list, Claude Code's and Codex's destructive-command
checks): recursive deletes of root, home or system folders, filesystem
creation and disk writes, fork bombs, pipes into an interpreter, recursive
permission changes on system paths, power and kill-all commands, forced
pushes and cloud deletions.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass


class CommandParseError(ValueError):
    """The command line cannot be parsed safely (quotes, ``$(...)``, backticks, here-docs, function definitions)."""


@dataclass(frozen=True)
class GuardVerdict:
    """``blocked`` with the rule's ``reason``; ``segments`` are the simple commands found (after unwrapping)."""

    blocked: bool
    reason: str
    segments: tuple[tuple[str, ...], ...]
    needs_shell: bool


_SEPARATORS = {"|", "||", "&&", ";", "&", "\n", "|&"}
_REDIRECTS = {">", ">>", "<", "<>", ">|", "&>", "&>>", "2>", "2>>", "1>", ">&", "2>&1", "<&"}
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "csh", "tcsh", "busybox"}
_INTERPRETERS = _SHELLS | {"python", "python3", "perl", "ruby", "node", "php", "lua"}
_DEVICE = re.compile(r"^/dev/(sd|nvme|hd|vd|xvd|mmcblk|disk|mapper/|md\d|loop)")
_SYSTEM = {"/", "/*", "~", "~/", "/etc", "/usr", "/var", "/bin", "/sbin", "/boot", "/lib", "/lib64", "/home", "/root",
           "/opt", "/srv", "/sys", "/proc", "/dev", "."}
_WRITE_PROTECTED = ("/etc/", "/boot/", "/usr/", "/bin/", "/sbin/", "/lib/", "/proc/", "/sys/")
_MAX_DEPTH = 5
_DEFAULT_ENV = {"HOME": "/root"}


def _expand(word: str, env: Mapping[str, str]) -> str:
    word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: env.get(m.group(1) or m.group(2), ""), word)
    if word == "~" or word.startswith("~/"):
        word = env.get("HOME", "/root") + word[1:]
    return word


def _tokens(command: str) -> list[str]:
    if re.search(r"\$\(|`|<\(|>\(|<<", command):
        raise CommandParseError("command substitution, backticks, process substitution or here-documents")
    if re.search(r"\w*\s*\(\s*\)\s*\{", command):
        raise CommandParseError("a shell function definition")
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|;&<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as e:
        raise CommandParseError(str(e)) from e


def _split(command: str, env: Mapping[str, str]) -> tuple[list[list[str]], list[str], bool]:
    """(segments as argv lists, redirect targets, needs_shell) of one line, before unwrapping."""
    segments: list[list[str]] = [[]]
    targets: list[str] = []
    needs_shell = False
    tokens = _tokens(command.replace("\n", " ; "))
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SEPARATORS or set(tok) <= set("|;&") and tok:
            needs_shell = True
            if tok in ("|", "|&"):
                segments.append(["|"])  # marks "reads its stdin from a pipe"
            else:
                segments.append([])
        elif set(tok) <= set("<>&") or tok in _REDIRECTS or re.fullmatch(r"\d?[<>]+&?\d?", tok):
            needs_shell = True
            if i + 1 < len(tokens) and not re.fullmatch(r"&?\d", tokens[i + 1]):
                targets.append(_expand(tokens[i + 1], env))
                i += 1
        else:
            segments[-1].append(_expand(tok, env))
        i += 1
    return [s for s in segments if s and s != ["|"]], targets, needs_shell


def _unwrap(argv: list[str], env: Mapping[str, str], depth: int) -> list[tuple[list[str], bool]]:
    """Simple commands ``argv`` really runs: [(argv, from_stdin)], wrappers removed, recursively."""
    if depth > _MAX_DEPTH:
        raise CommandParseError("wrappers nested too deep")
    piped = bool(argv) and argv[0] == "|"
    argv = argv[1:] if piped else list(argv)
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    if not argv:
        return []
    prog = os.path.basename(argv[0])
    rest = argv[1:]

    def again(inner: list[str]) -> list[tuple[list[str], bool]]:
        return _unwrap((["|"] if piped else []) + inner, env, depth + 1)

    if prog in _SHELLS and "-c" in "".join(a for a in rest if a.startswith("-") and not a.startswith("--")):
        script = next((a for a in rest if not a.startswith("-")), "")
        return [x for seg in _split(script, env)[0] for x in _unwrap(seg, env, depth + 1)]
    if prog == "eval":
        return [x for seg in _split(" ".join(rest), env)[0] for x in _unwrap(seg, env, depth + 1)]
    if prog in ("sudo", "doas", "env", "nice", "nohup", "command", "exec", "time", "timeout", "stdbuf", "ionice",
                "chroot", "setsid", "busybox", "unbuffer", "watch"):
        i = 0
        while i < len(rest) and (rest[i].startswith("-") or "=" in rest[i]
                                 or (prog == "timeout" and re.fullmatch(r"[\d.]+[smhd]?", rest[i]))
                                 or (prog in ("nice", "ionice") and re.fullmatch(r"-?\d+", rest[i]))):
            i += 2 if rest[i] in ("-u", "-g", "-n", "-C", "-c", "-s", "-k", "-S") and prog != "env" else 1
        if prog == "chroot" and i < len(rest):
            i += 1
        return again(rest[i:]) if i < len(rest) else [(argv, piped)]
    if prog == "xargs":
        i = 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in ("-I", "-n", "-P", "-d", "-L", "-s", "-E") else 1
        inner = rest[i:] or ["echo"]
        return [(list(inner) + ["/"], False)]  # its arguments come from stdin: assume the worst target
    if prog == "find":
        out: list[tuple[list[str], bool]] = [(argv, piped)]
        for j, a in enumerate(rest):
            if a in ("-exec", "-execdir", "-ok", "-okdir"):
                end = next((k for k in range(j + 1, len(rest)) if rest[k] in (";", "+", "\\;")), len(rest))
                inner = [("/" if x == "{}" else x) for x in rest[j + 1:end]]
                out += again(inner)
        return out
    return [(argv, piped)]


def split_segments(command: str, *, env: Mapping[str, str] | None = None) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """Split a command line into simple commands (argv tuples) and whether it needs a shell.

    Raises :class:`CommandParseError`.
    """
    env = _DEFAULT_ENV if env is None else env
    raw, _, needs_shell = _split(command, env)
    out = [tuple(a) for seg in raw for a, _ in _unwrap(seg, env, 0)]
    return tuple(out), needs_shell


def _flags(args: list[str]) -> str:
    short = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    return short + " " + " ".join(a for a in args if a.startswith("--"))


def _rule(argv: list[str], piped: bool) -> str | None:
    prog = os.path.basename(argv[0])
    args = argv[1:]
    targets = [a.rstrip("/") or "/" for a in args if not a.startswith("-")]
    flags = _flags(args)
    system = [t for t in targets if t in _SYSTEM or t.rstrip("*").rstrip("/") in _SYSTEM or t == "/*"
              or re.fullmatch(r"/[a-z0-9]+/?\*?", t) and t.strip("/*") in {s.strip("/") for s in _SYSTEM}]
    if piped and prog in _INTERPRETERS and not [a for a in args if not a.startswith("-")][:1]:
        return "piping into an interpreter (curl | sh)"
    if prog == "rm":
        if "--no-preserve-root" in flags:
            return "rm --no-preserve-root"
        if ("r" in flags.lower() or "--recursive" in flags) and system:
            return f"recursive delete of a root, home or system folder (rm -r {system[0]})"
    if prog in ("mkfs", "mke2fs", "mkswap", "wipefs", "blkdiscard", "fdisk", "sfdisk", "parted", "sgdisk") or \
            prog.startswith("mkfs."):
        return f"creating or wiping filesystems and partitions ({prog})"
    if prog == "dd" and any(a.startswith("of=") and _DEVICE.match(a[3:]) for a in args):
        return "writing raw to a disk device (dd of=/dev/…)"
    if prog == "shred" and (any(_DEVICE.match(t) for t in targets) or system
                            or any(t.startswith(_WRITE_PROTECTED) for t in targets)):
        return "shredding a disk or system files"
    if prog in ("chmod", "chown", "chgrp") and ("R" in flags or "--recursive" in flags) and system:
        return f"recursive {prog} on a root or system folder"
    if prog in ("chmod",) and any(t == "/" for t in targets):
        return "chmod on /"
    if prog == "mv" and system and targets and targets[0] in system:
        return "moving a root or system folder"
    if prog in ("shutdown", "reboot", "halt", "poweroff", "killall5") or (
            prog == "init" and targets[:1] in (["0"], ["6"])) or (
            prog == "systemctl" and set(args) & {"poweroff", "reboot", "halt", "kexec"}):
        return f"powering off or rebooting the machine ({prog})"
    if prog in ("kill", "pkill") and "-1" in args:
        return "killing every process (kill -1)"
    if prog == "crontab" and "-r" in args:
        return "deleting the crontab (crontab -r)"
    if prog == "git" and args[:1] == ["push"] and (
            set(args) & {"--force", "-f", "--delete", "-d", "--mirror", "--force-with-lease"}
            or any(a.startswith("+") or a.startswith(":") for a in args[1:])):
        return "force-pushing or deleting remote branches (git push --force)"
    if prog == "find" and "-delete" in args and system:
        return "deleting a root or system folder (find / -delete)"
    if prog == "truncate" and any(t.startswith(_WRITE_PROTECTED) for t in targets):
        return "truncating system files"
    cloud = " ".join([prog, *args])
    for pattern, what in ((r"^aws s3 (rb .*--force|rm .*--recursive)", "aws s3 bulk delete"),
                          (r"^gcloud .*\bdelete\b", "gcloud delete"), (r"^az .*\bdelete\b", "az delete"),
                          (r"^kubectl delete (ns|namespace|--all|all\b)", "kubectl delete of namespaces or all"),
                          (r"^terraform (destroy|apply .*-destroy)", "terraform destroy"),
                          (r"^docker system prune", "docker system prune")):
        if re.search(pattern, cloud):
            return f"cloud or cluster deletion ({what})"
    return None


def check_command(command: str, *, env: Mapping[str, str] | None = None) -> GuardVerdict:
    """Check one command line. Never raises: an unparseable line is returned blocked."""
    env = _DEFAULT_ENV if env is None else env
    try:
        raw, targets, needs_shell = _split(command, env)
        simple = [x for seg in raw for x in _unwrap(seg, env, 0)]
    except CommandParseError as e:
        return GuardVerdict(True, f"hard block: cannot parse safely: {e}", (), True)
    segments = tuple(tuple(a) for a, _ in simple)
    for target in targets:
        if _DEVICE.match(target) or target.startswith(_WRITE_PROTECTED):
            return GuardVerdict(True, f"hard block: redirecting output onto a disk or system file (> {target})",
                                segments, needs_shell)
    for argv, piped in simple:
        if reason := _rule(argv, piped):
            return GuardVerdict(True, f"hard block: {reason}", segments, needs_shell)
    if re.search(r":\s*\|\s*:", command):
        return GuardVerdict(True, "hard block: fork bomb", segments, needs_shell)
    return GuardVerdict(False, "", segments, needs_shell)
