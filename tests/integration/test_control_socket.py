"""The supervisor's control socket against hostile callers: a real supervisor, real processes, real uids.

The socket is 0600 in a 0700 folder; a process of another uid that gets through anyway is refused by
its peer credentials (SO_PEERCRED); names received over the socket must be applied Animas, since
they become paths. Tests that switch uid need root (this machine's CI runs as root); they are
skipped otherwise.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orgctl.errors import RuntimeFailure, StateError
from orgctl.paths import StatePaths, private_dir
from orgctl.runtime import protocol
from tests.conftest import run_cli

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")

_AS_NOBODY = """
import os, socket, sys
os.setgid({uid}); os.setuid({uid})
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect refused:", type(e).__name__); sys.exit(0)
try:
    s.sendall(b'{{"op": "ping"}}\\n')
    print("reply:", s.recv(4096).decode() or "<closed>")
except (ConnectionResetError, BrokenPipeError):  # dropped by the server: closed, with no reply
    print("reply: <closed>")
"""


def as_nobody(socket_path: Path) -> str:
    return subprocess.run([sys.executable, "-c", _AS_NOBODY.format(uid=NOBODY), str(socket_path)],
                          capture_output=True, text=True, timeout=30).stdout.strip()


def test_the_socket_is_private_and_names_must_be_applied(running: Path, state: StatePaths) -> None:
    assert run_cli("apply", str(running), "--auto-approve").exit_code == 0
    sock = state.socket
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    for name in ("../../etc/passwd", "dave", "bob/../alice", ""):
        with pytest.raises(RuntimeFailure, match="no applied Anima named"):
            protocol.request(sock, "start", name=name)
    assert not list(state.logs.glob("*etc*")) and not (state.root / "etc").exists()
    assert protocol.request(sock, "wake", name="bob")["ok"]


@root_only
def test_another_user_cannot_drive_the_supervisor(org: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from orgctl.runtime.local import LocalBackend

    # A state dir other users can traverse (pytest's own tmp root is 0700), so only the socket's
    # own protections stand between them and the supervisor.
    base = Path(tempfile.mkdtemp(prefix="orgctl-sock-"))
    os.chmod(base, 0o711)
    monkeypatch.setenv("ORGCTL_STATE_DIR", str(base / "state"))
    state = StatePaths(root=base / "state")
    try:
        assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
        os.chmod(state.root, 0o711)
        sock = state.socket
        assert as_nobody(sock).startswith("connect refused")  # 0700 folder, 0600 socket
        os.chmod(sock.parent, 0o711)  # even with the file modes opened up, the peer's uid is checked
        os.chmod(sock, 0o666)
        assert as_nobody(sock) == "reply: <closed>"
        os.chmod(sock, 0o600)
        os.chmod(sock.parent, 0o700)
        assert protocol.request(sock, "ping")["ok"]  # and its owner is still served
    finally:
        LocalBackend(paths=state, org_dir=org).shutdown()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_private_dir_refuses_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match="not a private folder"):
        private_dir(tmp_path / "planted")
    made = private_dir(tmp_path / "fresh")
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700


@root_only
def test_private_dir_refuses_another_users_folder(tmp_path: Path) -> None:
    planted = tmp_path / "orgctl-0"
    planted.mkdir(mode=0o777)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(StateError, match="owned by uid 65534"):
        private_dir(planted)
