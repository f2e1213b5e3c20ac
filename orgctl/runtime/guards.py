"""Hard blocks for destructive shell commands, which no permission can lift.

Called by :class:`orgctl.runtime.permissions.Policy` (:func:`check_command`) on
every command an Anima or cron would run, *before* any permission rule; the
policy then matches its rules against :attr:`GuardVerdict.segments`, one simple
command at a time, and :mod:`orgctl.runtime.commands` asks :func:`split_segments`
whether a line needs a shell.

The check is syntactic and fails closed. A line is tokenized as a POSIX shell
would (quotes, escapes, comments, ``$VAR``/``${VAR}``/``~``/brace expansion),
split on ``|``, ``||``, ``&&``, ``;``, ``&``, newlines and parentheses, and each
simple command is unwrapped through ``sudo``, ``env``, ``sh -c``, ``eval``,
``xargs``, ``find -exec`` and the like, to a bounded depth. What it cannot follow
(``$(...)``, backticks, ``<(...)``, here-docs, ``$'...'``, functions, ``case``)
is refused. Unknown variables expand to ``''`` (``rm -rf $NOPE/`` is ``rm -rf /``);
words only known at run time (``xargs`` input, ``read``/``for`` variables) may be
anything. ``os.environ`` is never read.
"""

from __future__ import annotations

import os.path
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from orgctl.errors import OrgctlError


class CommandParseError(OrgctlError):
    """The command line cannot be parsed safely (unbalanced quotes, unsupported syntax such as $(...),
    backticks, here-docs, process substitution ...)."""


@dataclass(frozen=True)
class GuardVerdict:
    """What :func:`check_command` decided about one command line.

    ``reason`` is ``''`` when not blocked, else one sentence starting with ``hard block:``.
    ``segments``: every simple command found, wrappers unwrapped, as argv tuples (each once, in
    order). ``needs_shell``: the line cannot run as one argv (operators, redirections, expansions,
    globs, or a stripped wrapper or assignment).
    """

    blocked: bool
    reason: str
    segments: tuple[tuple[str, ...], ...]
    needs_shell: bool


_MAX_DEPTH = 6
_DEFAULT_ENV: Mapping[str, str] = {"HOME": "/root"}
_LIT = {c: chr(0xE000 + k) for k, c in enumerate("|;&<>(){}$~#*?[")}  # quoted or escaped specials
_UNLIT = {v: k for k, v in _LIT.items()}
_FD = "\ue020"  # follows the digits of an fd number, as in 2>&1
_UNKNOWN = "\ue021"  # a word only known at run time (xargs input, a read variable)
_REF0 = 0xE100  # chr(_REF0 + k) stands for the k-th variable reference of a parse
_OPS = ("&>>", "&&", "||", ";;", "|&", ">>", ">&", "<&", "&>", ">|", "<>", "<<", "|", ";", "&", "<", ">", "(", ")")
_SEPARATORS = frozenset(("&&", "||", ";;", "|&", "|", ";", "&", "(", ")"))
_WRITES = frozenset((">", ">>", ">|", "&>", "&>>", "<>"))
_KEYWORDS = frozenset("! { } if then else elif fi do done while until esac".split())
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_FD_NUMBER = re.compile(r"\d+(?=[<>])")
_FORK_BOMB = re.compile(r"([^\s(){}|;&]+)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1")
_DISK = re.compile(r"/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|loop|md|dm-|nbd|sr|mtdblock|zram|rbd|r?disk|mapper/|k?mem$)")
_SYSTEM_DIRS = frozenset("bin boot dev etc home lib lib32 lib64 libx32 media mnt opt proc root run sbin snap srv sys"
                         " usr var Applications Library System Users Volumes private".split())
_SYSTEM_FILES = ("/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys")
_STDIN_PATHS = frozenset(("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"))
_SHELL = re.compile(r"(?:ba|z|da|k|mk|a|c|tc|fi)?sh")
# interpreter -> (flags after which code follows, flags taking a value, flags meaning "script on stdin")
_INTERPRETERS = ((_SHELL, "c", "oO", "s"), (re.compile(r"(?:python|pypy)[0-9.]*"), "cm", "WX", ""),
                 (re.compile(r"perl[0-9.]*"), "eE", "IMmx", ""), (re.compile(r"ruby[0-9.]*"), "e", "Ir", ""),
                 (re.compile(r"node(?:js)?"), "ep", "r", ""), (re.compile(r"php[0-9.]*"), "r", "cd", ""),
                 (re.compile(r"lua[0-9.]*"), "e", "l", ""))
