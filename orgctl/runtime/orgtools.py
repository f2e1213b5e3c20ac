"""Org tools: what a manager Anima may see and do to its own team, checked against the org chart.

* ``org_dashboard``: the caller's subtree (itself and every direct or
  indirect report) with each Anima's observed state and task queue counts;
* ``audit_subordinate``: a report's recent events, task transitions and DMs;
* ``pause_anima`` / ``resume_anima`` / ``restart_anima``: a report's
  process, through the supervisor's control socket;
* ``propose_change`` (set a model, hire, add a skill): never live, always a
  commit on a proposal branch (:mod:`orgctl.gitops.proposals`) that people
  review, merge, plan and apply.

Every call is checked, in this order: the caller is an applied Anima; the
data that triggered it is not ``untrusted`` (privileged tools are never
triggered from outside); the caller's ``permissions.md`` grants the tool;
the target is a direct or indirect report of the caller (for proposals, the
caller itself too). A refusal is a :class:`Refusal` value whose ``reason``
says why, never an exception, so the agent cycle can show it to the model.

Every call emits exactly one event: ``OrgToolUsed`` (Normal),
``OrgToolRefused`` (Warning) or ``OrgToolFailed`` (Warning, the supervisor
or git failed). The event's ``anima`` is the caller, its ``object`` the
target (``anima/bob``), its fields ``tool`` and ``target``.

**Pause** stops the report's process (the supervisor's ``stop``) and leaves
a pause record (:mod:`orgctl.state.pauses`); ``status`` and the dashboard show
it ``paused`` while no process runs, and ``apply`` keeps its spec current
without starting it. **Resume** starts it again (``start``) and removes the
record. People do the same with ``orgctl pause`` / ``orgctl resume``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from orgctl.desired.models import AnimaSpec
from orgctl.errors import GitError, OrgctlError
from orgctl.gitops import proposals
from orgctl.paths import StatePaths
from orgctl.runtime import protocol
from orgctl.state import events
from orgctl.state.events import Event
from orgctl.state.inventories import load_inventory, now_iso
from orgctl.state.observing import observe_status
from orgctl.state.pauses import PauseRecord, clear_pause, read_pauses, write_pause
from orgctl.work.tasks import Task, TaskQueue

Control = Callable[[str, str], object]
"""``control(op, name)``: ``op`` is ``start``, ``stop`` or ``restart``. Raises
:class:`~orgctl.errors.RuntimeFailure` (or another :class:`OrgctlError`) when it fails."""

Tool = Literal["org_dashboard", "audit_subordinate", "pause_anima", "resume_anima", "restart_anima",
               "propose_change"]

MAX_AUDIT = 100  # items per section of an audit
TAIL_BYTES = 1024 * 1024  # how much of a JSON-lines log an audit reads from its end
DASHBOARD_CHARS = 1500
AUDIT_CHARS = 2500


def supervisor_control(paths: StatePaths, *, timeout: float = 60.0) -> Control:
    """The real control: one request to the supervisor on ``paths.socket`` per call (``timeout`` in seconds)."""
    def call(op: str, name: str) -> object:
        return protocol.request(paths.socket, op, name=name, timeout=timeout)

    return call


# ---------------------------------------------------------------- the org chart


def subtree(specs: Mapping[str, AnimaSpec], root: str) -> list[tuple[str, int]]:
    """``root`` and every direct or indirect report, depth first, as ``(name, depth)`` (root at 0).

    Built from each spec's ``org.reports`` (derived from every ``supervisor:`` when the spec was loaded), so
    only the subtree's specs are read -- with lazily loaded specs, an engineer's look at its team does not
    load the whole org. A name not in ``specs`` gives ``[]``; a report that is not applied is left out.
    """
    if root not in specs:
        return []

    def children(name: str) -> list[str]:
        return sorted(r for r in specs[name].org.reports if r in specs)

    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    stack = [(root, 0)]
    while stack:
        name, depth = stack.pop()
        if name in seen:  # a forest by validation; never loop on a hand-made chart
            continue
        seen.add(name)
        out.append((name, depth))
        stack.extend((c, depth + 1) for c in reversed(children(name)))
    return out


def is_report(specs: Mapping[str, AnimaSpec], manager: str, target: str) -> bool:
    """True when ``target`` is a direct or indirect report of ``manager`` (never of itself)."""
    return target != manager and any(n == target for n, _ in subtree(specs, manager))


def hierarchy_refusal(specs: Mapping[str, AnimaSpec], caller: str, target: str, *,
                      allow_self: bool = False) -> str | None:
    """None when ``caller`` may act on ``target`` (a report; itself when ``allow_self``), else why not."""
    if target not in specs:
        return f"there is no applied Anima named {target!r}"
    if target == caller:
        return None if allow_self else f"{caller} cannot use this on itself: it acts on reports only"
    if is_report(specs, caller, target):
        return None
    placement = specs[caller].org
    if is_report(specs, target, caller):
        relation = f"{target} is above {caller} in the org chart"
    elif target in placement.peers:
        relation = f"{target} is a peer of {caller}"
    else:
        relation = f"{target} is not in {caller}'s team"
    team = [n for n, _ in subtree(specs, caller)[1:]]
    return (f"{relation}; org tools act only on {caller}'s direct and indirect reports "
            f"({', '.join(team) if team else 'none'})")


# ---------------------------------------------------------------- results


class Refusal(BaseModel):
    """A tool call that was not carried out. ``reason`` is one sentence meant for the caller."""

    ok: Literal[False] = False
    tool: str
    caller: str
    target: str | None = None
    reason: str

    def text(self) -> str:
        return f"{self.tool} refused: {self.reason}"


class DashboardRow(BaseModel):
    """One Anima of the subtree. ``depth`` is 0 for the caller, 1 for direct reports ...

    ``state``: the supervisor's process state (``running``, ``resting``,
    ``starting``, ``backoff``), ``paused``, or the inventory's view
    (``not running``, ``disabled``, ``stopped``, ``retired``, ``not applied``).
    Task counts are of open tasks; ``unread`` counts unread messages.
    """

    name: str
    role: str
    supervisor: str | None
    depth: int
    state: str
    paused_by: str | None = None
    last_heartbeat: str | None = None
    heartbeats: int = 0
    restarts: int = 0
    open: int = 0
    stale: int = 0
    overdue: int = 0
    blocked: int = 0
    unread: int = 0


class Dashboard(BaseModel):
    """The caller's subtree, the caller first; ``at`` is when it was read (ISO 8601 UTC)."""

    ok: Literal[True] = True
    tool: str = "org_dashboard"
    caller: str
    at: str
    rows: list[DashboardRow]

    def text(self, max_chars: int = DASHBOARD_CHARS) -> str:
        """A compact, indented outline for a prompt: at most ``max_chars`` characters."""
        lines = [f"{self.caller}'s team ({len(self.rows)} Animas; tasks open/stale/overdue):"]
        for r in self.rows:
            state = f"paused by {r.paused_by}" if r.state == "paused" and r.paused_by else r.state
            extra = "".join(f", {n} {label}" for n, label in ((r.blocked, "blocked"), (r.unread, "unread")) if n)
            lines.append(f"{'  ' * r.depth}- {r.name} ({r.role}) {state}: "
                         f"tasks {r.open}/{r.stale}/{r.overdue}{extra}")
        return _bounded(lines, max_chars)


