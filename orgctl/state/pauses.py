"""Pause records: an Anima a person or a manager paused stays stopped until someone resumes it.

``<state>/paused/<name>.json``, one per paused Anima, written by whoever pauses it (``orgctl pause``,
or a manager's ``pause_anima`` tool) after the supervisor stopped the process, and removed by whoever
resumes it. Operational state (DESIGN §2): the spec does not change, so ``plan`` keeps the Anima's
spec up to date but does not start it (as Flux's ``suspend`` keeps a resource's spec and stops
reconciling it), and ``status`` shows ``paused``.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths
from orgctl.state.files import read_json, write_json


class PauseRecord(BaseModel):
    """Why ``name`` is paused: by whom (an Anima or ``human``), when (ISO 8601 UTC), the reason given."""

    name: str
    by: str
    at: str
    reason: str = ""


def read_pauses(paths: StatePaths) -> dict[str, PauseRecord]:
    """Pause records by Anima name; unreadable records are skipped (a pause is advisory, never a crash)."""
    out = {}
    for path in sorted(paths.paused.glob("*.json")):
        try:
            record = PauseRecord.model_validate(read_json(path))
        except (ValidationError, OrgctlError):
            continue
        if record.name == path.stem:
            out[record.name] = record
    return out


def write_pause(paths: StatePaths, record: PauseRecord) -> None:
    """Record a pause (atomic write)."""
    write_json(paths.pause_file(record.name), record.model_dump(mode="json"))


def clear_pause(paths: StatePaths, name: str) -> bool:
    """Remove ``name``'s pause record; True when there was one."""
    path = paths.pause_file(name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
