"""apply / status / down on real git repos and real child processes (supervisor + one per Anima).

Heartbeats are the template's 30 minutes, so no model is called here; the
end-to-end test covers heartbeats on the real model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from orgctl.paths import StatePaths
from orgctl.state.files import pid_alive
from orgctl.state.inventories import load_inventory
from orgctl.state.runtimes import load_runtime
from tests.conftest import anima_processes, commit_all, edit, git, rebind_workflows, run_cli, wait_for


def pids(state: StatePaths) -> dict[str, int]:
    """Pids of Animas once all have said hello to the supervisor."""
    def ready() -> dict[str, int] | None:
        rt = load_runtime(state.runtime)
        if rt.animas and all(p.state in ("running", "resting") and p.pid for p in rt.animas.values()):
            return {n: p.pid for n, p in rt.animas.items() if p.pid}
        return None
    return wait_for(ready)


def status_json() -> dict:  # type: ignore[type-arg]
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_apply_converges_and_second_apply_does_nothing(running: Path, state: StatePaths) -> None:
    org = running
    result = run_cli("plan", str(org), "--detailed-exitcode")
    assert result.exit_code == 2 and "Plan: 3 to hire, 0 to change, 0 to retire; workflows: 1 to add." in result.output
    result = run_cli("apply", str(org), "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Animas: 3 hired, 0 changed, 0 retired." in result.output
    first = pids(state)
    assert set(first) == {"alice", "bob", "carol"} and all(pid_alive(p) for p in first.values())

    head = git(org, "rev-parse", "HEAD").strip()
    inventory = load_inventory(state.inventory)
    assert inventory.revision == head
    assert {e.revision for e in inventory.animas.values()} == {head}
    assert all(len(e.spec_hash) == 64 for e in inventory.animas.values())

    again = run_cli("apply", str(org), "--auto-approve")
    assert again.exit_code == 0 and "No changes." in again.output
    assert run_cli("plan", str(org), "--detailed-exitcode").exit_code == 0
    assert pids(state) == first

    report = status_json()
    rows = {a["name"]: a for a in report["animas"]}
    assert report["supervisor_running"] and report["revision"] == head
    assert {r["state"] for r in rows.values()} <= {"running", "resting"}
    assert all(r["restarts"] == 0 for r in rows.values())
    human = run_cli("status", str(org)).output
    assert "NAME" in human and "LAST HEARTBEAT" in human and "RESTARTS" in human and head[:7] in human
    assert report["org"]["sandbox"] == "on" and "Sandbox:          on" in human

    (org / "org.yaml").write_text((org / "org.yaml").read_text() + "sandbox: off\n")
    commit_all(org, "commands unconfined")
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    assert "Sandbox:          OFF" in run_cli("status", str(org)).output  # loudly


def test_changing_one_spec_restarts_only_that_anima(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    before = pids(state)
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nheartbeat_interval: 45m")
    (org / "animas/carol/identity.md").write_text("# Carol\n\nTerse now.\n")
    rev = commit_all(org, "bob wakes less often; carol is terse")

    plan = run_cli("plan", str(org), "--json")
    changes = {c["name"]: c["action"] for c in json.loads(plan.output)["changes"]}
    assert changes == {"bob": "restart", "carol": "change"}

    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    after = pids(state)
    assert after["bob"] != before["bob"] and not pid_alive(before["bob"])
    assert after["alice"] == before["alice"] and after["carol"] == before["carol"]
    assert json.loads(state.spec_snapshot("carol").read_text())["revision"] == rev
    assert "Terse now." in json.loads(state.spec_snapshot("carol").read_text())["spec"]["identity"]
    assert load_inventory(state.inventory).animas["bob"].config["heartbeat_interval"] == 2700
    assert "reloaded spec" in wait_for(lambda: "reloaded" in (t := (state.logs / "carol.log").read_text()) and t)


def test_removed_anima_is_stopped_and_archived_with_its_memory(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    carol_pid = pids(state)["carol"]
    episode = org / "animas/carol/memory/episodes/2026-01-01.md"
    episode.write_text("## 10:00:00 heartbeat\n\n- learned something\n")
    commit_all(org, "carol remembers")
    git(org, "rm", "-rq", "animas/carol")
    rebind_workflows(org, "carol")
    git(org, "add", "workflows")
    git(org, "commit", "-qm", "retire carol")  # not add --all: carol may still be writing memory into her folder

    result = run_cli("apply", str(org), "--auto-approve")
    assert result.exit_code == 0 and "0 hired, 2 changed, 1 retired" in result.output  # alice, bob: org chart
    assert not pid_alive(carol_pid)
    entry = load_inventory(state.inventory).animas["carol"]
    assert entry.status == "retired" and entry.archive
    archived = Path(entry.archive) / "memory/episodes/2026-01-01.md"
    assert archived.read_text().startswith("## 10:00:00 heartbeat")
    assert not (org / "animas/carol").exists()
    assert "carol" not in load_runtime(state.runtime).animas
    assert run_cli("plan", str(org), "--detailed-exitcode").exit_code == 0


def test_crashed_anima_restarts_with_backoff(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    bob = pids(state)["bob"]
    os.kill(bob, signal.SIGKILL)
    restarted = wait_for(lambda: (p := load_runtime(state.runtime).animas["bob"]).restarts == 1
                         and p.state in ("running", "resting") and p.pid != bob and p)  # resting: outside active hours
    assert restarted.last_exit_code == -signal.SIGKILL
    assert restarted.backoff_seconds == 1.0
    assert run_cli("plan", str(org), "--detailed-exitcode").exit_code == 0  # healed, no drift
    rows = {a["name"]: a for a in status_json()["animas"]}
    assert rows["bob"]["restarts"] == 1 and rows["alice"]["restarts"] == 0


def test_down_stops_everything_orgctl_started_and_nothing_else(running: Path, state: StatePaths) -> None:
    org = running
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
        started = list(pids(state).values()) + [load_runtime(state.runtime).supervisor_pid]
        result = run_cli("down", str(org))
        assert result.exit_code == 0 and "Stopped 4 process(es)" in result.output
        assert not [p for p in started if p and pid_alive(p)]
        assert bystander.poll() is None
        assert {e.status for e in load_inventory(state.inventory).animas.values()} == {"stopped"}
        plan = run_cli("plan", str(org))
        assert "Plan: 3 to hire" in plan.output and "stopped by `orgctl down`" in plan.output
        assert run_cli("down", str(org)).output.strip() == "Nothing was running."
    finally:
        bystander.kill()
        bystander.wait()


def test_supervisor_killed_takes_its_animas_with_it(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    animas = pids(state)
    sup = load_runtime(state.runtime).supervisor_pid
    assert sup
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not any(pid_alive(p) for p in animas.values()))
    plan = run_cli("plan", str(org))
    assert "Plan: 0 to hire, 3 to change, 0 to retire." in plan.output
    assert "supervisor is not running" in plan.output
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    assert set(pids(state)) == {"alice", "bob", "carol"}


def test_apply_without_tty_needs_auto_approve(running: Path, state: StatePaths) -> None:
    result = run_cli("apply", str(running))
    assert result.exit_code == 1 and "--auto-approve" in result.output
    assert not load_inventory(state.inventory).animas


def test_uncommitted_spec_edits_are_flagged_not_planned(running: Path) -> None:
    edit(running / "animas/bob/anima.yaml", "role: engineer", "role: ops")
    result = run_cli("plan", str(running), "--json")
    assert result.exit_code == 0
    assert "uncommitted change(s)" in result.output  # CliRunner mixes stderr in


def test_a_paused_anima_stays_stopped_through_apply_until_resumed(running: Path, state: StatePaths) -> None:
    """`orgctl pause` stops bob's real process; plan/apply keep his spec current without starting him."""
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    bob = pids(state)["bob"]
    result = run_cli("pause", "bob", str(org), "--reason", "noisy today")
    assert result.exit_code == 0 and "Paused bob" in result.output, result.output
    wait_for(lambda: not pid_alive(bob))
    rows = {a["name"]: a for a in status_json()["animas"]}
    assert rows["bob"]["state"] == "paused" and rows["alice"]["state"] in ("running", "resting")
    assert "No changes" in run_cli("plan", str(org)).output  # paused is not drift

    edit(org / "animas/bob/identity.md", "# Bob", "# Bob the builder")
    commit_all(org, "bob: new identity")
    planned = run_cli("plan", str(org)).output
    assert "bob" in planned and "paused by human" in planned and "1 to change" in planned, planned
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    time.sleep(1.0)
    assert "bob" not in {n for n, p in load_runtime(state.runtime).animas.items() if p.pid and pid_alive(p.pid)}
    snapshot = json.loads(state.spec_snapshot("bob").read_text())
    assert "Bob the builder" in json.dumps(snapshot)  # the spec was recorded for when he resumes
    assert "No changes" in run_cli("plan", str(org)).output

    result = run_cli("resume", "bob", str(org))
    assert result.exit_code == 0 and "Resumed bob." in result.output, result.output
    assert pids(state)["bob"] != bob
    assert {a["name"]: a["state"] for a in status_json()["animas"]}["bob"] in ("running", "resting")
    reasons = [json.loads(line)["reason"] for line in state.work.events.read_text().splitlines()]
    assert "AnimaPaused" in reasons and "AnimaResumed" in reasons