class TaskTransition(BaseModel):
    """One line of a task log: ``op`` create or update; ``status`` the status it set (if any)."""

    at: str
    task: str
    op: str
    status: str | None = None
    by: str | None = None
    note: str = ""


class OutboxEntry(BaseModel):
    """One accepted DM to or from the audited Anima (text cut to 200 characters by the outbox)."""

    at: str
    id: str
    sender: str
    recipient: str
    intent: str
    text: str


class Audit(BaseModel):
    """A report's recent activity, oldest first in each list, at most ``limit`` items each."""

    ok: Literal[True] = True
    tool: str = "audit_subordinate"
    caller: str
    target: str
    state: str
    events: list[Event]
    transitions: list[TaskTransition]
    messages: list[OutboxEntry]

    def text(self, max_chars: int = AUDIT_CHARS) -> str:
        """A compact report for a prompt: at most ``max_chars`` characters."""
        lines = [f"Audit of {self.target} ({self.state}):", f"Events ({len(self.events)}):"]
        lines += [f"- {e.at[11:19]} {e.reason}: {e.message[:160]}" for e in self.events]
        lines.append(f"Task transitions ({len(self.transitions)}):")
        lines += [f"- {t.at[11:19]} {t.task} {t.op}{' -> ' + t.status if t.status else ''}"
                  f"{' by ' + t.by if t.by else ''}{': ' + t.note[:120] if t.note else ''}" for t in self.transitions]
        lines.append(f"Messages ({len(self.messages)}):")
        lines += [f"- {m.at[11:19]} {m.sender} -> {m.recipient} ({m.intent}): {m.text[:120]}" for m in self.messages]
        return _bounded(lines, max_chars)


