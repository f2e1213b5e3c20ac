"""Workflow runs: work in flight (DESIGN §2), one append-only log per run, folded into its current state.

``work/runs/<run id>.jsonl`` holds one JSON line per event, each a single ``O_APPEND`` write, so a process
killed at any point leaves a log that folds to a consistent run (the last line may be lost, never half
kept: a torn line is skipped). The events:

* ``start`` -- the run, with the workflow it is pinned to (the whole validated file and the revision it was
  applied at: a later apply changes the runs started after it, never this one), its subject and its task;
* ``phase`` -- a phase began: its attempt number and the task that carries it in the bound Anima's queue;
* ``decided`` -- a phase ended with a :class:`Decision` (verdict, reason, confidence, risk, phase-local
  fields, the evidence the framework observed, and the target it routed to);
* ``end`` -- the run succeeded, failed (with the reason) or was cancelled;
* ``recorded`` -- its record was committed to the memory of the Animas that ran it (the commit's sha).

A finished phase is a ``decided`` line: a restarted runtime folds the log and goes on from there, so no
finished phase is ever run again. In tick mode the logs travel on the ``orgctl/state`` branch like task
queues (JSON lines merge as a set).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from orgctl.desired.workflows import FAIL, FINISH, WorkflowSpec, is_standalone_name
from orgctl.errors import WorkError
from orgctl.state.files import JsonlTail, append_jsonl
from orgctl.state.inventories import now_iso
from orgctl.work.messages import new_id
from orgctl.work.tasks import StepRecord

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE = frozenset({"queued", "running"})
Level = Literal["low", "medium", "high"]
DecidedBy = Literal["model", "guard", "framework"]


class Decision(BaseModel):
    """How one phase attempt ended: the shared core, the phase-local ``fields``, and the ``evidence``.

    ``evidence`` is what the framework observed while the phase ran (each command with its exit code and
    output, refusals, tool results), never the model's words. ``by``: ``model`` (its verdict), ``guard``
    (``skip_if`` held), ``framework`` (a closed exit: a limit exhausted, a guard that errored, a cancel).
    ``target``: where the run went next (a phase id, ``finish`` or ``fail``). ``reason`` is the framework's
    statement of the outcome followed by ``said``, the model's sentence, when it agrees with the evidence.
    """

    phase: str
    attempt: int = Field(ge=1)
    agent: str
    anima: str | None = Field(default=None, description="who ran the phase: the bound Anima, or "
                              "`<agent>@<workflow>` for a standalone agent; none for a guard's skip")
    verdict: Literal["advance", "rework", "skip", "fail"]
    reason: str = Field(default="", max_length=600)
    said: str = Field(default="", max_length=400, description="the model's own sentence within the reason, "
                      "kept because it agrees with the run's evidence; empty when it was left out or not asked")
    confidence: Level = "medium"
    risk: Level = "medium"
    fields: dict[str, Any] = {}
    evidence: list[StepRecord] = []
    target: str = ""
    by: DecidedBy = "model"
    at: str = Field(default_factory=now_iso)

    @property
    def who(self) -> str:
        """Who decided, for people: ``alice as triager``, ``checker@task`` (a standalone agent), or the agent
        alone (a guard's skip)."""
        if not self.anima:
            return self.agent
        return self.anima if is_standalone_name(self.anima) else f"{self.anima} as {self.agent}"

    def core(self) -> dict[str, Any]:
        """What a guard sees of this decision: the core fields and the phase-local ones."""
        return {"verdict": self.verdict, "reason": self.reason, "confidence": self.confidence, "risk": self.risk,
                **self.fields}


class RunTask(BaseModel):
    """The task a run works on (empty id when started by ``workflow run``)."""

    id: str = ""
    title: str
    detail: str = ""
    requester: str = "human"
    assignee: str = ""


class Run(BaseModel):
    """One run, folded from its log."""

    id: str
    workflow: WorkflowSpec
    revision: str | None = None
    subject: str
    task: RunTask
    started_by: str = "human"
    status: RunStatus = "queued"
    phase: str | None = None
    attempt: int = 0
    phase_task: str | None = Field(default=None, description="the task carrying the phase in progress")
    phase_anima: str | None = Field(default=None, description="whose queue holds the phase task: the bound Anima, "
                                    "or `<agent>@<workflow>` for a standalone agent")
    attempts: dict[str, int] = Field(default={}, description="reworks sent back, by the phase that sent them")
    decisions: list[Decision] = []
    reason: str = ""
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    finished_at: str | None = None
    recorded: bool = False
    """Its record is committed to the bound Animas' memory (:mod:`orgctl.memory.runs`)."""
    memory_commit: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def latest(self) -> dict[str, Decision]:
        """The latest decision of each phase, by phase id."""
        return {d.phase: d for d in self.decisions}

    def guard_variables(self, *, decision: Decision | None = None) -> dict[str, Any]:
        """The variables a guard is evaluated with (:data:`orgctl.desired.workflows.GUARD_VARIABLES`)."""
        out = {"task": self.task.model_dump(include={"id", "title", "detail", "requester"}),
               "subject": self.subject,
               "decisions": {p: d.core() for p, d in self.latest().items()},
               "run": {"id": self.id, "workflow": self.workflow.name, "revision": self.revision or "",
                       "phase": self.phase or "", "attempts": dict(self.attempts)}}
        if decision is not None:
            out["decision"] = decision.core()
        return out


class UnknownRun(WorkError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no workflow run {run_id!r}", hint="`orgctl workflow list` shows the runs")


class RunStore:
    """The run logs under ``root`` (``work/runs``). Safe for many processes: appends are atomic lines and
    :meth:`locked` serialises the transitions of one run."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tails: dict[str, tuple[JsonlTail, Run | None]] = {}

    def path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith(".") or not run_id.isascii():
            raise UnknownRun(run_id)
        return self.root / f"{run_id}.jsonl"

    def start(self, workflow: WorkflowSpec, *, revision: str | None, subject: str, task: RunTask,
              started_by: str = "human") -> Run:
        """Record a new run (status ``queued``: the engine starts its first phase). Returns it."""
        run = Run(id=new_id("r"), workflow=workflow, revision=revision, subject=subject[:2000], task=task,
                  started_by=started_by)
        self.root.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.path(run.id), {"op": "start", "at": run.created_at, "run": run.model_dump(mode="json")})
        return run

    def append(self, run_id: str, op: str, **fields: Any) -> Run:
        """Append one event and return the run folded with it. Raises :class:`UnknownRun`."""
        if self.get(run_id) is None:
            raise UnknownRun(run_id)
        append_jsonl(self.path(run_id), {"op": op, "at": now_iso(), **fields})
        run = self.get(run_id)
        assert run is not None
        return run

    def get(self, run_id: str) -> Run | None:
        """The run folded from its log (incrementally: only new lines are read), or None."""
        path = self.path(run_id)
        tail, run = self._tails.get(run_id) or (JsonlTail(path), None)
        reset, events = tail.read_new()
        if reset:
            run = None
        for event in events:
            try:
                run = _apply(run, event)
            except (ValidationError, KeyError, TypeError, ValueError):
                continue  # a torn or forged line changes nothing
        self._tails[run_id] = (tail, run)
        return run

    def require(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run is None:
            raise UnknownRun(run_id)
        return run

    def all(self) -> list[Run]:
        """Every run, oldest first."""
        if not self.root.is_dir():
            return []
        runs = [r for p in self.root.glob("r-*.jsonl") if (r := self.get(p.stem)) is not None]
        return sorted(runs, key=lambda r: (r.created_at, r.id))

    @contextlib.contextmanager
    def locked(self, run_id: str) -> Iterator[Run]:
        """Hold the run's transition lock (``flock``; freed by the kernel if the holder dies) and yield the run
        as it is now. Raises :class:`UnknownRun`."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f".{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self.require(run_id)
        finally:
            os.close(fd)


def _apply(run: Run | None, event: dict[str, Any]) -> Run | None:
    op = event["op"]
    if op == "start":
        return Run.model_validate(event["run"]) if run is None else run
    if run is not None and op == "recorded":
        return run.model_copy(update={"recorded": True, "memory_commit": event.get("commit")})
    if run is None or not run.active:
        return run
    at = event.get("at", run.updated_at)
    if op == "phase":
        return run.model_copy(update={"status": "running", "phase": event["phase"], "attempt": event["attempt"],
                                      "phase_task": event.get("task"), "phase_anima": event.get("anima"),
                                      "updated_at": at})
    if op == "decided":
        decision = Decision.model_validate(event["decision"])
        attempts = dict(run.attempts)
        phase = run.workflow.phase(decision.phase)
        if decision.target not in (FINISH, FAIL) and run.workflow.loops_back(phase, decision.target):
            attempts[decision.phase] = attempts.get(decision.phase, 0) + 1
        return run.model_copy(update={"decisions": [*run.decisions, decision], "attempts": attempts,
                                      "phase_task": None, "updated_at": at})
    if op == "end":
        return run.model_copy(update={"status": event["status"], "reason": str(event.get("reason", ""))[:600],
                                      "finished_at": at, "updated_at": at, "phase_task": None})
    return run
