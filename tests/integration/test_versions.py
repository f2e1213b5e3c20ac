"""Format versions on real files: org.yaml's schema_version, the state dir's format, memory frontmatter.
Older formats are read (and the state dir migrated) with a note; newer ones are refused, naming the version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orgctl.errors import StateError
from orgctl.memory.notes import MEMORY_FORMAT, Note, note_format
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths
from orgctl.state.inventories import load_inventory
from tests.conftest import commit_all, edit, run_cli


def test_a_newer_org_schema_is_refused_with_file_line_and_the_version_needed(org: Path) -> None:
    edit(org / "org.yaml", "schema_version: 2", "schema_version: 7")
    result = run_cli("validate", str(org))
    assert result.exit_code == 1
    assert "org.yaml:4: schema_version 7 needs a newer orgctl: this one reads schema versions up to 2" \
        in result.output
    assert "Traceback" not in result.output


def test_an_org_yaml_without_schema_version_is_read_as_1_with_a_note(org: Path) -> None:
    edit(org / "org.yaml", "schema_version: 2", "")
    commit_all(org, "an older repo")
    result = run_cli("plan", str(org))
    assert result.exit_code == 0, result.output
    assert "org.yaml has no schema_version; read as version 1" in result.output


def test_a_state_dir_of_format_0_is_migrated_once_and_a_newer_one_refused(running: Path, state: StatePaths) -> None:
    org = running
    assert run_cli("apply", str(org), "--auto-approve").exit_code == 0
    assert json.loads(state.format_file.read_text()) == {"format_version": 1}
    inventory = json.loads(state.inventory.read_text())  # what an orgctl before formats wrote
    for entry in inventory["animas"].values():
        entry.pop("digest")
    state.inventory.write_text(json.dumps(inventory))
    state.format_file.unlink()
    first = run_cli("status", str(org))
    assert first.exit_code == 0 and "migrated the state dir" in first.output and "from format 0 to 1" in first.output
    assert all(e.digest and not e.tampered() for e in load_inventory(state.inventory).animas.values())
    assert "migrated" not in run_cli("status", str(org)).output  # once
    assert "No changes." in run_cli("plan", str(org)).output  # sealed as it was: no drift

    state.format_file.write_text(json.dumps({"format_version": 9}))
    before = state.inventory.read_bytes()
    refused = run_cli("plan", str(org))
    assert refused.exit_code == 1
    assert "is in format 9, written by a newer orgctl; this one reads format 1" in refused.output
    assert state.inventory.read_bytes() == before


def test_memory_notes_carry_their_format_and_a_newer_one_is_never_overwritten(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory", anima="bob").ensure()
    path = store.write_note(Note(store.note_path("knowledge", "deploys"), {"title": "Deploys"}, "what was learned"))
    assert note_format(path) == MEMORY_FORMAT and path.read_text().startswith("---\nformat: 1\n")
    path.write_text(path.read_text().replace("format: 1", "format: 2"))
    with pytest.raises(StateError, match="memory format 2, written by a newer orgctl"):
        store.write_note(Note(store.note_path("knowledge", "deploys"), {"title": "again"}, "overwrite?"))
    assert "format: 2" in path.read_text() and "what was learned" in path.read_text()
