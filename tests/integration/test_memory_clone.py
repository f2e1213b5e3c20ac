"""Memory written by running Animas lives in the runtime's clone, never in the person's checkout
(DESIGN §2), on real processes: the supervisor's batch commits, `orgctl pull`, a retirement.

No model runs here: the Animas observe Board posts, which needs no model call, and write them to
their episodes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.gitops import repos
from orgctl.paths import StatePaths
from tests.conftest import commit_all, edit, git, run_cli, wait_for

NAMES = ("alice", "bob", "carol")


def _awake(org: Path, monkeypatch: pytest.MonkeyPatch, *, batch_interval: str = "1") -> None:
    monkeypatch.setenv("ORGCTL_MEMORY_BATCH_INTERVAL", batch_interval)  # seconds between batch commits
    edit(org / "org.yaml", 'active_hours: "08:00-20:00"', "active_hours: always")
    edit(org / "org.yaml", "heartbeat_interval: 30m ", "heartbeat_interval: 3s ")
    edit(org / "animas/carol/anima.yaml", 'active_hours: "09:00-17:00"', "active_hours: always")
    commit_all(org, "awake, beating fast")
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0


def _episodes(root: Path, name: str) -> str:
    return "".join(p.read_text() for p in sorted((root / "animas" / name / "memory" / "episodes").glob("*.md")))


def test_stash_clean_and_a_branch_switch_in_the_checkout_lose_no_memory(running: Path, state: StatePaths,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """While three Animas write, the person stashes (with untracked files), cleans with -fdx, switches
    branches and commits; then `orgctl pull` brings every episode into the checkout, nothing lost."""
    org = running
    _awake(org, monkeypatch)
    main = git(org, "rev-parse", "HEAD").strip()
    for name in NAMES:
        wait_for(lambda n=name: "introduced myself" in _episodes(state.clone, n), what=f"{name}'s first boot")

    edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")  # the person's work
    (org / "scratch.txt").write_text("notes\n")
    steps = [("stash", ["stash", "push", "-u", "-q"]), ("clean", ["clean", "-fdxq"]),
             ("switch", ["switch", "-q", "-c", "experiment"]), ("back", ["switch", "-q", "main"]),
             ("pop", ["stash", "pop", "-q"])]
    for label, args in steps:  # each Anima writes the note into its episodes while the person works
        # No @mention: each Anima observes the post at its next beat (3 s) and writes it, with no model call.
        assert run_cli("board", "post", "general", f"note-{label}", "-C", str(org)).exit_code == 0
        git(org, *args)
        for name in NAMES:
            wait_for(lambda n=name, note=f"note-{label}": note in _episodes(state.clone, n),
                     what=f"{name} saw note-{label}")
    assert git(org, "rev-parse", "HEAD").strip() == main  # nothing was committed in the checkout
    assert sorted(git(org, "status", "--porcelain").splitlines()) == [" M animas/bob/identity.md", "?? scratch.txt"]

    def committed() -> bool:  # the supervisor's batches have every note
        return all(f"note-{label}" in git(state.clone, "show", f"HEAD:animas/{n}/memory/episodes/{d.name}")
                   for n in NAMES for label, _ in steps
                   for d in sorted((state.memory(n) / "episodes").glob("*.md"))[-1:])
    wait_for(committed, what="batch commits of every note")
    batches = git(state.clone, "log", "--format=%an|%s", f"{main}..HEAD").splitlines()
    assert batches and all(b.startswith(f"{repos.BOT_NAME}|memory(") for b in batches)

    pulled = run_cli("pull", str(org))
    assert pulled.exit_code == 0 and pulled.output.startswith("Fast-forwarded"), pulled.output
    for name in NAMES:
        text = _episodes(org, name)
        assert all(f"note-{label}" in text for label, _ in steps), name
    assert "very careful" in (org / "animas/bob/identity.md").read_text()  # the person's edit: still there
    touched = git(org, "diff", "--name-only", main, "HEAD").split()
    assert touched and all(repos.is_memory_path(p) for p in touched)


def test_pull_after_down_brings_the_last_batch(running: Path, state: StatePaths,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`down` commits what the Animas wrote last (without a push, so it stays fast); `pull` with nothing
    running commits and brings everything."""
    org = running
    _awake(org, monkeypatch, batch_interval="3600")  # only the last batch commits
    wait_for(lambda: "introduced myself" in _episodes(state.clone, "alice"), what="alice's first boot")
    assert run_cli("down", str(org)).exit_code == 0
    assert "introduced myself" in git(state.clone, "log", "-p", "-1", "--", "animas/alice/memory")
    pulled = run_cli("pull", str(org))
    assert pulled.exit_code == 0, pulled.output
    assert "introduced myself" in _episodes(org, "alice")
    assert run_cli("pull", str(org)).output.strip() == "Already up to date."


def test_pull_without_a_runtime_says_what_to_do(org: Path) -> None:
    result = run_cli("pull", str(org))
    assert result.exit_code == 1 and "no Anima of this org has run on this machine" in result.output
    assert "Traceback" not in result.output
