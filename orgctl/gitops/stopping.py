"""``orgctl down``: stop everything the backend started and mark it stopped in the inventory."""

from __future__ import annotations

from orgctl.gitops.backends import Backend
from orgctl.paths import StatePaths
from orgctl.state.inventories import load_inventory, now_iso, save_inventory


def stop_all(*, paths: StatePaths, backend: Backend) -> tuple[list[str], list[int]]:
    """Stop all processes; returns (Animas marked stopped, pids that were running).

    Entries go from ``active`` to ``stopped``, so the next plan shows them as
    ``+`` with the reason "stopped by orgctl down". Retired and disabled
    entries are left as they are. Memory is not touched.
    """
    pids = backend.shutdown()
    inventory = load_inventory(paths.inventory)
    stopped = []
    for name, entry in inventory.animas.items():
        if entry.status == "active":
            inventory.animas[name] = entry.model_copy(update={"status": "stopped", "applied_at": now_iso()}).sealed()
            stopped.append(name)
    if stopped:
        save_inventory(paths.inventory, inventory)
    return sorted(stopped), pids
