"""The JSON Schemas of org.yaml and anima.yaml (orgctl/desired/schemas.py): shipped in the org template as the
models generate them, named on the first line of the template's files, and in agreement with the loader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orgctl.desired import schemas
from orgctl.desired.documents import parse_yaml
from orgctl.desired.loading import load_org, validate_model
from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
from orgctl.errors import SpecError
from orgctl.paths import template_dir
from scripts.gen_schemas import files
from tests.conftest import edit, git

SPECS = {"org.yaml": "org.yaml", **{f"animas/{a}/anima.yaml": "anima.yaml" for a in ("alice", "bob", "carol")},
         "workflows/task.yaml": "workflows/<name>.yaml"}
"""The template's YAML spec files, by path, with the spec file each is."""


def validator(file: str) -> jsonschema.protocols.Validator:
    schema = json.loads((template_dir() / schemas.schema_path(file)).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def schema_errors(file: str, text: str) -> list[str]:
    return [e.message for e in validator(file).iter_errors(yaml.safe_load(text))]


def test_the_shipped_schemas_are_what_the_models_generate() -> None:
    for path, text in files().items():
        assert path.is_file() and path.read_text(encoding="utf-8") == text, (
            f"{path} is out of date with orgctl/desired/models.py: run .venv/bin/python scripts/gen_schemas.py")


@pytest.mark.parametrize("file", sorted(schemas.SCHEMAS))
def test_each_schema_is_a_draft_2020_12_schema_with_a_stable_title(file: str) -> None:
    schema = validator(file).schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "$id" not in schema
    assert schema["title"] == f"orgctl {file}" and schema["additionalProperties"] is False
    key = {"anima.yaml": "heartbeat_interval", "org.yaml": "name"}.get(file, "max_concurrent_runs")
    assert schema["properties"][key]["description"]


@pytest.mark.parametrize("path", sorted(SPECS))
def test_the_templates_files_name_their_schema_on_line_1_and_are_valid_against_it(path: str) -> None:
    text = (template_dir() / path).read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first == schemas.modeline(path)
    target = first.removeprefix("# yaml-language-server: $schema=")
    assert ((template_dir() / path).parent / target).resolve() == (template_dir() / schemas.schema_path(SPECS[path]))
    assert schema_errors(SPECS[path], text) == []


def test_the_modeline_is_relative_to_the_file() -> None:
    assert schemas.modeline("org.yaml") == "# yaml-language-server: $schema=.schemas/org.schema.json"
    assert schemas.modeline("animas/dave/anima.yaml") == (
        "# yaml-language-server: $schema=../../.schemas/anima.schema.json")
    assert schemas.modeline("workflows/release.yaml") == (
        "# yaml-language-server: $schema=../.schemas/workflow.schema.json")
    with pytest.raises(KeyError):
        schemas.modeline("animas/dave/identity.md")


ORG, ANIMA = "name: acme\n", "role: engineer\n"
FLOW = """agents:
  a: {anima: alice}
phases:
  - id: triage
    agent: a
    decision:
      kind: {type: string, enum: [code, docs]}
  - id: check
    agent: a
    max_rework_attempts: 1
    on_verdict: {rework: triage}
"""


@pytest.mark.parametrize(("file", "text", "valid"), [
    ("anima.yaml", ANIMA + "heartbeat_intervall: 30m\n", False),  # a typo'd key
    ("anima.yaml", "supervisor: alice\n", False),  # role is required
    ("anima.yaml", "role: wizard\n", False),
    ("anima.yaml", ANIMA + "supervisor: null\nenabled: yes\n", True),  # YAML 1.1: yes is a boolean
    ("anima.yaml", ANIMA + "enabled: 'yes'\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: 1h30m\n", True),
    ("anima.yaml", ANIMA + "heartbeat_interval: 90\n", True),
    ("anima.yaml", ANIMA + "heartbeat_interval: '90'\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: 0s\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: 0\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: 1.5\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: 1d\n", False),
    ("anima.yaml", ANIMA + "heartbeat_interval: true\n", False),
    ("anima.yaml", ANIMA + 'active_hours: "9:00-17:00"\n', True),
    ("anima.yaml", ANIMA + 'active_hours: "22:00 - 06:00"\n', True),
    ("anima.yaml", ANIMA + 'active_hours: "08:00-24:00"\n', True),
    ("anima.yaml", ANIMA + 'active_hours: "24:00-06:00"\n', False),
    ("anima.yaml", ANIMA + 'active_hours: "25:00-26:00"\n', False),
    ("anima.yaml", ANIMA + "active_hours: 12:30\n", False),  # YAML 1.1 reads it as 750
    ("anima.yaml", ANIMA + "active_hours: always\n", True),
    ("anima.yaml", ANIMA + "active_hours: morning\n", False),
    ("anima.yaml", ANIMA + "model: local/smollm2\n", True),
    ("anima.yaml", ANIMA + "model: local/llama3\n", False),
    ("anima.yaml", ANIMA + "model: ollama/llama3\n", True),
    ("anima.yaml", ANIMA + "background_model: gpt-4o\n", False),
    ("anima.yaml", ANIMA + "messaging: {pair_window: 10m}\n", True),
    ("anima.yaml", ANIMA + "messaging: {pair_window: 90000}\n", False),
    ("anima.yaml", ANIMA + "deletion_policy: shred\n", False),
    ("org.yaml", ORG + "defaults:\n  heartbeat_intervall: 30m\n", False),  # a typo'd key
    ("org.yaml", "description: no name\n", False),
    ("org.yaml", "name: 5\n", False),
    ("org.yaml", "name: ''\n", False),
    ("org.yaml", ORG + "schema_version: 2\nruntime: tick\nshards: 4\n", True),
    ("org.yaml", ORG + "shards: 0\n", False),
    ("org.yaml", ORG + "shards: 257\n", False),
    ("org.yaml", ORG + "defaults: {model: anthropic/claude-sonnet-4-5, heartbeat_interval: 5m}\n", True),
    ("org.yaml", ORG + "sandbox: off\n", True),  # YAML 1.1: false
    ("org.yaml", ORG + "sandbox: 'on'\n", True),
    ("org.yaml", ORG + "sandbox: maybe\n", False),
    ("org.yaml", ORG + "sandbox: {mode: 'off', read_only: [/opt/toolchain]}\n", True),
    ("org.yaml", ORG + "sandbox: {read_only: [opt/toolchain]}\n", False),
    ("org.yaml", ORG + "sandbox: {limits: {memory_mb: 32}}\n", False),
    ("org.yaml", ORG + "messaging: {roles: {engineer: {per_hour: 5}}}\n", True),
    ("org.yaml", ORG + "messaging: {roles: {wizard: {per_hour: 5}}}\n", False),
    ("org.yaml", ORG + "notifications: [{type: ntfy, url: 'https://ntfy.sh/acme'}]\n", True),
    ("org.yaml", ORG + "notifications: [{type: ntfy}]\n", False),
    ("org.yaml", ORG + "notifications: [{type: webhook, url: 'ftp://example.com/x'}]\n", False),
    ("org.yaml", ORG + "notifications: [{type: slack, channel: '#ops', token_env: SLACK_BOT_TOKEN}]\n", True),
    ("org.yaml", ORG + "notifications: [{type: slack, channel: '#ops'}]\n", False),
    ("org.yaml", ORG + "notifications: [{type: slack, channel: '#ops', token_env: xoxb-123}]\n", False),
    ("org.yaml", ORG + "memory: {forgetting: {protect: [knowledge]}}\n", True),
    ("org.yaml", ORG + "memory: {forgetting: {protect: [episodes]}}\n", False),
    ("workflows/<name>.yaml", FLOW, True),
    ("workflows/<name>.yaml", FLOW + "timeout: 5m\n", False),  # a typo'd key
    ("workflows/<name>.yaml", FLOW.replace("id: triage", "id: Triage"), False),  # ids are lower case
    ("workflows/<name>.yaml", FLOW.replace("{rework: triage}", "{rework: [{when: 'true', goto: triage}]}"), True),
    ("workflows/<name>.yaml", FLOW.replace("{rework: triage}", "{redo: triage}"), False),  # not a verdict
    ("workflows/<name>.yaml", FLOW.replace("max_rework_attempts: 1", "max_rework_attempts: -1"), False),
    ("workflows/<name>.yaml", FLOW + "agents: {}\n".replace("agents", "mcp_servers") + "", True),
    ("workflows/<name>.yaml", FLOW + "mcp_servers: {fs: {command: []}}\n", False),
    ("workflows/<name>.yaml", FLOW.replace("{anima: alice}", "{anima: alice, memory: forever}"), False),
    ("workflows/<name>.yaml", FLOW.replace("{type: string, enum: [code, docs]}", "{type: text}"), False),
    ("workflows/<name>.yaml", "agents: {a: {}}\nphases: []\n", False),
])
def test_the_schema_accepts_what_the_loader_accepts(file: str, text: str, valid: bool) -> None:
    model, _ = schemas.SCHEMAS[file]
    located, errs = parse_yaml(text, file=file)
    assert located is not None and errs == []
    loaded, diagnostics = validate_model(model, located, file=file)
    assert (loaded is not None, schema_errors(file, text) == []) == (valid, valid), (diagnostics,
                                                                                   schema_errors(file, text))


@pytest.mark.parametrize(("file", "text"), [
    ("anima.yaml", ANIMA + "timezone: Mars/Olympus\n"),  # which zones exist: zoneinfo knows
    ("anima.yaml", ANIMA + 'active_hours: "09:00-9:00"\n'),  # empty: start equals end
])
def test_what_only_the_loader_refuses(file: str, text: str) -> None:
    """The schema checks shapes; ``orgctl validate`` has the last word (docs/file-formats.md says which)."""
    model, _ = schemas.SCHEMAS[file]
    located, _ = parse_yaml(text, file=file)
    assert located is not None and validate_model(model, located, file=file)[0] is None
    assert schema_errors(file, text) == []


def spec_hashes(org: Path) -> dict[str, str]:
    spec = load_org(WorkTreeSource(org))
    return ({name: a.spec_hash() for name, a in spec.animas.items()}
            | {f"workflows/{name}": w.digest for name, w in spec.workflows.items()})


def test_a_typo_is_refused_by_the_loader_at_its_line_and_by_the_schema(org: Path) -> None:
    edit(org / "org.yaml", "heartbeat_interval: 30m", "heartbeat_intervall: 30m")
    text = (org / "org.yaml").read_text()
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "heartbeat_intervall" in ln)) + 1
    with pytest.raises(SpecError) as info:
        load_org(WorkTreeSource(org))
    assert [(d.file, d.line, d.reason) for d in info.value.diagnostics] == [
        ("org.yaml", line, "unknown field 'defaults.heartbeat_intervall'")]
    assert any("'heartbeat_intervall' was unexpected" in m for m in schema_errors("org.yaml", text))


