"""The memory commit contract on real git repos: the runtime's own clone, a bare remote on disk, a
person's checkout that is never written (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.errors import GitError
from orgctl.gitops import repos
from orgctl.gitops.clones import RuntimeClone, pull_into
from tests.conftest import add_bare_remote, commit_all, edit, git

TRAILERS = {"Anima": "bob", "Pass": "consolidation", "Source-Revision": "abc", "Episodes": 1}


def _episode(clone: RuntimeClone, text: str, *, name: str = "bob", day: str = "2026-11-21") -> Path:
    path = clone.memory_dir(name) / "episodes" / f"{day}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(text)
    return path


def test_a_memory_commit_is_made_by_the_bot_in_the_clone_and_the_checkout_is_untouched(org: Path,
                                                                                      tmp_path: Path) -> None:
    edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")
    git(org, "add", "animas/bob/identity.md")  # the person's staged, uncommitted spec change
    before = git(org, "status", "--porcelain"), git(org, "rev-parse", "HEAD")
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    assert (clone.root / "animas/bob/memory/episodes/.gitkeep").is_file()  # the branch's memory, checked out
    assert not (clone.root / "org.yaml").exists()  # and nothing else: specs are read from git, not here
    _episode(clone, "## 09:00:00 heartbeat\n\n- hi\n")

    sha = clone.commit(["animas/bob/memory"], subject="memory(bob): consolidate", body="Distilled 1 episode.",
                       trailers=TRAILERS)
    assert sha and clone.tip() == sha
    assert git(clone.root, "log", "-1", "--format=%an <%ae>|%cn").strip() == \
        f"{repos.BOT_NAME} <{repos.BOT_EMAIL}>|{repos.BOT_NAME}"
    touched = git(clone.root, "show", "--name-only", "--format=", sha).split()
    assert touched == ["animas/bob/memory/episodes/2026-11-21.md"]
    assert repos.parse_trailers(git(clone.root, "log", "-1", "--format=%B")) == \
        {**{k: str(v) for k, v in TRAILERS.items()}, "Redactions": "0"}
    assert git(clone.root, "log", "-1", "--format=%(trailers:key=Orgctl-Anima,valueonly)").strip() == "bob"
    assert (git(org, "status", "--porcelain"), git(org, "rev-parse", "HEAD")) == before  # the checkout: as it was
    assert clone.commit(["animas/bob/memory"], subject="s", body="b", trailers={}) is None  # nothing changed


def test_spec_paths_and_links_are_refused(org: Path, tmp_path: Path) -> None:
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    with pytest.raises(GitError, match="never touch specs"):
        clone.commit(["animas/bob/identity.md"], subject="s", body="b", trailers={})
    (tmp_path / "secret").write_text("a private key\n")
    (clone.memory_dir("bob") / "knowledge" / "leak.md").parent.mkdir(parents=True, exist_ok=True)
    (clone.memory_dir("bob") / "knowledge" / "leak.md").symlink_to(tmp_path / "secret")
    with pytest.raises(GitError, match="symbolic link"):
        clone.commit(["animas/bob/memory"], subject="s", body="b", trailers={})
    assert git(clone.root, "log", "--format=%an").splitlines() == ["Test Human"]  # only the initial commit


def test_sync_replays_memory_on_a_moved_remote_and_pushes_it(org: Path, tmp_path: Path) -> None:
    """A person pushes a spec change while the runtime holds a memory commit: sync fetches, replays the
    memory commit on top (linear history, same message and trailers) and pushes."""
    remote = add_bare_remote(org, tmp_path)
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    assert clone.remote and clone.source == str(remote)
    _episode(clone, "## 09:00:00 heartbeat\n\n- hi\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")
    person = commit_all(org, "bob is more careful")
    git(org, "push", "-q", "origin", "main")

    result = clone.sync()
    assert result.pushed and result.replayed == 1 and result.upstream == person
    log = git(remote, "log", "--format=%s|%P", "main").splitlines()
    assert log[0] == f"memory(bob): record episodes|{person}" and log[1].startswith("bob is more careful")
    assert repos.parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))["Anima"] == "bob"
    assert "very careful" in git(remote, "show", "main:animas/bob/identity.md")
    assert clone.sync().replayed == 0  # converged: nothing left to replay


def test_a_push_that_loses_a_race_is_fetched_replayed_and_retried(org: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A person pushes right after the clone fetched: the remote refuses the push (not a fast-forward), the
    clone fetches again, replays its commit on the person's and pushes. A refusal for good (a hook) is not
    retried: no retry would change it."""
    remote = add_bare_remote(org, tmp_path)
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    _episode(clone, "## 09:00:00 heartbeat\n\n- hi\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    real_fetch, fetches = RuntimeClone._fetch, []

    def fetch_then_someone_pushes(self: RuntimeClone) -> str:
        upstream = real_fetch(self)
        if not fetches:  # between this fetch and the push, a person's commit lands on the remote
            edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")
            commit_all(org, "a person's change")
            git(org, "push", "-q", "origin", "HEAD")
        fetches.append(upstream)
        return upstream

    monkeypatch.setattr(RuntimeClone, "_fetch", fetch_then_someone_pushes)
    result = clone.sync()
    assert result.pushed and len(fetches) == 2 and fetches[0] != fetches[1]
    subjects = git(remote, "log", "-2", "--format=%s", "main").splitlines()
    assert subjects == ["memory(bob): record episodes", "a person's change"]  # replayed on top, nothing lost
    monkeypatch.undo()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed' >&2\nexit 1\n")
    hook.chmod(0o755)
    _episode(clone, "## 10:00:00 heartbeat\n\n- again\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    with pytest.raises(GitError, match="pushes are closed"):
        clone.sync()


def test_memory_changed_upstream_reaches_the_clone_work_tree(org: Path, tmp_path: Path) -> None:
    """A person removes a note by a reviewed commit: the clone's work tree follows, so the next batch
    does not bring it back; memory the runtime changed itself wins (it is the only writer)."""
    note = org / "animas/bob/memory/knowledge/2026-11-01.md"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text("an old note\n")
    commit_all(org, "bob's old note")
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    assert (clone.root / "animas/bob/memory/knowledge/2026-11-01.md").read_text() == "an old note\n"
    git(org, "rm", "-q", "animas/bob/memory/knowledge/2026-11-01.md")
    git(org, "commit", "-qm", "forget bob's old note")
    clone.sync()
    assert not (clone.root / "animas/bob/memory/knowledge/2026-11-01.md").exists()
    assert clone.commit(["animas/bob/memory"], subject="s", body="b", trailers={}) is None


def test_pull_fast_forwards_then_merges_and_refuses_edited_memory(org: Path, tmp_path: Path) -> None:
    """A local-only org: memory waits in the clone, `pull` brings it in; with the person's own commit it
    merges (disjoint paths); a person's edit of a memory file the runtime changed is refused, naming it."""
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    assert not clone.remote
    _episode(clone, "## 09:00:00 heartbeat\n\n- first\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    clone.sync()
    result = pull_into(org, clone)
    assert result.action == "fast-forward" and result.commits == 1
    assert "- first" in (org / "animas/bob/memory/episodes/2026-11-21.md").read_text()
    assert pull_into(org, clone).action == "up-to-date"

    edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")
    commit_all(org, "person's own commit")
    _episode(clone, "## 10:00:00 heartbeat\n\n- second\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    result = pull_into(org, clone)  # without a sync: the clone's branch does not have the person's commit
    assert result.action == "merge"
    assert "- second" in (org / "animas/bob/memory/episodes/2026-11-21.md").read_text()
    assert "very careful" in (org / "animas/bob/identity.md").read_text()

    _episode(clone, "## 11:00:00 heartbeat\n\n- third\n")
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    (org / "animas/bob/memory/episodes/2026-11-21.md").write_text("edited by hand\n")
    head = git(org, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="animas/bob/memory/episodes/2026-11-21.md"):
        pull_into(org, clone)
    assert git(org, "rev-parse", "HEAD") == head
    assert (org / "animas/bob/memory/episodes/2026-11-21.md").read_text() == "edited by hand\n"


def test_pull_refuses_another_branch(org: Path, tmp_path: Path) -> None:
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    git(org, "switch", "-q", "-c", "experiment")
    with pytest.raises(GitError, match="memory is committed on 'main'"):
        pull_into(org, clone)


def test_uncommitted_memory_an_older_orgctl_left_in_the_checkout_is_adopted(org: Path, tmp_path: Path) -> None:
    """Before the clone, Animas wrote into the checkout: the first clone copies what is uncommitted there,
    and `pull` later replaces the identical untracked files by the committed ones."""
    old = org / "animas/bob/memory/episodes/2026-11-20.md"
    old.write_text("## 08:00:00 heartbeat\n\n- before the clone\n")
    clone = RuntimeClone.for_checkout(org, tmp_path / "clone")
    assert (clone.memory_dir("bob") / "episodes/2026-11-20.md").read_text() == old.read_text()
    clone.commit(["animas/bob/memory"], subject="memory(bob): record episodes", body="b", trailers=TRAILERS)
    assert pull_into(org, clone).action == "fast-forward"
    assert git(org, "status", "--porcelain").strip() == ""
