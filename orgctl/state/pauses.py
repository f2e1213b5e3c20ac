"""Suspension records: Animas, or the whole org, that reconciliation leaves alone until someone resumes them.

``<state>/paused/<name>.json``, one per Anima, in one of two modes:

* ``pause`` -- written by whoever pauses it (``orgctl pause``, or a manager's ``pause_anima`` tool)
  after the supervisor stopped the process: ``plan`` keeps its spec up to date but does not start it,
  and ``status`` shows ``paused``. A manager's pause is a suspension with its reason, so neither
  ``apply`` nor the controller's self-heal undoes it.
* ``suspend`` -- Flux's meaning (``orgctl suspend NAME``): reconciliation stops and the Anima is left
  exactly as it is, running or not; spec changes wait until ``orgctl resume``.

``<state>/suspended.json`` suspends the reconciliation of the whole org (``orgctl suspend --all``,
for incidents and rollbacks): the controller applies nothing until ``orgctl resume --all``.
Operational state (DESIGN §2): the spec does not change; ``plan`` and ``status`` show every
suspension, never skip one silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ValidationError

from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths
from orgctl.state.files import read_json, write_json
from orgctl.state.observing import describe_hold


class PauseRecord(BaseModel):
    """Why ``name`` is paused or suspended: by whom (an Anima or ``human``), when (ISO 8601 UTC), the reason."""

    name: str
    by: str
    at: str
    reason: str = ""
    mode: Literal["pause", "suspend"] = "pause"
    """``pause``: stopped and kept stopped; ``suspend``: left as it is, not reconciled."""

    def describe(self) -> str:
        """``paused by human at <time> (reason)``: one line for plans, status and events."""
        return describe_hold(self.model_dump())


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


def org_suspension(paths: StatePaths) -> PauseRecord | None:
    """The suspension of the whole org's reconciliation, or None."""
    try:
        return PauseRecord.model_validate(read_json(paths.suspended, default=None))
    except (ValidationError, OrgctlError):
        return None


def suspend_org(paths: StatePaths, record: PauseRecord) -> None:
    write_json(paths.suspended, record.model_dump(mode="json"))


def resume_org(paths: StatePaths) -> bool:
    """Clear the org's suspension; True when there was one."""
    existed = paths.suspended.exists()
    paths.suspended.unlink(missing_ok=True)
    return existed


def write_pause(paths: StatePaths, record: PauseRecord) -> None:
    """Record a pause (atomic write)."""
    write_json(paths.pause_file(record.name), record.model_dump(mode="json"))


def clear_pause(paths: StatePaths, name: str) -> bool:
    """Remove ``name``'s pause record; True when there was one."""
    path = paths.pause_file(name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
