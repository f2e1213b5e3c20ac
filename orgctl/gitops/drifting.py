"""Drift: an Anima whose running configuration no longer matches what was applied from git.

Compared by content hash, not by presence (a file that exists can still be wrong):

* the **spec snapshot** the process reads (``<state>/specs/<name>.json``): the sha256 of its
  ``spec`` (canonical JSON, exactly :meth:`AnimaSpec.spec_hash`) against the applied spec hash in
  the inventory -- a snapshot edited by hand, or deleted;
* the **process**: the spec hash the Anima says it runs (at hello and every beat) -- a process
  reloaded or restarted by hand on another spec (another model, say);
* the **inventory record** itself: its digest (:meth:`InventoryEntry.tampered`) -- observed state
  edited by hand, which would otherwise make ``plan`` lie.

A process that is gone (killed) is not drift here: the plan already restarts it ("not running").
Runtime-owned data -- memory, timestamps (``applied_at``), counters (heartbeats, restarts) --
is outside every hash, so it never counts. Paused Animas are left alone (suspended).

Terraform shows the same thing as "Objects have changed outside of Terraform"; Argo CD's
self-heal converges it back, and so does the controller unless it runs with ``--drift warn``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from orgctl.desired.hashing import spec_digest
from orgctl.paths import StatePaths
from orgctl.state.inventories import Inventory
from orgctl.state.runtimes import RuntimeStatus


def snapshot_spec_hash(path: Path) -> str | None:
    """sha256 of the snapshot's ``spec`` as canonical JSON (equal to the spec's own hash), or None when
    the file is missing or not a snapshot."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))["spec"]
        return spec_digest(spec, spec["org"].get("peers") or [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def detect_drift(inventory: Inventory, runtime: RuntimeStatus, paths: StatePaths, *,
                 paused: Mapping[str, object] | None = None) -> dict[str, list[str]]:
    """Reasons per active Anima whose snapshot, process or inventory record differs from what was applied."""
    paused = paused or {}
    supervised = runtime.supervisor_alive()
    drift: dict[str, list[str]] = {}
    for name, entry in sorted(inventory.animas.items()):
        if entry.status != "active" or name in paused:
            continue
        reasons = []
        if entry.tampered():
            reasons.append("its inventory record was edited outside orgctl")
        on_disk = snapshot_spec_hash(paths.spec_snapshot(name))
        if on_disk is None:
            reasons.append("its spec snapshot is missing or unreadable")
        elif on_disk != entry.spec_hash:
            reasons.append(f"its spec snapshot was edited outside orgctl (applied {entry.spec_hash[:12]}, "
                           f"on disk {on_disk[:12]})")
        proc = runtime.animas.get(name) if supervised else None
        if proc is not None and proc.state in ("running", "resting") and proc.spec_hash \
                and proc.spec_hash != entry.spec_hash:
            reasons.append(f"its process runs another spec ({proc.spec_hash[:12]}): reloaded or restarted by hand")
        if reasons:
            drift[name] = reasons
    return drift
