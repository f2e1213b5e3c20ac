"""The runtime's handle on one organization's work: who is in it, and how work moves between them.

Used by the CLI (people hand work in: tasks, chat, sends, Board posts,
approvals), by the inbound webhook, and by each Anima process (its actions).
Every step is a durable write first and a wake-up second: a message or task
is accepted when its file write returns; waking the recipient (the
host's wake function: a supervisor signals its process) is best effort, since the recipient's next
heartbeat reads the same files anyway.

The org chart comes from the applied spec snapshots (what runs), not from
the work tree.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orgctl.desired.models import AnimaSpec
from orgctl.errors import OrgctlError, WorkError
from orgctl.paths import StatePaths
from orgctl.runtime.messaging import MessageRules, OutboxView
from orgctl.runtime.orgtools import OrgTools
from orgctl.runtime.services import LocalNotifier, Notifier, Services, Wake, no_wake
from orgctl.state import events
from orgctl.state.files import read_json
from orgctl.state.snapshots import read_snapshot
from orgctl.work.approvals import Approvals
from orgctl.work.board import Board, mentions
from orgctl.work.messages import HUMAN, Inbox, Intent, Message, Trust, lowest_trust, record_sent
from orgctl.work.runs import RunStore
from orgctl.work.tasks import FINAL, Priority, StepRecord, Task, TaskQueue, UnknownTask

DELEGATION_DEADLINE = 30 * 60  # seconds a delegated task may go without an update before it is overdue


@dataclass(frozen=True)
class SendResult:
    """``message`` when accepted; otherwise ``reason`` says why it was refused."""

    message: Message | None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.message is not None


def _plain(name: str) -> bool:
    """A name that can only mean a file directly in the snapshot folder (no separator, no leading dot)."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and "\0" not in name


