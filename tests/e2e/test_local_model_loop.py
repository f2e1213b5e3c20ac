"""End to end on the real embedded model (SmolLM2-135M via llama.cpp on loopback, no network).

init -> apply -> a chat answered -> consolidate -> checks on the episode, the
knowledge note, the commit and its trailers -> down -> no process left.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orgctl.gitops import repos
from orgctl.paths import StatePaths
from orgctl.processes import cmdline
from orgctl.state.files import pid_alive, read_json
from orgctl.state.runtimes import load_runtime
from tests.conftest import commit_all, edit, git, run_cli

pytestmark = pytest.mark.e2e


def orgctl_pids(state: StatePaths) -> list[int]:
    """Every live process whose command line names this test's state dir (supervisor, Animas, model server)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and str(state.root) in cmdline(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_init_apply_heartbeat_consolidate_down(org: Path, state: StatePaths) -> None:
    edit(org / "org.yaml", "heartbeat_interval: 30m ", "heartbeat_interval: 4s ")
    edit(org / "org.yaml", 'active_hours: "08:00-20:00"', 'active_hours: always')
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: false")  # fewer model calls
    edit(org / "animas/carol/anima.yaml", "enabled: true", "enabled: false")
    source = commit_all(org, "fast heartbeats for the test")
    try:
        result = run_cli("apply", str(org), "--auto-approve")
        assert result.exit_code == 0, result.output
        chat = run_cli("chat", "alice", "What is your team working on?", "--timeout", "300", "-C", str(org))
        assert chat.exit_code == 0 and chat.output.startswith("alice: "), chat.output

        server = read_json(state.model_server)
        assert server["url"].startswith("http://127.0.0.1:")
        # The reply reaches the person mid-cycle; the episode is written when the cycle ends.
        episodes = state.memory("alice") / "episodes"  # memory is written in the runtime's clone
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "- Did: answered the person:" in p.read_text() for p in episodes.glob("*.md")):
            time.sleep(0.2)
        day = sorted(episodes.glob("*.md"))[-1]
        episode = day.read_text()
        assert episode.startswith("# Episodes of alice,") and "- Observed: human (chat): What is your team" in episode
        assert "- Did: answered the person:" in episode
        records = [json.loads(x) for x in (state.memory("alice") / f"activity_log/{day.stem}.jsonl")
                   .read_text().splitlines()]
        answered = [r for r in records if r["did"] and r["did"][0].startswith("answered the person")]
        assert answered and answered[0]["revision"] == source and answered[0]["usage"]["calls"] == 1
        usage = [json.loads(x) for x in state.usage.read_text().splitlines()]
        assert {u["purpose"] for u in usage} >= {"reply"} and all(u["completion_tokens"] > 0 for u in usage)

        result = run_cli("consolidate", str(org), "--anima", "alice")
        assert result.exit_code == 0, result.output
        assert "alice:" in result.output and "commit" in result.output

        assert git(org, "rev-parse", "HEAD").strip() == source  # the person's checkout is never written
        pulled = run_cli("pull", str(org))
        assert pulled.exit_code == 0 and pulled.output.startswith("Fast-forwarded"), pulled.output
        assert git(org, "status", "--porcelain").strip() == ""

        note = org / "animas/alice/memory/knowledge/people.md"  # one note per subject: the person it answered
        text = note.read_text()
        assert text.startswith("---\nformat: 1\ntitle: Working with people\n"), text
        assert "\n# Working with people\n" in text and f"\n- {day.stem}: answered the person: " in text

        sha = git(org, "log", "-1", "--format=%H", "--grep", "^memory(alice): consolidate").strip()
        message = git(org, "log", "-1", "--format=%B", sha)
        trailers = repos.parse_trailers(message)
        assert trailers["Anima"] == "alice" and trailers["Pass"] == "consolidate"
        assert trailers["Source-Revision"] == source and int(trailers["Added"]) >= 1
        assert trailers["Redactions"] == "0"
        assert git(org, "log", "-1", "--format=%an", sha).strip() == repos.BOT_NAME
        touched = git(org, "show", "--name-only", "--format=", sha).split()
        assert "animas/alice/memory/knowledge/people.md" in touched
        assert all(p.startswith("animas/alice/memory/knowledge/") or p.startswith("animas/alice/memory/procedures/")
                   for p in touched)  # the pass commit holds what was learned; the episodes came just before
        episodes = git(org, "log", "--format=%H", "--grep", "^memory(alice): record episodes").split()
        assert episodes and "episodes/" in git(org, "show", "--name-only", "--format=", episodes[0])

        status = json.loads(run_cli("status", str(org), "--json").output)
        alice_row = next(a for a in status["animas"] if a["name"] == "alice")
        assert alice_row["heartbeats"] >= 1 and alice_row["last_heartbeat"]  # the chat woke a cycle
        assert [a["name"] for a in status["animas"]] == ["alice"]  # disabled and never hired: not in the inventory
    finally:
        down = run_cli("down", str(org))
    assert down.exit_code == 0, down.output
    time.sleep(0.5)
    assert orgctl_pids(state) == []
    assert not any(pid_alive(p.pid) for p in load_runtime(state.runtime).animas.values() if p.pid)