# "wrapper, positional words before the wrapped command, options taking a value"
_WRAPPERS = {w.split()[0]: (int(w.split()[1]), frozenset(w.split()[2:])) for w in (
    "sudo 0 -u -g -p -C -D -r -t -U -T -h --user --group --prompt --chdir --role --type --other-user",
    "doas 0 -u -C", "env 0 -u -C -S --unset --chdir --split-string", "nice 0 -n --adjustment", "nohup 0",
    "timeout 1 -s -k --signal --kill-after", "command 0", "exec 0 -a", "time 0 -f -o --format --output",
    "builtin 0", "stdbuf 0 -i -o -e --input --output --error", "ionice 0 -c -n -t --class --classdata",
    "setsid 0", "chroot 1 --userspec --groups", "busybox 0", "flock 1 -w -E --timeout --conflict-exit-code",
    "watch 0 -n -q --interval --equexit", "ssh 1 -B -b -c -D -E -e -F -I -i -J -L -l -m -O -o -p -Q -R -S -W -w",
    "parallel 0 -j -N -n -P -S -a -d -I -E --jobs --arg-file --delimiter --max-procs",
    "xargs 0 -a -d -E -I -L -n -P -s --arg-file --delimiter --eof --max-lines --max-args --max-procs")}

R_FORK_BOMB = "hard block: fork bomb (:(){ :|:& };:)"
R_RM = "hard block: recursive delete of a root, home or system directory (rm -rf /)"
R_RM_UNKNOWN = "hard block: recursive delete of paths only known at run time (xargs rm -rf)"
R_NO_PRESERVE = "hard block: rm --no-preserve-root"
R_FIND = "hard block: mass delete under a root, home or system directory via find (find / -delete)"
R_MKFS = "hard block: creating a filesystem or swap area (mkfs)"
R_DISK_TOOL = "hard block: partitioning, wiping or destroying a disk or volume (fdisk, parted, wipefs)"
R_DISK_WRITE = "hard block: writing onto a raw disk device (dd of=/dev/sda, > /dev/sda)"
R_SYSTEM_WRITE = "hard block: overwriting a file in a system directory (> /etc/passwd)"
R_DESTROY = "hard block: shredding or truncating a disk device or system file (shred /dev/sda)"
R_PERMS = "hard block: recursive chmod/chown/chgrp of a root, home or system directory (chmod -R 777 /)"
R_MOVE = "hard block: moving a root, home or system directory (mv /* /dev/null)"
R_KILL = "hard block: killing init or every process (kill -9 -1)"
R_POWER = "hard block: shutting down or rebooting the machine (shutdown, reboot)"
R_CRONTAB = "hard block: removing the whole crontab (crontab -r)"
R_GIT_PUSH = "hard block: rewriting or deleting remote git history (git push --force / --delete)"
R_PIPE_SHELL = "hard block: piping into an interpreter (curl | sh)"
R_INFRA = "hard block: destroying infrastructure (terraform destroy, pulumi destroy)"
R_K8S = "hard block: deleting Kubernetes namespaces or every resource (kubectl delete namespace / --all)"
R_DOCKER = "hard block: pruning all Docker images or volumes (docker system prune -a)"
# (program, positional words in this order, one of these flags (none: no flag needed), reason)
_SUBCOMMANDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("aws", ("s3", "rb"), ("--force",), "hard block: deleting an S3 bucket with its contents (aws s3 rb --force)"),
    ("aws", ("s3", "rm"), ("--recursive",), "hard block: recursive S3 delete (aws s3 rm --recursive)"),
    ("gsutil", ("rm",), ("-r", "-R", "-a"), "hard block: recursive Cloud Storage delete (gsutil rm -r)"),
    ("gcloud", ("projects", "delete"), (), "hard block: deleting a cloud project (gcloud projects delete)"),
    ("az", ("group", "delete"), (), "hard block: deleting an Azure resource group (az group delete)"),
    *(("kubectl", ("delete", ns), (), R_K8S) for ns in ("ns", "namespace", "namespaces")),
    ("kubectl", ("delete",), ("--all", "--all-namespaces", "-A"), R_K8S),
    *((tool, ("destroy",), (), R_INFRA) for tool in ("terraform", "tofu", "pulumi")),
    ("terraform", ("apply",), ("-destroy", "--destroy"), R_INFRA),
    ("docker", ("system", "prune"), ("-a", "--all", "--volumes"), R_DOCKER),
    ("docker", ("volume", "prune"), (), R_DOCKER),
    *((tool, (verb,), (), R_DISK_TOOL) for tool, verb in (("zpool", "destroy"), ("zfs", "destroy"),
                                                          ("cryptsetup", "luksFormat"), ("cryptsetup", "erase"))),
    ("mdadm", (), ("--zero-superblock",), R_DISK_TOOL),
    *(("systemctl", (verb,), (), R_POWER) for verb in ("poweroff", "reboot", "halt", "kexec", "soft-reboot")),
    *((init, (level,), (), R_POWER) for init in ("init", "telinit") for level in ("0", "6")),
)
_ALWAYS = {**dict.fromkeys("mke2fs mkswap mkdosfs mkntfs mkexfatfs".split(), R_MKFS),
           **dict.fromkeys("wipefs blkdiscard sgdisk sfdisk fdisk cfdisk gdisk parted lvremove vgremove pvremove"
                           .split(), R_DISK_TOOL),
           **dict.fromkeys("shutdown reboot halt poweroff".split(), R_POWER), "killall5": R_KILL}


