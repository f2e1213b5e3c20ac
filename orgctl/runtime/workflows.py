"""The workflow engine: moves runs from phase to phase, by their verdicts, guards and limits (docs/workflows.md).

A run's state is its log (:mod:`orgctl.work.runs`); every transition happens under the run's lock and is
one appended line, so any process may drive a run: the CLI that starts it, the Anima process whose phase
just decided, the supervisor's periodic :meth:`Engine.reconcile` (which also repairs what a process killed
between two lines left: a phase whose task ended with no decision, a decision with no next phase yet).

A phase bound to an Anima runs as a task in that Anima's queue, on its task cycle and under its
permissions, sandbox and hard blocks (:mod:`orgctl.runtime.phases`); a standalone agent's phase is a task in
the queue of ``<agent>@<workflow>``, which the host runs (:mod:`orgctl.runtime.standalone`). Its id is
derived from the run, the phase and the attempt, so handing a phase over twice creates one task. Guards are
CEL (cel-python) and fail closed: a guard that errors ends the run ``failed`` with the guard's error, never
skips or routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from orgctl.desired.workflows import FAIL, FINISH, Phase, WorkflowSpec, compile_guard
from orgctl.errors import OrgctlError, WorkError
from orgctl.work.messages import HUMAN, Message
from orgctl.work.runs import Decision, Run, RunStore, RunTask
from orgctl.work.tasks import FINAL, Task

log = logging.getLogger("orgctl.workflows")

REQUESTER = "workflow"
"""The requester of a phase task: its result goes to the engine, not to a person's or an Anima's inbox."""
MAX_TRANSITIONS = 64
"""Transitions one :meth:`Engine.advance` makes at most (skips in a row): a bound, not a limit anyone meets."""


class GuardError(Exception):
    """A guard that could not be evaluated to a boolean (an error, an unknown name, another type)."""


def evaluate_guard(expression: str, variables: dict[str, Any]) -> bool:
    """Evaluate the CEL ``expression`` with ``variables`` (:meth:`Run.guard_variables`). Raises
    :class:`GuardError` unless the result is a boolean."""
    import celpy

    try:
        result = compile_guard(expression).evaluate({k: celpy.json_to_cel(v) for k, v in variables.items()})
    except (celpy.CELEvalError, ValueError, TypeError, KeyError) as e:
        raise GuardError(f"{expression!r}: {_cel_message(e)}") from e
    if isinstance(result, celpy.CELEvalError):
        raise GuardError(f"{expression!r}: {_cel_message(result)}")
    if not isinstance(result, bool):  # celtypes.BoolType subclasses int, not bool
        from celpy import celtypes

        if not isinstance(result, celtypes.BoolType):
            raise GuardError(f"{expression!r} gave {type(result).__name__}, not a boolean")
    return bool(result)


def _finished(run: Run) -> str:
    """Why a run that reached ``finish`` succeeded, in words true to its verdicts: "every phase advanced" only
    when each did; else each phase's last verdict (a skip by a guard said so)."""
    last: dict[str, Decision] = {}
    for d in run.decisions:
        last[d.phase] = d
    if all(d.verdict == "advance" for d in last.values()):
        return "every phase advanced"
    return "reached finish: " + ", ".join(f"{p} {d.verdict}" + (" (skip_if)" if d.by == "guard" else "")
                                          for p, d in last.items())


def _cel_message(error: Exception) -> str:
    args = getattr(error, "args", ())
    return str(args[0]) if args else type(error).__name__


def phase_task_id(run_id: str, phase: str, attempt: int) -> str:
    return f"t-{run_id.removeprefix('r-')}-{phase}-{attempt}"


