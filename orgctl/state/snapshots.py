"""Applied spec snapshots: what ``apply`` hands an Anima process.

``apply`` writes ``<state>/specs/<name>.json`` before it starts, restarts
or reloads the Anima, so the process runs exactly the applied revision,
untouched by later edits to the work tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orgctl.desired.models import AnimaSpec
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
