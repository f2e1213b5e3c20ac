"""The inventory: every Anima ``apply`` has started, with what it applied.

Like Flux's inventory, it is how orgctl knows what it owns: ``plan`` diffs
against it, retire and ``down`` touch only what is in it. Written only by
``apply`` and ``down`` while holding the state lock.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from orgctl.errors import StateError
from orgctl.state.files import read_json, write_json

EntryStatus = Literal["active", "disabled", "stopped", "retired", "orphaned"]


def now_iso() -> str:
    """Current UTC time as ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class InventoryEntry(BaseModel):
    """What was last applied for one Anima.

    ``status``: ``active`` (should run), ``disabled`` (``enabled: false`` in
    the spec), ``stopped`` (by ``orgctl down``), ``retired`` (removed from the
    repo; ``archive`` says where its memory was copied, None when it was deleted),
    ``orphaned`` (removed from the repo with ``deletion_policy: orphan``: no longer
    managed, left running as it was).
    """

    name: str
    status: EntryStatus
    revision: str | None
    spec_hash: str
    config: dict[str, Any]
    files: dict[str, str]
    org: dict[str, Any]
    applied_at: str
    archive: str | None = None
    deletion_policy: str = "archive"
    """What retiring it does (:data:`orgctl.desired.models.DeletionPolicy`), as applied."""
    digest: str | None = None
    """sha256 of the record's other fields (:meth:`compute_digest`), set by :meth:`sealed`: an entry edited by
    hand no longer matches it, and shows as drift. None in inventories written before it existed."""

    def compute_digest(self) -> str:
        payload = json.dumps(self.model_dump(mode="json", exclude={"digest"}), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def sealed(self) -> InventoryEntry:
        """This entry with its :attr:`digest` set."""
        return self.model_copy(update={"digest": self.compute_digest()})

    def tampered(self) -> bool:
        """True when the entry has a digest and its fields no longer match it (edited outside orgctl)."""
        return self.digest is not None and self.digest != self.compute_digest()


class Inventory(BaseModel):
    """All entries, plus the last revision applied to the org as a whole."""

    revision: str | None = None
    applied_at: str | None = None
    sandbox: str | None = None
    """org.yaml's ``sandbox.mode`` as last applied (``on``/``off``; None before it was recorded)."""
    animas: dict[str, InventoryEntry] = {}
    workflows: dict[str, str] = {}
    """Each applied workflow's digest (:func:`orgctl.desired.workflows.workflow_digest`), by name."""

    def owned(self) -> list[InventoryEntry]:
        """Entries orgctl still owns a process (or a stopped slot) for: not retired."""
        return [e for e in self.animas.values() if e.status not in ("retired", "orphaned")]


def load_inventory(path: Path) -> Inventory:
    """Read the inventory (empty when none). Raises StateError when it is corrupt."""
    data = read_json(path, default={})
    try:
        return Inventory.model_validate(data)
    except ValidationError as e:
        raise StateError(f"{path} is not a valid inventory: {e.error_count()} errors",
                         hint="observed state is rebuildable: `orgctl down`, remove it, `orgctl apply`") from e


def save_inventory(path: Path, inventory: Inventory) -> None:
    """Write the inventory atomically, as it is: whoever makes or changes an entry seals it
    (:meth:`InventoryEntry.sealed`), so a tampered entry stays visible until it is converged."""
    write_json(path, inventory.model_dump(mode="json"))