class SnapshotSpecs(Mapping[str, AnimaSpec]):
    """The applied specs of an org, by name: each spec is parsed from its snapshot only when it is first asked
    for, then kept (until :meth:`Organization.reload`); which names exist is read from the folder each time.

    An Anima process holds one of these; before, each parsed every snapshot of the org at start, so an idle
    Anima's memory grew with the org (10 MB each at 200 Animas, measured by bench/idle_memory.py) -- and it
    never saw an Anima whose snapshot was written after it started (apply writes them one by one, and a
    forked Anima starts within milliseconds). A snapshot that cannot be read is left out.
    """

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._loaded: dict[str, AnimaSpec | None] = {}

    def _names(self) -> list[str]:
        try:
            return sorted(f[:-5] for f in os.listdir(self._paths.specs) if f.endswith(".json"))
        except OSError:
            return []

    def _load(self, name: str) -> AnimaSpec | None:
        if self._loaded.get(name) is None:
            spec = None
            with contextlib.suppress(OSError, ValueError):
                spec = read_snapshot(self._paths.spec_snapshot(name)).spec
            if spec is None:
                return None  # not (yet) applied, or unreadable: asked again next time
            self._loaded[name] = spec
        return self._loaded[name]

    def __getitem__(self, name: str) -> AnimaSpec:
        spec = self._load(name) if isinstance(name, str) and _plain(name) else None
        if spec is None:
            raise KeyError(name)
        return spec

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _plain(name) and self._load(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._names() if self._load(n) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Organization:
    """Work in flight of one org. Thread-safe for the calls an Anima process makes from several threads."""

    def __init__(self, *, paths: StatePaths, specs: Mapping[str, AnimaSpec] | None = None,
                 wake: Wake | None = None, notifier: Notifier | None = None) -> None:
        """``wake`` wakes an Anima when work arrives for it (the host's: a supervisor signals its process; none
        here wakes nobody, and the work waits for the next heartbeat); ``notifier`` calls a human (default:
        from this process, with its environment's tokens)."""
        self.paths = paths
        self.work = paths.work
        self._specs = specs
        self._wake = wake or no_wake
        self._notifier = notifier
        self._queues: dict[str, TaskQueue] = {}
        self._runs: RunStore | None = None
        self._tools: OrgTools | None = None
        self._lock = threading.RLock()
        self.rules = MessageRules(outbox=OutboxView(self.work.outbox))
        self.board = Board(self.work.board)
        self.approvals = Approvals(self.work.approvals)

    @classmethod
    def with_services(cls, paths: StatePaths, services: Services | None = None) -> Organization:
        """The facade with ``services``' wake and notifier (default :meth:`Services.for_org`: the running
        supervisor's, else this process's): what the CLI and a test of a running org use."""
        services = services or Services.for_org(paths)
        return cls(paths=paths, wake=services.wake, notifier=services.notifier)

    # ------------------------------------------------------------ who is here

    @property
    def specs(self) -> Mapping[str, AnimaSpec]:
        """Applied specs by name, read from the snapshots when first asked for (:class:`SnapshotSpecs`;
        :meth:`reload` starts over)."""
        if self._specs is None:
            self._specs = SnapshotSpecs(self.paths)
        return self._specs

    def reload(self) -> None:
        self._specs = None
        self._tools = None

    def tools(self) -> OrgTools:
        """The org tools over this org's state, built once, so their folded task queues persist between
        heartbeats (a fresh one per beat re-read every task log: quadratic, measured by bench/task_overhead.py)."""
        with self._lock:
            if self._tools is None:
                self._tools = OrgTools(paths=self.paths, specs=self.specs, org_dir=self._org_dir())
            return self._tools

    def _org_dir(self) -> Path | None:
        """The org repo the supervisor serves (its record names it), where proposals are committed."""
        try:
            recorded = (read_json(self.paths.supervisor_pid) or {}).get("org_dir")
        except OrgctlError:
            return None
        return Path(recorded) if recorded else None

    def spec(self, name: str) -> AnimaSpec:
        """Raises OrgctlError naming the known Animas when ``name`` is not applied."""
        if name not in self.specs:
            raise OrgctlError(f"no applied Anima named {name!r}",
                              hint=f"known: {', '.join(sorted(self.specs)) or 'none (run `orgctl apply`)'}")
        return self.specs[name]

    # ------------------------------------------------------------ stores

    def inbox(self, name: str) -> Inbox:
        return Inbox(self.work.inbox(name))

    def queue(self, name: str) -> TaskQueue:
        with self._lock:
            if name not in self._queues:
                self._queues[name] = TaskQueue(self.work.tasks(name))
            return self._queues[name]

    @property
    def runs(self) -> RunStore:
        """The workflow runs (:mod:`orgctl.work.runs`): one store per organization, so each run's log is folded
        once and then read only where it grew."""
        with self._lock:
            if self._runs is None:
                self._runs = RunStore(self.work.runs)
            return self._runs

    def event(self, *, reason: str, object: str, message: str, anima: str | None = None,
              warning: bool = False, **fields: object) -> None:
        events.emit(self.work.events, reason=reason, object=object, message=message, anima=anima,
                    type="Warning" if warning else "Normal", **fields)

    def wake(self, name: str) -> bool:
        """Wake ``name`` now, by the host's wake function; False when nothing was woken (the work still waits)."""
        if name == HUMAN:
            return False
        return self._wake(name)

    def _deliver(self, message: Message) -> Message:
        self.inbox(message.recipient).deliver(message)
        record_sent(self.work.outbox, message)
        self.wake(message.recipient)
        return message

    def call_human(self, anima: str, text: str, *, title: str = "", task_id: str | None = None
                   ) -> list[dict[str, object]]:
        """``call_human``: put ``text`` in the human inbox and notify the org's configured channels.

        Only the top-level Anima may (it is the one whose spec carries the channels). The channels are
        sent to by the notifier this facade was built with: the supervisor's, which holds the tokens,
        in an Anima process; this process's otherwise. The context link points at the Anima's task log.
        Returns one ``{"channel", "ok", "status", "error"}`` per channel (``[]`` with none
        configured: the human inbox still has the message). Raises OrgctlError when ``anima``
        is not at the top of the org chart.
        """
        spec = self.spec(anima)
        if spec.org.supervisor is not None:
            raise OrgctlError(f"{anima} may not call a human: only the top of the org chart may "
                              f"(ask {spec.org.supervisor})")
        context = self.work.tasks(anima).as_uri() + (f"#{task_id}" if task_id else "")
        self.inbox(HUMAN).deliver(Message(sender=anima, recipient=HUMAN, intent="notice", text=text,
                                          chain=[anima], task_id=task_id))
        notifier = self._notifier or LocalNotifier(self.paths, specs=self.specs)
        deliveries = notifier.call_human(anima, text, title=title, context_url=context)
        sent = sum(1 for d in deliveries if d["ok"])
        self.event(reason="HumanCalled", object=f"anima/{anima}", anima=anima, warning=sent < len(deliveries),
                   message=f"{anima} called a human ({sent}/{len(deliveries)} channels): {text[:160]}",
                   deliveries=deliveries)
        return deliveries

    # ------------------------------------------------------------ work from people and the outside

    def add_task(self, name: str, title: str, *, priority: Priority = "high", due: datetime | None = None,
                 detail: str = "", requester: str = HUMAN) -> Task:
        """A person's task for ``name`` (human tasks always sort first); wakes it."""
        self.spec(name)
        task = self.queue(name).create(Task(title=title, detail=detail, assignee=name, requester=requester,
                                            source="human", priority=priority,
                                            due=due.astimezone(UTC).isoformat(timespec="seconds") if due else None))
        self.event(reason="TaskCreated", object=f"task/{task.id}", anima=name,
                   message=f"{requester} gave {name} task {task.id}: {title}")
        self.wake(name)
        return task

    def human_message(self, to: str, text: str, *, intent: Intent = "question", source: str = "cli",
                      sender: str = HUMAN, trust: Trust = "trusted") -> Message:
        """A message from a person (or, with ``trust="untrusted"``, from outside) into ``to``'s inbox."""
        self.spec(to)
        message = self._deliver(Message(sender=sender, recipient=to, intent=intent, text=text, trust=trust,
                                        chain=[sender], source=source))
        self.event(reason="MessageReceived" if trust == "untrusted" else "MessageSent", object=f"message/{message.id}",
                   anima=to, message=f"{sender} -> {to} ({intent}, {trust}): {text[:120]}")
        return message

    def post(self, channel: str, text: str, *, sender: str, trust: Trust = "medium") -> list[str]:
        """Post to the Board; wakes every @mentioned Anima at once. Returns who was woken."""
        post = self.board.post(channel=channel, sender=sender, text=text, trust=trust)
        self.event(reason="BoardPost", object=f"board/{post.channel}", anima=sender if sender in self.specs else None,
                   message=f"{sender} in #{post.channel}: {text[:120]}")
        woken = [n for n in mentions(text) if n in self.specs and n != sender]
        for name in woken:
            self.wake(name)
        return woken

    # ------------------------------------------------------------ Animas' actions

    def send(self, sender: str, recipient: str, intent: str, text: str, *, parent: Message | None = None,
             task_id: str | None = None, trust: Trust = "medium") -> SendResult:
        """An Anima's DM, checked by the messaging rules; a refusal is an event and comes back with its reason.

        ``parent`` is the message being answered or acted on: the chain and the trust carry over from it.
        """
        spec = self.spec(sender)
        chain = [*(parent.chain if parent else []), sender]
        trust = lowest_trust(trust, parent.trust) if parent else trust
        with self._lock:
            refusal = self.rules.check(spec=spec, recipient=recipient, intent=intent, text=text, chain=chain,
                                       reply_to_sender=parent.sender if parent and intent == "reply" else None,
                                       known=set(self.specs))
            if refusal:
                self.event(reason="MessageRefused", object=f"anima/{sender}", anima=sender, warning=True,
                           message=f"{sender} -> {recipient} ({intent}) refused: {refusal}")
                return SendResult(None, refusal)
            self.rules.accepted(sender=sender, recipient=recipient, text=text)
            message = self._deliver(Message(sender=sender, recipient=recipient, intent=intent,  # type: ignore[arg-type]
                                            text=text, trust=trust, chain=chain, task_id=task_id,
                                            in_reply_to=parent.id if parent else None))
        self.event(reason="MessageSent", object=f"message/{message.id}", anima=sender,
                   message=f"{sender} -> {recipient} ({intent}): {text[:120]}")
        return SendResult(message)

    def delegate(self, delegator: str, task_id: str, to: str, *, note: str = "") -> tuple[Task | None, str]:
        """Hand ``task_id`` of ``delegator`` to its direct report ``to``: a subtask in ``to``'s queue and a DM.

        Returns ``(subtask, "")``, or ``(None, reason)`` when refused (not a direct report, rules).
        """
        spec = self.spec(delegator)
        parent = self.queue(delegator).get(task_id)
        if parent is None:
            return None, f"no task {task_id} in {delegator}'s queue"
        if to not in spec.org.reports:
            return None, f"delegation goes to direct reports only ({', '.join(spec.org.reports) or 'none'})"
        due = datetime.now(UTC) + timedelta(seconds=DELEGATION_DEADLINE)
        sub = Task(title=parent.title, detail=parent.detail, assignee=to, requester=delegator, source="anima",
                   priority=parent.priority, parent=parent.id, trust=parent.trust,
                   due=min(filter(None, [parent.due, due.isoformat(timespec="seconds")])))
        text = f"Please do task {sub.id}: {parent.title}" + (f"\n{note}" if note else "")
        sent = self.send(delegator, to, "delegation", text, task_id=sub.id, trust=parent.trust)
        if not sent.accepted:
            return None, sent.reason
        self.queue(to).create(sub)
        self.queue(delegator).update(task_id, by=delegator, status="delegated",
                                     subtasks=[*parent.subtasks, {"id": sub.id, "assignee": to}],
                                     step=StepRecord(kind="delegated", to=to, text=sub.id))
        self.event(reason="TaskDelegated", object=f"task/{parent.id}", anima=delegator,
                   message=f"{delegator} delegated {parent.id} to {to} as {sub.id}")
        self.wake(to)
        return sub, ""

    def plan_tasks(self, anima: str, steps: list[dict[str, object]], *, requester: str | None = None) -> list[Task]:
        """Queue a plan: ``steps`` are ``{"key", "title", "after": [keys]}``; a DAG, refused when cyclic.

        Tasks are created in_progress with ``depends_on`` set, so the task runner starts each one as soon
        as everything it depends on is done, at most three at once. Raises :class:`WorkError` naming the cycle
        or an unknown key; nothing is queued then.
        """
        import networkx as nx

        graph = nx.DiGraph()
        for step in steps:
            graph.add_node(str(step["key"]))
        for step in steps:
            for before in step.get("after", []) or []:  # type: ignore[union-attr]
                if str(before) not in graph:
                    raise WorkError(f"step {step['key']!r} depends on unknown step {before!r}")
                graph.add_edge(str(before), str(step["key"]))
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            raise WorkError("the plan has a cycle: " + " -> ".join([str(a) for a, _ in cycle] + [str(cycle[0][0])]))
        ids = {str(step["key"]): Task(title=str(step["title"]), assignee=anima, requester=anima).id for step in steps}
        created = []
        for key in nx.topological_sort(graph):
            step = next(s for s in steps if str(s["key"]) == key)
            created.append(self.queue(anima).create(Task(
                id=ids[key], title=str(step["title"]), detail=str(step.get("detail", "")), assignee=anima,
                requester=requester or anima, source="self", status="in_progress",
                depends_on=[ids[str(b)] for b in step.get("after", []) or []])))  # type: ignore[union-attr]
        self.event(reason="TasksPlanned", object=f"anima/{anima}", anima=anima,
                   message=f"{anima} planned {len(created)} tasks")
        self.wake(anima)
        return created

    def subtasks_of(self, task: Task) -> list[Task]:
        return [t for s in task.subtasks if (t := self.queue(s["assignee"]).get(s["id"])) is not None]

    def finish(self, anima: str, task_id: str, *, status: str, result: str = "", reason: str = "") -> Task:
        """Close a task (done, failed, blocked) and make sure the result reaches whoever asked.

        A person gets it in the ``human`` inbox; a delegating Anima gets a report DM (or, if the rules
        refuse it, a framework notice: results are never dropped) and is woken. The result is
        delivered before the task is closed. Raises :class:`~orgctl.work.tasks.UnknownTask` for an unknown id.
        """
        queue = self.queue(anima)
        task = queue.get(task_id)
        if task is None:
            raise UnknownTask(task_id, queue.path)
        body = f"Task {task.id} \"{task.title}\": {status}." + (f"\n{reason}" if reason else "") + (
            f"\n{result}" if result else "")
        # The result goes out before the task is closed: whoever watches for the closed task finds
        # the report already there, and a crash in between repeats a report rather than losing one.
        delegated = task.requester in self.specs and task.parent
        if task.requester == HUMAN:
            self._deliver(Message(sender=anima, recipient=HUMAN, intent="report", text=body[:4000],
                                  trust=task.trust, chain=[anima], task_id=task.id, source="anima"))
        elif delegated:
            sent = self.send(anima, task.requester, "report", body[:4000], task_id=task.parent, trust=task.trust)
            if not sent.accepted:
                self._deliver(Message(sender="orgctl", recipient=task.requester, intent="notice", text=body[:4000],
                                      trust=task.trust, chain=[anima], task_id=task.parent, source="framework"))
        task = queue.update(task_id, by=anima, status=status, result=result[:4000], reason=reason[:500],
                            note=f"{status}: {(reason or result)[:200]}")
        self.event(reason={"done": "TaskCompleted", "failed": "TaskFailed"}.get(status, "TaskBlocked"),
                   object=f"task/{task.id}", anima=anima, warning=status != "done",
                   message=f"{anima} {status} {task.id} ({task.title[:80]})")
        if delegated and task.parent:
            self.queue(task.requester).update(task.parent, by=anima, note=f"{anima} {status} {task.id}")
            self.wake(task.requester)
        return task

    def all_subtasks_final(self, task: Task) -> bool:
        subs = self.subtasks_of(task)
        return bool(subs) and all(s.status in FINAL or s.status == "blocked" for s in subs)

    def workspace(self, name: str) -> Path:
        return self.paths.workspace(name)
