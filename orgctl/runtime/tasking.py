"""The task cycle: executing one task with the Anima's tools, on a path apart from the heartbeat.

A task's only exits are **done**, **blocked** with a reason, or a
**question** to whoever asked (delegation is the heartbeat's choice, before
the task starts). Each step offers the model the commands it may run that it
has not run yet for this task (narrowed to the ones whose descriptions match
the task), and the exits that make sense now; a command that is allowed runs,
one marked ``ask`` waits for a person, one denied is refused with its rule.
After :data:`MAX_STEPS` the framework closes the task with what was
observed, so no task can stall on a small model's indecision.

The result sent back is built from what was observed (each command's exit
code and output); the model's words, if any, are one extra line.

:class:`TaskRunner` runs ready tasks on up to :data:`PARALLEL` threads, so
independent tasks of a plan run concurrently and dependent ones in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from orgctl.desired.values import EMBEDDED_MODELS
from orgctl.errors import ModelError, OrgctlError
from orgctl.pacing import backoff
from orgctl.runtime import deciding
from orgctl.runtime.commands import run_command
from orgctl.runtime.cycle import Agent, Trace
from orgctl.runtime.deciding import Option
from orgctl.runtime.outcomes import contradiction, outcome_of_step, ungrounded
from orgctl.work.approvals import Approval
from orgctl.work.tasks import StepRecord, Task

log = logging.getLogger("orgctl.tasks")

MAX_STEPS = 5  # a memory search or a skill read takes a step
PARALLEL = 3
RETRY_BASE = 10.0  # seconds before a task whose cycle failed (the model unreachable) is tried again ...
RETRY_MAX = 300.0  # ... doubled after each failure in a row up to this: Kubernetes' CrashLoopBackOff shape


def _commands_run(task: Task) -> list[str]:
    """Commands already tried for this task: run, refused or denied (none is offered twice)."""
    return [r.command for r in task.records if r.kind in ("ran", "refused", "denied")]


SEMANTIC_MARGIN = 0.05
"""How much more similar to the task (cosine) the best command must be than the next for the framework to offer
it alone; closer than that, the two best are offered and the model chooses. Not for the embedded model: it chose
the wrong one of two close ones in both such cases of bench/command_choice.py, where the ranking's first was
right, so it gets the first alone."""


def rank_commands(agent: Agent, query: str, commands: list[Option]) -> list[Option]:
    """The commands to offer for ``query``: ranked by meaning with the memory's embedding model (the supervisor's
    memory service, :meth:`~orgctl.runtime.services.Memory.similarity`), the best alone when it leads by
    :data:`SEMANTIC_MARGIN`, else the best two. The embedded model picks poorly among several described
    commands (bench/command_choice.py: 15 of 30 right first among three lexically narrowed ones), so the
    framework narrows by meaning first. Without a memory service, or when it fails: the lexical
    :func:`~orgctl.runtime.deciding.narrow` to three."""
    recall = agent.recall
    if len(commands) > 1 and recall is not None and hasattr(recall, "similarity"):
        try:
            scores = recall.similarity(agent.name, query[:1000],
                                       [f"{o.args['command']}: {o.description}" for o in commands])
        except (OrgctlError, OSError):
            scores = []
        if len(scores) == len(commands):
            order = sorted(range(len(commands)), key=lambda i: -scores[i])
            close = scores[order[0]] - scores[order[1]] < SEMANTIC_MARGIN
            keep = 2 if close and agent.spec.model not in EMBEDDED_MODELS else 1
            return [commands[i] for i in order[:keep]]
    return deciding.narrow(commands, query, keep=3)


def _options(agent: Agent, task: Task) -> list[Option]:
    done = set(_commands_run(task))
    privileged_ok = task.trust != "untrusted"
    commands = [Option(f"run {r.command}", r.description or f"run {r.command}", "run", {"command": r.command})
                for r in agent.policy.runnable() if r.command not in done] if privileged_ok else []
    commands = rank_commands(agent, f"{task.title} {task.detail}", commands)
    exits: list[Option] = []
    tried = [r for r in task.records if r.kind in ("ran", "refused", "denied")]
    succeeded = any(r.succeeded for r in tried)
    if done or not commands:
        exits.append(Option("done", "the task is finished: report what you found", "done"))
    if tried and not succeeded:  # "blocked" only when something really failed: never a coin flip of the model
        exits.append(Option("blocked", "you cannot finish it: say why", "blocked"))
    asked = any(r.kind == "asked" for r in task.records)
    if not asked and task.requester in agent.org.specs and not done:
        exits.append(Option(f"ask {task.requester}", "ask whoever gave you the task a question first", "question"))
    # A command that succeeded with output answered the task: only its exits remain (a 135M model
    # otherwise runs every permitted command before it picks "done"). So did one whose exit answers what it is
    # run for, failed or not (pytest's 1 or 5): the task ends with that answer, never with an unrelated command.
    # One that succeeded with no output leaves one more command on offer, after the exits.
    if any(r.kind == "ran" and outcome_of_step(r).answers for r in tried):
        return [Option("done", "the task is answered: report what the command showed", "done")]
    if any(r.succeeded and r.output for r in tried):
        return exits
    if succeeded:
        return exits + commands[:1]
    # Memory is offered when no command fits the task: a choice more among commands costs the embedded model
    # its aim (ROADMAP: it picks well among few, described choices), and a command answers with real output.
    return commands + exits + ([] if commands else _memory_options(agent, task))


def _memory_options(agent: Agent, task: Task) -> list[Option]:
    """``search_memory`` once per task (before any command ran), and each declared skill that matches the task,
    once: the Anima asks, the framework reads."""
    if task.trust == "untrusted" or agent.recall is None or any(r.kind == "ran" for r in task.records):
        return []
    options = []
    if agent.policy.can_use("search_memory").allowed and not any(r.kind == "recalled" for r in task.records):
        options.append(Option("search your memory", "look up what you remember about this task", "search_memory"))
    read = {r.to for r in task.records if r.kind == "skill"}
    skills = [Option(f"read skill {k.name}", k.description, "read_skill", {"skill": k.name})
              for k in agent.spec.skills if k.name not in read]
    return options + deciding.narrow(skills, f"{task.title} {task.detail}", keep=1) if skills else options


def run_task(agent: Agent, task_id: str, *, now: Callable[[], datetime]) -> Trace:
    """Run the task cycle for ``task_id`` until an exit (or a held approval); returns the trace. A task that
    carries a workflow phase runs the phase cycle (:func:`orgctl.runtime.phases.run_phase`)."""
    queue = agent.org.queue(agent.name)
    task = queue.get(task_id)
    if task is not None and task.run:  # a workflow's phase: its exit is a decision, not a report
        from orgctl.runtime.phases import run_phase

        return run_phase(agent, task_id, now=now)
    trace = Trace(trigger=f"task {task_id}", at=now())
    try:
        for _ in range(MAX_STEPS):
            task = queue.get(task_id)
            if task is None or task.status != "in_progress":
                break
            if _step(agent, task, trace):
                break
        else:
            task = queue.get(task_id)
            if task is not None and task.status == "in_progress":
                _finish(agent, task, trace, status="done", note="")
    except ModelError as e:
        trace.failed = e.message
        agent.org.event(reason="TaskCycleFailed", object=f"task/{task_id}", anima=agent.name, warning=True,
                        message=f"{agent.name}: {e.message}")
    agent.remember(trace)
    return trace


def _step(agent: Agent, task: Task, trace: Trace) -> bool:
    """One step; True when the cycle ends here."""
    options = _options(agent, task)
    observed = "\n".join(r.render() for r in task.records[-4:])
    situation = f"Your task {task.id}: {task.title}\n{task.detail[:300]}" + (f"\nSo far:\n{observed[-900:]}"
                                                                            if observed else "")
    choice, usage = deciding.choose(agent.client, model=agent.spec.model, system=agent.system, situation=situation,
                                    options=options, anima=agent.name, purpose="task")
    trace.usage += usage
    if choice.action == "run":
        return _run(agent, task, trace, choice.args["command"])
    if choice.action == "search_memory":
        _search_memory(agent, task, trace)
        return False
    if choice.action == "read_skill":
        skill = next(k for k in agent.spec.skills if k.name == choice.args["skill"])
        agent.org.queue(agent.name).update(task.id, by=agent.name,
                                           step=StepRecord(kind="skill", to=skill.name, text=skill.body[:800]))
        trace.did.append(f"read skill {skill.name}")
        return False
    if choice.action == "question":
        text, usage = deciding.say(agent.client, model=agent.spec.model, system=agent.system, anima=agent.name,
                                   prompt=f"{situation}\n\nWrite one short question to {task.requester}.",
                                   purpose="question")
        trace.usage += usage
        text = text or f"What exactly do you need for {task.title!r}?"
        sent = agent.org.send(agent.name, task.requester, "question", f"About {task.id}: {text}", task_id=task.id,
                              trust=task.trust)
        if sent.accepted:
            agent.org.queue(agent.name).update(task.id, by=agent.name, status="blocked",
                                               reason=f"waiting for an answer from {task.requester}",
                                               step=StepRecord(kind="asked", to=task.requester, text=text))
            trace.did.append(f"asked {task.requester}: {text}")
            return True
        agent.org.queue(agent.name).update(task.id, by=agent.name, note=f"asked (refused: {sent.reason})")
        return False
    _finish(agent, task, trace, status=choice.action, note=situation)
    return True


def _search_memory(agent: Agent, task: Task, trace: Trace) -> None:
    """The ``search_memory`` tool: the task's own words as the query; the best items go in the task's log."""
    try:
        found = agent.recall.search(agent.name, f"{task.title} {task.detail}"[:500], k=3) if agent.recall else []
    except (OrgctlError, OSError) as e:
        found, text = [], f"nothing (memory search failed: {e})"
    else:
        text = " | ".join(f"[{r.get('date') or r.get('kind')}] {str(r.get('text'))[:200]}"
                          for r in found) or "nothing related"
    agent.org.queue(agent.name).update(task.id, by=agent.name, step=StepRecord(kind="recalled", text=text[:900]))
    trace.did.append(f"searched memory for {task.id}: {len(found)} items")


def _run(agent: Agent, task: Task, trace: Trace, command: str) -> bool:
    queue = agent.org.queue(agent.name)
    verdict = agent.policy.can_run(command)
    if verdict.outcome == "deny":
        queue.update(task.id, by=agent.name, step=StepRecord(kind="refused", command=command, refusal=verdict.rule))
        agent.org.event(reason="CommandRefused", object=f"task/{task.id}", anima=agent.name, warning=True,
                        message=f"{agent.name} may not run {command!r}: {verdict.rule}")
        trace.did.append(f"was refused {command!r}: {verdict.rule}")
        return False
    if verdict.outcome == "ask":
        approval = agent.org.approvals.request(Approval(anima=agent.name, detail=command, rule=verdict.rule,
                                                        task_id=task.id))
        queue.update(task.id, by=agent.name, status="waiting_approval",
                     step=StepRecord(kind="approval", command=command, text=approval.id))
        agent.org.event(reason="ApprovalRequested", object=f"approval/{approval.id}", anima=agent.name,
                        message=f"{agent.name} asks to run {command!r} ({verdict.rule}); "
                                f"`orgctl approve {approval.id}` or `orgctl deny {approval.id}`")
        trace.did.append(f"asked a person to approve {command!r} ({approval.id})")
        return True
    result = run_command(command, sandbox=agent.policy.sandbox_profile)
    queue.update(task.id, by=agent.name, steps=task.steps + 1, step=result.record())
    agent.org.event(reason="CommandRun", object=f"task/{task.id}", anima=agent.name,
                    message=f"{agent.name} ran {command!r}: exit {result.exit_code}", exit_code=result.exit_code,
                    duration_s=result.duration_s)
    trace.did.append(f"ran {command!r}: exit {result.exit_code}, {len(result.output.splitlines())} lines")
    return False


def _finish(agent: Agent, task: Task, trace: Trace, *, status: str, note: str) -> None:
    """End ``task`` with ``status`` and a report built from what was observed: each command's output, the
    framework's statement of its outcome (:mod:`orgctl.runtime.outcomes`), then the model's one sentence
    only when it agrees with that evidence (a contradicted sentence is left out, said, and a Warning)."""
    current = agent.org.queue(agent.name).get(task.id) or task
    ran = [r for r in current.records if r.kind == "ran"]
    outcomes = [outcome_of_step(r) for r in ran]
    result = "\n\n".join(r.summary() for r in ran)[:3000]
    if outcomes:
        result += "\n\nOutcome: " + " ".join(o.sentence() for o in outcomes[-3:])
    reason = ""
    words, usage = deciding.say(agent.client, model=agent.spec.model, system=agent.system, anima=agent.name,
                                prompt=f"{note[:600]}\n\nIn one sentence, say what you found.",
                                purpose="report")
    trace.usage += usage
    evidence = "\n".join([task.title, task.detail, note, *(f"{r.command}\n{r.output}" for r in ran)])
    if words and (why := contradiction(words, outcomes) or ungrounded(words, evidence)):
        agent.org.event(reason="ReportContradicted", object=f"task/{task.id}", anima=agent.name, warning=True,
                        message=f"{agent.name}'s sentence {words[:160]!r} was left out of the report: {why}")
        result += f"\n\n(The model's sentence was left out: {why})"
        words = ""
    if status == "blocked":
        reason = words or "could not finish"
    elif words:
        result = f"{result}\n\nNote: {words}" if result else words
    agent.org.finish(agent.name, task.id, status=status, result=result or "(nothing to report)", reason=reason)
    trace.did.append(f"{status} {task.id}; result sent to {task.requester}")


class TaskRunner:
    """Runs the Anima's in-progress tasks that are ready, at most :data:`PARALLEL` at once.

    A task whose cycle failed (a model error: the provider down, a budget, an unrecorded replay) waits
    :data:`RETRY_BASE` seconds before it runs again, doubled after each failure in a row up to
    :data:`RETRY_MAX` (Kubernetes' CrashLoopBackOff): without it the runner restarts the task the moment it
    ends, and a model that is down costs a core and a line of activity log per millisecond."""

    def __init__(self, agent_factory: Callable[[], Agent], *, now: Callable[[], datetime],
                 parallel: int = PARALLEL) -> None:
        self._agent_factory = agent_factory
        self._now = now
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="task")
        self._running: dict[str, Future[Trace]] = {}
        self._failures: dict[str, int] = {}  # failed cycles in a row, by task
        self._retry_at: dict[str, float] = {}  # time.monotonic() before which the task is not started again
        self._lock = threading.Lock()
        self.on_done: Callable[[str], None] = lambda task_id: None

    def poll(self) -> int:
        """Start every ready in-progress task not yet running; returns how many run now."""
        agent = self._agent_factory()
        with self._lock:
            self._running = {k: f for k, f in self._running.items() if not f.done()}
            now = time.monotonic()
            for task in agent.org.queue(agent.name).ready():
                if task.status == "in_progress" and task.id not in self._running \
                        and self._retry_at.get(task.id, 0.0) <= now:
                    future = self._pool.submit(run_task, self._agent_factory(), task.id, now=self._now)
                    future.add_done_callback(lambda f, tid=task.id: self._done(tid, f))
                    self._running[task.id] = future
            return len(self._running)

    def _done(self, task_id: str, future: Future[Trace]) -> None:
        error = future.exception() if not future.cancelled() else None
        if error is not None:  # a bug, not a model failure: keep it visible in the Anima's log
            log.error("task cycle of %s crashed", task_id, exc_info=error)
        failed = error is not None or (not future.cancelled() and bool(future.result().failed))
        with self._lock:
            if failed:
                self._failures[task_id] = n = self._failures.get(task_id, 0) + 1
                delay = self.retry_delay(n)
                self._retry_at[task_id] = time.monotonic() + delay
                retry = threading.Timer(delay, self.on_done, args=(task_id,))
                retry.daemon = True
                retry.start()
            else:
                self._failures.pop(task_id, None)
                self._retry_at.pop(task_id, None)
        self.on_done(task_id)

    @staticmethod
    def retry_delay(failures: int) -> float:
        """Seconds before a task is tried again after ``failures`` (>= 1) failed cycles in a row."""
        return backoff(failures, base=RETRY_BASE, cap=RETRY_MAX)

    def busy(self) -> bool:
        with self._lock:
            return any(not f.done() for f in self._running.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
