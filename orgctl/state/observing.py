"""The observed state as one report: inventory and runtime status merged per Anima."""

from __future__ import annotations

from pydantic import BaseModel

from orgctl.paths import StatePaths
from orgctl.state.inventories import load_inventory
from orgctl.state.pauses import read_pauses
from orgctl.state.runtimes import load_runtime


class AnimaStatus(BaseModel):
    """One row of ``orgctl status``.

    ``state`` is the process state when the supervisor runs it
    (starting/running/resting/backoff), else the inventory's view
    (``not running`` when it should run but nothing runs it, ``paused`` when
    a person or a manager paused it: :mod:`orgctl.state.pauses`).
    """

    name: str
    role: str | None
    state: str
    revision: str | None
    spec_hash: str
    pid: int | None
    heartbeats: int
    last_heartbeat: str | None
    restarts: int
    last_exit_code: int | None


class StatusReport(BaseModel):
    revision: str | None
    applied_at: str | None
    supervisor_pid: int | None
    supervisor_running: bool
    animas: list[AnimaStatus]


def observe_status(paths: StatePaths) -> StatusReport:
    """Read the inventory and the runtime status (no process is contacted)."""
    inventory = load_inventory(paths.inventory)
    runtime = load_runtime(paths.runtime)
    alive = runtime.supervisor_alive()
    rows = []
    paused = read_pauses(paths)
    for name, entry in sorted(inventory.animas.items()):
        proc = runtime.animas.get(name) if alive else None
        if proc is not None and proc.state == "stopped":
            proc = None
        # an entry that should run shows its process state; others show why they don't run
        idle = "paused" if name in paused else "not running"
        state = (proc.state if proc else idle) if entry.status == "active" else entry.status
        rows.append(AnimaStatus(
            name=name, role=entry.config.get("role"), state=state, revision=entry.revision,
            spec_hash=entry.spec_hash, pid=proc.pid if proc else None,
            heartbeats=proc.heartbeats if proc else 0,
            last_heartbeat=proc.last_heartbeat if proc else None,
            restarts=proc.restarts if proc else 0,
            last_exit_code=proc.last_exit_code if proc else None))
    return StatusReport(revision=inventory.revision, applied_at=inventory.applied_at,
                        supervisor_pid=runtime.supervisor_pid if alive else None,
                        supervisor_running=alive, animas=rows)
