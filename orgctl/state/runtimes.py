"""Runtime status: live facts about processes, written only by the supervisor.

Kept apart from the inventory so each file has exactly one writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from orgctl.errors import StateError
from orgctl.state.files import read_json, write_json
from orgctl.state.observing import supervisor_alive

ProcessState = Literal["starting", "running", "resting", "backoff", "stopped"]


class ProcessStatus(BaseModel):
    """One Anima process as the supervisor sees it.

    ``state``: ``starting`` (spawned, not yet connected), ``running``,
    ``resting`` (outside its active hours), ``backoff`` (crashed, waiting
    ``backoff_seconds`` before restarting), ``stopped``.
    Times are ISO 8601 UTC strings.
    """

    name: str
    state: ProcessState
    pid: int | None = None
    restarts: int = 0
    heartbeats: int = 0
    last_heartbeat: str | None = None
    last_exit_code: int | None = None
    started_at: str | None = None
    start_ticks: int | None = None
    """The process's start time (:func:`orgctl.processes.start_ticks`): with ``pid``, its identity."""
    backoff_seconds: float = 0.0
    spec_hash: str | None = None
    """The spec hash the process says it runs (at hello and every beat): drift shows when it is not the applied one."""


class RuntimeStatus(BaseModel):
    """The supervisor's whole status file."""

    supervisor_pid: int | None = None
    supervisor_start_ticks: int | None = None
    state_root: str | None = None
    """The org's state directory: which org these processes belong to."""
    updated_at: str | None = None
    model_server: dict[str, object] | None = None
    animas: dict[str, ProcessStatus] = {}

    def supervisor_alive(self) -> bool:
        """True when the recorded supervisor is still alive and still that supervisor
        (:func:`orgctl.state.observing.supervisor_alive`)."""
        return supervisor_alive({"supervisor_pid": self.supervisor_pid, "state_root": self.state_root,
                                 "supervisor_start_ticks": self.supervisor_start_ticks})


def load_runtime(path: Path) -> RuntimeStatus:
    """Read the runtime status; an empty status when missing or unreadable (it is advisory)."""
    try:
        return RuntimeStatus.model_validate(read_json(path, default={}))
    except (ValidationError, StateError):  # a torn status is treated as unknown
        return RuntimeStatus()


def save_runtime(path: Path, status: RuntimeStatus) -> None:
    write_json(path, status.model_dump(mode="json"))
