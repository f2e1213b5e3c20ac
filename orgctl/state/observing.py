"""The observed state as one report: inventory and runtime status merged per Anima."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from pydantic import BaseModel

from orgctl.paths import StatePaths
from orgctl.state.inventories import load_inventory
from orgctl.state.pauses import read_pauses
from orgctl.state.runtimes import ProcessStatus, load_runtime


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
    health: str = "Healthy"
    """``Healthy``, ``Degraded`` (a crash loop, or no successful heartbeat for twice its interval),
    ``Progressing`` (starting), ``Suspended`` (paused), ``Missing`` (should run, does not)."""
    reason: str = ""


class StatusReport(BaseModel):
    revision: str | None
    applied_at: str | None
    supervisor_pid: int | None
    supervisor_running: bool
    animas: list[AnimaStatus]


CRASH_LOOP_RESTARTS = 2  # restarts since the last planned start before an Anima counts as crash-looping
STALE_GRACE = 60.0  # seconds past twice the interval before a missing heartbeat counts


def log_tail(paths: StatePaths, name: str, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of the Anima's log, joined with `` | `` ('' when none)."""
    try:
        with open(paths.logs / f"{name}.log", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:])


def assess(proc: ProcessStatus, *, interval: float, now: datetime) -> tuple[str, str]:
    """``(health, reason)`` of a running Anima's process, from the supervisor's record alone.

    Degraded: a crash loop (in backoff after :data:`CRASH_LOOP_RESTARTS` restarts), or running
    with no successful heartbeat for twice ``interval`` seconds (plus :data:`STALE_GRACE`), counted
    from its last one, or from its start. Resting outside its active hours is Healthy.
    """
    if proc.state == "backoff" and proc.restarts >= CRASH_LOOP_RESTARTS:
        return "Degraded", (f"crash loop: exited with {proc.last_exit_code} after {proc.restarts} restarts, "
                            f"next in {proc.backoff_seconds:.0f}s")
    if proc.state == "starting":
        return "Progressing", "starting"
    if proc.state == "running":
        since = proc.last_heartbeat or proc.started_at
        if since:
            quiet = (now - datetime.fromisoformat(since)).total_seconds()
            if quiet > 2 * interval + STALE_GRACE:
                return "Degraded", (f"no successful heartbeat for {quiet / 60:.0f} min "
                                    f"(due every {interval / 60:.0f} min)")
    return "Healthy", ""


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
        if entry.status != "active":
            health, reason = ("Suspended", "disabled in the spec") if entry.status == "disabled" else ("Missing", "")
        elif proc is None:
            health, reason = (("Suspended", f"paused by {paused[name].by}") if name in paused
                              else ("Missing", "not running"))
        else:
            health, reason = assess(proc, interval=float(entry.config.get("heartbeat_interval") or 1800),
                                    now=datetime.now(UTC))
            if health == "Degraded" and (tail := log_tail(paths, name)):
                reason = f"{reason}; log: {tail}"
        rows.append(AnimaStatus(
            name=name, role=entry.config.get("role"), state=state, revision=entry.revision,
            spec_hash=entry.spec_hash, pid=proc.pid if proc else None,
            heartbeats=proc.heartbeats if proc else 0,
            last_heartbeat=proc.last_heartbeat if proc else None,
            restarts=proc.restarts if proc else 0,
            last_exit_code=proc.last_exit_code if proc else None, health=health, reason=reason))
    return StatusReport(revision=inventory.revision, applied_at=inventory.applied_at,
                        supervisor_pid=runtime.supervisor_pid if alive else None,
                        supervisor_running=alive, animas=rows)