class _Op(str):
    """An unquoted shell operator token (a plain str is a word)."""


@dataclass(frozen=True)
class _Scope:
    """Variables, working directory (None: unknown), stdin is a pipe, nesting depth, and the
    start path that ``{}`` stands for inside ``find -exec``."""

    env: Mapping[str, str]
    cwd: str | None = None
    piped: bool = False
    depth: int = 0
    fill: str | None = None


@dataclass(frozen=True)
class _Cmd:
    """One simple command as it will run (``argv`` may hold _UNKNOWN and find's ``{}``)."""

    argv: tuple[str, ...]
    scope: _Scope
    redirects: tuple[tuple[str, str], ...] = ()

    @property
    def shown(self) -> tuple[str, ...]:
        return tuple(a.replace(_UNKNOWN, "{}") for a in self.argv if a != _UNKNOWN)

    @property
    def words(self) -> tuple[str, ...]:
        fill = self.scope.fill
        return self.argv if fill is None else tuple(a.replace("{}", fill) for a in self.argv)


@dataclass
class _Ctx:
    refs: list[tuple[str, str, str | None, bool]] = field(default_factory=list)  # name, op, default, quoted
    shell: bool = False


def split_segments(
    command: str, *, env: Mapping[str, str] | None = None
) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """Split a command line into simple commands (argv tuples) and whether it needs a shell.

    Wrappers are unwrapped (``sudo rm x`` gives ``("rm", "x")``), ``VAR=value`` prefixes and
    redirections dropped, each argv listed once; when the flag is False the line is exactly its
    one argv. ``env`` feeds expansion (default ``{"HOME": "/root"}``). Raises :class:`CommandParseError`.
    """
    cmds, shell = _split(command, env)
    return tuple(dict.fromkeys(c.shown for c in cmds if c.shown)), shell


def check_command(command: str, *, env: Mapping[str, str] | None = None) -> GuardVerdict:
    """Decide whether ``command`` hits a hard block; see :class:`GuardVerdict`.

    Never raises: an unparseable command is returned blocked with reason
    ``'hard block: cannot parse safely: ...'`` (so is one that trips an internal error).
    """
    if _FORK_BOMB.search(command):
        return GuardVerdict(True, R_FORK_BOMB, (), True)
    try:
        cmds, shell = _split(command, env)
        reason = next((r for r in map(_check, cmds) if r), "")
    except CommandParseError as e:
        return GuardVerdict(True, f"hard block: cannot parse safely: {e}", (), True)
    except Exception as e:  # fail closed: a guard that crashes must not let the command through
        return GuardVerdict(True, f"hard block: cannot parse safely: internal error ({type(e).__name__})", (), True)
    return GuardVerdict(bool(reason), reason, tuple(dict.fromkeys(c.shown for c in cmds if c.shown)), shell)


def _split(command: str, env: Mapping[str, str] | None) -> tuple[list[_Cmd], bool]:
    if re.search("[\ue000-\uf8ff]", command):
        raise CommandParseError("private-use characters in the command")
    return _parse(command, _Scope(env=dict(_DEFAULT_ENV if env is None else env)))