def test_pause_refuses_an_unknown_name_and_changes_nothing(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    result = run_cli("pause", "../alice", str(org))
    assert result.exit_code == 1 and "no applied Anima named '../alice'" in result.output
    assert not state.paused.exists() or not list(state.paused.iterdir())


def test_init_over_a_path_whose_org_left_state_sets_that_state_aside(running: Path, state: StatePaths) -> None:
    """`rm -rf org && orgctl init org` is a new org: the old org's tasks, inbox and events must not leak
    into it (the demo once showed yesterday's events). A running old org is refused instead."""
    import shutil

    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    # The Animas still write memory into the checkout (until the memory issue moves it): let them finish their
    # first boot, and keep alice paused so the task does not wake her, before the folder is removed under them.
    wait_for(lambda: all((state.work.cursors / f"{n}.booted.json").exists() for n in ("alice", "bob", "carol")),
             what="first boot of every Anima")
    assert run_cli("pause", "alice", str(org)).exit_code == 0
    assert run_cli("task", "add", "alice", "Old org's task", "-C", str(org)).exit_code == 0
    shutil.rmtree(org)
    refused = run_cli("init", str(org))
    assert refused.exit_code == 1 and "is running" in refused.output and "orgctl down" in refused.output
    assert not org.exists()  # nothing created
    assert run_cli("down", str(org)).exit_code == 0
    created = run_cli("init", str(org), "--name", "acme")
    assert created.exit_code == 0 and "moved it aside to" in created.output, created.output
    [aside] = list(state.root.parent.glob(f"{state.root.name}.replaced-*"))
    assert "Old org's task" in "".join(p.read_text() for p in (aside / "work").rglob("*.jsonl"))
    assert not state.root.exists()
    assert "Old org's task" not in run_cli("tasks", "--all", "-C", str(org)).output


def test_down_in_one_org_never_signals_another_orgs_processes(running: Path, state: StatePaths, tmp_path: Path,
                                                              monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two orgs on one machine. Org A's runtime record is made to name org B's Anima and supervisor (a
    tampered record, or pids reused after a crash): A's `down` must leave B's processes alone, because a
    process is identified by pid + start time + its org's state directory, not by "mentions orgctl"."""
    from orgctl.gitops.bootstrapping import init_org
    from orgctl.paths import template_dir
    from orgctl.runtime.local import LocalBackend
    from orgctl.state.runtimes import RuntimeStatus, save_runtime

    org_a = running
    org_b = tmp_path / "other"
    init_org(dest=org_b, template=template_dir(), name="other")
    state_b = StatePaths(root=(tmp_path / "state-b").resolve())
    monkeypatch.setenv("ORGCTL_STATE_DIR", str(state_b.root))
    try:
        assert run_cli("apply", str(org_b), "--auto-approve").exit_code == 0
        b_pids = pids(state_b)
        b_runtime = load_runtime(state_b.runtime)
        monkeypatch.setenv("ORGCTL_STATE_DIR", str(state.root))
        assert run_cli("apply", str(org_a), "--auto-approve").exit_code == 0
        pids(state)
        # A's record now claims B's supervisor and B's bob
        a_runtime = load_runtime(state.runtime)
        a_runtime.animas["bob"] = a_runtime.animas["bob"].model_copy(
            update={"pid": b_pids["bob"], "start_ticks": b_runtime.animas["bob"].start_ticks})
        save_runtime(state.runtime, a_runtime)
        assert not RuntimeStatus(supervisor_pid=b_runtime.supervisor_pid, state_root=str(state.root),
                                 supervisor_start_ticks=b_runtime.supervisor_start_ticks).supervisor_alive()
        assert not RuntimeStatus(supervisor_pid=a_runtime.supervisor_pid, state_root=str(state.root),
                                 supervisor_start_ticks=(a_runtime.supervisor_start_ticks or 0) + 1
                                 ).supervisor_alive()  # a reused pid: same number, other start time
        assert run_cli("down", str(org_a)).exit_code == 0
        assert all(pid_alive(p) for p in b_pids.values()), "org A's down signalled org B's processes"
        assert load_runtime(state_b.runtime).supervisor_alive()
    finally:
        LocalBackend(paths=state_b, org_dir=org_b).shutdown()
    assert not any(pid_alive(p) for p in b_pids.values())


def test_a_stray_file_in_episodes_does_not_crash_the_anima(running: Path, state: StatePaths) -> None:
    """Files in episodes/ that are not days (notes, a conflict copy, an impossible date) must not crash
    bob's start (measured on earlier code: a crash loop while plan said "No changes"; the reader that
    parsed every file name as a date is gone)."""
    org = running
    episodes = org / "animas/bob/memory/episodes"
    episodes.mkdir(parents=True, exist_ok=True)
    for stray in ("notes.md", "2026-13-45.md", "2026-11-23 (conflict).md"):
        (episodes / stray).write_text("## 10:00:00 heartbeat\n\n- Did: nothing\n")
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    bob = pids(state)["bob"]
    time.sleep(2.0)  # long enough for a crash at start to show
    proc = load_runtime(state.runtime).animas["bob"]
    assert proc.pid == bob and proc.restarts == 0 and proc.state in ("running", "resting")
    assert {a["name"]: a["health"] for a in status_json()["animas"]}["bob"] == "Healthy"


def test_a_crash_loop_is_degraded_with_its_log_and_a_warning_event(running: Path, state: StatePaths) -> None:
    """bob's snapshot is corrupted and his process killed: every restart dies at start. status shows
    Degraded with the reason and his log's last lines; a Warning event says the same; plan shows the
    Anima as needing a restart (the supervisor has no healthy process for it)."""
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    bob = pids(state)["bob"]
    state.spec_snapshot("bob").write_text("{ not json")
    os.kill(bob, signal.SIGKILL)
    row = wait_for(lambda: (r := {a["name"]: a for a in status_json()["animas"]}["bob"])["health"] == "Degraded"
                   and r, timeout=30)
    assert row["reason"].startswith("crash loop: exited with 1 after ") and "log: " in row["reason"], row
    assert "snapshot" in row["reason"].lower() or "json" in row["reason"].lower(), row  # the log says why
    plain = run_cli("status", str(org)).output
    assert "bob: Degraded: crash loop" in plain and "Degraded" in plain
    events = [json.loads(line) for line in state.work.events.read_text().splitlines()]
    degraded = [e for e in events if e["reason"] == "AnimaDegraded" and e["anima"] == "bob"]
    assert len(degraded) == 1 and degraded[0]["type"] == "Warning" and "crash loop" in degraded[0]["message"]


def test_health_from_the_record_alone() -> None:
    from datetime import UTC, datetime, timedelta

    from orgctl.state.observing import assess
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    beat = (now - timedelta(minutes=95)).isoformat()
    assert assess(dict(name="bob", state="running", last_heartbeat=beat), interval=1800, now=now)[0] \
        == "Degraded"
    assert assess(dict(name="bob", state="resting", last_heartbeat=beat), interval=1800, now=now) \
        == ("Healthy", "")  # resting outside active hours is not a missed beat
    recent = (now - timedelta(minutes=40)).isoformat()
    assert assess(dict(name="bob", state="running", last_heartbeat=recent), interval=1800, now=now)[0] \
        == "Healthy"
    assert assess(dict(name="bob", state="backoff", restarts=1), interval=1800, now=now)[0] == "Healthy"


def _bob_processes(state: StatePaths) -> list[int]:
    """Live Anima processes named bob of this org, found in /proc (tracked or not)."""
    return anima_processes(state, "bob")


def test_a_restart_racing_a_backoff_respawn_leaves_exactly_one_tracked_process(running: Path,
                                                                              state: StatePaths) -> None:
    """bob is killed; while his backoff respawn comes due, a planned restart and a stop arrive. Before
    the fix the supervisor could respawn him while a restart was detaching him, and lose track of that
    process (an untracked bob kept running). Now every lifecycle step of one Anima is serialized and
    a supervision pass never respawns a child that is not wanted."""
    from orgctl.runtime import protocol

    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    for attempt in range(6):
        bob = pids(state)["bob"]
        os.kill(bob, signal.SIGKILL)
        backoff = wait_for(lambda: (p := load_runtime(state.runtime).animas["bob"]).state == "backoff" and p)
        time.sleep(max(0.0, backoff.backoff_seconds - 0.05 + 0.02 * attempt))  # around the respawn
        protocol.request(state.socket, "restart", name="bob")
        tracked = pids(state)["bob"]
        time.sleep(0.5)
        assert _bob_processes(state) == [tracked], (attempt, _bob_processes(state), tracked)
    protocol.request(state.socket, "stop", name="bob")
    time.sleep(1.5)  # a stopped Anima is never respawned by a pending backoff
    assert _bob_processes(state) == []


def test_a_supervision_pass_never_respawns_an_anima_that_is_not_wanted(running: Path, state: StatePaths) -> None:
    """The interleaving behind the race, made deterministic: a child whose backoff respawn is due but
    that a stop or restart has just let go of (not wanted). The old pass respawned it anyway."""
    from orgctl.runtime.supervisor import Supervisor, _Child

    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    assert run_cli("down", str(org)).exit_code == 0
    sup = Supervisor(paths=state, org_dir=org)
    child = _Child("bob")
    child.wanted = False
    child.restart_at = time.monotonic() - 1.0  # due
    sup._children["bob"] = child
    sup._check_children()
    assert child.proc is None and _bob_processes(state) == []
    child.wanted = True  # a wanted child in the same state is respawned: the pass itself works
    sup._check_children()
    try:
        # respawned (with no supervisor socket here, the new bob exits at once: its pid is what is checked)
        assert child.proc is not None and child.proc.pid > 0 and child.status.restarts == 1
    finally:
        sup.shutdown()
    assert _bob_processes(state) == []


def test_a_mass_retirement_is_refused_unless_allowed_and_every_apply_is_in_history(running: Path,
                                                                                   state: StatePaths) -> None:
    """Removing 2 of 3 Animas from the repo (more than half) must not stop them on a plain apply: exit
    1, nothing changed, a Warning event. --allow-mass-retire goes through. `orgctl history` lists each
    apply with its revision, plan, result and duration."""

    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    before = pids(state)
    git(org, "rm", "-rq", "animas/bob", "animas/carol")  # git, not rm -rf: bob and carol still write memory there
    rebind_workflows(org, "bob", "carol")
    edit(org / "animas/alice/injection.md", "Delegate engineering work to bob and research questions to carol.",
         "Do the work yourself for now.")
    git(org, "commit", "-qam", "an over-eager clean-up")
    refused = run_cli("apply", str(org), "--auto-approve")
    assert refused.exit_code == 1 and "refusing to apply: this plan retires 2 of 3 applied Animas" in refused.output
    assert "--allow-mass-retire" in refused.output and "Traceback" not in refused.output
    assert pids(state) == before and load_inventory(state.inventory).animas["bob"].status == "active"
    events = [json.loads(line) for line in state.work.events.read_text().splitlines()]
    assert [e["type"] for e in events if e["reason"] == "MassRetireRefused"] == ["Warning"]

    allowed = run_cli("apply", str(org), "--auto-approve", "--allow-mass-retire")
    assert allowed.exit_code == 0 and "2 retired" in allowed.output, allowed.output
    history = run_cli("history", str(org), "--json")
    records = [json.loads(line) for line in history.output.splitlines()]
    assert [r["plan"]["retire"] for r in records] == [0, 2] and [r["plan"]["hire"] for r in records] == [3, 0]
    assert records[-1]["revision"] == git(org, "rev-parse", "HEAD").strip()
    assert all(r["result"].startswith("Apply complete!") and r["duration_s"] >= 0 for r in records)
    plain = run_cli("history", str(org)).output
    assert "-2" in plain and "Apply complete! Animas: 0 hired, 1 changed, 2 retired." in plain


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from orgctl.state.locking import state_lock
with state_lock(Path(sys.argv[1]), operation="apply") as lock_id:
    print(lock_id, flush=True)
    time.sleep(120)
"""


def test_a_stuck_lock_names_its_holder_and_force_unlock_breaks_it(running: Path, state: StatePaths) -> None:
    """A hung apply (a real child process holding the flock) blocks every mutating command, which names
    it; force-unlock with a wrong id changes nothing; with the holder's id the next command proceeds."""
    import sys as _sys

    org = running
    state.root.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([_sys.executable, "-c", _HOLD_LOCK, str(state.lock)], stdout=subprocess.PIPE, text=True)
    try:
        lock_id = holder.stdout.readline().strip()  # type: ignore[union-attr]
        blocked = run_cli("down", str(org), "--lock-timeout", "0")
        assert blocked.exit_code == 1 and lock_id in blocked.output
        assert f"orgctl force-unlock {lock_id}" in blocked.output
        wrong = run_cli("force-unlock", "not-the-id", str(org))
        assert wrong.exit_code == 1 and "does not match the holder" in wrong.output
        assert run_cli("down", str(org), "--lock-timeout", "0.5").exit_code == 1  # still locked
        broken = run_cli("force-unlock", lock_id, str(org))
        assert broken.exit_code == 0 and f"pid {holder.pid}" in broken.output, broken.output
        assert run_cli("down", str(org)).exit_code == 0
        assert run_cli("force-unlock", lock_id, str(org)).exit_code == 1  # nothing held any more
        assert list(state.root.glob("state.lock.broken-*"))
    finally:
        holder.kill()
        holder.wait()


def test_a_saved_plan_is_applied_exactly_or_refused_once_stale(running: Path, state: StatePaths,
                                                               tmp_path: Path) -> None:
    """plan --out, then apply PLANFILE: applied as saved (no prompt, no TTY needed). A plan saved before
    a new commit, or before the running org changed, is refused and changes nothing."""
    org = running
    first = tmp_path / "first.plan"
    made = run_cli("plan", str(org), "--out", str(first))
    assert made.exit_code == 0 and "3 to hire" in made.output
    stale_by_state = tmp_path / "second.plan"
    assert run_cli("plan", str(org), "-out", str(stale_by_state)).exit_code == 0
    applied = run_cli("apply", str(first))
    assert applied.exit_code == 0 and "3 hired" in applied.output, applied.output
    refused = run_cli("apply", str(stale_by_state))  # made before the org was running
    assert refused.exit_code == 1 and "is stale: the running organization changed" in refused.output
    assert "would now do: 0 to hire" in refused.output and "the plan said: 3 to hire" in refused.output

    edit(org / "animas/bob/identity.md", "# Bob", "# Bob the builder")
    commit_all(org, "bob: new identity")
    change = tmp_path / "change.plan"
    assert run_cli("plan", str(org), "--out", str(change)).exit_code == 0
    edit(org / "animas/carol/identity.md", "# Carol", "# Carol the careful")
    commit_all(org, "carol too, after the plan")
    before = load_inventory(state.inventory).animas["bob"].spec_hash
    moved = run_cli("apply", str(change))
    assert moved.exit_code == 1 and "is stale: HEAD was" in moved.output
    assert load_inventory(state.inventory).animas["bob"].spec_hash == before  # nothing applied

    junk = tmp_path / "junk.plan"
    junk.write_text('{"hello": 1}')
    bad = run_cli("apply", str(junk))
    assert bad.exit_code == 1 and "not an orgctl plan file" in bad.output and "Traceback" not in bad.output


def test_deletion_policies_archive_delete_and_orphan(running: Path, state: StatePaths) -> None:
    """Removed from the repo: `delete` stops it and removes its memory folder (no archive); `orphan` leaves
    the process running and unmanaged; the default archives (covered above)."""
    org = running
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\ndeletion_policy: delete")
    edit(org / "animas/carol/anima.yaml", "enabled: true", "enabled: true\ndeletion_policy: orphan")
    commit_all(org, "policies")
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    running_pids = pids(state)
    git(org, "rm", "-rq", "animas/bob", "animas/carol")
    rebind_workflows(org, "bob", "carol")
    git(org, "add", "workflows")
    git(org, "commit", "-qm", "remove bob and carol")
    (state.memory("bob") / "knowledge/n.md").write_text("a note\n")  # written by bob since: uncommitted
    plan = run_cli("plan", str(org)).output
    assert "deletion_policy: delete" in plan and "deletion_policy: orphan" in plan
    result = run_cli("apply", str(org), "--auto-approve", "--allow-mass-retire")
    assert result.exit_code == 0, result.output
    inventory = load_inventory(state.inventory)
    assert inventory.animas["bob"].status == "retired" and inventory.animas["bob"].archive is None
    assert not state.memory("bob").exists() and not any(state.archive.glob("bob-*"))
    assert not (org / "animas/bob").exists() and git(org, "status", "--porcelain") == ""  # the checkout: untouched
    assert not pid_alive(running_pids["bob"])
    assert inventory.animas["carol"].status == "orphaned" and pid_alive(running_pids["carol"])
    assert "No changes." in run_cli("plan", str(org)).output


def test_apply_wait_returns_when_every_anima_is_ready(running: Path, state: StatePaths) -> None:
    org = running
    result = run_cli("apply", str(org), "--auto-approve", "--wait", "--timeout", "60s")
    assert result.exit_code == 0, result.output
    assert "All Animas are Ready at" in result.output
    assert set(pids(state)) == {"alice", "bob", "carol"}  # up, and each reported the applied spec
    assert all(p.spec_hash == load_inventory(state.inventory).animas[n].spec_hash
               for n, p in load_runtime(state.runtime).animas.items())
    bad = run_cli("apply", str(org), "--auto-approve", "--wait", "--timeout", "soon")
    assert bad.exit_code == 1 and "expected a duration like 30s" in bad.output  # a usage error: 2 means changes


def test_not_ready_names_each_anima_and_why() -> None:
    from orgctl.state.observing import not_ready

    def row(name: str, **kw: object) -> dict[str, object]:
        return {"name": name, "state": "running", "revision": "abc1234def", "spec_hash": "h1",
                "running_spec_hash": "h1", "health": "Healthy", "reason": "", "suspended": None} | kw

    report = {"animas": [row("alice"), row("bob", state="backoff", health="Degraded", reason="crash loop"),
                         row("carol", revision="0000000aaa"), row("dave", running_spec_hash="h0"),
                         row("erin", state="paused"), row("finn", suspended="suspended by human"),
                         row("gus", state="resting")]}
    assert not_ready(report, "abc1234def") == {
        "bob": "backoff: crash loop", "carol": "applied revision 0000000, not abc1234",
        "dave": "its process has not loaded the applied spec yet"}


def test_plan_chart_draws_the_org_before_and_after_in_mermaid(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    git(org, "rm", "-rq", "animas/carol")
    rebind_workflows(org, "carol")
    git(org, "add", "workflows")
    (org / "animas/dave").mkdir()
    for f in ("identity.md", "injection.md", "permissions.md", "cron.md"):
        (org / "animas/dave" / f).write_text((org / "animas/bob" / f).read_text())
    (org / "animas/dave/anima.yaml").write_text("role: engineer\nsupervisor: bob\n")
    git(org, "add", "animas/dave")  # not --all: carol may still be writing memory into her old folder
    git(org, "commit", "-qm", "carol leaves, dave joins under bob")
    out = run_cli("plan", str(org), "--chart").output
    chart = out[out.index("```mermaid"):]
    assert 'dave["+ dave<br/><small>engineer</small>"]' in chart and "bob --> dave" in chart
    assert 'carol["- carol<br/><small>researcher</small>"]' in chart and "alice -. was .-> carol" in chart
    classes = {line.split()[2]: line.split()[1].split(",") for line in chart.splitlines()
               if line.strip().startswith("class ")}
    assert classes["hire"] == ["dave"] and classes["retire"] == ["carol"] and "bob" in classes["change"]
    as_json = json.loads(run_cli("plan", str(org), "--chart", "--json").output)
    assert as_json["chart"].startswith("flowchart TD")