def test_an_inited_org_commits_the_schemas_and_the_modelines_change_nothing(org: Path) -> None:
    assert git(org, "ls-files", schemas.SCHEMAS_DIR).split() == [".schemas/anima.schema.json",
                                                                  ".schemas/org.schema.json",
                                                                  ".schemas/workflow.schema.json"]
    for path in map(schemas.schema_path, schemas.SCHEMAS):
        assert (org / path).read_bytes() == (template_dir() / path).read_bytes()
    assert git(org, "status", "--porcelain") == ""
    at_head = load_org(GitRevisionSource(org, "HEAD"))  # .schemas/ is no spec: nothing about it is reported
    assert at_head.warnings == [] and sorted(at_head.animas) == ["alice", "bob", "carol"]
    before = spec_hashes(org)
    for path in SPECS:
        text = (org / path).read_text()
        (org / path).write_text(text.split("\n", 1)[1])  # without the comment line
    assert spec_hashes(org) == before


def test_the_generator_script_writes_the_schemas(tmp_path: Path) -> None:
    """``scripts/gen_schemas.py`` run as a person runs it, into a copy: the files it writes are the shipped ones."""
    import shutil
    import sys

    repo = Path(__file__).resolve().parents[2]
    copy = tmp_path / "repo"
    shutil.copytree(repo / "scripts", copy / "scripts")
    (copy / "org-template").mkdir()
    env: dict[str, Any] = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(copy / "scripts/gen_schemas.py")], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.count("wrote ") == len(schemas.SCHEMAS) == 3
    for file in schemas.SCHEMAS:
        path = schemas.schema_path(file)
        assert (copy / "org-template" / path).read_bytes() == (template_dir() / path).read_bytes()