def _parse(text: str, scope: _Scope) -> tuple[list[_Cmd], bool]:
    """Parse shell ``text`` into unwrapped simple commands; second item: it needs a shell."""
    if scope.depth > _MAX_DEPTH:
        raise CommandParseError("commands nested too deeply")
    ctx = _Ctx()
    lexer = shlex.shlex(_prepass(text, ctx), posix=True, punctuation_chars="|;&<>()")
    lexer.whitespace_split, lexer.commenters = True, ""
    try:
        raw = list(lexer)
    except ValueError as e:
        raise CommandParseError(str(e)) from e
    segs: list[tuple[list[str], list[tuple[str, str]], bool]] = []
    words: list[str] = []
    redirects: list[tuple[str, str]] = []
    piped, pending = scope.piped, ""
    for tok in (o for t in raw for o in (_operators(t) if t[:1] and t[0] in "|;&<>()" else [t])):
        if pending and isinstance(tok, _Op):
            raise CommandParseError(f"redirection {pending} without a target")
        if pending:
            redirects.append((pending, tok))
            pending = ""
        elif isinstance(tok, _Op) and tok in _SEPARATORS:
            if tok == "(" and words:
                raise CommandParseError("function definitions are not supported")
            segs.append((words, redirects, piped))
            piped = tok in ("|", "|&") or scope.piped or (tok == "(" and not words and piped)
            words, redirects = [], []
        elif isinstance(tok, _Op):
            pending = tok
        elif not tok.endswith(_FD):
            words.append(tok)
        ctx.shell = ctx.shell or isinstance(tok, _Op)
    if pending:
        raise CommandParseError(f"redirection {pending} without a target")
    segs.append((words, redirects, piped))
    env, cwd, cmds = dict(scope.env), scope.cwd, []
    for words, redirects, piped in segs:
        while words and words[0] in _KEYWORDS:
            words.pop(0)
        if words and words[0] in ("case", "function", "coproc", "select"):
            raise CommandParseError(f"'{words[0]}' is not supported")
        if words[:1] == ["for"]:
            env.update({words[1]: _UNKNOWN} if len(words) > 1 else {})
            continue
        here = replace(scope, env=env, cwd=cwd, piped=piped)
        targets = tuple((op, t) for op, w in redirects for t in _expand(w, ctx, env) or [""])
        cmds += [_Cmd((), here, targets)] if targets else []
        assigns = {}
        while words and _ASSIGN.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            assigns[name] = " ".join(_expand(value, ctx, env))
        argv = tuple(a for w in words for a in _expand(w, ctx, env))
        if not argv:
            env.update(assigns)
            continue
        prog, args = os.path.basename(argv[0]), argv[1:]
        if prog in ("export", "declare", "typeset", "local", "readonly"):
            env.update({k: v for k, _, v in (a.partition("=") for a in args if _ASSIGN.match(a))})
        elif prog in ("read", "mapfile", "readarray"):
            env.update((a, _UNKNOWN) for a in args if _NAME.fullmatch(a))
        elif prog in ("cd", "pushd"):
            dest = next((a for a in args if not a.startswith("-") or a == "-"), env.get("HOME") or "/root")
            cwd = None if dest == "-" else _path(dest, cwd)
        inner = _unwrap(argv, replace(here, env={**env, **assigns}))
        ctx.shell = ctx.shell or bool(assigns) or [c.argv for c in inner] != [argv]
        cmds += inner
    return cmds, ctx.shell or len(segs) > 1


def _operators(run: str) -> list[str]:
    """Split a run of operator characters (``;&&``, ``)|(``) into operators."""
    ops: list[str] = []
    while run:
        op = next((o for o in _OPS if run.startswith(o)), "<<")
        if op == "<<":
            raise CommandParseError(f"unsupported operator {run!r}")
        ops.append(_Op(op))
        run = run[len(op):]
    return ops


def _prepass(text: str, ctx: _Ctx) -> str:
    """Rewrite ``text`` for shlex: protect quoted specials, record variable references, drop comments."""
    out: list[str] = []
    i, n, quote = 0, len(text), ""
    while i < n:
        c, nxt = text[i], text[i + 1:i + 2]
        if quote == "'":
            quote = "" if c == "'" else quote
            out.append(_LIT.get(c, c))
        elif c == "\\":
            if not nxt:
                raise CommandParseError("trailing backslash")
            if quote and nxt not in '"\\$`\n':  # inside "...", this backslash is a plain character
                out.append(c)
                i += 1
                continue
            if nxt != "\n":  # backslash-newline continues the line
                out.append(_LIT.get(nxt, nxt if nxt == "`" else c + nxt))
            i += 1
        elif c == '"' or (c == "'" and not quote):
            quote = "" if quote == c else c
            out.append(c)
        elif c == "`":
            raise CommandParseError("backtick command substitution")
        elif c == "$":
            i = _reference(text, i, quote, out, ctx)
            continue
        elif quote:
            out.append(_LIT.get(c, c))
        elif c == "#" and (not out or out[-1][-1] in " \t;|&()<>"):
            i = text.find("\n", i)  # a comment runs to the end of the line
            i = n if i < 0 else i
            continue
        elif c == "\n":
            last = next((t[-1] for t in reversed(out) if t.strip()), "")
            out.append(" " if last in ("", "|", "&", ";", "(") else ";")
        elif c in "<>" and nxt == "(" or text.startswith("<<", i):
            raise CommandParseError("process substitution" if nxt == "(" else "here-documents are not supported")
        elif c.isdigit() and (m := _FD_NUMBER.match(text, i)) and (not out or out[-1][-1] in " \t;|&()"):
            out.append(m.group() + _FD)
            i += len(m.group())
            continue
        else:
            ctx.shell = ctx.shell or c in "*?[\n"
            out.append(c)
        i += 1
    if quote:
        raise CommandParseError("unbalanced quotes")
    return "".join(out)


