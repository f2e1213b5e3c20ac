"""JSON Schemas of ``org.yaml`` and ``anima.yaml``, generated from the models the loader validates them with.

Editors read them (the YAML language server: completion, hover, red squiggles) through a first-line comment
in each file, ``# yaml-language-server: $schema=<path>``; :func:`modeline` writes that line. An org repo keeps
its own copy in ``.schemas/`` at its root, so a checkout needs no network (not in ``.orgctl/``, which may
hold state; orgctl never reads ``.schemas/`` as spec). ``orgctl init`` copies it with the org template
(``org-template/.schemas/``), which ``scripts/gen_schemas.py`` writes from :func:`render`; a test keeps
the two equal.

The loader has the last word: a schema cannot say which time zone names exist, that active hours are not
empty, or where the org chart has a cycle.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from orgctl.desired.models import AnimaFile, OrgFile
from orgctl.desired.workflows import WORKFLOWS_DIR, WorkflowFile

SCHEMAS_DIR = ".schemas"
"""The folder at the org repo's root that holds the schemas."""

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "org.yaml": (OrgFile, "org.schema.json"),
    "anima.yaml": (AnimaFile, "anima.schema.json"),
    "workflows/<name>.yaml": (WorkflowFile, "workflow.schema.json"),
}
"""Spec file name -> (the model that validates it, its schema's file name in :data:`SCHEMAS_DIR`)."""

_ROLE_MARKUP = re.compile(r":[a-z]+:`~?([^`]+)`")


class _Schema(GenerateJsonSchema):
    """pydantic's draft 2020-12 generator, without a title per field (the field name is the title)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _tidy(node: Any) -> Any:
    """Docstring markup made plain (double backticks and Sphinx roles become single backticks), and the
    description of an optional value's type lifted to the field, where editors show it."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _tidy(value) for key, value in node.items()}
    if isinstance(node.get("description"), str):
        node["description"] = _ROLE_MARKUP.sub(r"`\1`", node["description"]).replace("``", "`")
    branches = node.get("anyOf")
    if "description" not in node and isinstance(branches, list) and {"type": "null"} in branches:
        described = [b for b in branches if isinstance(b, dict) and "description" in b]
        if len(described) == 1:
            node["description"] = described[0].pop("description")
    return node


def json_schema(file: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the spec file named ``file`` (a key of :data:`SCHEMAS`).

    A dict ready for ``json.dumps``: ``$schema``, ``title`` (``orgctl <file>``), the model's description,
    properties and ``$defs``. Raises KeyError for any other file name.
    """
    model, _ = SCHEMAS[file]
    generated = model.model_json_schema(schema_generator=_Schema)
    generated.pop("title", None)
    return {"$schema": _Schema.schema_dialect, "title": f"orgctl {file}", **_tidy(generated)}


def render(file: str) -> str:
    """:func:`json_schema` as the text of its schema file: two-space indents, UTF-8, a final newline."""
    return json.dumps(json_schema(file), indent=2, ensure_ascii=False) + "\n"


def schema_path(file: str) -> str:
    """The path of the schema of the spec file named ``file`` from the repo root (``.schemas/org.schema.json``).

    Raises KeyError when the file has no schema.
    """
    return f"{SCHEMAS_DIR}/{SCHEMAS[file][1]}"


def modeline(path: str) -> str:
    """The first line that names the schema of the spec file at ``path`` (relative to the repo root, POSIX)
    for editors: ``# yaml-language-server: $schema=<path to the schema, relative to the file>``, no newline.

    ``org.yaml`` gets ``.schemas/org.schema.json``; ``animas/<name>/anima.yaml`` gets
    ``../../.schemas/anima.schema.json``. Raises KeyError when the file has no schema.
    """
    kind = "workflows/<name>.yaml" if posixpath.dirname(path) == WORKFLOWS_DIR else posixpath.basename(path)
    target = posixpath.relpath(schema_path(kind), posixpath.dirname(path) or ".")
    return f"# yaml-language-server: $schema={target}"