class ControlResult(BaseModel):
    """The outcome of pause/resume/restart. ``ok`` False means the supervisor failed (``message`` says how)."""

    ok: bool
    tool: str
    caller: str
    target: str
    message: str

    def text(self) -> str:
        return self.message


class ProposalResult(BaseModel):
    """A proposal that was made (``ok``), or why git failed (``message``)."""

    ok: bool
    tool: str = "propose_change"
    caller: str
    target: str | None = None
    message: str
    proposal: proposals.Proposal | None = None

    def text(self) -> str:
        return self.message


def _bounded(lines: list[str], max_chars: int) -> str:
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > max_chars:
            out.append(f"… {len(lines) - i} more lines")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _tail_records(paths: list[Path], *, max_bytes: int = TAIL_BYTES) -> Iterator[dict[str, Any]]:
    """JSON objects of the last ``max_bytes`` of each JSON-lines file, in file order (a torn line is skipped)."""
    import json

    for path in paths:
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - max_bytes))
                chunk = f.read()
        except FileNotFoundError:
            continue
        lines = chunk.split(b"\n")
        if size > max_bytes:
            lines = lines[1:]  # the first line was cut
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


# ---------------------------------------------------------------- the tools


class OrgTools:
    """The org tools of one org, for every Anima in it.

    ``specs``: the applied specs by name (what runs: the snapshots).
    ``control``: the supervisor control (default: its socket under ``paths``).
    ``org_dir``: the org repo proposals are committed to (None: no proposals).
    Thread-safe.
    """

    def __init__(self, *, paths: StatePaths, specs: Mapping[str, AnimaSpec], control: Control | None = None,
                 org_dir: Path | None = None) -> None:
        self.paths = paths
        self.specs = specs
        self.control = control or supervisor_control(paths)
        self.org_dir = org_dir
        self._queues: dict[str, TaskQueue] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def _event(self, reason: str, *, tool: str, caller: str, target: str | None, message: str,
               warning: bool = False) -> None:
        events.emit(self.paths.work.events, reason=reason, object=f"anima/{target or caller}", message=message,
                    anima=caller, type="Warning" if warning else "Normal", tool=tool, target=target)

    def _refuse(self, tool: str, caller: str, target: str | None, reason: str) -> Refusal:
        self._event("OrgToolRefused", tool=tool, caller=caller, target=target, warning=True,
                    message=f"{caller}'s {tool}{' on ' + target if target else ''} refused: {reason}")
        return Refusal(tool=tool, caller=caller, target=target, reason=reason)

    def _check(self, tool: Tool, caller: str, target: str | None, trust: str, *,
               allow_self: bool = False) -> Refusal | None:
        """The checks every tool shares, in order; a Refusal (with its event) or None."""
        if caller not in self.specs:
            return self._refuse(tool, caller, target, f"there is no applied Anima named {caller!r}")
        if trust == "untrusted":
            return self._refuse(tool, caller, target,
                                "untrusted data from outside never triggers a privileged tool")
        if tool not in self.specs[caller].permissions.tools:
            return self._refuse(tool, caller, target, f"{caller}'s permissions.md does not grant {tool}")
        if target is not None and (why := hierarchy_refusal(self.specs, caller, target, allow_self=allow_self)):
            return self._refuse(tool, caller, target, why)
        return None

    def _open_tasks(self, name: str) -> list[Task]:
        """Open tasks of ``name``; the folded queues are cached (incremental reads) and read under the lock."""
        with self._lock:
            if name not in self._queues:
                self._queues[name] = TaskQueue(self.paths.work.tasks(name))
            return self._queues[name].open()

    def paused(self) -> dict[str, PauseRecord]:
        """Pause records by name (a record whose Anima runs again is stale and still listed here)."""
        return read_pauses(self.paths)

    def _statuses(self) -> dict[str, dict[str, Any]]:
        """``orgctl status`` rows by name (:func:`orgctl.state.observing.observe_status`)."""
        return {a["name"]: a for a in observe_status(self.paths)["animas"]}

    @staticmethod
    def _state(status: dict[str, Any] | None) -> str:
        return "not applied" if status is None else str(status["state"])

    # ------------------------------------------------------------ reading

    def org_dashboard(self, caller: str, *, trust: str = "trusted", record: bool = True,
                      now: datetime | None = None) -> Dashboard | Refusal:
        """The caller's subtree with states and queue counts (see :class:`Dashboard`); or a Refusal.

        Reads the inventory, ``runtime.json``, pause records, task logs and
        inbox folders; contacts no process. ``record=False`` is the heartbeat's
        own look at its team each beat, which is not worth an event per beat.
        ``now`` (default: the clock) decides which tasks are stale or overdue.
        """
        tool: Tool = "org_dashboard"
        if refusal := self._check(tool, caller, None, trust):
            return refusal
        now = now or datetime.now(UTC)
        statuses, paused = self._statuses(), self.paused()
        rows = []
        for name, depth in subtree(self.specs, caller):
            spec, status, pause = self.specs[name], statuses.get(name), paused.get(name)
            state = self._state(status)
            tasks = self._open_tasks(name)
            try:
                unread = len(os.listdir(self.paths.work.inbox(name) / "new"))
            except FileNotFoundError:
                unread = 0
            rows.append(DashboardRow(
                name=name, role=spec.role, supervisor=spec.org.supervisor, depth=depth, state=state,
                paused_by=pause.by if state == "paused" and pause else None,
                last_heartbeat=status["last_heartbeat"] if status else None,
                heartbeats=status["heartbeats"] if status else 0, restarts=status["restarts"] if status else 0,
                open=len(tasks), stale=sum(t.stale(now) for t in tasks), overdue=sum(t.overdue(now) for t in tasks),
                blocked=sum(t.status == "blocked" for t in tasks), unread=unread))
        if record:
            self._event("OrgToolUsed", tool=tool, caller=caller, target=None,
                        message=f"{caller} read the dashboard of its team ({len(rows)} Animas)")
        return Dashboard(caller=caller, at=now.isoformat(timespec="seconds"), rows=rows)

    def audit_subordinate(self, caller: str, target: str, *, limit: int = 20,
                          trust: str = "trusted") -> Audit | Refusal:
        """``target``'s recent activity, at most ``limit`` (1..100) items per list; or a Refusal.

        Events are those by the target or about it (``anima/<target>``);
        transitions come from its task log; messages are DMs it sent or
        received. Each source is read from its last 1 MiB only.
        """
        tool: Tool = "audit_subordinate"
        if refusal := self._check(tool, caller, target, trust):
            return refusal
        limit = max(1, min(int(limit), MAX_AUDIT))
        log = self.paths.work.events
        found: list[Event] = []
        for record in _tail_records([log.with_name(log.stem + ".1.jsonl"), log]):
            if record.get("anima") == target or record.get("object") == f"anima/{target}":
                try:
                    found.append(Event.model_validate(record))
                except ValidationError:
                    continue
        transitions = [t for r in _tail_records([self.paths.work.tasks(target)]) if (t := _transition(r))]
        messages = []
        for r in _tail_records([self.paths.work.outbox]):
            if target in (r.get("sender"), r.get("recipient")):
                try:
                    messages.append(OutboxEntry.model_validate(r))
                except ValidationError:
                    continue
        state = self._state(self._statuses().get(target))
        audit = Audit(caller=caller, target=target, state=state, events=found[-limit:],
                      transitions=transitions[-limit:], messages=messages[-limit:])
        self._event("OrgToolUsed", tool=tool, caller=caller, target=target,
                    message=f"{caller} audited {target}: {len(audit.events)} events, "
                            f"{len(audit.transitions)} task transitions, {len(audit.messages)} messages")
        return audit

    # ------------------------------------------------------------ control

    def _controllable(self, tool: Tool, caller: str, target: str) -> Refusal | None:
        """The target must be applied and meant to run (inventory ``active``)."""
        try:
            entry = load_inventory(self.paths.inventory).animas.get(target)
        except OrgctlError as e:  # a corrupt inventory: nothing is safe to control
            return self._refuse(tool, caller, target, e.message)
        if entry is None:
            return self._refuse(tool, caller, target, f"{target} has not been applied")
        if entry.status != "active":
            return self._refuse(tool, caller, target,
                                f"{target} is {entry.status} by the spec or a person; only they can change that")
        return None

    def _run(self, tool: Tool, op: str, caller: str, target: str, done: str) -> ControlResult:
        try:
            self.control(op, target)
        except OrgctlError as e:
            message = f"{tool} on {target} failed: {e.message}"
            self._event("OrgToolFailed", tool=tool, caller=caller, target=target, message=message, warning=True)
            return ControlResult(ok=False, tool=tool, caller=caller, target=target, message=message)
        self._event("OrgToolUsed", tool=tool, caller=caller, target=target, message=done)
        return ControlResult(ok=True, tool=tool, caller=caller, target=target, message=done)

    def pause(self, caller: str, target: str, *, reason: str = "", trust: str = "trusted") -> ControlResult | Refusal:
        """Stop ``target``'s process and record the pause; or a Refusal.

        Refused for a target that is not a report, not ``active`` in the
        inventory, or already paused. ``reason`` is kept (one line, 200
        characters) in the pause record and the event.
        """
        tool: Tool = "pause_anima"
        if refusal := self._check(tool, caller, target, trust) or self._controllable(tool, caller, target):
            return refusal
        current = self.paused().get(target)
        if current is not None and self._state(self._statuses().get(target)) == "paused":
            return self._refuse(tool, caller, target, f"{target} is already paused (by {current.by} at {current.at})")
        why = " ".join(reason.split())[:200]
        result = self._run(tool, "stop", caller, target,
                           f"{caller} paused {target}" + (f": {why}" if why else "") + " (until resumed)")
        if result.ok:
            write_pause(self.paths, PauseRecord(name=target, by=caller, at=now_iso(), reason=why))
        return result

    def resume(self, caller: str, target: str, *, trust: str = "trusted") -> ControlResult | Refusal:
        """Start a paused ``target`` again and drop its pause record; or a Refusal (not paused, not a report)."""
        tool: Tool = "resume_anima"
        if refusal := self._check(tool, caller, target, trust) or self._controllable(tool, caller, target):
            return refusal
        current = self.paused().get(target)
        if current is None:
            return self._refuse(tool, caller, target, f"{target} is not paused")
        result = self._run(tool, "start", caller, target, f"{caller} resumed {target} (paused by {current.by})")
        if result.ok:
            clear_pause(self.paths, target)
        return result

    def restart(self, caller: str, target: str, *, trust: str = "trusted") -> ControlResult | Refusal:
        """Restart ``target``'s process (fresh restart count); or a Refusal (paused: resume it instead)."""
        tool: Tool = "restart_anima"
        if refusal := self._check(tool, caller, target, trust) or self._controllable(tool, caller, target):
            return refusal
        current = self.paused().get(target)
        if current is not None and self._state(self._statuses().get(target)) == "paused":
            return self._refuse(tool, caller, target, f"{target} is paused by {current.by}: resume it instead")
        return self._run(tool, "restart", caller, target, f"{caller} restarted {target}")

    # ------------------------------------------------------------ proposals

    def _propose(self, caller: str, target: str | None, trust: str,
                 make: Callable[[Path, str], proposals.Proposal], *, subject: str | None = None
                 ) -> ProposalResult | Refusal:
        """Make the proposal (``make(repo, base)``) in the runtime's clone, against the tracked branch as the
        org's remote has it now, and publish it (:func:`publishing.publish_branch`): pushed to the org's remote
        (the person's checkout for a local org), opened as a pull request with ``GITHUB_TOKEN``. Without a
        clone (nothing applied yet), in the org repo itself, as a branch only."""
        from orgctl.gitops.clones import RuntimeClone

        tool: Tool = "propose_change"
        if refusal := self._check(tool, caller, subject, trust, allow_self=True):
            return refusal
        clone = RuntimeClone.open(self.paths.clone)
        if clone is None and self.org_dir is None:
            return self._refuse(tool, caller, target, "this runtime knows no org repo to propose to")
        try:
            made = make(clone.root, clone.fetch_tip()) if clone is not None else make(self.org_dir, "HEAD")  # type: ignore[arg-type]
        except proposals.ProposalRefused as e:
            return self._refuse(tool, caller, target, e.message.removeprefix("proposal refused: "))
        except GitError as e:
            message = f"propose_change failed: {e.message}"
            self._event("OrgToolFailed", tool=tool, caller=caller, target=target, message=message, warning=True)
            return ProposalResult(ok=False, caller=caller, target=target, message=message)
        where = self._publish(clone, made) if clone is not None else "it is a branch of the org repo"
        message = (f"{caller} proposed {made.title!r} on branch {made.branch}; {where}; "
                   "it changes nothing until a person merges it and runs plan and apply")
        self._event("OrgToolUsed", tool=tool, caller=caller, target=target, message=message)
        return ProposalResult(ok=True, caller=caller, target=target, message=message, proposal=made)

    def _publish(self, clone: Any, made: proposals.Proposal) -> str:
        """Push ``made``'s branch from the clone to the org's remote and open its pull request when a token is
        set; one clause saying where it went (a refused push or pull request is said, not raised: the
        proposal itself is made)."""
        from orgctl.gitops.github import GitHub
        from orgctl.gitops.publishing import publish_branch

        try:
            published = publish_branch(clone.root, made.branch, remote=clone.source, base=clone.branch,
                                       title=made.title, body=_proposal_body(made), github=GitHub.from_env())
        except OrgctlError as e:
            self._event("ProposalNotPublished", tool="propose_change", caller=made.anima, target=None,
                        message=f"{made.branch}: {e.message}", warning=True)
            return f"it stays in the runtime's clone ({e.message})"
        return published.describe().rstrip(".")

    def propose_set_model(self, caller: str, target: str, model: str, *, background: bool = False,
                          trust: str = "trusted") -> ProposalResult | Refusal:
        """Propose ``target``'s (the caller or a report) model on a branch; see :func:`proposals.propose_set_model`."""
        return self._propose(caller, target, trust, subject=target, make=lambda repo, base: proposals.propose_set_model(
            repo, caller, target, model, background=background, base=base))

    def propose_hire(self, caller: str, name: str, role: str, supervisor: str, *, trust: str = "trusted",
                     **options: Any) -> ProposalResult | Refusal:
        """Propose hiring ``name`` under ``supervisor`` (the caller or a report); ``options`` as
        :func:`proposals.propose_hire` (model, identity, injection, tools)."""
        return self._propose(caller, name, trust, subject=supervisor, make=lambda repo, base: proposals.propose_hire(
            repo, caller, name, role, supervisor, base=base, **options))

    def propose_skill(self, caller: str, target: str, skill_name: str, description: str, body: str, *,
                      trust: str = "trusted") -> ProposalResult | Refusal:
        """Propose a declared skill for ``target`` (the caller or a report); see :func:`proposals.propose_skill`."""
        return self._propose(caller, target, trust, subject=target, make=lambda repo, base: proposals.propose_skill(
            repo, caller, target, skill_name, description, body, base=base))


def _proposal_body(made: proposals.Proposal) -> str:
    """A proposal's pull request description: who proposed what, and that it is reviewed like any change."""
    return (f"{made.anima} (an Anima) proposes: {made.title}.\n\nProposed with orgctl's `propose_change` tool "
            f"against {made.base[:12]}. It changes nothing until it is merged; the plan comment shows what merging "
            "it would do.")


def _transition(record: dict[str, Any]) -> TaskTransition | None:
    """A task log line as a transition; None when it is not one."""
    try:
        if record.get("op") == "create":
            task = record["task"]
            return TaskTransition(at=str(record.get("at") or task.get("created_at", "")), task=str(task["id"]),
                                  op="create", status=task.get("status", "pending"), by=task.get("requester"),
                                  note=str(task.get("title", ""))[:200])
        if record.get("op") == "update":
            changes = dict(record.get("set") or {})
            note = str(record.get("note") or ", ".join(f"{k}={v}" for k, v in changes.items() if k != "log"))
            return TaskTransition(at=str(record.get("at", "")), task=str(record["id"]), op="update",
                                  status=changes.get("status"), by=record.get("by"), note=note[:200])
    except (KeyError, TypeError, ValidationError, AttributeError):
        return None
    return None
