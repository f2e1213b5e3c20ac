"""The kernel's sandbox on real processes: escapes through allowed commands fail, with nothing outside changed.

Each command of the corpus runs through :func:`orgctl.runtime.commands.run_command` -- the runtime's own path,
past the permission parser, as if a pattern had let it through -- in a real bubblewrap sandbox on this
kernel. Around it lies a planted world: a state dir with a supervisor socket listening, another Anima's
workspace, the runtime's clone, an org checkout with a ``.env``, a home with keys, a loopback HTTP server, a
UDP socket and an abstract Unix socket, all holding a secret marker (under /var/tmp: the sandbox's /tmp is
its own). Every file of that world is hashed
before and after the corpus; no command's output may carry the marker.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orgctl.desired.models import SandboxConfig, SandboxLimits
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.gitops.repos import prepare_workspace
from orgctl.paths import workspace_git_dir
from orgctl.runtime import sandboxing
from orgctl.runtime.commands import CommandResult, run_command
from tests.conftest import git, run_cli

SECRET = f"SECRET-{uuid.uuid4().hex}"
DISK = next((f"/dev/{d}" for d in sorted(os.listdir("/dev")) if d.startswith(("vd", "sd", "nvme", "xvd"))),
            "/dev/sda")
LIMITS = SandboxLimits(cpu_seconds=2, memory_mb=1024, open_files=64, processes=64, file_size_mb=1, tmp_mb=16,
                       timeout_seconds=4)


@dataclass
class World:
    """The planted world around bob's workspace: paths, and the servers that count what reaches them."""

    root: Path
    state: Path
    workspace: Path
    org: Path
    home: Path
    socket_path: Path
    http_port: int
    http_hits: list[str]
    udp: socket.socket
    abstract: str
    victim: subprocess.Popen[bytes]

    def profile(self, *, network: bool = False, mode: str = "on", read_only: tuple[str, ...] = (),
                limits: SandboxLimits = LIMITS) -> sandboxing.Profile:
        return sandboxing.profile_for(permissions=PermissionsFrontmatter(network=network),
                                      config=SandboxConfig(mode=mode, limits=limits, read_only=list(read_only)),
                                      workspace=self.workspace)

    def fingerprint(self) -> dict[str, str]:
        """sha256 of every file of the world outside bob's workspace, and of a few of the host's own."""
        prints = {}
        for path in sorted(self.root.rglob("*")):
            if self.workspace in path.parents or path.is_socket() or not path.is_file():
                continue
            prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        for host in ("/etc/passwd", "/etc/hosts", os.path.expanduser("~/.bashrc")):
            if os.path.isfile(host):
                prints[host] = hashlib.sha256(Path(host).read_bytes()).hexdigest()
        prints["escape markers"] = " ".join(sorted(str(p) for p in Path(os.path.expanduser("~")).glob(
            ".orgctl-escape*"))) + " ".join(sorted(str(p) for p in Path("/tmp").glob("orgctl-escape*")))
        return prints


