"""A key in a spec file fails `validate`, `plan` and `apply` with file and line, and changes nothing.

Real org repos from `orgctl init`, real git, the real CLI (click's runner, and
one real subprocess for what a user sees on stderr). `validate` reads the work
tree (so an uncommitted key is caught before it is committed), `validate
--revision` and `plan`/`apply` read a commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orgctl.cli.main import cli
from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
from orgctl.errors import SpecError
from orgctl.paths import StatePaths
from tests.conftest import commit_all, git

AWS = "AKIA" + "Z3MSJV4WWNKWLQ7K"  # fake, assembled so this file holds no contiguous key
EXPECTED = ("animas/bob/identity.md:5: looks like an AWS Access Key; keep secrets in the environment "
            "or the org's .env file (not in git)")


def put_key(org: Path) -> None:
    with (org / "animas/bob/identity.md").open("a") as f:
        f.write(f"Deploys use the key {AWS}.\n")
    assert (org / "animas/bob/identity.md").read_text().split("\n")[4].endswith(f"{AWS}.")


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_uncommitted_key_fails_validate_of_the_work_tree(org: Path) -> None:
    put_key(org)
    result = invoke("validate", str(org))
    assert result.exit_code == 1, result.output
    assert EXPECTED in result.output and AWS not in result.output
    assert "1 problem in the org spec; nothing was changed" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # HEAD does not hold it (yet): validating the commit passes.
    assert invoke("validate", str(org), "--revision", "HEAD").exit_code == 0


def test_committed_key_fails_validate_plan_and_apply_and_nothing_starts(org: Path, state: StatePaths) -> None:
    put_key(org)
    commit_all(org, "bob gets a key (by mistake)")
    for args in (["validate", str(org)], ["validate", str(org), "--revision", "HEAD"],
                 ["plan", str(org)], ["plan", str(org), "--json"], ["apply", str(org), "--auto-approve"]):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert EXPECTED in result.output, (args, result.output)
        assert AWS not in result.output
    assert not state.inventory.exists() and not state.runtime.exists() and not state.run.exists()
    assert git(org, "status", "--porcelain") == ""  # and nothing in the repo was touched


def test_real_process_prints_diagnostics_without_a_traceback(org: Path) -> None:
    put_key(org)
    commit_all(org, "bob gets a key (by mistake)")
    env = {k: v for k, v in os.environ.items() if k != "ORGCTL_DEBUG"}
    orgctl = str(Path(sys.executable).parent / "orgctl")
    proc = subprocess.run([orgctl, "validate", str(org)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert EXPECTED in proc.stderr and "Traceback" not in proc.stderr and AWS not in proc.stderr + proc.stdout


def test_every_spec_file_is_scanned(org: Path) -> None:
    """org.yaml, each Anima's files, files the loader does not read, and declared skills."""
    with (org / "org.yaml").open("a") as f:
        f.write("# deploy token: abc123longrandom\n")
    (org / "animas/carol/notes.md").write_text(f"# Notes\n{AWS}\n")
    (org / "animas/carol/skills").mkdir()
    (org / "animas/carol/skills/deploy.md").write_text(f"---\ndescription: deploy the app\n---\n# Deploy\n\n"
                                                       f"export KEY={AWS}\n")
    (org / "animas/carol/memory/knowledge/aws.md").write_text(f"{AWS}\n")  # memory: not spec
    (org / "animas/carol/photo.txt").write_text(f"{AWS}\n")  # not a spec file type
    commit_all(org, "keys everywhere")
    last_line = len((org / "org.yaml").read_text().splitlines())
    for source in (WorkTreeSource(org), GitRevisionSource(org, "HEAD")):
        with pytest.raises(SpecError) as info:
            load_org(source)
        assert [(d.file, d.line) for d in info.value.diagnostics] == [
            ("animas/carol/notes.md", 2), ("animas/carol/skills/deploy.md", 6), ("org.yaml", last_line)]


def test_a_clean_org_still_validates_and_plans(org: Path) -> None:
    assert invoke("validate", str(org)).exit_code == 0
    result = invoke("plan", str(org), "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)["changes"]) == 3
