"""The GitOps controller on real parts: a real org repo with a bare remote on disk, the controller as a
real child process (`python -m orgctl controller run DIR`), the real supervisor and Anima processes.

:class:`ControllerRunner` runs the controller for the span of a ``with`` block, the way kopf's
``KopfRunner`` runs an operator in its tests, and hands back its log. Heartbeats are the template's
30 minutes, so no model is called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orgctl.paths import StatePaths
from orgctl.state.files import pid_alive, read_json
from orgctl.state.runtimes import load_runtime
from tests.conftest import add_bare_remote, anima_processes, commit_all, edit, git, rebind_workflows, run_cli, wait_for


class ControllerRunner:
    """``python -m orgctl controller run DIR ARGS`` as a child process for a ``with`` block.

    Entering waits until the controller holds its lease and has finished its first pass; leaving
    sends SIGTERM and waits for the exit. ``output`` is what it logged.
    """

    def __init__(self, checkout: Path, state: StatePaths, *args: str, env: dict[str, str] | None = None) -> None:
        self.checkout, self.state, self.args = checkout, state, args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state.root.parent / f"controller-{time.monotonic_ns()}.log"

    def __enter__(self) -> ControllerRunner:
        self.state.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "orgctl", "controller", "run", str(self.checkout),
                                          *self.args], stdout=out, stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: self.proc.poll() is not None or (read_json(self.state.status, default={}) or {}).get(
            "passes", 0) >= 1 and (read_json(self.state.controller, default={}) or {}).get("pid") == self.proc.pid,
            what="controller's first pass")
        assert self.proc.poll() is None, self.output
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def controller_status(state: StatePaths) -> dict[str, Any]:
    return read_json(state.status, default={}) or {}


def converged_on(state: StatePaths, sha: str) -> bool:
    """The controller's record says the org applied ``sha`` and every Anima is Synced and Ready."""
    doc = controller_status(state)
    animas = doc.get("animas") or {}
    return bool(animas) and doc.get("org", {}).get("lastAppliedRevision") == sha and all(
        a["sync"] == "Synced" and a["conditions"][0]["status"] == "True" for a in animas.values())


def applied_head(org: Path, state: StatePaths) -> str:
    """Wait until the controller applied the checkout's HEAD with every Anima Ready; returns HEAD."""
    head = git(org, "rev-parse", "HEAD").strip()
    wait_for(lambda: converged_on(state, head), what=f"{head[:7]} applied, every Anima Ready")
    return head


def anima_pids(state: StatePaths) -> dict[str, int]:
    rt = load_runtime(state.runtime)
    return {n: p.pid for n, p in rt.animas.items() if p.pid and p.state in ("running", "resting")}