@pytest.fixture
def world() -> Iterator[World]:
    """Under /var/tmp, not /tmp: inside, /tmp is the sandbox's own tmpfs, which would hide a world there."""
    tmp_path = Path(tempfile.mkdtemp(prefix="orgctl-sandbox-test-", dir="/var/tmp"))
    state = tmp_path / "state"
    source = tmp_path / "source"  # the org repo the workspace is a checkout of, as apply makes it
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    (source / "README.md").write_text("bob's workspace\n")
    git(source, "add", "README.md")
    git(source, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (source / "README.md").write_text("bob's workspace, again\n")
    git(source, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    workspace = prepare_workspace(source, state / "workspaces" / "bob", revision=None)
    for rel in ("inventory.json", "work/events.jsonl", "workspaces/alice/notes.md",
                "clone/animas/bob/memory/knowledge/facts.md", "usage.jsonl"):
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_text(f"{rel}: {SECRET}\n")
    org = tmp_path / "acme"
    org.mkdir()
    (org / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".bashrc").write_text("# the user's shell\n")
    (home / ".ssh" / "id_ed25519").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n")
    (home / "victim").mkdir()
    (home / "victim" / "keep.txt").write_text("keep me\n")
    (state / "run").mkdir()
    sock_path = state / "run" / "supervisor.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(sock_path))
    unix.listen()
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"served\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract = f"orgctl-test-{uuid.uuid4().hex}"
    abstract_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_sock.bind("\0" + abstract)
    abstract_sock.listen()
    victim = subprocess.Popen(["sleep", "120"])
    yield World(tmp_path, state, workspace, org, home, sock_path, server.server_address[1], hits, udp, abstract,
                victim)
    victim.kill()
    victim.wait()
    server.shutdown()
    for s in (unix, udp, abstract_sock):
        s.close()
    shutil.rmtree(tmp_path)


@pytest.fixture(autouse=True)
def _needs_a_sandbox() -> None:
    kernel = sandboxing.probe(sandboxing._find_bwrap())
    if kernel.error:
        pytest.fail(f"this machine should run the sandbox (CI installs what it needs): {kernel.error}")


def py(code: str) -> str:
    """A ``python3 -c`` command line for ``code`` (this interpreter, which the sandbox mounts read-only)."""
    return f"{sys.executable} -c {shlex.quote(code)}"


def corpus(w: World) -> list[tuple[str, str]]:
    """(what it tries, command): escapes that an allowed pattern could let through."""
    s, h = w.state, w.home
    connect_unix = ("import socket; c = socket.socket(socket.AF_UNIX); c.settimeout(2); "
                    f"c.connect({str(w.socket_path)!r}); print('connected')")
    return [
        ("git log --output overwrites a file in the home", f"git log --oneline --output={h}/.bashrc"),
        ("git diff --output writes into the real home", "git diff --stat HEAD~1 --output=" +
         os.path.expanduser("~/.orgctl-escape-1")),
        ("pytest --basetemp deletes a directory outside", f"pytest -q -p no:cacheprovider --basetemp={h}/victim"),
        ("a planted conftest.py runs code on pytest -q", "pytest -q -p no:cacheprovider"),
        ("appending to the shell's rc file", f"sh -c 'echo pwned >> {h}/.bashrc'"),
        ("writing the state dir's inventory", f"sh -c 'echo forged > {s}/inventory.json'"),
        ("writing another Anima's workspace", f"sh -c 'echo forged > {s}/workspaces/alice/notes.md'"),
        ("writing the runtime's clone (memory)", f"sh -c 'echo forged > {s}/clone/animas/bob/memory/knowledge/x.md'"),
        ("writing a system file", "sh -c 'echo forged >> /etc/passwd'"),
        ("installing a program system-wide", "sh -c 'echo forged > /usr/local/bin/orgctl-escape'"),
        ("a symlink in the workspace to a file outside", f"sh -c 'ln -sf {h}/.bashrc link; echo pwned > link'"),
        ("a hard link to the state dir", f"ln {s}/inventory.json hard-link"),
        ("moving the state dir's files in", f"mv {s}/inventory.json ."),
        ("deleting another Anima's workspace", f"rm -r {s}/workspaces/alice"),
        ("a file left in the host's /tmp", "sh -c 'echo x > /tmp/orgctl-escape-3'"),
        ("reading the org's .env", f"cat {w.org}/.env"),
        ("reading the event stream", f"cat {s}/work/events.jsonl"),
        ("reading an SSH key", f"cat {h}/.ssh/id_ed25519"),
        ("listing the state dir", f"ls -la {s}"),
        ("reading /etc/shadow", "cat /etc/shadow"),
        ("reading the test process's environment", f"cat /proc/{os.getpid()}/environ"),
        ("finding a key in its own environment", "env"),
        ("HTTP to a loopback server", f"curl -sS --max-time 2 http://127.0.0.1:{w.http_port}/stolen"),
        ("UDP to a loopback socket", py("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                                        f".sendto(b'stolen', ('127.0.0.1', {w.udp.getsockname()[1]}))")),
        ("the supervisor's control socket", py(connect_unix)),
        ("an abstract Unix socket of the host", py("import socket; c = socket.socket(socket.AF_UNIX); "
                                                   f"c.connect('\\0{w.abstract}'); print('connected')")),
        ("killing a process of the host", f"kill -9 {w.victim.pid}"),
        ("a new user namespace (to gain capabilities)", "unshare -Ur id"),
        ("mounting over a system directory", "mount -t tmpfs none /usr"),
        ("reading the host's disk", f"head -c 512 {DISK}"),
        ("a CPU hog", py("while True: pass")),
        ("allocating 4 GiB", py("b = bytearray(4 * 1024 ** 3); print(len(b))")),
        ("opening 10,000 files", py("fs = [open('/dev/null') for _ in range(10000)]; print(len(fs))")),
        ("a 2 MB file past the file-size limit", "sh -c 'head -c 2000000 /dev/zero > big.bin'"),
    ]


CONFTEST = """
import os, socket
for target in ({bashrc!r}, {real_home!r}):
    try:
        open(target, "a").write("pwned by conftest")
        print("WROTE", target)
    except OSError as e:
        print("could not write", target, e.errno)
for secret in ({env!r}, {events!r}):
    try:
        print(open(secret).read())
    except OSError as e:
        print("could not read", secret, e.errno)
"""


def test_escapes_through_allowed_commands_fail_with_nothing_outside_changed(world: World) -> None:
    (world.workspace / "conftest.py").write_text(CONFTEST.format(
        bashrc=str(world.home / ".bashrc"), real_home=os.path.expanduser("~/.orgctl-escape-2"),
        env=str(world.org / ".env"), events=str(world.state / "work/events.jsonl")))
    os.environ["OPENAI_API_KEY"] = SECRET  # in orgctl's own environment: never in a command's
    try:
        before = world.fingerprint()
        profile = world.profile()
        results = {what: run_command(command, sandbox=profile) for what, command in corpus(world)}
    finally:
        del os.environ["OPENAI_API_KEY"]
    assert len(results) >= 30
    if os.environ.get("ORGCTL_SHOW_CORPUS"):
        for what, r in results.items():
            print(f"--- {what}\n{r.summary(lines=3)}")
    leaked = [what for what, r in results.items() if SECRET in r.output]
    assert not leaked, leaked
    assert world.fingerprint() == before
    assert world.http_hits == []
    with pytest.raises(BlockingIOError):
        world.udp.recv(100)
    assert world.victim.poll() is None, "a process of the host was killed from inside"
    assert (world.home / "victim" / "keep.txt").read_text() == "keep me\n"

    def failed(what: str) -> CommandResult:
        r = results[what]
        assert r.exit_code != 0, (what, r.summary())
        return r

    succeed_inside = ("a planted conftest.py runs code on pytest -q", "finding a key in its own environment",
                      "a file left in the host's /tmp", "listing the state dir",
                      "UDP to a loopback socket")  # they run, and reach nothing of the host's
    bad = [w for w, r in results.items() if w not in succeed_inside and r.exit_code == 0]
    assert not bad, bad
    assert not Path("/tmp/orgctl-escape-3").exists()  # the write went to the sandbox's own /tmp
    listing = {line.split()[-1] for line in results["listing the state dir"].output.splitlines()[1:]}
    assert listing == {".", "..", "workspaces"}  # only the path down to the workspace exists inside
    conftest = results["a planted conftest.py runs code on pytest -q"].output
    assert "WROTE" not in conftest and "could not write" in conftest and "could not read" in conftest
    assert "OPENAI_API_KEY" not in results["finding a key in its own environment"].output
    assert "connected" not in results["the supervisor's control socket"].output
    assert "root:" not in results["reading /etc/shadow"].output
    assert results["a CPU hog"].exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)  # as bwrap reports it
    assert not results["a CPU hog"].timed_out  # the CPU limit stopped it, not the wall clock
    assert "MemoryError" in results["allocating 4 GiB"].output
    assert "Too many open files" in results["opening 10,000 files"].output
    assert (world.workspace / "big.bin").stat().st_size <= 1024 * 1024
    assert not (world.workspace / "hard-link").exists()


def test_the_same_commands_work_where_the_permission_grants_them(world: World) -> None:
    """Writing the workspace, pytest's basetemp inside it, the network with ``network: true``, an extra
    read-only path: the confinement takes away what was not granted, not what was."""
    tools = world.root / "toolchain"
    tools.mkdir()
    (tools / "VERSION").write_text("tool 1.0\n")
    profile = world.profile(network=True, read_only=(str(tools),))
    log = run_command("git log --oneline --output=log.txt", sandbox=profile)
    assert log.exit_code == 0 and "two" in (world.workspace / "log.txt").read_text()
    test = world.workspace / "test_ok.py"
    test.write_text("def test_ok():\n    assert True\n")
    ran = run_command(f"pytest -q -p no:cacheprovider --basetemp={world.workspace}/base", sandbox=profile)
    assert ran.exit_code == 0 and "1 passed" in ran.output, ran.summary()
    fetched = run_command(f"curl -sS --max-time 5 http://127.0.0.1:{world.http_port}/granted", sandbox=profile)
    assert fetched.exit_code == 0 and "served" in fetched.output and world.http_hits == ["/granted"]
    assert "tool 1.0" in run_command(f"cat {tools}/VERSION", sandbox=profile).output
    assert run_command("sh -c 'echo scratch > /tmp/x && cat /tmp/x'", sandbox=profile).output.strip() == "scratch"
    off = world.profile(mode="off")
    assert run_command(f"sh -c 'echo unconfined >> {world.home}/.bashrc'", sandbox=off).exit_code == 0
    assert "unconfined" in (world.home / ".bashrc").read_text()  # sandbox: off means it, loudly


SLEEPS = ("4101", "4102", "4103", "4104", "4105")
"""The seconds of the test's sleepers: numbers no person's own ``sleep 300`` on the machine shares."""


def _sleepers(seconds: tuple[str, ...] = SLEEPS) -> list[int]:
    """Processes whose argv is exactly ``sleep S`` for one of ``seconds`` (a shell that merely mentions
    them in its command line is not one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:
                continue
            if len(argv) == 2 and argv[0].endswith(b"sleep") and argv[1].decode(errors="replace") in seconds:
                found.append(int(entry.name))
    return found


def test_the_timeout_kills_every_process_of_the_command_however_it_detached(world: World) -> None:
    profile = world.profile(limits=LIMITS.model_copy(update={"timeout_seconds": 2}))
    started = time.monotonic()
    slept = run_command("sh -c 'sleep 4101 & setsid sleep 4102 & nohup sleep 4103 > /dev/null 2>&1 & sleep 4104'",
                        sandbox=profile)
    assert slept.timed_out and slept.exit_code is None and time.monotonic() - started < 10
    daemon = run_command("sh -c 'setsid sleep 4105 > /dev/null 2>&1 < /dev/null & echo left'", sandbox=profile)
    assert daemon.exit_code == 0 and not daemon.timed_out
    time.sleep(0.3)
    assert _sleepers() == []


def test_a_setuid_binary_gains_nothing(world: World) -> None:
    """A program owned by another user with the setuid bit: run as root outside, it becomes that user;
    inside, no new privileges (and nosuid mounts) keep it what it was, with no capabilities at all."""
    binary = world.workspace / "suid-id"
    shutil.copy("/usr/bin/id", binary)
    os.chown(binary, 65534, 65534)
    binary.chmod(0o4755)
    inside = run_command("./suid-id -u", sandbox=world.profile())
    assert inside.exit_code == 0 and inside.output.strip() == str(os.getuid())
    status = run_command("cat /proc/self/status", sandbox=world.profile()).output
    assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status


def test_a_fork_bomb_dies_against_the_process_limit_and_the_anima_goes_on(world: World) -> None:
    kernel = sandboxing.probe(sandboxing._find_bwrap())
    if os.geteuid() == 0 and kernel.pids_cgroup is None:
        pytest.skip("root without a pids cgroup: no process limit binds (the sandbox then refuses commands)")
    profile = world.profile(limits=LIMITS.model_copy(update={"timeout_seconds": 3, "cpu_seconds": 60}))
    bomb = py("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    tasks_before = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    started = time.monotonic()
    result = run_command(bomb, sandbox=profile)
    assert result.timed_out and time.monotonic() - started < 15
    time.sleep(0.5)
    assert int(Path("/proc/loadavg").read_text().split()[3].split("/")[1]) < tasks_before + 32
    after = run_command("git status --short", sandbox=profile)
    assert after.exit_code == 0  # the next command runs as if nothing happened


def test_a_kernel_without_a_usable_sandbox_refuses_commands_with_a_warning(world: World, org: Path,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: ``ORGCTL_BWRAP`` points at a stand-in that fails as bwrap does on a kernel without user
    namespaces (the real message). The policy denies every command, ``can-i`` says why, a task's command is
    refused with a Warning event, and ``sandbox: off`` in org.yaml lifts it."""
    from datetime import datetime

    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource
    from orgctl.memory.stores import MemoryStore
    from orgctl.paths import StatePaths
    from orgctl.runtime.cycle import Agent, Trace
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.permissions import Policy
    from orgctl.runtime.tasking import _run
    from orgctl.state.events import read_events

    monkeypatch.setenv(sandboxing.BWRAP_ENV, str(_failing_bwrap(tmp_path)))
    answer = run_cli("can-i", "bob", "run", "git status --short", "-C", str(org))
    assert answer.exit_code == 1 and answer.output.startswith("no: no usable sandbox:")
    assert "kernel does not allow non-privileged user namespaces" in answer.output
    assert "sandbox: unavailable" in answer.output and "Traceback" not in answer.output

    state = StatePaths(root=(tmp_path / "state").resolve()).ensure()
    work = Organization(paths=state, specs=load_org(GitRevisionSource(org, "HEAD")).animas)
    spec = work.specs["bob"]
    policy = Policy(spec.permissions, workspace=world.workspace)
    assert not policy.can_run("git status --short").allowed
    task = work.add_task("bob", "Check for uncommitted changes")
    bob = Agent(spec=spec, org=work, client=None, store=MemoryStore(state.root / "mem-bob", anima="bob"),  # type: ignore[arg-type]
                policy=policy, revision=None)
    _run(bob, task, Trace(trigger="task", at=datetime.now().astimezone()), "git status --short")
    [event] = [e for e in read_events(work.work.events) if e.reason == "CommandRefused"]
    assert event.type == "Warning" and "no usable sandbox" in event.message
    assert not (world.workspace / ".git" / "index.lock").exists()
    off = Policy(spec.permissions, workspace=world.workspace, sandbox=SandboxConfig(mode="off"))
    assert off.can_run("git status --short").allowed


def _failing_bwrap(tmp_path: Path) -> Path:
    """A stand-in for bwrap on a kernel without user namespaces: its version, then the real refusal."""
    stub = tmp_path / "bwrap"
    stub.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.11.0'; exit 0; }\n"
                    "echo 'bwrap: No permissions to create a new namespace, likely because the kernel does not "
                    "allow non-privileged user namespaces.' >&2\nexit 1\n")
    stub.chmod(0o755)
    return stub


def test_an_anima_started_without_a_usable_sandbox_says_so(running: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Real processes: the supervisor and its Animas inherit ``ORGCTL_BWRAP`` (simulated kernel, as above);
    as the supervisor starts bob, who may run commands, it raises one Warning event; for alice and carol, who
    may not, none."""
    from orgctl.paths import StatePaths
    from orgctl.state.events import read_events
    from tests.conftest import wait_for

    monkeypatch.setenv(sandboxing.BWRAP_ENV, str(_failing_bwrap(tmp_path)))
    assert run_cli("apply", str(running), "--auto-approve").exit_code == 0
    events = StatePaths(root=(tmp_path / "state").resolve()).work.events
    [warning] = wait_for(lambda: [e for e in read_events(events) if e.reason == "SandboxUnavailable"],
                         timeout=60, what="bob's SandboxUnavailable event")
    assert warning.anima == "bob" and warning.type == "Warning" and "no usable sandbox" in warning.message
    assert "kernel does not allow non-privileged user namespaces" in warning.message


def test_can_i_prints_the_profile_the_runtime_uses(org: Path) -> None:
    answer = run_cli("can-i", "bob", "run", "git status --short", "-C", str(org))
    assert answer.exit_code == 0, answer.output
    assert "sandbox: bubblewrap" in answer.output and "network: none" in answer.output
    assert "process limit:" in answer.output and "writable:" in answer.output
    hole = run_cli("can-i", "bob", "run", "git log --oneline --since=1.week --output=/root/.bashrc", "-C", str(org))
    assert hole.exit_code == 1 and hole.output.startswith("no:")


def test_a_cron_command_and_an_approved_command_run_inside_the_sandbox(org: Path, tmp_path: Path) -> None:
    """The cron path (:func:`orgctl.runtime.scheduling.fire`) and the approval path (a person approved a held
    command) start their command through the same sandbox as a task's: the evidence is the kernel's own
    view from inside (no new privileges, no capabilities, the pids cgroup)."""
    from datetime import datetime

    from orgctl.desired.loading import load_org
    from orgctl.desired.models import CronTask
    from orgctl.desired.sources import WorkTreeSource
    from orgctl.memory.stores import MemoryStore
    from orgctl.paths import StatePaths
    from orgctl.runtime.cycle import Agent, Trace
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.permissions import Policy
    from orgctl.runtime.scheduling import fire
    from orgctl.work.approvals import Approval

    (org / "animas/bob/permissions.md").write_text(
        "---\ntools: [run_command]\ncommands: [grep -E NoNewPrivs|CapEff /proc/self/status]\n"
        "ask: [grep NoNewPrivs /proc/self/status]\n---\n")
    state = StatePaths(root=(tmp_path / "state").resolve()).ensure()
    work = Organization(paths=state, specs=load_org(WorkTreeSource(org)).animas)
    spec = work.specs["bob"]
    bob = Agent(spec=spec, org=work, client=None, store=MemoryStore(state.root / "mem-bob", anima="bob"),  # type: ignore[arg-type]
                policy=Policy(spec.permissions, workspace=state.workspace("bob")), revision=None)
    line = fire(bob, CronTask(title="privileges", schedule="* * * * *", type="command",
                              command="grep -E 'NoNewPrivs|CapEff' /proc/self/status"))
    assert "exit 0" in line, line
    [follow_up] = work.queue("bob").open()
    assert "NoNewPrivs:\t1" in follow_up.detail and "CapEff:\t0000000000000000" in follow_up.detail
    task = work.add_task("bob", "Check the privileges")
    work.queue("bob").update(task.id, by="bob", status="waiting_approval")
    approval = work.approvals.request(Approval(anima="bob", detail="grep NoNewPrivs /proc/self/status", rule="ask",
                                               task_id=task.id))
    work.approvals.decide(approval.id, approve=True, by="human")
    bob._approvals(Trace(trigger="heartbeat", at=datetime.now().astimezone()))
    resumed = work.queue("bob").get(task.id)
    assert resumed is not None and "NoNewPrivs:\t1" in resumed.log[-1], resumed.log if resumed else None


def test_the_workspace_git_dir_is_read_only_so_nothing_runs_later_outside(world: World) -> None:
    """``apply`` fetches and checks out in the workspace with plain git, outside the sandbox. A hook or a
    config written from inside would then run with the user's rights. The git directory lives outside the
    workspace and is mounted read-only at ``.git`` inside; read-only git commands still work."""
    git_dir = workspace_git_dir(world.workspace)  # kept outside the workspace, mounted read-only at .git
    before = {p: p.read_bytes() for p in git_dir.rglob("*") if p.is_file() and "index" not in p.name}
    profile = world.profile()
    for attack in ("sh -c 'printf \"#!/bin/sh\\necho pwned\\n\" > .git/hooks/post-checkout'",
                   "git config core.fsmonitor 'sh -c pwned'", "git config core.hooksPath /tmp",
                   py("import glob, os; f = glob.glob('.git/objects/*/*')[0]; os.chmod(f, 0o644); "
                      "open(f, 'wb').write(b'x')")):
        assert run_command(attack, sandbox=profile).exit_code != 0, attack
    assert {p: p.read_bytes() for p in git_dir.rglob("*") if p.is_file() and "index" not in p.name} == before
    assert not (git_dir / "hooks" / "post-checkout").exists()
    for reader in ("git status --short", "git log --oneline", "git diff --stat HEAD~1"):
        assert run_command(reader, sandbox=profile).exit_code == 0, reader


def test_apply_s_git_in_a_workspace_runs_no_hook_and_no_filter_the_work_tree_names(
        org: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth behind the git directory kept outside the workspace: the git that ``apply`` runs there
    (outside the sandbox) reads no global config, so a ``.gitattributes`` an Anima wrote cannot name the
    user's filter drivers, and runs no hook."""
    marker = tmp_path / "ran"
    config = tmp_path / "gitconfig"
    config.write_text(f"[filter \"evil\"]\n\tsmudge = sh -c 'touch {marker}; cat'\n\tclean = cat\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    workspace = prepare_workspace(org, tmp_path / "state" / "workspaces" / "bob", revision=None)
    (workspace / ".gitattributes").write_text("* filter=evil\n")  # what a command in the sandbox may write
    hook = workspace_git_dir(workspace) / "hooks" / "post-checkout"  # what it may not, planted here anyway
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    (org / "animas/bob/identity.md").write_text("# Bob\n\nChanged.\n")
    git(org, "commit", "-qam", "bob changes")
    prepare_workspace(org, workspace, revision=None)
    assert (workspace / "animas/bob/identity.md").read_text() == "# Bob\n\nChanged.\n"
    assert not marker.exists()


# ---------------------------------------------------------------- found by a red-team read of the first version


def test_the_host_s_sysctls_are_read_only_inside(world: World) -> None:
    """Uid 0 inside is the host's uid 0 for file permissions: ``/proc/sys/kernel/core_pattern`` was writable
    from inside, and names a program the kernel runs as the host's root. The write tried here puts back the
    value that is already there, so it is harmless even if it got through."""
    current = Path("/proc/sys/kernel/core_uses_pid").read_text().strip()
    wrote = run_command(f"sh -c 'echo {current} > /proc/sys/kernel/core_uses_pid'", sandbox=world.profile())
    assert wrote.exit_code != 0 and "Read-only file system" in wrote.output, wrote.summary()


def test_a_flood_of_output_keeps_only_the_cap_and_the_timeout(world: World) -> None:
    """``cat /dev/zero`` used to fill orgctl's own memory (5.4 GiB in 4 s) and outlive its timeout."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    flood = run_command("cat /dev/zero", sandbox=world.profile(limits=LIMITS.model_copy(update={"timeout_seconds": 2})),
                        cap=4096)
    assert flood.timed_out and flood.truncated and len(flood.output) <= 4096
    assert time.monotonic() - started < 6
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MiB more


def test_dev_is_read_only_shm_is_capped_and_home_is_private(world: World) -> None:
    profile = world.profile(limits=LIMITS.model_copy(update={"file_size_mb": 100}))
    assert run_command("sh -c 'echo x > /dev/planted'", sandbox=profile).exit_code != 0
    shm = run_command("sh -c 'head -c 20000000 /dev/zero > /dev/shm/big'", sandbox=profile)  # tmp_mb is 16
    assert shm.exit_code != 0 and "No space left" in shm.output, shm.summary()
    assert run_command("sh -c 'echo $HOME'", sandbox=profile).output.strip() == "/tmp"
    run_command("sh -c 'printf \"[alias]\\n\\tst = !touch pwned\\n\" > $HOME/.gitconfig'", sandbox=profile)
    assert ".gitconfig" not in run_command("ls -a /tmp", sandbox=profile).output.split()  # gone with the command


def test_the_kernel_keyring_is_out_of_reach(world: World) -> None:
    """bwrap's ``--new-session`` is setsid, not a keyring: the user's session keyring was inherited; and kernel
    keys are global, so uid 0 inside could read and plant keys in root's user keyring. The process that
    starts sandboxes takes a fresh session keyring, and a seccomp filter refuses the keyring calls inside."""
    import platform

    number = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    if number is None:
        pytest.skip("keyctl's system call number is known here only for x86_64 and aarch64")
    ask = f"import ctypes; print(ctypes.CDLL(None).syscall({number}, 0, -3, 0))"  # KEYCTL_GET_KEYRING_ID, @s
    # a fresh orgctl process (this one already left its keyring at its first command): its keyring, then a
    # sandbox's
    child = (f"{ask}\nfrom pathlib import Path\nfrom orgctl.runtime import sandboxing\n"
             "from orgctl.runtime.commands import run_command\nfrom orgctl.desired.models import SandboxConfig\n"
             "from orgctl.desired.permissions import PermissionsFrontmatter\n"
             "p = sandboxing.profile_for(permissions=PermissionsFrontmatter(), config=SandboxConfig(), "
             f"workspace=Path({str(world.workspace)!r}))\nprint(run_command({py(ask)!r}, sandbox=p).output.strip())")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    outside, inside = done.stdout.split()
    assert int(outside) > 0 and inside == "-1", done.stdout  # EPERM inside: the filter
    user = f"import ctypes, os; r = ctypes.CDLL(None, use_errno=True).syscall({number}, 0, -4, 0); " \
           "print(r, os.strerror(ctypes.get_errno()))"  # KEYCTL_GET_KEYRING_ID of @u, root's user keyring
    assert run_command(py(user), sandbox=world.profile()).output.strip() == "-1 Operation not permitted"


def test_a_git_dir_planted_in_the_workspace_is_never_read_by_apply_s_git(org: Path, tmp_path: Path) -> None:
    """Red-team reads: a ``.git`` made in a workspace (where there was none, or while orgctl replaced one),
    naming a filter, was honoured by ``apply``'s git outside the sandbox; a token beside it could be forged
    through a link. Now that git uses the git directory outside the workspace, always: a ``.git`` found in
    the workspace is set aside, never read, and the workspace gets an empty one (the sandbox's mount point)."""
    workspace = tmp_path / "state" / "workspaces" / "bob"
    workspace.mkdir(parents=True)
    marker = tmp_path / "ran"
    git(tmp_path, "init", "-q", str(workspace))
    git(workspace, "config", "filter.pwn.smudge", f"sh -c 'touch {marker}; cat'")
    (workspace / ".git" / "info" / "attributes").write_text("* filter=pwn\n")
    prepare_workspace(org, workspace, revision=None)
    assert not marker.exists() and (workspace / "org.yaml").is_file()
    assert (workspace / ".git").is_dir() and not any((workspace / ".git").iterdir())
    assert "pwn" not in (workspace_git_dir(workspace) / "config").read_text()
    assert (workspace_git_dir(workspace).parent / "bob.before-sandbox" / "config").is_file()  # kept, unread
    (workspace / ".git").rmdir()
    (workspace / ".git").symlink_to(tmp_path)  # a link where the mount point goes
    prepare_workspace(org, workspace, revision=None)
    assert (workspace / ".git").is_dir() and not (workspace / ".git").is_symlink() and not marker.exists()


def test_a_linked_common_knowledge_is_not_read_by_the_memory_index(tmp_path: Path) -> None:
    """The memory service (outside the sandbox) read ``common_knowledge`` through a link an Anima's command
    made, into another workspace, and handed its files back to the Anima."""
    from orgctl.memory.index import collect_docs

    alice = tmp_path / "workspaces" / "alice" / "notes"
    alice.mkdir(parents=True)
    (alice / "secret.md").write_text(f"# Private\n\n{SECRET}\n")
    bob = tmp_path / "workspaces" / "bob"
    (bob / "common_knowledge" / "team").mkdir(parents=True)
    (bob / "common_knowledge" / "team" / "ok.md").write_text("# Team\n\nWe ship on Fridays.\n")
    (bob / "common_knowledge" / "team" / "leak.md").symlink_to(alice / "secret.md")
    (bob / "common_knowledge" / "alice").symlink_to(alice)
    memory = tmp_path / "memory"
    memory.mkdir()
    docs = collect_docs(memory, common=bob / "common_knowledge")
    assert [d.id for d in docs if d.kind == "common"] and all(SECRET not in d.text for d in docs)
    linked = tmp_path / "linked"
    linked.symlink_to(alice, target_is_directory=True)
    assert collect_docs(memory, common=linked) == []


def test_masked_etc_directories_are_read_only_and_path_never_names_the_workspace(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second red-team read: ``/etc/ssh`` was a writable tmpfs with no size (800 MB written), and a PATH with
    an empty entry (``...:``) let a program planted in the workspace run under a rule that names ``rg``."""
    profile = world.profile(limits=LIMITS.model_copy(update={"file_size_mb": 100}))
    if os.path.isdir("/etc/ssh") and any(os.scandir("/etc/ssh")):
        wrote = run_command("sh -c 'echo x > /etc/ssh/planted'", sandbox=profile)
        assert wrote.exit_code != 0 and "Read-only" in wrote.output, wrote.summary()
    planted = world.workspace / "orgctl-planted"
    planted.write_text("#!/bin/sh\necho PLANTED\n")
    planted.chmod(0o755)
    monkeypatch.setenv("PATH", os.environ["PATH"] + ":")
    ran = run_command("orgctl-planted", sandbox=world.profile())
    assert "PLANTED" not in ran.output and ran.exit_code == 127
