"""The memory commit contract on a real git repo with a bare remote on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgctl.errors import GitError
from orgctl.gitops import repos
from tests.conftest import edit, git


def test_memory_commit_is_by_the_bot_with_trailers_and_leaves_user_work_alone(org: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(org, "remote", "add", "origin", str(remote))
    git(org, "push", "-q", "origin", "main")

    edit(org / "animas/bob/identity.md", "A careful engineer", "A very careful engineer")
    git(org, "add", "animas/bob/identity.md")  # the user's staged, uncommitted spec change
    (org / "animas/bob/memory/episodes/2026-11-21.md").write_text("## 09:00:00 heartbeat\n\n- hi\n")

    sha = repos.commit_paths(org, paths=["animas/bob/memory"], subject="memory(bob): consolidate",
                             body="Distilled 1 episode.", trailers={"Anima": "bob", "Pass": "consolidation",
                                                                    "Source-Revision": "abc", "Episodes": 1})
    assert sha
    assert git(org, "log", "-1", "--format=%an <%ae>").strip() == f"{repos.BOT_NAME} <{repos.BOT_EMAIL}>"
    assert git(org, "log", "-1", "--format=%cn").strip() == repos.BOT_NAME
    touched = git(org, "show", "--name-only", "--format=", sha).split()
    assert touched == ["animas/bob/memory/episodes/2026-11-21.md"]
    trailers = repos.parse_trailers(git(org, "log", "-1", "--format=%B"))
    assert trailers == {"Anima": "bob", "Pass": "consolidation", "Source-Revision": "abc", "Episodes": "1"}
    # git itself parses them as trailers too
    parsed = git(org, "log", "-1", "--format=%(trailers:key=Orgctl-Anima,valueonly)").strip()
    assert parsed == "bob"
    # the user's staged spec change is still staged, not committed
    assert git(org, "diff", "--cached", "--name-only").split() == ["animas/bob/identity.md"]

    git(org, "push", "-q", "origin", "main")
    assert git(remote, "log", "-1", "--format=%H", "main").strip() == sha


def test_nothing_to_commit_returns_none(org: Path) -> None:
    assert repos.commit_paths(org, paths=["animas/bob/memory"], subject="s", body="b", trailers={}) is None


def test_spec_paths_are_refused(org: Path) -> None:
    with pytest.raises(GitError, match="never touch specs"):
        repos.commit_paths(org, paths=["animas/bob/identity.md"], subject="s", body="b", trailers={})