class Engine:
    """Drives runs. ``org``: the :class:`~orgctl.runtime.organization.Organization` whose queues carry the
    phases (its ``specs`` say which Animas exist), ``runs``: the run store."""

    def __init__(self, org: Any, runs: RunStore, *, on_end: Callable[[Run], None] | None = None) -> None:
        self.org = org
        self.runs = runs
        self.on_end = on_end or (lambda run: None)

    # ------------------------------------------------------------ starting and stopping

    def start(self, workflow: WorkflowSpec, *, revision: str | None, subject: str, task: RunTask | None = None,
              started_by: str = "human") -> Run:
        """A new run of ``workflow`` on ``subject``, advanced to its first phase (or queued, when the
        workflow already has ``max_concurrent_runs`` running)."""
        if not subject.strip():
            raise WorkError("a workflow run needs a subject", hint='--subject "what the run is about"')
        run = self.runs.start(workflow, revision=revision, subject=subject.strip(), started_by=started_by,
                              task=task or RunTask(title=subject.strip()[:300]))
        self.org.event(reason="WorkflowRunStarted", object=f"run/{run.id}", anima=None,
                       message=f"{started_by} started {workflow.name} run {run.id}: {subject[:100]}")
        return self.advance(run.id)

    def cancel(self, run_id: str, *, by: str = "human") -> Run:
        """Cancel a run: the phase in progress is cancelled in its Anima's queue. Raises WorkError when the run
        has already ended."""
        with self.runs.locked(run_id) as run:
            if not run.active:
                raise WorkError(f"run {run_id} has already {run.status}", hint=f"`orgctl workflow log {run_id}`")
            if run.phase_task and run.phase_anima:
                queue = self.org.queue(run.phase_anima)
                task = queue.get(run.phase_task)
                if task is not None and task.status not in FINAL:
                    queue.update(task.id, by=by, status="cancelled", note=f"run {run_id} cancelled by {by}")
            run = self._end(run, "cancelled", f"cancelled by {by}")
        return self.advance(run_id)

    def route_task(self, anima: str, task: Task, workflow: WorkflowSpec, *, revision: str | None) -> Run:
        """Route ``anima``'s pending ``task`` to a run of ``workflow`` (the Anima's delegate choice, as ``orgctl
        task add --workflow`` does for a person): the task is ``delegated`` and ends with the run's outcome,
        reported to its requester. Returns the run."""
        run = self.start(workflow, revision=revision, subject=f"{task.title}\n{task.detail}".strip(),
                         task=RunTask(id=task.id, title=task.title, detail=task.detail, requester=task.requester,
                                      assignee=anima), started_by=anima)
        self.org.queue(anima).update(task.id, by=anima, status="delegated",
                                     note=f"routed to workflow {workflow.name}: run {run.id}")
        return run

    # ------------------------------------------------------------ deciding

    def decide(self, run_id: str, decision: Decision) -> Run:
        """Record ``decision`` for the phase in progress (its target chosen here by routing, guards and the rework
        limit) and advance. A decision for a phase that is not in progress (a stale task) changes nothing."""
        with self.runs.locked(run_id) as run:
            if not run.active or run.phase != decision.phase or run.attempt != decision.attempt \
                    or run.phase_task is None:
                return run
            run = self._record(run, decision)
        return self.advance(run_id)

    def route(self, run: Run, phase: Phase, decision: Decision) -> tuple[str, str]:
        """(target, why) for ``decision`` of ``phase``: the first route of ``on_verdict`` whose ``when`` holds,
        else the default; a route back past the phase's ``max_rework_attempts`` fails the run. A guard that
        errors fails the run (fail closed)."""
        workflow = run.workflow
        target = ""
        for route in phase.on_verdict.get(decision.verdict, []):  # type: ignore[call-overload]
            if route.when is None:
                target = route.goto
                break
            try:
                if evaluate_guard(route.when, run.guard_variables(decision=decision)):
                    target = route.goto
                    break
            except GuardError as e:
                return FAIL, f"guard error in phase {phase.id}: {e}"
        target = target or workflow.default_target(phase, decision.verdict)
        if target not in (FINISH, FAIL) and workflow.loops_back(phase, target):
            used, limit = run.attempts.get(phase.id, 0), phase.max_rework_attempts or 0
            if used >= limit:
                return FAIL, f"phase {phase.id} sent the run back {used} time{'s' if used != 1 else ''}: " \
                             f"max_rework_attempts {limit} exhausted"
        return target, ""

    def _record(self, run: Run, decision: Decision) -> Run:
        phase = run.workflow.phase(decision.phase)
        target, why = self.route(run, phase, decision)
        decision = decision.model_copy(update={"target": target})
        run = self.runs.append(run.id, "decided", decision=decision.model_dump(mode="json"))
        self.org.event(reason="WorkflowPhaseDecided", object=f"run/{run.id}", anima=decision.anima,
                       warning=decision.verdict == "fail",
                       message=f"{run.workflow.name} {run.id} {decision.phase}#{decision.attempt}: {decision.verdict}"
                               f" -> {target} ({decision.by}: {decision.reason[:100]})")
        if why:
            kind = "WorkflowGuardFailed" if why.startswith("guard error") else "WorkflowReworkExhausted"
            self.org.event(reason=kind, object=f"run/{run.id}", anima=decision.anima, warning=True,
                           message=f"{run.workflow.name} {run.id}: {why}")
            run = self._end(run, "failed", why)
        return run

    # ------------------------------------------------------------ advancing

    def advance(self, run_id: str) -> Run:
        """Move ``run_id`` on from its last decision: evaluate guards, hand the next phase to its agent, or end
        the run. Idempotent: a phase in progress is left alone, and handing one over twice makes one task.
        A run that ends frees its place: the workflow's queued runs are advanced after it."""
        run = self._advance(run_id)
        if not run.active:
            self._start_queued(run.workflow.name, run.workflow.spec.max_concurrent_runs)
        return run

    def _start_queued(self, workflow: str, limit: int) -> None:
        """Advance the oldest queued runs of ``workflow`` into the places free under ``limit``: one read of the
        runs, then one :meth:`_advance` per free place (which checks the limit again, under the run's lock)."""
        runs = [r for r in self.runs.all() if r.workflow.name == workflow]
        free = limit - sum(1 for r in runs if r.status == "running")
        for queued in [r for r in runs if r.status == "queued"][:max(free, 0)]:
            self._advance(queued.id)

    def _advance(self, run_id: str) -> Run:
        with self.runs.locked(run_id) as run:
            for _ in range(MAX_TRANSITIONS):
                if not run.active:
                    return run
                if run.phase_task is not None:
                    if not self._phase_ended_undecided(run):
                        return run
                    task = self.org.queue(run.phase_anima).get(run.phase_task)
                    status = task.status if task is not None else "missing"
                    run = self._record(run, Decision(
                        phase=run.phase or "", attempt=run.attempt, agent=run.workflow.phase(run.phase or "").agent,
                        anima=run.phase_anima, verdict="fail", by="framework",
                        reason=f"the phase's task ended {status} without a verdict"))
                    continue
                if run.status == "queued" and not self._may_start(run):
                    return run
                nxt = run.decisions[-1].target if run.decisions else run.workflow.spec.phases[0].id
                if nxt == FINISH:
                    return self._end(run, "succeeded", _finished(run))
                if nxt == FAIL:
                    last = run.decisions[-1]
                    return self._end(run, "failed", f"phase {last.phase} decided {last.verdict}: {last.reason}"[:600])
                phase = run.workflow.phase(nxt)
                attempt = sum(1 for d in run.decisions if d.phase == phase.id) + 1
                if phase.skip_if is not None:
                    try:
                        skip = evaluate_guard(phase.skip_if, run.guard_variables())
                    except GuardError as e:
                        self.org.event(reason="WorkflowGuardFailed", object=f"run/{run.id}", anima=None, warning=True,
                                       message=f"{run.workflow.name} {run.id}: skip_if of {phase.id}: {e}")
                        return self._end(run, "failed", f"guard error in phase {phase.id}: {e}")
                    if skip:
                        run = self.runs.append(run.id, "phase", phase=phase.id, attempt=attempt, task=None, anima=None)
                        run = self._record(run, Decision(phase=phase.id, attempt=attempt, agent=phase.agent,
                                                         verdict="skip", by="guard",
                                                         reason=f"skip_if held: {phase.skip_if}"))
                        continue
                return self._hand_over(run, phase, attempt)
        return run

    def _phase_ended_undecided(self, run: Run) -> bool:
        task = self.org.queue(run.phase_anima).get(run.phase_task) if run.phase_anima else None
        return task is None or task.status in FINAL

    def _may_start(self, run: Run) -> bool:
        """Whether the queued ``run`` may start: the workflow's running runs and the runs queued before it (they
        start first) leave a place under ``max_concurrent_runs``."""
        ahead = sum(1 for r in self.runs.all() if r.workflow.name == run.workflow.name and r.id != run.id
                    and (r.status == "running" or (r.status == "queued"
                                                   and (r.created_at, r.id) < (run.created_at, run.id))))
        return ahead < run.workflow.spec.max_concurrent_runs

    def _hand_over(self, run: Run, phase: Phase, attempt: int) -> Run:
        bound = run.workflow.spec.agents[phase.agent].anima
        if bound is not None and bound not in self.org.specs:
            return self._end(run, "failed", f"agent {phase.agent!r} is bound to {bound!r}, which is not applied")
        anima = run.workflow.runner(phase.agent)
        task_id = phase_task_id(run.id, phase.id, attempt)
        queue = self.org.queue(anima)
        if queue.get(task_id) is None:
            queue.create(Task(id=task_id, title=f"{run.workflow.name}/{phase.id}: {run.subject}"[:300],
                              detail=self._brief(run, phase, attempt)[:4000], assignee=anima, requester=REQUESTER,
                              source="anima", priority="high", status="in_progress", run=run.id))
        run = self.runs.append(run.id, "phase", phase=phase.id, attempt=attempt, task=task_id, anima=anima)
        self.org.event(reason="WorkflowPhaseStarted", object=f"run/{run.id}", anima=anima,
                       message=f"{run.workflow.name} {run.id}: {phase.id}#{attempt} handed to {anima} ({task_id})")
        if bound is not None:
            self.org.wake(anima)  # a standalone phase is picked up by the host's next pass (supervisor, tick)
        return run

    def _brief(self, run: Run, phase: Phase, attempt: int) -> str:
        """The phase task's detail: what the phase is for, the subject, what earlier phases decided, and on a
        rework what sent the run back (the failure context)."""
        lines = [f"Phase {phase.id} of workflow {run.workflow.name}. {phase.description}".strip(),
                 f"Subject: {run.subject}"]
        if run.decisions:
            lines.append("Decided so far: " + "; ".join(
                f"{d.phase}: {d.verdict}" + (f" ({d.reason[:120]})" if d.reason else "") for d in run.decisions[-4:]))
        back = [d for d in run.decisions if d.target == phase.id and run.workflow.loops_back(
            run.workflow.phase(d.phase), phase.id)]
        if attempt > 1 and back:
            last, mine = back[-1], run.latest().get(phase.id)
            lines.append(f"Sent back by {last.phase} (attempt {attempt}): {last.reason[:300]}")
            evidence = [*(last.evidence[-2:]), *(mine.evidence[-2:] if mine else [])]
            lines += [f"  evidence: {e.render()[:300]}" for e in evidence]
        return "\n".join(lines)

    def _end(self, run: Run, status: str, reason: str) -> Run:
        run = self.runs.append(run.id, "end", status=status, reason=reason)
        self.org.event(reason={"succeeded": "WorkflowRunSucceeded", "failed": "WorkflowRunFailed"}.get(
                       status, "WorkflowRunCancelled"), object=f"run/{run.id}", anima=None,
                       warning=status != "succeeded",
                       message=f"{run.workflow.name} {run.id} {status}: {reason[:160]}")
        try:
            self.on_end(run)
        except (OrgctlError, OSError) as e:  # the run's outcome is recorded; a failed notice is reported
            log.warning("after run %s ended: %s", run.id, e)
            self.org.event(reason="WorkflowRecordFailed", object=f"run/{run.id}", anima=None, warning=True,
                           message=f"{run.id} ended {status}, but recording it failed: {e}")
        self._tell_human(run)
        return run

    def _tell_human(self, run: Run) -> None:
        """The outcome to the person who started the run: the task it works on ends with it (its result reaches
        the requester's inbox), or, started by ``workflow run``, a report in the human inbox."""
        verdicts = ", ".join(f"{d.phase} {d.verdict}" for d in run.decisions) or "no phase ran"
        text = (f"Workflow {run.workflow.name} run {run.id} {run.status}: {run.reason}\nSubject: {run.subject[:300]}"
                f"\nPhases: {verdicts}\nDetails: `orgctl workflow log {run.id}`")
        task = self.org.queue(run.task.assignee).get(run.task.id) if run.task.id and run.task.assignee else None
        if task is not None and task.status not in FINAL:
            self.org.finish(run.task.assignee, task.id, status="done" if run.status == "succeeded" else "failed",
                            result=text, reason="" if run.status == "succeeded" else run.reason)
            return
        if HUMAN not in (run.started_by, run.task.requester):
            return
        self.org.inbox(HUMAN).deliver(Message(sender="orgctl", recipient=HUMAN, intent="report", text=text[:4000],
                                              chain=["orgctl"], task_id=run.task.id or None, source="framework"))

    def reconcile(self) -> list[Run]:
        """Advance every active run (a periodic pass: repairs interrupted transitions, starts queued runs)."""
        out = []
        for run in self.runs.all():
            if run.active:
                try:
                    out.append(self.advance(run.id))
                except (OrgctlError, OSError) as e:
                    log.warning("run %s: %s", run.id, e)
        return out
