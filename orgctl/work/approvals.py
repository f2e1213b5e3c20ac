"""Approvals: actions a permission marked ``ask`` wait here until a person decides.

One JSON file per request under ``<state>/work/approvals/``, replaced
atomically on each change. ``orgctl approvals`` lists the pending ones,
``orgctl approve ID`` / ``orgctl deny ID`` decide; the Anima is woken and
told the result (and runs the command only when approved), as Claude Code
and Codex hold an ``ask`` rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from orgctl.errors import WorkError
from orgctl.state.files import read_json, write_json
from orgctl.state.inventories import now_iso
from orgctl.work.messages import new_id

Decision = Literal["pending", "approved", "denied"]


class Approval(BaseModel):
    """A held action: ``kind`` is ``command``; ``detail`` the command line; ``rule`` the ask rule that held it."""

    id: str = Field(default_factory=lambda: new_id("a"))
    anima: str
    kind: Literal["command"] = "command"
    detail: str
    rule: str
    task_id: str | None = None
    status: Decision = "pending"
    decided_by: str | None = None
    created_at: str = Field(default_factory=now_iso)
    decided_at: str | None = None
    handled: bool = False


class Approvals:
    """The approval requests of one org under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _file(self, approval_id: str) -> Path:
        if not approval_id.replace("-", "").isalnum():
            raise KeyError(approval_id)
        return self.root / f"{approval_id}.json"

    def request(self, approval: Approval) -> Approval:
        write_json(self._file(approval.id), approval.model_dump(mode="json"))
        return approval

    def get(self, approval_id: str) -> Approval | None:
        try:
            data = read_json(self._file(approval_id))
        except KeyError:
            return None
        return Approval.model_validate(data) if data else None

    def all(self) -> list[Approval]:
        out = []
        for path in sorted(self.root.glob("a-*.json")):
            data = read_json(path)
            if data:
                out.append(Approval.model_validate(data))
        return sorted(out, key=lambda a: a.created_at)

    def decide(self, approval_id: str, *, approve: bool, by: str) -> Approval:
        """Record a person's decision. Raises :class:`WorkError` when unknown or already decided."""
        current = self.get(approval_id)
        if current is None:
            raise WorkError(f"no approval {approval_id!r}", hint="list them with `orgctl approvals`")
        if current.status != "pending":
            raise WorkError(f"{approval_id} was already {current.status}")
        decided = current.model_copy(update={"status": "approved" if approve else "denied",
                                             "decided_by": by, "decided_at": now_iso()})
        write_json(self._file(approval_id), decided.model_dump(mode="json"))
        return decided

    def mark_handled(self, approval_id: str) -> None:
        current = self.get(approval_id)
        if current is not None:
            write_json(self._file(approval_id), current.model_copy(update={"handled": True}).model_dump(mode="json"))
