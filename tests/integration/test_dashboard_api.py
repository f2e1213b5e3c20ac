"""The dashboard's HTTP API on a real server: ``orgctl dashboard`` as a child process on loopback, over a real org
(applied and running, or stopped, or a tick org with a bare remote on disk). Requests go through http.client, so
raw paths (``..``, encoded slashes) and forged Host headers reach the server as written."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from orgctl.paths import StatePaths
from tests.conftest import commit_all, edit, git, run_cli, wait_for

TOKEN = "t0ken-for-the-dashboard-tests"


class Server:
    """A running ``orgctl dashboard``; :meth:`get` sends one request."""

    def __init__(self, org: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "orgctl", "dashboard", str(org), "--listen",
                                      "127.0.0.1:0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert " at http://127.0.0.1:" in line, line
        self.port = int(line.split("127.0.0.1:", 1)[1].split("/", 1)[0])

    def get(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            for key, value in sent.items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, path: str, **kwargs: Any) -> Any:
        status, _, body = self.get(path, **kwargs)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def applied(running: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cassette = tmp_path / "cassette.jsonl"
    cassette.write_text("")
    monkeypatch.setenv("ORGCTL_CASSETTE", str(cassette))  # a replay that holds no call: no model is reached
    assert run_cli("apply", str(running), "--auto-approve").exit_code == 0
    return running


@pytest.fixture
def server(applied: Path) -> Iterator[Server]:
    s = Server(applied)
    yield s
    s.stop()


def test_a_non_loopback_address_needs_a_token_and_a_short_token_is_refused(org: Path) -> None:
    refused = run_cli("dashboard", str(org), "--listen", "0.0.0.0:0")
    assert refused.exit_code == 1 and "only loopback is served without a token" in refused.output
    assert "ssh -L" in refused.output and "Traceback" not in refused.output
    short = run_cli("dashboard", str(org), "--listen", "127.0.0.1:0", "--token", "abc")
    assert short.exit_code == 1 and "at least 16" in short.output
    bad = run_cli("dashboard", str(org), "--listen", "localhost")
    assert bad.exit_code == 1 and "use HOST:PORT" in bad.output


def test_every_request_is_checked_against_the_token(applied: Path) -> None:
    s = Server(applied, "--token", TOKEN)
    try:
        assert run_cli("send", "human", "bob", f"the token is {TOKEN}", "-C", str(applied)).exit_code == 0
        for path in ("/", "/api/org", "/static/dashboard.js", "/api/plan/after.svg", "/api/anima/bob"):
            status, headers, body = s.get(path)
            assert status == 401 and b"token is required" in body and headers["www-authenticate"] == "Bearer"
        assert s.get("/api/org", headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
        assert s.get("/api/org", headers={"Authorization": f"Bearer {TOKEN}x"})[0] == 401
        assert s.json("/api/org", headers={"Authorization": f"Bearer {TOKEN}"})["org"]["name"] == "acme"
        inbox = json.dumps(s.json("/api/anima/bob", headers={"Authorization": f"Bearer {TOKEN}"})["inbox"])
        assert "the token is [redacted]" in inbox and TOKEN not in inbox
        status, headers, _ = s.get(f"/?token={TOKEN}")
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert s.json("/api/org", headers={"Cookie": cookie.split(";")[0]})["animas"]
        assert s.get("/api/org", headers={"Cookie": "orgctl_dashboard=nope"})[0] == 401
        # with a token the Host is not what protects it: behind a reverse proxy it is the proxy's name
        assert s.get("/api/org", headers={"Authorization": f"Bearer {TOKEN}", "Host": "dash.example.com"})[0] == 200
    finally:
        s.stop()


def test_without_a_token_only_a_loopback_host_is_answered(server: Server) -> None:
    assert server.get("/api/org", headers={"Host": "evil.example"})[0] == 421  # DNS rebinding
    assert server.get("/api/org", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert server.get("/api/org", headers={"Host": f"127.0.0.1:{server.port}"})[0] == 200


def test_it_is_read_only_and_sends_its_security_headers(server: Server) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = server.get("/api/org", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, _ = server.get("/")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "server" not in headers


TRAVERSALS = [
    "/static/../data.py", "/static/%2e%2e/data.py", "/static/..%2fdata.py", "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static//etc/passwd", "/api/anima/..%2f..%2f..%2fetc%2fpasswd", "/api/anima/%2e%2e", "/api/anima/..",
    "/api/anima/bob/memory/HEAD", "/api/anima/bob/memory/..%2f..%2fetc", "/api/anima/bob/memory/--output=x",
    "/api/plan/..%2f..%2fetc%2fpasswd.svg", "/api/../../etc/passwd", "/api/anima/bob%00/memory/abc1234",
]


def test_no_path_reaches_outside_the_org(server: Server) -> None:
    for path in TRAVERSALS:
        status, _, body = server.get(path)
        assert status in (400, 404), (path, status)
        assert b"root:" not in body and b"def " not in body and b"import " not in body, path


def test_a_linked_note_is_not_read_and_secrets_are_never_rendered(applied: Path, state: StatePaths,
                                                                  tmp_path: Path) -> None:
    memory = Path(json.loads(state.spec_snapshot("bob").read_text())["memory_dir"])
    (memory / "knowledge").mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside.md"
    outside.write_text("---\ntitle: stolen\n---\nthe host's secrets\n")
    (memory / "knowledge" / "evil.md").symlink_to(outside)
    (memory / "knowledge" / "fine.md").write_text("---\ntitle: Fine note\n---\n- a fact\n")
    env_file = applied / ".env"
    env_file.write_text("OPENAI_API_KEY=sk-live-abcdefghijklmnop0123\n")
    env_file.chmod(0o600)
    s = Server(applied, env={"SLACK_BOT_TOKEN": "xoxb-1234567890-secret"})
    try:
        leak = "key sk-live-abcdefghijklmnop0123 and xoxb-1234567890-secret"
        assert run_cli("send", "human", "bob", leak, "-C", str(applied)).exit_code == 0
        page = s.json("/api/anima/bob")
        assert [n["title"] for n in page["knowledge"]] == ["Fine note"]  # the link is not followed
        text = json.dumps(page)
        assert "sk-live-abcdefghijklmnop0123" not in text and "xoxb-1234567890-secret" not in text
        assert "key [redacted] and [redacted]" in text
        assert b"sk-live" not in s.get("/api/work")[2]
    finally:
        s.stop()


def test_every_view_answers_with_what_the_cli_prints(applied: Path, state: StatePaths, server: Server) -> None:
    from orgctl.memory.stores import MemoryStore

    assert run_cli("task", "add", "carol", "Compare queue libraries", "--due", "1s", "-C", str(applied)).exit_code == 0
    org = server.json("/api/org")
    assert org["org"]["name"] == "acme" and org["org"]["health"] == "Healthy" and org["org"]["sync"] == "Synced"
    cards = {c["name"]: c for c in org["animas"]}
    assert {n: c["supervisor"] for n, c in cards.items()} == {"alice": None, "bob": "alice", "carol": "alice"}
    assert all(c["ready"] and c["health"] == "Healthy" and c["model"] == "local/smollm2" for c in cards.values())
    assert {c["type"] for c in cards["bob"]["conditions"]} == {"Ready", "Reconciling", "Stalled"}
    wait_for(lambda: server.json("/api/org")["animas"][2]["queue"]["overdue"] == 1, timeout=10, what="overdue")

    work = server.json("/api/work")
    listed = json.loads(run_cli("tasks", "-C", str(applied), "--json").output)
    assert [t["id"] for t in work["tasks"]] == [t["id"] for t in listed]
    assert work["tasks"][0]["overdue"] is True and "records" not in work["tasks"][0]
    assert [c["channel"] for c in work["board"]] == ["general"]
    kinds = [e["type"] for e in work["events"]]
    assert kinds == sorted(kinds, key=lambda k: k != "Warning")  # Warning first
    only = server.json("/api/work?type=Warning")["events"]
    assert only and {e["type"] for e in only} == {"Warning"}

    store = MemoryStore(Path(json.loads(state.spec_snapshot("bob").read_text())["memory_dir"]), anima="bob")
    with store.writing():
        store.append_episode(day=date.today(), markdown="## 09:00:00 heartbeat\n\n- Did: x",
                             record={"at": "2026-12-01T09:00:00", "did": ["replied to carol: done"]})
    done = run_cli("consolidate", str(applied), "--anima", "bob")
    sha = done.output.split("commit ", 1)[1].split()[0]
    bob = server.json("/api/anima/bob")
    assert set(bob) == {"card", "tasks", "inbox", "activity", "knowledge", "procedures", "memory_log"}
    assert bob["memory_log"][0]["sha"].startswith(sha) and bob["memory_log"][0]["pass"] == "consolidate"
    assert any(n["path"] == "knowledge/carol.md" for n in bob["knowledge"])
    commit = server.json(f"/api/anima/bob/memory/{sha}")
    cli = json.loads(run_cli("memory", "diff", sha, "bob", "-C", str(applied), "--json").output)
    assert {k: commit[k] for k in ("rev", "trailers", "notes")} == cli  # one source of truth
    assert any("learned" in line and "knowledge/carol.md" in line for line in commit["text"])
    assert server.get(f"/api/anima/alice/memory/{sha}")[0] == 404  # bob's commit, not alice's

    plan = server.json("/api/plan")
    assert plan["plan"]["summary"] == {"hire": 0, "change": 0, "restart": 0, "retire": 0}
    assert plan["history"][0]["result"].startswith("Apply complete!")
    status, headers, svg = server.get("/api/plan/after.svg")
    assert status == 200 and headers["content-type"].startswith("image/svg+xml")
    names = {g.get("data-name") for g in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g")}
    assert names == {"alice", "bob", "carol"}
    assert server.get("/api/plan/sideways.svg")[0] == 404
    assert server.get("/api/nothing")[0] == 404


def test_it_reads_a_stopped_org(applied: Path, server: Server) -> None:
    assert run_cli("down", str(applied)).exit_code == 0
    org = server.json("/api/org")
    assert org["org"]["supervisor_running"] is False and org["org"]["health"] == "Missing"
    assert {c["health"] for c in org["animas"]} == {"Missing"} and not any(c["ready"] for c in org["animas"])
    cli = json.loads(run_cli("plan", str(applied), "--json").output)
    wait_for(lambda: server.json("/api/plan")["plan"] == cli, timeout=10, what="what `orgctl plan --json` prints")
    status = {r["name"]: r["state"] for r in json.loads(run_cli("status", str(applied), "--json").output)["animas"]}
    assert server.json("/api/anima/bob")["card"]["state"] == status["bob"] == "stopped"


def test_a_tick_org_is_read_from_its_state_branch_and_nothing_is_pushed(org: Path, tmp_path: Path) -> None:
    edit(org / "org.yaml", 'active_hours: "08:00-20:00"', "active_hours: always")
    (org / "org.yaml").write_text((org / "org.yaml").read_text() + "runtime: tick\n")
    commit_all(org, "run as ticks")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(org, "remote", "add", "origin", str(bare))
    git(org, "push", "-q", "-u", "origin", "HEAD")
    assert run_cli("task", "add", "bob", "Ticked task", "-C", str(org)).exit_code == 0  # saved to orgctl/state
    tip = git(bare, "rev-parse", "orgctl/state").strip()
    s = Server(org)
    try:
        work = s.json("/api/work")
        assert [t["title"] for t in work["tasks"]] == ["Ticked task"]
        view = s.json("/api/org")
        assert view["org"]["mode"] == "tick" and view["org"]["sync"] == "Synced"
        assert {c["name"]: (c["health"], c["queue"]["open"]) for c in view["animas"]} == \
            {"alice": ("Missing", 0), "bob": ("Missing", 1), "carol": ("Missing", 0)}  # no tick ran yet
        assert "tick org is not applied" in s.json("/api/plan")["error"]
    finally:
        s.stop()
    assert git(bare, "rev-parse", "orgctl/state").strip() == tip  # the dashboard pushed nothing
