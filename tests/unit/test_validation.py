"""Every class of validation error, each with file, line and reason; all reported at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.sources import WorkTreeSource
from orgctl.errors import Diagnostic, SpecError
from tests.conftest import edit, run_cli


def problems(org: Path) -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        load_org(WorkTreeSource(org))
    return info.value.diagnostics


def only(org: Path) -> Diagnostic:
    found = problems(org)
    assert len(found) == 1, found
    return found[0]


def test_unparseable_yaml(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text("role: engineer\nsupervisor: [alice\n")
    d = only(org)
    assert d.file == "animas/bob/anima.yaml" and d.line == 3 and "invalid YAML" in d.reason


def test_unparseable_frontmatter(org: Path) -> None:
    (org / "animas/bob/permissions.md").write_text("---\ntools: [a, b\n---\nbody\n")
    d = only(org)
    assert d.file == "animas/bob/permissions.md" and d.line == 3 and "invalid YAML" in d.reason


def test_unclosed_frontmatter(org: Path) -> None:
    (org / "animas/bob/identity.md").write_text("---\nname: bob\n")
    d = only(org)
    assert d.file == "animas/bob/identity.md" and d.line == 1 and "no closing" in d.reason


def test_unknown_field(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text("role: engineer\nsupervisor: alice\nmood: happy\n")
    d = only(org)
    assert (d.file, d.line, d.reason) == ("animas/bob/anima.yaml", 3, "unknown field 'mood'")


def test_unknown_field_in_permissions_frontmatter(org: Path) -> None:
    (org / "animas/bob/permissions.md").write_text("---\ntools: []\nsudo: true\n---\n")
    d = only(org)
    assert (d.file, d.line, d.reason) == ("animas/bob/permissions.md", 3, "unknown field 'sudo'")


def test_missing_field(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text("supervisor: alice\n")
    d = only(org)
    assert d.file == "animas/bob/anima.yaml" and d.reason == "missing required field 'role'"


def test_wrong_types(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text(
        "role: engineer\nsupervisor: alice\nenabled: 'yes'\nheartbeat_interval: [1]\n")
    found = {(d.line, d.reason.split(":")[0]) for d in problems(org)}
    assert found == {(3, "enabled"), (4, "heartbeat_interval")}


def test_not_a_mapping(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text("- role\n- engineer\n")
    assert "expected a mapping" in only(org).reason


def test_unknown_supervisor(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "supervisor: alice", "supervisor: zed")
    d = only(org)
    assert (d.file, d.line) == ("animas/bob/anima.yaml", 3)  # line 1 names the schema
    assert "unknown supervisor 'zed'" in d.reason


def test_supervisor_cycle(org: Path) -> None:
    edit(org / "animas/alice/anima.yaml", "supervisor: null", "supervisor: bob")
    found = problems(org)
    assert {d.file for d in found} == {"animas/alice/anima.yaml", "animas/bob/anima.yaml"}
    assert all("supervisor cycle" in d.reason and d.line == 3 for d in found)


def test_self_supervision_is_a_cycle(org: Path) -> None:
    edit(org / "animas/carol/anima.yaml", "supervisor: alice", "supervisor: carol")
    d = only(org)
    assert d.reason == "supervisor cycle: carol -> carol"


def test_duplicate_names_case_insensitive(org: Path) -> None:
    import shutil

    shutil.copytree(org / "animas/bob", org / "animas/Bob")
    d = only(org)
    assert d.file == "animas/bob" and "duplicate Anima name 'bob'" in d.reason


@pytest.mark.parametrize(("name", "reason"), [
    ("bad\\name", "path separator"),
    ("bad\x07name", "control character"),
    ("a..b", "'..'"),
    (".hidden", "starts with a dot"),
    ("spa ce", "may only contain"),
])
def test_unsafe_names(org: Path, name: str, reason: str) -> None:
    import shutil

    shutil.copytree(org / "animas/carol", org / "animas" / name)
    d = only(org)
    assert d.file == f"animas/{name}" and reason in d.reason and "unsafe Anima name" in d.reason


def test_invalid_cron_expression(org: Path) -> None:
    edit(org / "animas/alice/cron.md", "schedule: 0 9 * * 1", "schedule: 0 25 * * 1")
    d = only(org)
    assert (d.file, d.line) == ("animas/alice/cron.md", 4)
    assert "invalid cron expression '0 25 * * 1'" in d.reason


def test_cron_expression_with_wrong_field_count(org: Path) -> None:
    edit(org / "animas/alice/cron.md", "schedule: 0 9 * * 1", "schedule: 0 9 * *")
    assert "must have 5 fields" in only(org).reason


def test_cron_unknown_key_and_missing_schedule(org: Path) -> None:
    (org / "animas/carol/cron.md").write_text("## Digest\nevery: day\n\nWrite it.\n")
    found = sorted((d.line, d.reason) for d in problems(org))
    assert found[0][0] == 1 and "no 'schedule:'" in found[0][1]
    assert found[1][0] == 2 and "unknown key 'every'" in found[1][1]


def test_unknown_role(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: wizard")
    d = only(org)
    assert d.line == 2 and "unknown role 'wizard'" in d.reason


@pytest.mark.parametrize(("hours", "reason"), [
    ("25:00-26:00", "invalid clock time"),
    ("09:00-09:00", "empty"),
    ("morning", "expected a range"),
])
def test_invalid_active_hours(org: Path, hours: str, reason: str) -> None:
    edit(org / "animas/carol/anima.yaml", '"09:00-17:00"', f'"{hours}"')
    d = only(org)
    assert (d.file, d.line) == ("animas/carol/anima.yaml", 4) and reason in d.reason


def test_invalid_org_defaults(org: Path) -> None:
    edit(org / "org.yaml", "timezone: UTC", "timezone: Mars/Olympus")
    d = only(org)
    assert d.file == "org.yaml" and d.line == 11 and "unknown time zone" in d.reason


def test_missing_files(org: Path) -> None:
    (org / "animas/bob/anima.yaml").unlink()
    (org / "animas/carol/identity.md").unlink()
    (org / "org.yaml").unlink()
    found = {(d.file, d.line) for d in problems(org)}
    assert found == {("animas/bob/anima.yaml", 0), ("animas/carol/identity.md", 0), ("org.yaml", 0)}


def test_every_problem_is_reported_in_one_run(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: wizard")
    edit(org / "animas/carol/anima.yaml", "supervisor: alice", "supervisor: nobody")
    edit(org / "animas/alice/cron.md", "schedule: 0 9 * * 1", "schedule: nope")
    assert len(problems(org)) == 3


def test_cli_validate_reports_file_line_reason_and_exits_1(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: wizard")
    result = run_cli("validate", str(org))
    assert result.exit_code == 1
    assert "animas/bob/anima.yaml:2: role: unknown role 'wizard'" in result.output


def test_cli_valid_org_prints_one_line_summary(org: Path) -> None:
    result = run_cli("validate", str(org))
    assert result.exit_code == 0
    assert result.output.strip().splitlines() == [
        "Valid: org 'acme', 3 Animas (3 enabled), 2 cron tasks, in the work tree."]


def test_real_process_shows_no_traceback_and_changes_nothing(org: Path, tmp_path: Path) -> None:
    """`orgctl plan` and `apply` as child processes on a broken HEAD: exit 1, no traceback, no state."""
    from tests.conftest import commit_all

    edit(org / "animas/bob/anima.yaml", "supervisor: alice", "supervisor: ghost")
    commit_all(org, "break bob")
    orgctl = str(Path(sys.executable).parent / "orgctl")
    for args in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        proc = subprocess.run([orgctl, *args, str(org)], capture_output=True, text=True,
                              env={**os.environ})
        assert proc.returncode == 1, proc
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "animas/bob/anima.yaml:3: unknown supervisor 'ghost'" in proc.stderr
    assert not (tmp_path / "state").exists()


def test_duplicate_yaml_keys(org: Path) -> None:
    (org / "animas/bob/anima.yaml").write_text("role: engineer\nsupervisor: alice\nrole: manager\n")
    d = only(org)
    assert (d.line, d.reason) == (3, "duplicate key 'role' (first on line 1)")


def test_unknown_embedded_model(org: Path) -> None:
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nmodel: local/llama3")
    d = only(org)
    assert d.line == 5 and "unknown embedded model 'local/llama3'" in d.reason


# ---------------------------------------------------------------- symbolic links (hostile input)

def _secret_outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside.txt"
    outside.write_text("role: engineer\nsupervisor: alice\n# the host's secret\n")
    return outside


@pytest.mark.parametrize("link", ["org.yaml", "animas/bob/identity.md", "animas/bob/anima.yaml",
                                  "animas/bob/skills/deploy.md", "animas/bob/memory"])
def test_a_symlink_in_the_spec_is_refused_and_nothing_is_read_through_it(org: Path, tmp_path: Path,
                                                                          link: str) -> None:
    target = _secret_outside(tmp_path)
    path = org / link
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    elif path.exists():
        path.unlink()
    path.symlink_to(target)
    found = problems(org)
    assert any(d.file == link and "symbolic link" in d.reason and str(target) in d.reason for d in found), found
    assert WorkTreeSource(org).read_text(link) is None  # the loader never reads through it
    result = run_cli("validate", str(org))
    assert result.exit_code == 1 and f"{link}" in result.output and "symbolic link" in result.output
    assert "Traceback" not in result.output


def test_an_anima_folder_that_is_a_symlink_is_refused(org: Path) -> None:
    (org / "animas/dave").symlink_to(org / "animas/bob")
    found = problems(org)
    assert [d.file for d in found] == ["animas/dave"] and "symbolic link" in found[0].reason
    assert "dave" not in WorkTreeSource(org).list_dirs("animas")


def test_a_committed_symlink_is_refused_at_a_revision(org: Path, tmp_path: Path) -> None:
    """git stores a link as a blob of mode 120000: plan and apply read revisions, so the check is there too."""
    from orgctl.desired.sources import GitRevisionSource
    from tests.conftest import commit_all

    (org / "animas/bob/identity.md").unlink()
    (org / "animas/bob/identity.md").symlink_to("/etc/passwd")
    commit_all(org, "a hostile link")
    with pytest.raises(SpecError) as info:
        load_org(GitRevisionSource(org, "HEAD"))
    assert [(d.file, "'/etc/passwd'" in d.reason) for d in info.value.diagnostics] == [
        ("animas/bob/identity.md", True)]
    result = run_cli("plan", str(org))
    assert result.exit_code == 1 and "animas/bob/identity.md" in result.output and "symbolic link" in result.output


@pytest.mark.parametrize("link", ["", "episodes", "episodes/2026-11-23.md", "activity_log/2026-11-23.jsonl"])
def test_memory_is_never_written_through_a_symlink(tmp_path: Path, link: str) -> None:
    from datetime import date

    from orgctl.errors import StateError
    from orgctl.memory.stores import MemoryStore

    root = tmp_path / "memory"
    store = MemoryStore(root, anima="bob").ensure()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = root / link if link else root
    subprocess.run(["rm", "-rf", str(planted)], check=True)
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(elsewhere / "x.md" if link.endswith((".md", ".jsonl")) else elsewhere)
    with pytest.raises(StateError, match="symbolic link"):
        store.append_episode(day=date(2026, 11, 23), markdown="## 10:00:00 beat\n\n- Did: nothing",
                             record={"did": []})
    assert list(elsewhere.iterdir()) == []


def test_a_folder_with_only_memory_is_a_retired_anima_and_nobody_may_report_to_it(org: Path) -> None:
    import shutil

    for path in (org / "animas" / "carol").iterdir():
        if path.name != "memory":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(SpecError) as bound:  # the template workflow's reviewer is carol: retiring her is refused
        load_org(WorkTreeSource(org))
    assert [d.reason for d in bound.value.diagnostics] == [
        "agent 'reviewer': unknown Anima 'carol': there is no animas/carol/"]
    shutil.rmtree(org / "workflows")
    spec = load_org(WorkTreeSource(org))
    assert sorted(spec.animas) == ["alice", "bob"]  # carol is retired; her memory stays for the runtime
    edit(org / "animas/bob/anima.yaml", "supervisor: alice", "supervisor: carol")
    with pytest.raises(SpecError) as refused:
        load_org(WorkTreeSource(org))
    assert any("carol" in d.reason for d in refused.value.diagnostics), refused.value.diagnostics
    (org / "animas" / "carol" / "identity.md").write_text("# half a spec\n")  # not retired: a spec lacking a file
    edit(org / "animas/bob/anima.yaml", "supervisor: carol", "supervisor: alice")
    with pytest.raises(SpecError) as missing:
        load_org(WorkTreeSource(org))
    assert [str(d) for d in missing.value.diagnostics if "carol" in d.file][0].startswith(
        "animas/carol/anima.yaml: missing anima.yaml")
