"""The observed state as one report (``orgctl status``): inventory, runtime status, pauses and the
controller's record, merged per Anima.

Plain JSON and the standard library only -- no pydantic, no git -- so ``orgctl status`` starts in
a few times an empty interpreter's start-up (bench/startup.py). Health is computed here, at read
time, from the supervisor's record (so it is current even between controller passes); sync,
conditions and revisions come from what the controller recorded in ``status.json`` after its last
pass (:mod:`orgctl.state.conditions`), when a controller runs.

The report is a dict::

    {"revision", "applied_at", "supervisor_pid", "supervisor_running",
     "model_server": {"model", "url", "pid"} | None,
     "controller": {"pid", "source", "last_pass", ...} | None,
     "org": {"health", "sync" | None, "sandbox": "on" | "off" | None, ...},
     "animas": [row, ...]}

and a row is ``{"name", "role", "state", "revision", "spec_hash", "pid", "heartbeats",
"last_heartbeat", "restarts", "last_exit_code", "health", "reason", "sync", "conditions",
"suspended"}`` (``suspended``: who paused or suspended it and why, or None).
``state`` is the process state when the supervisor runs it (starting/running/resting/backoff),
else the inventory's view (``not running``, ``paused``, ``disabled``, ``stopped``, ``retired``).
``health`` is ``Healthy``, ``Progressing`` (starting), ``Degraded`` (a crash loop, or no
successful heartbeat for twice its interval), ``Suspended`` (paused or disabled), ``Missing``
(should run, does not).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orgctl.paths import StatePaths
from orgctl.processes import is_orgctl_process
from orgctl.state.conditions import worst_health
from orgctl.state.files import pid_alive, tail_lines

CONTROLLER_MARKER = "controller"  # in the controller's command line (`orgctl controller run DIR`)
CRASH_LOOP_RESTARTS = 2  # restarts since the last planned start before an Anima counts as crash-looping
STALE_GRACE = 60.0  # seconds past twice the interval before a missing heartbeat counts


def _read(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or torn (observed state is advisory here)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def log_tail(paths: StatePaths, name: str, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of the Anima's log, joined with `` | `` ('' when none)."""
    return " | ".join(tail_lines(paths.logs / f"{name}.log", lines))


def assess(proc: Mapping[str, Any], *, interval: float, now: datetime) -> tuple[str, str]:
    """``(health, reason)`` of a supervised Anima's process, from the supervisor's record alone
    (a :class:`orgctl.state.runtimes.ProcessStatus` as a dict).

    Degraded: a crash loop (in backoff after :data:`CRASH_LOOP_RESTARTS` restarts), or running
    with no successful heartbeat for twice ``interval`` seconds (plus :data:`STALE_GRACE`), counted
    from its last one, or from its start. Resting outside its active hours is Healthy.
    """
    state = proc.get("state")
    if state == "backoff" and int(proc.get("restarts") or 0) >= CRASH_LOOP_RESTARTS:
        return "Degraded", (f"crash loop: exited with {proc.get('last_exit_code')} after {proc.get('restarts')} "
                            f"restarts, next in {float(proc.get('backoff_seconds') or 0):.0f}s")
    if state == "starting":
        return "Progressing", "starting"
    if state == "running":
        since = proc.get("last_heartbeat") or proc.get("started_at")
        if since:
            quiet = (now - datetime.fromisoformat(since)).total_seconds()
            if quiet > 2 * interval + STALE_GRACE:
                return "Degraded", (f"no successful heartbeat for {quiet / 60:.0f} min "
                                    f"(due every {interval / 60:.0f} min)")
    return "Healthy", ""


def supervisor_alive(runtime: Mapping[str, Any]) -> bool:
    """True when the runtime record's supervisor pid is alive *and* is still that supervisor: orgctl's
    supervisor module, of this org (``state_root``), started at the recorded time (a crashed
    supervisor's pid may have been reused by a stranger, or by another org's supervisor)."""
    pid = runtime.get("supervisor_pid")
    root = runtime.get("state_root")
    return bool(pid) and pid_alive(pid) and is_orgctl_process(
        int(pid), "orgctl.runtime.supervisor", state_root=Path(root) if root else None,
        started=runtime.get("supervisor_start_ticks"))


def running_model_server(paths: StatePaths) -> dict[str, Any] | None:
    """The embedded model server's record (``run/model-server.json``) if its process lives and is still that
    server (orgctl's serving module, of this org, started when recorded); else None."""
    info = _read(paths.model_server)
    if isinstance(info, dict) and info.get("pid") and pid_alive(info["pid"]) and is_orgctl_process(
            int(info["pid"]), "orgctl.llm.serving", state_root=paths.root, started=info.get("start_ticks")):
        return info
    return None


def running_controller(paths: StatePaths) -> dict[str, Any] | None:
    """The pid file of this org's live controller, or None (no file, or its process is gone or reused: it must
    still be an orgctl ``controller`` started at the recorded time)."""
    info = _read(paths.controller)
    if isinstance(info, dict) and isinstance(info.get("pid"), int) and pid_alive(info["pid"]) \
            and is_orgctl_process(info["pid"], CONTROLLER_MARKER, started=info.get("start_ticks")):
        return info
    return None


def _controller(paths: StatePaths) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The live controller's pid file with its last pass (None when none runs), and its last ``status.json``."""
    recorded = _read(paths.status)
    recorded = recorded if isinstance(recorded, dict) else {}
    if (info := running_controller(paths)) is not None:
        return {**info, "last_pass": recorded.get("last_pass"), "passes": recorded.get("passes")}, recorded
    return None, recorded


