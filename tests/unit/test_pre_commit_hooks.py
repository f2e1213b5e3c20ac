"""The hook orgctl offers the pre-commit framework (.pre-commit-hooks.yaml), read by pre-commit's own loader,
and run by pre-commit itself on an org made by `orgctl init`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pre_commit.clientlib import load_manifest

from tests.conftest import edit, git

MANIFEST = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"


def hook() -> dict[str, Any]:
    [found] = load_manifest(str(MANIFEST))  # pre-commit's own schema check: raises InvalidManifestError
    return dict(found)


def test_the_manifest_offers_orgctl_validate_once_per_commit() -> None:
    found = hook()
    assert (found["id"], found["entry"], found["language"]) == ("orgctl-validate", "orgctl validate", "python")
    assert found["pass_filenames"] is False


@pytest.mark.parametrize(("path", "runs"), [
    ("org.yaml", True), ("animas/bob/anima.yaml", True), ("animas/bob/skills/git-history.md", True),
    ("common_knowledge/README.md", True), ("workflows/tick.yml", True),
    ("README.md", False), (".schemas/org.schema.json", False), ("docs/org.yaml", False), ("org.yaml.bak", False),
    ("animas/bob/memory/episodes/2026-11-23.md", False),  # the runtime's memory commits run the hooks too
])
def test_the_hook_runs_for_spec_paths_only(path: str, runs: bool) -> None:
    found = hook()  # pre-commit matches `files` and `exclude` with re.search
    assert bool(re.search(found["files"], path) and not re.search(found["exclude"], path)) is runs


def pre_commit(org: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(org.parent / "pre-commit-home"), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "pre_commit", "run", "--color", "never", *args], cwd=org, env=env,
                          capture_output=True, text=True)


def test_pre_commit_runs_validate_and_fails_on_a_broken_spec(org: Path) -> None:
    """The manifest's hook as a local hook (``language: system``, this orgctl), so no environment is built."""
    orgctl = Path(sys.executable).parent / "orgctl"
    local = {**hook(), "language": "system", "entry": f"{orgctl} validate"}
    config = {"repos": [{"repo": "local", "hooks": [{k: local[k] for k in
                                                     ("id", "name", "entry", "language", "pass_filenames", "files",
                                                      "exclude")}]}]}
    (org / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(org, "add", ".pre-commit-config.yaml")  # pre-commit refuses an unstaged config

    skipped = pre_commit(org, "--files", ".schemas/org.schema.json")
    assert skipped.returncode == 0 and "Skipped" in skipped.stdout, skipped
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: wizard")
    failed = pre_commit(org, "--files", "animas/bob/anima.yaml")
    assert failed.returncode == 1 and "animas/bob/anima.yaml:2: role: unknown role 'wizard'" in failed.stdout, failed
    edit(org / "animas/bob/anima.yaml", "role: wizard", "role: engineer")
    passed = pre_commit(org, "--files", "animas/bob/anima.yaml")
    assert passed.returncode == 0 and "Passed" in passed.stdout, passed
