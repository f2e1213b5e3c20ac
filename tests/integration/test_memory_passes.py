"""The memory passes on real git: consolidation merges by subject, procedures from failures, forgetting
in three stages with protection, compression, one commit per pass with its trailers, secrets redacted
before any commit, the repo's hooks, and one writer per Anima's memory (a real second process refused)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from orgctl.desired.models import ForgettingConfig
from orgctl.errors import GitError, StateError
from orgctl.gitops import repos
from orgctl.gitops.clones import RuntimeClone
from orgctl.memory.access import AccessStats
from orgctl.memory.batches import commit_batch
from orgctl.memory.consolidation import run_pass
from orgctl.memory.notes import Note
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths
from tests.conftest import git

DAY = date(2026, 11, 23)


def _cycle(store: MemoryStore, day: date, at: str, *did: str, failed: str = "") -> None:
    store.append_episode(day=day, markdown=f"## {at} heartbeat\n\n" + "\n".join(f"- Did: {d}" for d in did),
                         record={"at": f"{day.isoformat()}T{at}", "trigger": "heartbeat", "observed": [],
                                 "did": list(did), "failed": failed})


def _pass(kind: str, clone: RuntimeClone, store: MemoryStore, today: date, *, dry_run: bool = False,
          stats: AccessStats | None = None, config: ForgettingConfig | None = None):  # type: ignore[no-untyped-def]
    rel = f"animas/{store.anima}/memory"
    return run_pass(kind, store=store, anima=store.anima, today=today, config=config or ForgettingConfig(),
                    stats=stats, dry_run=dry_run, source_revision="abc123",
                    commit=lambda _p, subject, body, trailers: clone.commit([rel], subject=subject, body=body,
                                                                             trailers=trailers),
                    commit_episodes=lambda: commit_batch(clone, {store.anima: "abc123"}))


@pytest.fixture
def clone(org: Path, tmp_path: Path) -> RuntimeClone:
    return RuntimeClone.for_checkout(org, tmp_path / "clone")


@pytest.fixture
def store(clone: RuntimeClone, state: StatePaths) -> MemoryStore:
    return MemoryStore(clone.memory_dir("bob"), anima="bob", lock=state.memory_lock("bob"))


def test_consolidation_merges_into_the_note_on_the_same_subject_with_its_sources(clone: RuntimeClone,
                                                                                 store: MemoryStore) -> None:
    _cycle(store, DAY, "09:00:00", "replied to alice: the build is green")
    first = _pass("consolidate", clone, store, DAY)
    note = Note.read(store.note_path("knowledge", "alice"))
    assert [c.action for c in first.changes] == ["added"] and note.title == "Working with alice"
    _cycle(store, DAY + timedelta(days=1), "10:00:00", "replied to alice: the release is tagged",
           "replied to alice: the build is green")  # a known fact is not repeated
    second = _pass("consolidate", clone, store, DAY + timedelta(days=1))
    assert [(c.path, c.action) for c in second.changes] == [("knowledge/alice.md", "changed")]
    notes = sorted(p.name for p in (store.root / "knowledge").glob("*.md"))
    assert notes == ["alice.md"]  # one note per subject, not one per day
    note = Note.read(store.note_path("knowledge", "alice"))
    assert note.body.count("the build is green") == 1 and "2026-11-24: replied to alice: the release is tagged" \
        in note.body
    assert note.sources == ["episodes/2026-11-23.md#09:00:00", "episodes/2026-11-24.md#10:00:00"]
    assert note.meta["created"] == "2026-11-23" and note.meta["updated"] == "2026-11-24"


def test_a_failure_becomes_a_procedure_with_what_worked_after_it(clone: RuntimeClone, store: MemoryStore) -> None:
    _cycle(store, DAY, "09:00:00", "ran 'pytest -q': exit 1, 40 lines")
    _cycle(store, DAY, "09:05:00", "ran 'pytest -q -x': exit 0, 12 lines")
    result = _pass("consolidate", clone, store, DAY)
    procedure = Note.read(store.note_path("procedures", "command pytest -q"))
    assert procedure.meta["kind"] == "procedure" and procedure.meta["protected"] is True
    assert "went wrong: ran 'pytest -q': exit 1" in procedure.body
    assert "worked after that: ran 'pytest -q -x': exit 0" in procedure.body
    assert result.counts["added"] == 2  # the knowledge note and the procedure


def test_each_pass_is_exactly_one_commit_with_trailers_after_the_episodes_commit(org: Path, clone: RuntimeClone,
                                                                                 store: MemoryStore) -> None:
    before = clone.tip()
    _cycle(store, DAY, "09:00:00", "replied to alice: done", "delegated t-1 to carol as t-2")
    result = _pass("consolidate", clone, store, DAY)
    log = git(clone.root, "log", "--format=%H %s", f"{before}..").splitlines()
    assert [line.split(" ", 1)[1] for line in log] == [
        "memory(bob): consolidate 2026-11-23 (2 added)", "memory(bob): record episodes"]
    assert result.commit == log[0].split()[0]
    message = git(clone.root, "log", "-1", "--format=%B", result.commit)
    assert repos.parse_trailers(message) == {"Anima": "bob", "Pass": "consolidate", "Source-Revision": "abc123",
                                             "Added": "2", "Changed": "0", "Archived": "0", "Forgotten": "0",
                                             "Redactions": "0"}
    assert "  + knowledge/alice.md: Working with alice: 1 new fact" in message.splitlines()
    assert git(clone.root, "log", "-1", "--format=%an", result.commit).strip() == repos.BOT_NAME
    touched = git(clone.root, "show", "--name-only", "--format=", result.commit).split()
    assert sorted(touched) == ["animas/bob/memory/knowledge/alice.md", "animas/bob/memory/knowledge/carol.md"]
    assert _pass("consolidate", clone, store, DAY).commit is None  # nothing new: no commit


def test_dry_run_shows_the_diff_and_writes_nothing(clone: RuntimeClone, store: MemoryStore) -> None:
    _cycle(store, DAY, "09:00:00", "replied to alice: done")
    tip, files = clone.tip(), sorted(p.name for p in store.root.rglob("*") if p.is_file())
    result = _pass("consolidate", clone, store, DAY, dry_run=True)
    assert result.commit is None and result.dry_run
    assert "+- 2026-11-23: replied to alice: done" in result.changes[0].diff()
    assert clone.tip() == tip and sorted(p.name for p in store.root.rglob("*") if p.is_file()) == files


def _note(store: MemoryStore, kind: str, subject: str, **meta: object) -> Note:
    note = Note(path=store.note_path(kind, subject), meta={"title": subject, "created": "2025-01-01", **meta},
                body=f"# {subject}\n\n- 2025-01-01: a fact about {subject}")
    store.write_note(note)
    return note


def test_forgetting_respects_protection_and_thresholds(clone: RuntimeClone, store: MemoryStore,
                                                       state: StatePaths) -> None:
    today = date(2026, 1, 1)
    old = (today - timedelta(days=100)).isoformat()  # > 90 days: downscale
    _note(store, "knowledge", "stale", last_used=old, uses=1)
    _note(store, "knowledge", "well used", last_used=old, uses=5)  # enough uses: kept
    _note(store, "knowledge", "recent", last_used=(today - timedelta(days=10)).isoformat())
    _note(store, "knowledge", "marked", last_used=old, protected=True)
    _note(store, "knowledge", "important", last_used=old, importance="high")
    _note(store, "procedures", "a runbook", last_used=old)  # procedures are protected by default
    _note(store, "knowledge", "long gone", last_used=(today - timedelta(days=200)).isoformat(), stage="downscaled")
    archived = Note(path=store.root / "archive/knowledge/ancient.md",
                    meta={"title": "ancient", "created": "2024-01-01"}, body="# ancient")
    archived.write()
    stats = AccessStats(state.memory_state("bob") / "access.json")
    stats.record(["knowledge/recent.md"], on=today)

    result = _pass("forget", clone, store, today, stats=stats)
    actions = {c.path: c.action for c in result.changes}
    assert actions == {"knowledge/stale.md": "downscaled", "knowledge/long-gone.md": "archived",
                       "archive/knowledge/ancient.md": "forgotten"}
    assert Note.read(store.note_path("knowledge", "stale")).meta["stage"] == "downscaled"
    assert (store.root / "archive/knowledge/long-gone.md").is_file() and not store.note_path("knowledge",
                                                                                              "long gone").exists()
    assert not (store.root / "archive/knowledge/ancient.md").exists()
    for kept in ("well used", "recent", "marked", "important"):
        assert Note.read(store.note_path("knowledge", kept)).meta.get("stage", "active") == "active"
    assert store.note_path("procedures", "a runbook").is_file()
    trailers = repos.parse_trailers(git(clone.root, "log", "-1", "--format=%B"))
    assert (trailers["Pass"], trailers["Changed"], trailers["Archived"], trailers["Forgotten"]) == \
        ("forget", "1", "1", "1")
    # Forgotten is out of the working set, not out of history.
    assert "ancient" in git(clone.root, "log", "-p", "--format=", "-1")


def test_compression_merges_notes_on_one_subject_and_folds_old_facts(clone: RuntimeClone, store: MemoryStore) -> None:
    facts = "\n".join(f"- 2026-10-{d:02d}: fact {d}" for d in range(1, 31))
    store.write_note(Note(path=store.root / "knowledge/deploys.md", meta={"title": "Deploys", "subject": "deploys"},
                          body=f"# Deploys\n\n{facts}"))
    store.write_note(Note(path=store.root / "knowledge/deploys-2.md", meta={"title": "Deploys", "subject": "deploys 2"},
                          body="# Deploys\n\n- 2026-11-01: fact from the duplicate"))
    result = run_pass("compress", store=store, anima="bob", today=DAY, config=ForgettingConfig(), stats=None,
                      dry_run=False, source_revision=None,
                      commit=lambda _p, s, b, t: clone.commit(["animas/bob/memory"], subject=s, body=b, trailers=t))
    assert {c.path: c.action for c in result.changes} == {"knowledge/deploys-2.md": "forgotten",
                                                        "knowledge/deploys.md": "changed"}
    body = Note.read(store.root / "knowledge/deploys.md").body
    assert "fact from the duplicate" in body and "fact 30" in body


def test_planted_secrets_are_redacted_and_never_in_any_commit(clone: RuntimeClone, store: MemoryStore) -> None:
    secrets = {"aws": "AKIAIOSFODNN7EXAMPLE", "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
               "url": "s3cretPassw0rd", "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789abcd",
               "key": "MIIEowIBAAKCAQEA1234"}
    _cycle(store, DAY, "09:00:00", f"ran 'deploy --key {secrets['aws']}': exit 0, 1 lines",
           f"replied to alice: token {secrets['github']}",
           f"replied to alice: clone https://deploy:{secrets['url']}@git.example.com/r.git",
           f"replied to alice: api_key = {secrets['anthropic']}")
    pem = store.root / "knowledge" / "keys.md"
    pem.write_text(f"# keys\n\n-----BEGIN RSA PRIVATE KEY-----\n{secrets['key']}\n-----END RSA PRIVATE KEY-----\n")
    _pass("consolidate", clone, store, DAY)
    history = git(clone.root, "log", "-p", "--all")
    for value in secrets.values():
        assert value not in history
    assert "[REDACTED GitHub Token]" in store.episode_file(DAY).read_text()  # redacted in the files too
    counts = [int(repos.parse_trailers(m).get("Redactions", 0))
              for m in git(clone.root, "log", "--format=%B%x00").split("\0") if m.strip()]
    assert sum(counts) >= 5


def test_the_repos_hooks_run_on_memory_commits_unless_the_org_says_otherwise(org: Path, tmp_path: Path,
                                                                              store: MemoryStore) -> None:
    hooks = org / ".git" / "hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\necho 'no memory on Fridays' >&2\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    (hooks / "commit-msg").write_text("#!/bin/sh\necho 'Reviewed-by: hook' >> \"$1\"\n")
    (hooks / "commit-msg").chmod(0o755)
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone2")
    bob = MemoryStore(clone.memory_dir("bob"), anima="bob")
    _cycle(bob, DAY, "09:00:00", "replied to alice: done")
    with pytest.raises(GitError, match="pre-commit hook refused.*no memory on Fridays"):
        commit_batch(clone, {"bob": None})
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    sha = commit_batch(clone, {"bob": None})["bob"]
    assert "Reviewed-by: hook" in git(clone.root, "log", "-1", "--format=%B", sha)
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    clone.set_hooks(False)  # memory: {hooks: false}
    _cycle(bob, DAY, "10:00:00", "replied to alice: again")
    assert commit_batch(clone, {"bob": None})["bob"]


def test_a_second_writer_of_one_anima_s_memory_is_refused(clone: RuntimeClone, state: StatePaths) -> None:
    store = MemoryStore(clone.memory_dir("bob"), anima="bob", lock=state.memory_lock("bob"), wait=0.5)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from orgctl.memory.stores import MemoryStore\n"
         f"s = MemoryStore(Path({str(store.root)!r}), anima='bob', lock=Path({str(state.memory_lock('bob'))!r}), "
         "holder='consolidation pass')\n"
         "with s.writing():\n    print('held', flush=True)\n    time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match=r"bob's memory is being written by another writer.*consolidation pass"):
            store.append_episode(day=DAY, markdown="## 09:00:00 heartbeat\n\n- Did: x", record={"did": ["x"]})
        with pytest.raises(StateError, match="being written"):
            _pass("consolidate", clone, store, DAY)
    finally:
        holder.kill()
        holder.wait()
    store.append_episode(day=DAY, markdown="## 09:01:00 heartbeat\n\n- Did: y", record={"did": ["y"]})
    assert [s.splitlines()[0] for s in store.episodes(DAY)] == ["## 09:00:00 heartbeat", "## 09:01:00 heartbeat"]