def _pauses(paths: StatePaths) -> dict[str, dict[str, Any]]:
    out = {}
    try:
        names = sorted(os.listdir(paths.paused))
    except OSError:
        return {}
    for file in names:
        record = _read(paths.paused / file) if file.endswith(".json") else None
        if isinstance(record, dict) and record.get("name") == file[:-5]:
            out[file[:-5]] = record
    return out


def describe_hold(record: Mapping[str, Any]) -> str:
    """``paused by human at <time> (reason)`` for a suspension record read as JSON (see PauseRecord.describe)."""
    what = "suspended" if record.get("mode") == "suspend" else "paused"
    reason = record.get("reason")
    return f"{what} by {record.get('by')} at {record.get('at')}" + (f" ({reason})" if reason else "")


def _health(entry: Mapping[str, Any], proc: Mapping[str, Any] | None, pause: Mapping[str, Any] | None,
            paths: StatePaths, now: datetime) -> tuple[str, str]:
    status = entry.get("status")
    if status != "active":
        return ("Suspended", "disabled in the spec") if status == "disabled" else ("Missing", "")
    if proc is None:
        return ("Suspended", describe_hold(pause)) if pause else ("Missing", "not running")
    interval = float((entry.get("config") or {}).get("heartbeat_interval") or 1800)
    health, reason = assess(proc, interval=interval, now=now)
    if health == "Degraded" and (tail := log_tail(paths, str(entry.get("name")))):
        reason = f"{reason}; log: {tail}"
    return health, reason


def not_ready(report: Mapping[str, Any], revision: str | None) -> dict[str, str]:
    """Animas of ``report`` (from :func:`observe_status`) that should run and are not Ready, with why.

    Ready: the process is up (running, or resting outside its active hours), runs the spec applied at
    ``revision`` (the spec hash it reports is the applied one), and is Healthy. Paused, suspended,
    disabled, retired and orphaned Animas are not waited for.
    """
    out = {}
    for row in report["animas"]:
        if row["state"] in ("retired", "orphaned", "disabled", "stopped", "paused") or row.get("suspended"):
            continue
        if row["state"] not in ("running", "resting"):
            out[row["name"]] = row["state"] + (f": {row['reason']}" if row["reason"] else "")
        elif revision is not None and row["revision"] != revision:
            out[row["name"]] = f"applied revision {str(row['revision'])[:7]}, not {revision[:7]}"
        elif row["running_spec_hash"] is not None and row["running_spec_hash"] != row["spec_hash"]:
            out[row["name"]] = "its process has not loaded the applied spec yet"
        elif row["health"] != "Healthy":
            out[row["name"]] = f"{row['health']}: {row['reason']}"
    return out


def observe_status(paths: StatePaths, *, now: datetime | None = None) -> dict[str, Any]:
    """Read the inventory, the runtime status, pauses and the controller's record (no process is contacted)."""
    now = now or datetime.now(UTC)
    inventory = _read(paths.inventory) or {}
    runtime = _read(paths.runtime) or {}
    alive = supervisor_alive(runtime)
    pauses = _pauses(paths)
    controller, recorded = _controller(paths)
    recorded_animas = recorded.get("animas") or {} if controller else {}
    procs = runtime.get("animas") or {} if alive else {}
    rows = []
    for name, entry in sorted((inventory.get("animas") or {}).items()):
        proc = procs.get(name)
        if proc is not None and proc.get("state") == "stopped":
            proc = None
        hold = pauses.get(name)
        idle = "paused" if hold and hold.get("mode") != "suspend" else "not running"
        state = (proc.get("state") if proc else idle) if entry.get("status") == "active" else entry.get("status")
        health, reason = _health(entry, proc, hold, paths, now)
        mine = recorded_animas.get(name) or {}
        rows.append({
            "name": name, "role": (entry.get("config") or {}).get("role"), "state": state,
            "revision": entry.get("revision"), "spec_hash": entry.get("spec_hash"),
            "pid": proc.get("pid") if proc else None, "heartbeats": int(proc.get("heartbeats") or 0) if proc else 0,
            "last_heartbeat": proc.get("last_heartbeat") if proc else None,
            "restarts": int(proc.get("restarts") or 0) if proc else 0,
            "last_exit_code": proc.get("last_exit_code") if proc else None,
            "health": health, "reason": reason,
            "sync": mine.get("sync"), "conditions": mine.get("conditions") or [],
            "lastAttemptedRevision": mine.get("lastAttemptedRevision"),
            "suspended": describe_hold(hold) if hold else None,
            "running_spec_hash": proc.get("spec_hash") if proc else None,
        })
    live = [r for r in rows if r["state"] not in ("retired", "orphaned")]
    org_sync = (recorded.get("org") or {}).get("sync") if controller else None
    held = _read(paths.suspended)
    return {
        "revision": inventory.get("revision"), "applied_at": inventory.get("applied_at"),
        "supervisor_pid": runtime.get("supervisor_pid") if alive else None, "supervisor_running": alive,
        "model_server": {k: server.get(k) for k in ("model", "url", "pid")}
        if (server := running_model_server(paths)) else None,
        "controller": controller,
        "org": {"health": worst_health([r["health"] for r in live]), "sync": org_sync,
                "sandbox": inventory.get("sandbox"),
                "suspended": describe_hold(held) if isinstance(held, dict) else None,
                "conditions": (recorded.get("org") or {}).get("conditions") or [] if controller else []},
        "animas": rows,
    }
