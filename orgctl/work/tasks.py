"""Task queues: one append-only log per Anima, folded into current tasks.

Each line is an event, ``{"op": "create", "task": {...}}`` or
``{"op": "update", "id": ..., "set": {...}, "by": ..., "note": ...}`` (the
AnimaWorks seed keeps its queue the same way). The log is the history;
:class:`TaskQueue` folds it incrementally (it remembers its file offset), so
reading a queue after a change costs the new lines, not the whole file.
Many processes may append (a person adding, a manager delegating, the Anima
itself); each append is a single ``O_APPEND`` write.

Ordering: human tasks first, then by priority, then oldest first. A task is
*stale* when it is open and has had no update for :data:`STALE_AFTER`
seconds, *overdue* when it is open past ``due``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from orgctl.errors import OrgctlError
from orgctl.state.files import JsonlTail, append_jsonl
from orgctl.state.inventories import now_iso
from orgctl.work.messages import Trust, new_id

STALE_AFTER = 30 * 60  # seconds without an update
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
Status = Literal["pending", "in_progress", "delegated", "waiting_approval", "blocked", "done", "failed", "cancelled"]
OPEN = frozenset({"pending", "in_progress", "delegated", "waiting_approval", "blocked"})
FINAL = frozenset({"done", "failed", "cancelled"})
LOG_LINES = 50  # the rendered log keeps the last 50 lines; the step records keep every step
OUTPUT_KEPT = 1500  # characters of a command's output kept in its step record (the digest covers all of it)
StepKind = Literal["ran", "refused", "denied", "approval", "asked", "recalled", "skill", "delegated", "rework", "tool"]


class StepRecord(BaseModel):
    """One step of a task, as the framework observed it: what the task cycle decides from.

    ``kind`` says what happened: ``ran`` (``command``, ``exit_code`` or ``timed_out``, the first
    :data:`OUTPUT_KEPT` characters of ``output``, ``output_lines`` and the SHA-256 ``output_digest`` of the
    whole output), ``refused`` (``command`` and the ``refusal``: the rule or the sandbox's reason),
    ``denied`` (``command``, denied by a person), ``approval`` (``command`` waits for approval ``text``),
    ``asked`` (a question ``text`` to ``to``), ``recalled`` (memory found, ``text``), ``skill`` (skill ``to``
    read, its body in ``text``), ``delegated`` (to ``to``, the subtask id in ``text``), ``rework``, ``tool``
    (an MCP tool ``to`` called with the JSON arguments ``command``; its result, untrusted, in ``text``;
    ``exit_code`` 1 when the server said the call failed).
    Before these records a task's steps were log strings parsed back by prefix; a refused command with a
    ":" in it was read back cut short and offered again.
    """

    kind: StepKind
    command: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    output: str = ""
    output_lines: int = 0
    output_digest: str = ""
    refusal: str = ""
    to: str = ""
    text: str = ""

    @classmethod
    def ran(cls, command: str, *, exit_code: int | None, output: str, timed_out: bool = False) -> StepRecord:
        """A command that ran, with its output clipped to :data:`OUTPUT_KEPT` characters and digested whole."""
        text = output.strip()
        return cls(kind="ran", command=command, exit_code=exit_code, timed_out=timed_out,
                   output=text[:OUTPUT_KEPT], output_lines=len(text.splitlines()),
                   output_digest=hashlib.sha256(output.encode("utf-8", "replace")).hexdigest())

    @property
    def succeeded(self) -> bool:
        return self.kind == "ran" and self.exit_code == 0 and not self.timed_out

    def summary(self, *, lines: int = 12) -> str:
        """A ``ran`` step as ``$ cmd`` / ``exit N`` / its first ``lines`` lines, for reports and prompts."""
        status = "timed out" if self.timed_out else f"exit {self.exit_code}"
        body = self.output.splitlines()
        more = "\n…" if self.output_lines > min(lines, len(body)) else ""
        return f"$ {self.command}\n{status}\n" + ("\n".join(body[:lines]) or "(no output)") + more

    def render(self) -> str:
        """The step as one log line (``orgctl tasks show``)."""
        if self.kind == "ran":
            return f"ran {self.summary()}"
        if self.kind == "refused":
            return f"refused $ {self.command}: {self.refusal}"
        if self.kind == "denied":
            return f"denied $ {self.command} (by a person)"
        if self.kind == "approval":
            return f"waiting for approval {self.text} to run $ {self.command}"
        if self.kind == "asked":
            return f"asked {self.to}: {self.text}"
        if self.kind == "recalled":
            return f"recalled: {self.text}"
        if self.kind == "skill":
            return f"skill {self.to}: {self.text}"
        if self.kind == "delegated":
            return f"delegated to {self.to} as {self.text}"
        if self.kind == "tool":
            failed = " (the server said it failed)" if self.exit_code else ""
            return f"called {self.to} {self.command}{failed}; untrusted result: {self.text[:600]}"
        return "rework requested"


class Task(BaseModel):
    """One task in its assignee's queue.

    ``requester`` is who gets the result (``human``, an Anima, or ``cron``);
    ``parent`` is the requester's task this one was delegated from;
    ``subtasks`` the tasks this one was delegated into (each ``{"id", "assignee"}``);
    ``depends_on`` ids in the same queue that must be done first (a DAG);
    ``records`` every step, typed (:class:`StepRecord`): what the task cycle decides from;
    ``log`` what happened, for people: one line per step or note, the last :data:`LOG_LINES`.
    Times are ISO 8601 UTC.
    """

    id: str = Field(default_factory=lambda: new_id("t"))
    title: str = Field(max_length=300)
    detail: str = Field(default="", max_length=4000)
    assignee: str
    requester: str
    source: Literal["human", "anima", "cron", "self"] = "anima"
    priority: Priority = "normal"
    status: Status = "pending"
    due: str | None = None
    parent: str | None = None
    subtasks: list[dict[str, str]] = []
    depends_on: list[str] = []
    result: str = ""
    reason: str = ""
    trust: Trust = "trusted"
    run: str | None = None
    """The workflow run whose phase this task carries (:mod:`orgctl.work.runs`): its exit is a decision."""
    log: list[str] = []
    records: list[StepRecord] = []
    steps: int = 0
    escalations: int = 0
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def sort_key(self) -> tuple[int, int, str]:
        """Human tasks first, then priority, then age."""
        return (0 if self.source == "human" else 1, PRIORITY_RANK[self.priority], self.created_at)

    def stale(self, now: datetime) -> bool:
        return self.is_open and (now - _parse(self.updated_at)).total_seconds() > STALE_AFTER

    def overdue(self, now: datetime) -> bool:
        return self.is_open and self.due is not None and now > _parse(self.due)

    def brief(self) -> str:
        """``t-3f2a1c9b "title" (pending, high, from human)`` for prompts and logs."""
        return f'{self.id} "{self.title}" ({self.status}, {self.priority}, from {self.requester})'


class UnknownTask(OrgctlError, KeyError):
    """No task ``task_id`` in the queue at ``path`` (a KeyError too, for callers that look tasks up)."""

    def __init__(self, task_id: str, path: Path) -> None:
        OrgctlError.__init__(self, f"no task {task_id} in {path.stem}'s queue",
                             hint=f"`orgctl tasks list {path.stem}` shows its tasks")
        self.task_id = task_id

    def __str__(self) -> str:
        return self.message


def _parse(stamp: str) -> datetime:
    dt = datetime.fromisoformat(stamp)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class TaskQueue:
    """The task log of one Anima at ``path``, folded. Not thread-safe: one per thread or a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tail = JsonlTail(self.path)
        self._tasks: dict[str, Task] = {}
        self._open: dict[str, Task] = {}  # the open ones apart: closed tasks pile up, every beat reads these

    def _refresh(self) -> None:
        reset, events = self._tail.read_new()
        if reset:  # replaced (tests, restores): fold again
            self._tasks, self._open = {}, {}
        for event in events:
            try:
                self._apply(event)
            except (ValueError, KeyError, TypeError):
                continue

    def _apply(self, event: dict[str, Any]) -> None:
        if event["op"] == "create":
            task = Task.model_validate(event["task"])
        elif event["op"] == "update" and event["id"] in self._tasks:
            old = self._tasks[event["id"]]
            changes = dict(event.get("set", {}))
            step = StepRecord.model_validate(event["step"]) if event.get("step") else None
            if step is not None:
                changes["records"] = [*old.records, step]
            if line := event.get("note") or (step.render() if step else None):
                changes["log"] = [*old.log, str(line)][-LOG_LINES:]
            changes["updated_at"] = event.get("at", old.updated_at)
            task = old.model_copy(update=changes)
        else:
            return
        self._tasks[task.id] = task
        if task.is_open:
            self._open[task.id] = task
        else:
            self._open.pop(task.id, None)

    # ------------------------------------------------------------ reading

    def get(self, task_id: str) -> Task | None:
        self._refresh()
        return self._tasks.get(task_id)

    def all(self) -> list[Task]:
        self._refresh()
        return sorted(self._tasks.values(), key=Task.sort_key)

    def open(self) -> list[Task]:
        """Open tasks, in :meth:`Task.sort_key` order (closed ones are not sorted: they pile up)."""
        self._refresh()
        return sorted(self._open.values(), key=Task.sort_key)

    def ready(self) -> list[Task]:
        """Open tasks whose dependencies are all done (a task whose dependency failed is not ready)."""
        self._refresh()
        return [t for t in self.open()
                if all((d := self._tasks.get(dep)) is not None and d.status == "done" for dep in t.depends_on)]

    # ------------------------------------------------------------ writing

    def create(self, task: Task) -> Task:
        append_jsonl(self.path, {"op": "create", "at": task.created_at, "task": task.model_dump(mode="json")})
        return task

    def update(self, task_id: str, *, by: str, note: str | None = None, step: StepRecord | None = None,
               **changes: Any) -> Task:
        """Record changes to a task, and ``step`` (a :class:`StepRecord`, rendered as the log line when
        ``note`` is None); returns the new task. Raises :class:`UnknownTask` for an unknown id."""
        if self.get(task_id) is None:
            raise UnknownTask(task_id, self.path)
        event: dict[str, Any] = {"op": "update", "at": now_iso(), "id": task_id, "by": by, "set": changes,
                                 "note": note}
        if step is not None:
            event["step"] = step.model_dump(mode="json", exclude_defaults=True)
        append_jsonl(self.path, event)
        task = self.get(task_id)
        assert task is not None
        return task
