"""Starting one command in its sandbox, and collecting what it did.

:mod:`orgctl.runtime.sandboxing` says what the sandbox is (the probe, the
:class:`~orgctl.runtime.sandboxing.Profile`, bubblewrap's arguments); this
module runs a command under it: the pipes bwrap reports and waits on, the
rlimits and the pids cgroup set on its first process before it is released,
the seccomp filter, the output read as it comes (capped), the exit awaited on
a pidfd, and the kill at the timeout. :mod:`orgctl.runtime.commands` calls
:func:`spawn`; MCP servers and workflow phases will too.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orgctl.desired.models import SandboxLimits
from orgctl.runtime import sandboxing

_MIB = 1024 * 1024
_counter = itertools.count()


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


def rlimits(limits: SandboxLimits) -> list[tuple[int, int, int]]:
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
    for pid in (int(p) for p in sandboxing.read_or_empty(str(cgroup / "cgroup.procs")).split()):
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


def spawn(argv: Sequence[str], *, profile: sandboxing.Profile, env: dict[str, str],
          cap: int) -> Finished:
    """Run ``argv`` in the Anima's workspace under ``profile``; stdout and stderr together, ``cap`` bytes kept.

    bwrap builds the sandbox and waits (``--block-fd``) while its first process gets the rlimits and joins
    the pids cgroup; then the command starts. No ``preexec_fn``: the spawn stays a vfork, which costs
    ~2 ms less. Raises :class:`~orgctl.runtime.sandboxing.SandboxUnavailable` when the profile's
    ``refusal`` says so (callers check the policy first, which denies then). A program that cannot start
    is exit 127 with the reason as output.
    """
    if profile.refusal:
        raise sandboxing.SandboxUnavailable(profile.refusal)
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

            for which, soft, hard in rlimits(profile.limits):
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