def _reference(text: str, i: int, quote: str, out: list[str], ctx: _Ctx) -> int:
    """Record the variable reference at ``text[i]`` (a ``$``); return the index after it."""
    nxt, op, default = text[i + 1:i + 2], "", None
    if nxt == "(" or (nxt in ("'", '"') and nxt and not quote):
        raise CommandParseError("command substitution $(...)" if nxt == "(" else "$'...' quoting")
    if m := _NAME.match(text, i + 1):
        name, end = m.group(), m.end()
    elif nxt and nxt in "0123456789@*#?$!-":
        name, end = nxt, i + 2
    elif nxt == "{":
        close = text.find("}", i)
        body = text[i + 2:close] if close > 0 else text[i + 2:]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])(?:(:?[-=?+])([^$`'\"\\]*))?", body)
        if not m or close < 0:
            raise CommandParseError(f"unsupported parameter expansion ${{{body}}}")
        name, op, default, end = m.group(1), m.group(2) or "", m.group(3), close + 1
    else:
        out.append(_LIT["$"])
        return i + 1
    if len(ctx.refs) >= 0x700:
        raise CommandParseError("too many variable references")
    ctx.refs.append((name, op, default, bool(quote)))
    ctx.shell = True
    out.append(chr(_REF0 + len(ctx.refs) - 1))
    return end


def _expand(word: str, ctx: _Ctx, env: Mapping[str, str]) -> list[str]:
    """Expand one shlex word into fields: ``~``, variable references, word splitting, braces."""
    protect = _LIT.get
    if word[:1] == "~" and re.fullmatch(r"[\w.-]*", head := word[1:].partition("/")[0]):
        home = (env.get("HOME") or "/root") if not head else "/root" if head == "root" else f"/home/{head}"
        word, ctx.shell = "".join(protect(c, c) for c in home) + word[1 + len(head):], True
    fields, cur, keep_empty = [], "", word == ""
    for ch in word:
        if not 0 <= (k := ord(ch) - _REF0) < len(ctx.refs):
            cur += ch
            continue
        name, op, default, quoted = ctx.refs[k]
        value = env.get(name)
        unset = value is None or (op.startswith(":") and value == "")
        if op.endswith(("-", "=")) and unset:  # ${X:-word}
            value = default
        elif op.endswith("+"):  # ${X:+word}
            value = "" if unset else default
        value = "".join(protect(c, c) for c in value or "")
        if quoted:
            cur, keep_empty = cur + value, True
            continue
        first, *rest = re.split(r"[ \t\n]+", value)  # unquoted: split into fields
        cur += first
        for piece in rest:
            fields.append(cur)
            cur = piece
    expanded = [b for f in [*fields, cur] if f or keep_empty for b in _braces(f)]
    ctx.shell = ctx.shell or len(expanded) > len(fields) + 1
    return ["".join(_UNLIT.get(c, c) for c in f) for f in expanded]


def _braces(word: str) -> list[str]:
    """Brace-expand ``a{b,c}d`` (comma lists only, nesting allowed, at most 256 results)."""
    for i in (i for i, ch in enumerate(word) if ch == "{"):
        depth, cuts = 0, [i]
        for j in range(i, len(word)):
            depth += {"{": 1, "}": -1}.get(word[j], 0)
            cuts += [j] if (word[j] == "," and depth == 1) or depth == 0 else []
            if depth == 0:
                break
        if depth == 0 and len(cuts) > 2:
            prefix, suffix = word[:i], word[cuts[-1] + 1:]
            done = [w for a, b in zip(cuts, cuts[1:], strict=False) for w in _braces(prefix + word[a + 1:b] + suffix)]
            if len(done) > 256:
                raise CommandParseError("brace expansion too large")
            return done
    return [word]


def _unwrap(argv: tuple[str, ...], scope: _Scope) -> list[_Cmd]:
    """The simple commands ``argv`` really runs: itself, or what its wrapper or shell runs."""
    if scope.depth > _MAX_DEPTH:
        raise CommandParseError("commands nested too deeply")
    prog, args = os.path.basename(argv[0]), list(argv[1:])
    deeper, here = replace(scope, depth=scope.depth + 1), [_Cmd(argv, scope)]
    mode, rest = _interpreter_mode(prog, args) or ("", [])
    if mode == "code" and _SHELL.fullmatch(prog):  # sh -c CODE [$0 $1 ...]
        params = {str(k): v for k, v in enumerate(rest[1:])}
        params["@"] = params["*"] = " ".join(rest[2:])
        return _parse(rest[0], replace(deeper, env={**scope.env, **params}))[0] if rest else here
    if prog == "eval":
        return _parse(" ".join(args), deeper)[0]
    if prog in ("alias", "trap"):  # code that runs later: check it now
        code = [a.partition("=")[2] for a in args if "=" in a] if prog == "alias" else args[:1]
        code = [text for text in code if text.strip() not in ("", "-")]
        return here + [c for text in code for c in _parse(text, deeper)[0]]
    if prog in ("su", "runuser", "script", "flock"):  # -c CODE, anywhere
        k = next((k for k, a in enumerate(args[:-1]) if a == "--command" or re.fullmatch(r"-[a-z]*c", a)), None)
        if k is not None or prog != "flock":
            return here if k is None else _parse(args[k + 1], deeper)[0]
    if prog == "find":
        roots, execs, _ = _find_parts(args)
        return here + [c for e in execs if e for r in roots for c in _unwrap(tuple(e), replace(deeper, fill=r))]
    if prog not in _WRAPPERS:
        return here
    opts, assigns, rest = _wrapper_args(prog, args)
    deeper = replace(deeper, env={**scope.env, **assigns})
    if prog == "command" and {"-v", "-V"} & opts.keys():
        return here
    if prog == "env" and {"-S", "--split-string"} & opts.keys():
        split = opts.get("-S", opts.get("--split-string", ""))
        return _parse(" ".join([split, *map(shlex.quote, rest)]), deeper)[0]
    if prog in ("ssh", "watch"):  # they run their words as shell code
        return _parse(" ".join(rest), deeper)[0] if rest else here
    if prog in ("xargs", "parallel"):  # input words become arguments
        rest = (rest[:rest.index(":::")] if ":::" in rest else rest) or ["echo"]
        default = prog == "parallel" or bool({"-i", "--replace"} & opts.keys())
        repl = opts.get("-I") or opts.get("--replace") or ("{}" if default else "")
        has_repl = bool(repl) and any(repl in a for a in rest)
        rest = [a.replace(repl, _UNKNOWN) for a in rest] if has_repl else [*rest, _UNKNOWN]
    if not rest and prog == "sudo" and {"-s", "-i"} & opts.keys():
        rest = ["sh"]
    return _unwrap(tuple(rest), deeper) if rest else here


def _interpreter_mode(prog: str, args: Sequence[str]) -> tuple[str, list[str]] | None:
    """For an interpreter: ``("code" | "script" | "stdin", words after its options)``; else None."""
    spec = next((s for s in _INTERPRETERS if s[0].fullmatch(prog)), None)
    if spec is None:
        return None
    pattern, code_flags, value_flags, stdin_flags = spec
    shell, mode, i = pattern is _SHELL, "", 0
    while i < len(args) and not (mode == "code" and not shell):
        a = args[i]
        if a in ("-", "--") or len(a) < 2 or a[0] not in ("-+" if shell else "-"):
            mode, i = (mode or "stdin", i + 1) if a == "-" else (mode, i + (a == "--"))
            break
        i += 1
        if a.startswith("--"):
            mode = "code" if a.split("=")[0] in ("--eval", "--print", "--command") else mode
            i += a in ("--rcfile", "--init-file", "--require")
            continue
        for k, ch in enumerate(a[1:], 2):
            mode = "code" if ch in code_flags else "stdin" if ch in stdin_flags and not mode else mode
            if ch in value_flags or (ch in code_flags and not shell):
                i += k == len(a)  # the value is the next word
                break
    rest = list(args[i:])
    return (mode or ("stdin" if not rest or rest[0] in _STDIN_PATHS else "script")), rest


def _wrapper_args(prog: str, args: Sequence[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Options, ``VAR=value`` assignments and the wrapped command of wrapper ``prog``."""
    npos, takes = _WRAPPERS[prog]
    opts: dict[str, str] = {}
    assigns: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        a = args[i]
        if prog in ("env", "sudo") and _ASSIGN.match(a):
            assigns[a.partition("=")[0]] = a.partition("=")[2]
        elif a == "-" and prog == "env":
            opts["-i"] = ""
        elif a.startswith("--"):
            key, eq, value = a.partition("=")
            if key in takes and not eq:  # --user root
                value, i = (args[i + 1] if i + 1 < len(args) else ""), i + 1
            opts[key] = value
        elif a.startswith("-") and len(a) > 1:
            for k, ch in enumerate(a[1:], 2):  # a cluster: -nu root, -uroot
                opts["-" + ch] = ""
                if "-" + ch in takes:
                    opts["-" + ch] = a[k:] or (args[i + 1] if i + 1 < len(args) else "")
                    i += k == len(a)  # the value was the next word
                    break
        else:
            break
        i += 1
    return opts, assigns, list(args[i + (args[i:i + 1] == ["--"]) + npos:])


def _find_parts(args: Sequence[str]) -> tuple[list[str], list[list[str]], bool]:
    """Start paths, ``-exec``/``-execdir``/``-ok`` commands, and whether ``-delete`` is present."""
    i = 0
    while i < len(args) and (args[i] in ("-H", "-L", "-P", "-D") or args[i].startswith("-O")):
        i += 2 if args[i] == "-D" else 1
    roots = []
    while i < len(args) and not args[i].startswith("-") and args[i] not in ("(", "!", ","):
        roots.append(args[i])
        i += 1
    execs, delete = [], False
    while i < len(args):
        delete = delete or args[i] == "-delete"
        if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(args) and args[j] != ";" and not (args[j] == "+" and args[j - 1] == "{}"):
                j += 1
            execs.append(list(args[i + 1:j]))
            i = j
        i += 1
    return roots or ["."], execs, delete


def _check(cmd: _Cmd) -> str:
    """The hard-block reason for one unwrapped simple command, or ''."""
    for op, target in cmd.redirects:
        target = target if cmd.scope.fill is None else target.replace("{}", cmd.scope.fill)
        if op in _WRITES or (op == ">&" and not target.isdigit() and target != "-"):
            kind = _kind(target, cmd)
            if "d" in kind or "s" in kind:
                return R_DISK_WRITE if "d" in kind else R_SYSTEM_WRITE
    if not cmd.words:
        return ""
    prog, args = os.path.basename(cmd.words[0]), list(cmd.words[1:])
    mode = (_interpreter_mode(prog, args) or ("",))[0]
    if cmd.scope.piped and (mode == "stdin" or (prog in ("source", ".") and (args or ["-"])[0] in _STDIN_PATHS)):
        return R_PIPE_SHELL
    if prog in _ALWAYS or prog.startswith("mkfs"):
        return _ALWAYS.get(prog, R_MKFS)
    positional = [a for a in args if not a.startswith("-")]
    for name, path, flags, reason in _SUBCOMMANDS:
        in_order = iter(positional)
        if prog == name and all(p in in_order for p in path) and (not flags or any(_has(args, f) for f in flags)):
            return reason
    return _rule(cmd, prog, args)


def _rule(cmd: _Cmd, prog: str, args: list[str]) -> str:
    """The rules that look at options and operands."""
    opts, operands = _options(args)
    kinds = [_kind(o, cmd) for o in operands]
    last = kinds[-1] if kinds else ""

    def hit(letters: str, among: Sequence[str] = kinds) -> bool:
        return any(set(k) & set(letters) for k in among)

    if prog == "rm" and _flag(opts, "", "no-preserve-root"):
        return R_NO_PRESERVE
    if prog == "rm" and _flag(opts, "rR", "recursive"):
        return R_RM_UNKNOWN if hit("u") else R_RM if hit("p") else ""
    if prog == "rsync" and any(o.startswith(("--del", "--remove-source")) for o in opts) and hit("p"):
        return R_RM
    if prog in ("chmod", "chown", "chgrp"):
        recursive = _flag(opts, "R", "recursive") and hit("up")
        return R_PERMS if recursive or any(_path(o, cmd.scope.cwd) == "/" for o in operands) else ""
    if prog in ("mv", "cp", "install") and "d" in last:
        return R_DISK_WRITE
    if prog == "mv" and hit("p", kinds if _flag(opts, "t", "target-directory") else kinds[:-1]):
        return R_MOVE
    if prog == "dd" and any(a.startswith("of=") and "d" in _kind(a[3:], cmd) for a in args):
        return R_DISK_WRITE
    if prog == "tee" and hit("ds"):
        return R_DISK_WRITE if hit("d") else R_SYSTEM_WRITE
    if prog in ("shred", "truncate", "wipe", "srm") and hit("dsp"):
        return R_DESTROY
    if prog == "find":
        roots, execs, delete = _find_parts(args)
        ran = (os.path.basename(c.argv[0]) for e in execs if e for c in _unwrap(tuple(e), cmd.scope) if c.argv)
        deleting = delete or any(p in ("rm", "unlink", "shred") for p in ran)
        return R_FIND if deleting and hit("p", [_kind(r, cmd) for r in roots]) else ""
    if prog == "kill":
        return R_KILL if {"1", "-1"} & set(_kill_targets(args)) else ""
    if prog in ("pkill", "killall"):
        root_user = r"(?:^| )(?:-[uU] ?|--(?:e?uid|user)[= ])(?:root|0)(?:[ ,]|$)"
        return R_KILL if re.search(root_user, " ".join(args)) else ""
    if prog == "crontab":
        return R_CRONTAB if _flag(opts, "r") else ""
    if prog == "git":
        i = 0
        while i < len(args) and args[i].startswith("-"):
            i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") else 1
        opts, operands = _options(args[i + 1:]) if args[i:i + 1] == ["push"] else ([], [])
        forced = _flag(opts, "fd", "force", "force-with-lease", "delete", "mirror", "prune")
        return R_GIT_PUSH if forced or any(o.startswith(("+", ":")) for o in operands) else ""
    return ""


def _kill_targets(args: Sequence[str]) -> list[str]:
    """The pids of ``kill args``: the first option is the signal, later ones (``-1``) are pids."""
    pids: list[str] = []
    signal, i = False, 0
    while i < len(args):
        a = args[i]
        if a in ("-l", "-L", "--list", "--table"):
            return []
        if a == "--":
            return pids + list(args[i + 1:])
        if a in ("-s", "-n", "--signal"):
            signal, i = True, i + 1
        elif a.startswith("-") and len(a) > 1 and not signal:
            signal = True
        else:
            pids.append(a)
        i += 1
    return pids


def _options(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """GNU-style split into options (anywhere before ``--``) and operands."""
    cut = list(args).index("--") if "--" in args else len(args)
    opts = [a for a in args[:cut] if a.startswith("-") and len(a) > 1]
    return opts, [a for a in args[:cut] if a not in opts] + list(args[cut + 1:])


def _flag(opts: Sequence[str], short: str, *long: str) -> bool:
    """Any of the ``short`` letters in a cluster, or a (possibly abbreviated) ``--long`` option."""
    for o in opts:
        if o.startswith("--") and len(o) > 2 and any(n.startswith(o[2:].split("=")[0]) for n in long):
            return True
        if not o.startswith("--") and set(o[1:]) & set(short):
            return True
    return False


def _has(args: Sequence[str], flag: str) -> bool:
    short = len(flag) == 2 and flag[1] != "-"
    return any(a == flag or a.startswith(flag + "=") or (short and a[:1] == "-" and a[1:2] != "-" and flag[1] in a)
               for a in args)


def _path(p: str, cwd: str | None) -> str | None:
    """``p`` made absolute and normalized, or None when relative to an unknown directory."""
    if not p.startswith("/") and cwd is None:
        return None
    return "/" + os.path.normpath(p if p.startswith("/") else f"{cwd}/{p}").lstrip("/")


def _kind(p: str, cmd: _Cmd) -> str:
    """What path ``p`` is: letters u (only known at run time), d (disk device), s (in a system
    directory), p (protected: ``/``, a home, a top-level system directory, or a glob over one)."""
    a = _path(p, cmd.scope.cwd)
    if _UNKNOWN in p or a is None:
        return "u" if _UNKNOWN in p else ""
    system = any(a == d or a.startswith(d + "/") for d in _SYSTEM_FILES)
    return "d" * bool(_DISK.match(a)) + "s" * system + "p" * _protected(a, cmd.scope.env.get("HOME") or "/root")


def _protected(a: str, home: str) -> bool:
    parts = a.strip("/").split("/")
    if a in ("/", _path(home, None)) or any(c in parts[0] for c in "*?["):
        return True
    if parts[0] in _SYSTEM_DIRS and (len(parts) == 1 or (len(parts) == 2 and parts[0] in ("home", "Users", "usr"))):
        return True
    glob = set(parts[-1])
    return glob <= set("*?.") and bool(glob & set("*?")) and _protected(os.path.dirname(a), home)
