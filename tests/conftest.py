"""Shared fixtures: real org repos made by `orgctl init`, a temp state dir, process cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orgctl.cli.main import cli
from orgctl.gitops.bootstrapping import init_org
from orgctl.paths import StatePaths, template_dir

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own state dir and a git identity for 'human' commits."""
    monkeypatch.setenv("ORGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ORGCTL_DEBUG", raising=False)
    for k, v in {"GIT_AUTHOR_NAME": "Test Human", "GIT_AUTHOR_EMAIL": "human@example.com",
                 "GIT_COMMITTER_NAME": "Test Human", "GIT_COMMITTER_EMAIL": "human@example.com"}.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def state(tmp_path: Path) -> StatePaths:
    return StatePaths(root=(tmp_path / "state").resolve())


@pytest.fixture
def org(tmp_path: Path) -> Path:
    """A fresh org repo from the real template, with its initial commit."""
    path = tmp_path / "acme"
    init_org(dest=path, template=template_dir(), name="acme")
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, text=True,
                          capture_output=True).stdout


def add_bare_remote(org: Path, tmp_path: Path) -> Path:
    """A bare repository on disk (``tmp_path/remote.git``) made the org's ``origin``, with main pushed to it."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(org, "remote", "add", "origin", str(bare))
    git(org, "push", "--quiet", "-u", "origin", "main")
    return bare


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def rebind_workflows(org: Path, *retired: str, to: str = "alice") -> None:
    """Bind the template workflow's agents that name a ``retired`` Anima to ``to`` instead: what a person
    retiring an Anima must do, since ``validate`` refuses a workflow bound to an Anima that is gone."""
    path = org / "workflows" / "task.yaml"
    text = path.read_text()
    for name in retired:
        text = text.replace(f"anima: {name}\n", f"anima: {to}\n")
    path.write_text(text)


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` every 50 ms until it returns a truthy value (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not reached in {timeout:.0f}s")


def anima_processes(state: StatePaths, name: str | None = None) -> list[int]:
    """Live Anima processes of the org whose state dir is ``state`` (all, or those named ``name``), found in
    /proc, tracked or not: forked ones by their kernel name ``orgctl:<name>`` and the org's state dir in
    their environment; exec'd ones (ORGCTL_SPAWN=exec) by their command line."""
    found = []
    root = str(state.root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_bytes().strip()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        forked = comm.startswith(b"orgctl:") and b"ORGCTL_ORG_STATE=" + root in environ \
            and (name is None or comm == f"orgctl:{name}".encode()[:15])
        execd = b"orgctl.runtime.anima" in argv and root in argv and (name is None or name.encode() in argv)
        if forked or execd:
            found.append(int(entry.name))
    return sorted(found)


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def running(org: Path, state: StatePaths) -> Iterator[Path]:
    """Tear-down for tests that start processes: `orgctl down`, then nothing of ours may live."""
    yield org
    from orgctl.runtime.local import LocalBackend

    pids = LocalBackend(paths=state, org_dir=org).shutdown()
    from orgctl.processes import cmdline
    from orgctl.state.files import pid_alive

    assert not [(p, cmdline(p)) for p in pids if pid_alive(p)]


@pytest.fixture
def hook() -> Iterator[list[dict]]:  # type: ignore[type-arg]
    """A webhook receiver on loopback; yields the JSON bodies it received."""
    received: list[dict] = []  # type: ignore[type-arg]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received.append({"url": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    yield received
    server.shutdown()
    server.server_close()
