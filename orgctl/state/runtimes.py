"""Runtime status: live facts about processes, written only by the supervisor.

Kept apart from the inventory so each file has exactly one writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from orgctl.errors import StateError
from orgctl.processes import is_orgctl_process
from orgctl.state.files import pid_alive, read_json, write_json

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
    backoff_seconds: float = 0.0


class RuntimeStatus(BaseModel):
    """The supervisor's whole status file."""

    supervisor_pid: int | None = None
    updated_at: str | None = None
    model_server: dict[str, object] | None = None
    animas: dict[str, ProcessStatus] = {}

    def supervisor_alive(self) -> bool:
        """True when the recorded supervisor pid is alive *and* still runs orgctl's supervisor
        (a crashed supervisor's pid may have been reused by a stranger)."""
        pid = self.supervisor_pid
        return bool(pid) and pid_alive(pid) and is_orgctl_process(pid or 0, "orgctl.runtime.supervisor")


def load_runtime(path: Path) -> RuntimeStatus:
    """Read the runtime status; an empty status when missing or unreadable (it is advisory)."""
    try:
        return RuntimeStatus.model_validate(read_json(path, default={}))
    except (ValidationError, StateError):  # a torn status is treated as unknown
        return RuntimeStatus()


def save_runtime(path: Path, status: RuntimeStatus) -> None:
    write_json(path, status.model_dump(mode="json"))
