"""Applied spec snapshots: what ``apply`` hands an Anima process, and the workflows runs start from.

``apply`` writes ``<state>/specs/<name>.json`` before it starts, restarts
or reloads the Anima, so the process runs exactly the applied revision,
untouched by later edits to the work tree; and ``<state>/specs/workflows/<name>.json``
for each workflow, which ``workflow run`` pins a new run to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orgctl.desired.models import AnimaSpec
from orgctl.desired.workflows import WorkflowSpec
from orgctl.errors import WorkError
from orgctl.paths import StatePaths
from orgctl.state.files import read_json, write_json


class Snapshot(BaseModel):
    """One Anima's applied spec, the revision it came from, and where its memory lives."""

    spec: AnimaSpec
    revision: str | None
    org_name: str
    memory_dir: str
    applied_at: str


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    write_json(path, snapshot.model_dump(mode="json"))


def read_snapshot(path: Path) -> Snapshot:
    """Raises FileNotFoundError when there is none (the Anima was never applied)."""
    data = read_json(path)
    if data is None:
        raise FileNotFoundError(path)
    return Snapshot.model_validate(data)


def applied_names(paths: StatePaths) -> list[str]:
    """The Animas with an applied snapshot, by name."""
    return sorted(p.stem for p in paths.specs.glob("*.json")) if paths.specs.is_dir() else []


def unknown_anima(paths: StatePaths, name: Any) -> str | None:
    """Why ``name`` (from a socket or a command line) is not an applied Anima, or None. Names become paths
    (``logs/<name>.log``, snapshots), so only a safe name with an applied snapshot is accepted."""
    from orgctl.desired.loading import check_name

    if not isinstance(name, str) or check_name(name) or not paths.spec_snapshot(name).is_file():
        return f"no applied Anima named {str(name)[:80]!r}"
    return None


def workflow_snapshot(specs_dir: Path, name: str) -> Path:
    """``<state>/specs/workflows/<name>.json``: the applied workflow ``name``."""
    return specs_dir / "workflows" / f"{name}.json"


def write_workflows(specs_dir: Path, workflows: dict[str, WorkflowSpec], *, revision: str | None) -> None:
    """Write each applied workflow's snapshot (what ``workflow run`` starts) and remove the others."""
    folder = specs_dir / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in workflows.items():
        write_json(workflow_snapshot(specs_dir, name), {"revision": revision, "workflow": spec.model_dump(mode="json")})
    for stale in folder.glob("*.json"):
        if stale.stem not in workflows:
            stale.unlink(missing_ok=True)


def applied_workflows(specs_dir: Path) -> dict[str, tuple[WorkflowSpec, str | None]]:
    """Every applied workflow, by name: ``(spec, revision)``. A snapshot that does not read is left out."""
    out = {}
    for path in sorted((specs_dir / "workflows").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("workflow"), dict):
            out[path.stem] = (WorkflowSpec.model_validate(data["workflow"]), data.get("revision"))
    return out


def applied_workflow(specs_dir: Path, name: str) -> tuple[WorkflowSpec, str | None]:
    """The applied workflow ``name`` and its revision. Raises WorkError naming the applied ones."""
    data = read_json(workflow_snapshot(specs_dir, name)) if "/" not in name and not name.startswith(".") else None
    if not isinstance(data, dict):
        known = sorted(p.stem for p in (specs_dir / "workflows").glob("*.json"))
        raise WorkError(f"no applied workflow named {name!r}",
                        hint=f"applied: {', '.join(known) or 'none'} (workflows/<name>.yaml, then `orgctl apply`)")
    return WorkflowSpec.model_validate(data["workflow"]), data.get("revision")