@pytest.fixture
def remote(org: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote of the org (``origin``), and a second checkout that people push from."""
    bare = add_bare_remote(org, tmp_path)
    pusher = tmp_path / "pusher"
    git(tmp_path, "clone", "--quiet", str(bare), str(pusher))
    return bare, pusher


def push(pusher: Path, message: str) -> str:
    sha = commit_all(pusher, message)
    git(pusher, "push", "--quiet", "origin", "main")
    return sha


def test_a_commit_on_the_remote_is_applied_and_a_second_controller_refuses(running: Path, state: StatePaths,
                                                                            remote: tuple[Path, Path]) -> None:
    org = running
    _, pusher = remote
    with ControllerRunner(org, state) as ctl:
        first = applied_head(org, state)
        before = anima_pids(state)
        assert set(before) == {"alice", "bob", "carol"}
        edit(pusher / "animas/bob/injection.md", "\n", "\nAnswer in one sentence.\n")
        sha = push(pusher, "bob: one sentence")
        wait_for(lambda: converged_on(state, sha), what="the pushed commit applied")
        snapshot = read_json(state.spec_snapshot("bob"))
        assert "Answer in one sentence." in snapshot["spec"]["injection"]
        assert anima_pids(state) == before  # an in-place change: nobody restarted
        assert git(org, "rev-parse", "HEAD").strip() == first  # the person's checkout is untouched

        second = subprocess.run([sys.executable, "-m", "orgctl", "controller", "run", str(org)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"a controller already runs for this org: pid {ctl.pid}" in second.stderr
        assert "Traceback" not in second.stderr

        refused = run_cli("apply", str(org), "--auto-approve")
        assert refused.exit_code == 1 and f"the controller (pid {ctl.pid}) reconciles this org" in refused.output
        answer = run_cli("reconcile", str(org))
        assert answer.exit_code == 0, answer.output
        assert "Handled at" in answer.output and sha[:7] in answer.output
    assert "pass (commit)" in ctl.output
    history = [json.loads(line) for line in state.history.read_text().splitlines()]
    assert [h["revision"] for h in history if h.get("by") == "controller"][-1] == sha  # `orgctl history` lists it


def test_the_checkout_alone_is_tracked_and_uncommitted_edits_are_reported_not_applied(running: Path,
                                                                                    state: StatePaths) -> None:
    org = running
    with ControllerRunner(org, state) as ctl:
        applied_head(org, state)
        edit(org / "animas/carol/identity.md", "\n", "\nLikes tables.\n")
        wait_for(lambda: [e for e in _events("UncommittedChange")], what="an UncommittedChange event")
        assert "animas/carol/identity.md" in _events("UncommittedChange")[-1]["message"]
        assert "Likes tables." not in read_json(state.spec_snapshot("carol"))["spec"]["identity"]
        watch = subprocess.Popen([sys.executable, "-m", "orgctl", "events", "--watch", "--json", "--reason",
                                  "Reconciled", "-C", str(org)], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)  # it has read the stream so far
            sha = commit_all(org, "carol likes tables")
            wait_for(lambda: converged_on(state, sha), what="the local commit applied")
            assert "Likes tables." in read_json(state.spec_snapshot("carol"))["spec"]["identity"]
            assert watch.stdout is not None
            lines = [json.loads(watch.stdout.readline())]  # what was there first, then what came while watching
            while sha[:7] not in lines[-1]["message"] and len(lines) < 5:
                lines.append(json.loads(watch.stdout.readline()))
            assert [r["reason"] for r in lines] == ["Reconciled", "Reconciled"]
            assert sha[:7] in lines[-1]["message"] and "carol" in lines[-1]["message"]
        finally:
            watch.kill()
            watch.wait()
    assert f"tracking {org.resolve()} (main)" in ctl.output


def _events(reason: str) -> list[dict[str, Any]]:
    result = run_cli("events", "--reason", reason, "--json", "--limit", "50")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_an_invalid_commit_is_stalled_not_retried_and_clears_when_fixed(running: Path, state: StatePaths,
                                                                       remote: tuple[Path, Path]) -> None:
    org = running
    _, pusher = remote
    with ControllerRunner(org, state):
        good = applied_head(org, state)
        pids_before = anima_pids(state)
        (pusher / "animas/bob/anima.yaml").write_text("role: engineer\nsupervisor: alice\nenabled: maybe\n")
        bad = push(pusher, "bob: broken")
        wait_for(lambda: controller_status(state).get("source", {}).get("revision") == bad, what="bad revision seen")
        doc = controller_status(state)
        bob = doc["animas"]["bob"]
        stalled = next(c for c in bob["conditions"] if c["type"] == "Stalled")
        assert stalled["status"] == "True" and "animas/bob/anima.yaml" in stalled["message"]
        assert bob["lastAttemptedRevision"] == bad and bob["lastAppliedRevision"] == good
        assert doc["org"]["sync"] == "OutOfSync"
        assert next(c for c in doc["org"]["conditions"] if c["type"] == "Stalled")["status"] == "True"
        assert anima_pids(state) == pids_before  # the org keeps running what it last applied
        assert len(_events("SpecInvalid")) == 1
        answer = run_cli("reconcile", str(org))  # a pass on demand does not retry the bad revision
        assert answer.exit_code == 1 and "stalled" in answer.output
        assert len(_events("SpecInvalid")) == 1

        (pusher / "animas/bob/anima.yaml").write_text("role: engineer\nsupervisor: alice\nenabled: true\n"
                                                      "heartbeat_interval: 45m\n")
        fixed = push(pusher, "bob: fixed, slower heartbeat")
        wait_for(lambda: converged_on(state, fixed), what="the fix applied")
        bob = controller_status(state)["animas"]["bob"]
        assert [c["status"] for c in bob["conditions"]] == ["True", "False", "False"]  # Ready, not Reconciling/Stalled
        assert anima_pids(state)["bob"] != pids_before["bob"]  # a restart setting changed: bob restarted


def test_killed_processes_come_back_and_a_restarted_controller_adopts_without_duplicates(
        running: Path, state: StatePaths) -> None:
    org = running
    with ControllerRunner(org, state, "--resync-interval", "2") as ctl:
        applied_head(org, state)
        wait_for(lambda: len(anima_pids(state)) == 3, what="running")
        first = anima_pids(state)
        os.kill(ctl.pid, signal.SIGKILL)
        ctl.proc.wait()  # type: ignore[union-attr]
    with ControllerRunner(org, state, "--resync-interval", "2"):
        time.sleep(1.0)
        assert anima_pids(state) == first  # adopted: the same processes, no second set
        supervisor = load_runtime(state.runtime).supervisor_pid
        assert supervisor is not None
        os.kill(supervisor, signal.SIGKILL)  # its Animas exit with it
        wait_for(lambda: not any(pid_alive(p) for p in first.values()), what="the Animas exit with their supervisor")
        wait_for(lambda: len(anima_pids(state)) == 3 and load_runtime(state.runtime).supervisor_pid != supervisor,
                 what="a new supervisor and its Animas")
        again = anima_pids(state)
        assert not set(again.values()) & set(first.values())
        assert anima_processes(state) == sorted(again.values())  # exactly one process per Anima


def test_a_mass_retirement_is_refused_by_the_controller_with_a_warning(running: Path, state: StatePaths,
                                                                       remote: tuple[Path, Path]) -> None:
    org = running
    _, pusher = remote
    with ControllerRunner(org, state):
        applied_head(org, state)
        git(pusher, "rm", "-rq", "animas/bob", "animas/carol")
        rebind_workflows(pusher, "bob", "carol")
        edit(pusher / "animas/alice/anima.yaml", "enabled: true", "enabled: true")
        sha = push(pusher, "remove bob and carol")
        wait_for(lambda: _events("MassRetireRefused"), what="MassRetireRefused")
        doc = wait_for(lambda: (d := controller_status(state)).get("source", {}).get("revision") == sha and d,
                       what="the pass at the new revision")
        assert "mass retirement refused" in next(c for c in doc["org"]["conditions"]
                                                 if c["type"] == "Stalled")["message"]
        assert set(anima_pids(state)) == {"alice", "bob", "carol"}


def _sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_the_webhook_receiver_needs_github_s_signature(running: Path, state: StatePaths,
                                                       remote: tuple[Path, Path]) -> None:
    """A signed push event (GitHub's X-Hub-Signature-256) starts a pass; unsigned or wrongly signed ones are 401."""
    import socket

    org = running
    secret = b"s3cret-shared-with-the-forge"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    with ControllerRunner(org, state, "--listen", f"127.0.0.1:{port}", env={"ORGCTL_WEBHOOK_SECRET": secret.decode()}):
        body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
        passes = controller_status(state)["passes"]
        assert _post(url, body, headers) == 401
        assert _post(url, body, headers | {"X-Hub-Signature-256": _sign(b"wrong", body)}) == 401
        assert _post(url, body, headers | {"X-Hub-Signature-256": _sign(secret, body)}) == 202
        wait_for(lambda: "webhook" in controller_status(state).get("last_pass", {}).get("trigger", ""),
                 what="a webhook pass")
        assert controller_status(state)["passes"] > passes
        ping = b"{}"
        assert _post(url, ping, {"X-GitHub-Event": "ping", "X-Hub-Signature-256": _sign(secret, ping)}) == 200


def test_listen_without_a_secret_is_refused_before_anything_starts(org: Path, state: StatePaths) -> None:
    result = subprocess.run([sys.executable, "-m", "orgctl", "controller", "run", str(org), "--listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "ORGCTL_WEBHOOK_SECRET"})
    assert result.returncode == 1 and "--listen needs the webhook's shared secret" in result.stderr
    assert not state.inventory.exists()


def test_suspend_holds_an_anima_or_the_whole_org_as_it_is_until_resumed(running: Path, state: StatePaths,
                                                                       remote: tuple[Path, Path]) -> None:
    """Flux's suspend: the controller stops reconciling and leaves things as they are; a pause holds through
    self-heal; `plan` and `status` show every suspension."""
    org = running
    _, pusher = remote
    with ControllerRunner(org, state, "--resync-interval", "1"):
        applied_head(org, state)
        assert run_cli("suspend", "bob", str(org), "--reason", "incident 42").exit_code == 0
        assert run_cli("pause", "carol", str(org), "--reason", "on leave").exit_code == 0
        edit(pusher / "animas/bob/injection.md", "\n", "\nHeld back.\n")
        edit(pusher / "animas/alice/injection.md", "\n", "\nNot held.\n")
        sha = push(pusher, "bob and alice change")
        wait_for(lambda: "Not held." in read_json(state.spec_snapshot("alice"))["spec"]["injection"],
                 what="alice converged")
        time.sleep(2.5)  # a few more passes
        assert "Held back." not in read_json(state.spec_snapshot("bob"))["spec"]["injection"]
        assert "carol" not in anima_pids(state)  # the pause holds through self-heal
        rows = {r["name"]: r for r in json.loads(run_cli("status", "--json", str(org)).output)["animas"]}
        assert rows["bob"]["suspended"].startswith("suspended by human") and "incident 42" in rows["bob"]["suspended"]
        assert rows["carol"]["state"] == "paused" and rows["carol"]["health"] == "Suspended"
        table = run_cli("status", str(org)).output
        assert "(suspended)" in table and "bob: suspended by human" in table
        assert run_cli("resume", "bob", str(org)).exit_code == 0
        wait_for(lambda: "Held back." in read_json(state.spec_snapshot("bob"))["spec"]["injection"],
                 what="bob converged after resume")

        assert run_cli("suspend", "--all", str(org), "--reason", "rollback").exit_code == 0
        edit(pusher / "animas/alice/injection.md", "\nNot held.\n", "\nHeld by the org.\n")
        push(pusher, "alice again")
        time.sleep(2.5)
        assert "Held by the org." not in read_json(state.spec_snapshot("alice"))["spec"]["injection"]
        assert "skipped: the reconciliation of the whole org is suspended" in \
            controller_status(state)["last_pass"]["summary"]
        assert run_cli("apply", str(org), "--auto-approve").exit_code == 0  # by hand: allowed while suspended
        assert run_cli("resume", "--all", str(org)).exit_code == 0
        wait_for(lambda: "Held by the org." in read_json(state.spec_snapshot("alice"))["spec"]["injection"],
                 what="alice converged after resume --all")
        assert sha != controller_status(state)["source"]["revision"]
