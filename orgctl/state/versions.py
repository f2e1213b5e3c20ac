"""The state dir's format version: older formats are migrated on first use (and say so), newer ones refused.

``<state>/format.json`` holds ``{"format_version": N}``. Every command checks it when it resolves the
org (:func:`check_state_format`), so a state dir written by a newer orgctl is never misread or half
rewritten by an older one, and an older one is brought forward once, with a message.

Formats:

* **0** -- before the version was recorded: inventory entries carry no digest.
* **1** -- inventory entries are sealed with a digest (:meth:`InventoryEntry.sealed`), so drift shows
  an entry edited by hand. Migrating 0 → 1 seals the entries as they are.

The spec has its own version (``schema_version`` in org.yaml, :data:`orgctl.desired.models.SCHEMA_VERSION`)
and so does memory frontmatter (:data:`orgctl.memory.notes.MEMORY_FORMAT`).
"""

from __future__ import annotations

import json
import os

from orgctl.errors import StateError
from orgctl.paths import STATE_FORMAT, StatePaths


def _file(paths: StatePaths):  # type: ignore[no-untyped-def]
    return paths.format_file


def _write(paths: StatePaths, **extra: object) -> None:
    from orgctl.state.files import write_json

    write_json(_file(paths), {"format_version": STATE_FORMAT, **extra})


def check_state_format(paths: StatePaths) -> str | None:
    """Make sure the state dir is in :data:`STATE_FORMAT`; returns a message when it was migrated (else None).

    A missing or empty state dir is simply marked current. Raises StateError for a newer format, or an
    unreadable format file; nothing is changed then.
    """
    if not paths.root.is_dir() or not any(os.scandir(paths.root)):
        return None
    try:
        with open(_file(paths), encoding="utf-8") as f:
            version = json.load(f).get("format_version")
    except FileNotFoundError:
        version = 0
    except (OSError, ValueError, AttributeError) as e:
        raise StateError(f"{_file(paths)} is unreadable: {e}", hint="restore it, or remove the state dir "
                                                                    "(`orgctl down` first; it is rebuildable)") from e
    if not isinstance(version, int):
        raise StateError(f"{_file(paths)}: format_version {version!r} is not a number")
    if version > STATE_FORMAT:
        raise StateError(f"the state dir {paths.root} is in format {version}, written by a newer orgctl; this one "
                         f"reads format {STATE_FORMAT}", hint="upgrade orgctl (pip install -U orgctl)")
    if version == STATE_FORMAT:
        return None
    _migrate_0_to_1(paths)
    _write(paths, migrated_from=version)
    return f"migrated the state dir {paths.root} from format {version} to {STATE_FORMAT} (inventory entries sealed)"


def _migrate_0_to_1(paths: StatePaths) -> None:
    """Seal every inventory entry as it is (format 0 had no digests)."""
    from orgctl.state.inventories import load_inventory, save_inventory

    if not paths.inventory.exists():
        return
    inventory = load_inventory(paths.inventory)
    inventory.animas = {n: e if e.digest else e.sealed() for n, e in inventory.animas.items()}
    save_inventory(paths.inventory, inventory)
