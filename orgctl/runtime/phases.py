"""The phase cycle: one workflow phase on the bound Anima's task cycle, ended by a decision (docs/workflows.md).

A phase is a task in the Anima's queue (:mod:`orgctl.runtime.workflows` hands it over). Its steps are the
task cycle's own (:mod:`orgctl.runtime.tasking`): the commands the Anima may run, narrowed to those that
match the phase, run under its permissions, sandbox and hard blocks; memory and skills when nothing else
fits. Its only exit is the **decision**, one schema-constrained call whose every answer is a closed set:

* ``verdict`` among the verdicts the phase may take (``rework`` only when it is routed somewhere), less
  those the evidence contradicts: a command whose exit says it failed (pytest's 1, ruff's 1) leaves no
  ``advance``;
* ``confidence`` and ``risk`` (low, medium, high), and the phase-local fields with an ``enum`` or a number;

then one bounded line of free text, the ``reason``, kept only when it agrees with the evidence (the checks
reports get, :mod:`orgctl.runtime.outcomes`). Phase-local fields marked ``observed:`` are filled by the
framework, never asked. The ``evidence`` is what the framework recorded: every command with its exit code
and output, refusals, memory and skill reads. After :data:`~orgctl.runtime.tasking.MAX_STEPS` steps the
framework asks for the decision, so a phase cannot stall.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orgctl.desired.workflows import LEVELS, Phase
from orgctl.errors import ModelError
from orgctl.llm.requests import CompletionRequest, Message
from orgctl.runtime import deciding, tasking
from orgctl.runtime.cycle import Agent, Trace
from orgctl.runtime.deciding import Option
from orgctl.runtime.mcp import McpConnection, McpError, McpTool, permitted, server_permitted
from orgctl.runtime.outcomes import contradiction, outcome_of_step, ungrounded, unobserved_claim
from orgctl.runtime.workflows import Engine
from orgctl.work.runs import Decision, Run
from orgctl.work.tasks import StepRecord, Task

EVIDENCE_KINDS = ("ran", "refused", "denied", "recalled", "skill", "tool")
DECIDE = Option("decide", "end this phase with your verdict on what was observed", "decide")


def engine_for(agent: Agent) -> Engine:
    return Engine(agent.org, agent.org.runs)


def run_phase(agent: Agent, task_id: str, *, now: Callable[[], datetime]) -> Trace:
    """Run the phase carried by ``task_id`` until its decision (or a held approval); returns the trace."""
    queue = agent.org.queue(agent.name)
    engine = engine_for(agent)
    trace = Trace(trigger=f"phase {task_id}", at=now())
    task = queue.get(task_id)
    run = engine.runs.get(task.run) if task is not None and task.run else None
    if task is None or run is None:
        return trace
    agent = in_role(agent, run)
    with contextlib.ExitStack() as servers:
        try:
            tools = open_tools(agent, run, servers)
            for _ in range(tasking.MAX_STEPS):
                task = queue.get(task_id)
                run = engine.runs.get(run.id)
                if task is None or task.status != "in_progress" or run is None:
                    break
                if not run.active or run.phase_task != task.id:  # cancelled, or decided by a process that died
                    queue.update(task.id, by=agent.name, status="cancelled", note=f"run {run.id} is no longer at it")
                    break
                if _step(agent, task, run, trace, tools):
                    break
            else:
                task, run = queue.get(task_id), engine.runs.get(run.id)
                if task is not None and run is not None and task.status == "in_progress":
                    _decide(agent, engine, task, run, trace)
        except (ModelError, McpError) as e:
            trace.failed = e.message
            task, run = queue.get(task_id), engine.runs.get(run.id)
            if task is not None and run is not None and task.status == "in_progress":
                what = "the model failed" if isinstance(e, ModelError) else "a tool server failed"
                _close(agent, engine, task, run, trace, _framework_decision(run, task, agent,
                                                                            f"{what}: {e.message}"[:300]))
    agent.remember(trace)
    return trace


def in_role(agent: Agent, run: Run) -> Agent:
    """``agent`` for ``run``'s phase in progress: a bound Anima's system prompt gets the profile's
    ``system_prompt`` after its own identity (a standalone agent's prompt is its profile already)."""
    role = run.workflow.phase(run.phase or "").agent
    profile = run.workflow.spec.agents[role]
    if profile.anima is None or not profile.system_prompt.strip():
        return agent
    cast = copy.copy(agent)
    cast.system = (f"{agent.system}\n\nIn the workflow {run.workflow.name} you act as its {role}: "
                   f"{profile.system_prompt.strip()[:600]}")
    return cast


@dataclass
class PhaseTools:
    """The MCP tools a phase may call (:mod:`orgctl.runtime.mcp`): those its agent's servers list that the
    bound Anima's permissions allow, with the connection each is called on."""

    tools: list[McpTool] = dataclasses.field(default_factory=list)
    connections: dict[str, McpConnection] = dataclasses.field(default_factory=dict)

    def get(self, qualified: str) -> McpTool | None:
        return next((t for t in self.tools if t.qualified == qualified), None)


def open_tools(agent: Agent, run: Run, stack: contextlib.ExitStack) -> PhaseTools:
    """Start the phase agent's MCP servers that the Anima may use any tool of (a server none of whose tools it
    may call is not started), list their tools, keep the permitted ones. Stopped when ``stack`` closes.
    Raises :class:`McpError` for a server that does not start or list."""
    phase = run.workflow.phase(run.phase or "")
    profile = run.workflow.spec.agents[phase.agent]
    allowed = [] if agent.policy.invalid else list(agent.policy.permissions.tools)
    out = PhaseTools()
    for name in profile.mcp_servers:
        if not server_permitted(allowed, name):
            continue
        connection = stack.enter_context(McpConnection(name, run.workflow.spec.mcp_servers[name],
                                                       cwd=agent.policy.workspace,
                                                       sandbox=agent.policy.sandbox_profile))
        out.connections[name] = connection
        out.tools += [t for t in connection.tools() if permitted(allowed, t)]
    return out


def _step(agent: Agent, task: Task, run: Run, trace: Trace, tools: PhaseTools | None = None) -> bool:
    """One step; True when the phase ends here (decided, or waiting for an approval)."""
    if any(r.kind == "tool" for r in task.records):
        options = []  # a tool's result is untrusted data: after one, nothing privileged is offered, only the decision
    else:
        options = [o for o in tasking._options(agent, task) if o.action not in ("done", "blocked", "question")]
        if not any(o.action == "run" for o in options) or any(r.kind == "ran" for r in task.records):
            options = [o for o in options if o.action != "search_memory" and o.action != "read_skill"]
        options += _tool_options(tools, task)
    options.append(DECIDE)
    situation = _situation(task)
    choice, usage = deciding.choose(agent.client, model=agent.spec.model, system=agent.system,
                                    situation=situation, options=options, anima=agent.name, purpose="phase")
    trace.usage += usage
    if choice.action == "run":
        return tasking._run(agent, task, trace, choice.args["command"])
    if choice.action == "search_memory":
        tasking._search_memory(agent, task, trace)
        return False
    if choice.action == "mcp" and tools is not None and (tool := tools.get(choice.args["tool"])) is not None:
        _call_tool(agent, task, tools, tool, trace)
        return False
    if choice.action == "read_skill":
        skill = next(k for k in agent.spec.skills if k.name == choice.args["skill"])
        agent.org.queue(agent.name).update(task.id, by=agent.name,
                                           step=StepRecord(kind="skill", to=skill.name, text=skill.body[:800]))
        return False
    current = agent.org.queue(agent.name).get(task.id) or task
    _decide(agent, engine_for(agent), current, run, trace)
    return True


def _tool_options(tools: PhaseTools | None, task: Task) -> list[Option]:
    """A ``call`` option per permitted MCP tool not called yet, narrowed to the three that match the task best."""
    if tools is None or not tools.tools:
        return []
    called = {r.to for r in task.records if r.kind in ("tool", "refused")}
    options = [Option(f"call {t.qualified}", t.description or f"call {t.qualified}", "mcp", {"tool": t.qualified})
               for t in tools.tools if t.qualified not in called]
    return deciding.narrow(options, f"{task.title} {task.detail}", keep=3)


_ASKABLE = ("string", "integer", "number", "boolean")


def _call_tool(agent: Agent, task: Task, tools: PhaseTools, tool: McpTool, trace: Trace) -> None:
    """Ask the model for the tool's required arguments (a JSON schema of them, strings bounded), check every
    string against the hard blocks, call it, and record the result as untrusted evidence."""
    from orgctl.runtime import guards

    queue = agent.org.queue(agent.name)
    props = tool.input_schema.get("properties", {})
    wanted = {n: props.get(n, {}) for n in tool.required}
    if any(p.get("type") not in _ASKABLE for p in wanted.values()):
        queue.update(task.id, by=agent.name, step=StepRecord(kind="refused", to=tool.qualified, command="{}",
                     refusal="its required arguments are not strings, numbers or booleans: not asked of a model"))
        return
    arguments: dict[str, Any] = {}
    if wanted:
        schema = {"type": "object", "additionalProperties": False, "required": list(wanted), "properties": {
            n: ({"type": "string", "maxLength": 200} if p.get("type") == "string" else {"type": p["type"]})
            for n, p in wanted.items()}}
        result = agent.client.complete(CompletionRequest(
            model=agent.spec.model, schema=schema, schema_name="ToolArguments", max_tokens=120, temperature=0.0,
            anima=agent.name, purpose="tool arguments", messages=[
                Message(role="system", content=agent.system),
                Message(role="user", content=f"{_situation(task)}\n\nArguments for {tool.qualified} "
                                             f"({tool.description}). Answer JSON.")]))
        trace.usage += result.usage
        try:
            arguments = _valid(json.loads(result.content, strict=False), schema)
        except ValueError as e:
            queue.update(task.id, by=agent.name, step=StepRecord(kind="refused", to=tool.qualified, command="{}",
                                                                 refusal=f"no valid arguments: {e}"[:300]))
            return
    shown = json.dumps(arguments, ensure_ascii=False)[:300]
    for value in (v for v in arguments.values() if isinstance(v, str)):
        if (verdict := guards.check_command(value)).blocked:
            queue.update(task.id, by=agent.name, step=StepRecord(kind="refused", to=tool.qualified, command=shown,
                                                                 refusal=verdict.reason))
            agent.org.event(reason="ToolRefused", object=f"task/{task.id}", anima=agent.name, warning=True,
                            message=f"{agent.name}: {tool.qualified} {shown}: {verdict.reason}")
            return
    answer = tools.connections[tool.server].call(tool.name, arguments)
    queue.update(task.id, by=agent.name, step=StepRecord(kind="tool", to=tool.qualified, command=shown,
                                                         text=answer.text, exit_code=1 if answer.is_error else 0))
    agent.org.event(reason="McpToolCalled", object=f"task/{task.id}", anima=agent.name,
                    message=f"{agent.name}: {tool.qualified} {shown} -> {len(answer.text)} characters"
                            f"{' (an error)' if answer.is_error else ''}")
    trace.did.append(f"called {tool.qualified} {shown}")


def _situation(task: Task) -> str:
    observed = "\n".join(r.render() for r in task.records[-4:])
    return f"Your task {task.id}: {task.title}\n{task.detail[:900]}" + (f"\nSo far:\n{observed[-900:]}"
                                                                       if observed else "")


def offered_verdicts(run: Run, phase: Phase, evidence: list[StepRecord]) -> list[str]:
    """The verdicts ``phase`` may end with given ``evidence``: those it is routed for, less ``skip`` once it ran a
    command, and less ``advance`` when the last command it ran failed by its tool's exit table, or ran tests
    that did not pass (pytest's 5: none were collected): answers its evidence contradicts."""
    verdicts = run.workflow.offered(phase)
    ran = [r for r in evidence if r.kind == "ran"]
    if ran:
        # a phase that ran a command applied: skip ("nothing to do here") would hide what the command showed
        verdicts = [v for v in verdicts if v != "skip"]
        last = outcome_of_step(ran[-1])
        if (last.success is False or (last.tests and last.success is not True)) and len(verdicts) > 1:
            verdicts = [v for v in verdicts if v != "advance"]
    return verdicts


def decision_schema(phase: Phase, verdicts: list[str]) -> dict[str, Any]:
    """The JSON schema of the model's part of the decision: closed sets only (the reason is asked apart)."""
    props: dict[str, Any] = {"verdict": {"type": "string", "enum": verdicts},
                             "confidence": {"type": "string", "enum": list(LEVELS)},
                             "risk": {"type": "string", "enum": list(LEVELS)}}
    for name, field in phase.decision.items():
        if field.observed is None and (field.enum is not None or field.type != "string"):
            props[name] = field.json_schema()
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _observed(phase: Phase, evidence: list[StepRecord]) -> dict[str, Any]:
    ran = [r for r in evidence if r.kind == "ran"]
    last = ran[-1] if ran else None
    values = {"exit_code": last.exit_code if last else None, "command": last.command if last else None,
              "output_lines": last.output_lines if last else None}
    return {name: values[field.observed] for name, field in phase.decision.items() if field.observed is not None}


def _valid(answer: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """``answer`` checked against ``schema`` (enums, types, bounds); raises ValueError with the reason."""
    if not isinstance(answer, dict):
        raise ValueError("not a JSON object")
    out = {}
    for name, prop in schema["properties"].items():
        value = answer.get(name)
        kind = {"string": str, "integer": int, "number": (int, float), "boolean": bool}[prop["type"]]
        if value is None or not isinstance(value, kind) or (prop["type"] != "boolean" and isinstance(value, bool)):
            raise ValueError(f"{name}: expected {prop['type']}")
        if "enum" in prop and value not in prop["enum"]:
            raise ValueError(f"{name}: {value!r} is not one of {prop['enum']}")
        if ("minimum" in prop and value < prop["minimum"]) or ("maximum" in prop and value > prop["maximum"]):
            raise ValueError(f"{name}: {value} is out of range")
        out[name] = value[:prop["maxLength"]] if isinstance(value, str) and "maxLength" in prop else value
    return out


def _decide(agent: Agent, engine: Engine, task: Task, run: Run, trace: Trace) -> None:
    phase = run.workflow.phase(run.phase or "")
    evidence = [r for r in task.records if r.kind in EVIDENCE_KINDS]
    verdicts = offered_verdicts(run, phase, evidence)
    schema = decision_schema(phase, verdicts)
    listing = ", ".join(f"{v}: {_VERDICT_MEANING[v]}" for v in verdicts)
    prompt = (f"{_situation(task)}\n\nEnd phase {phase.id} with a decision. Verdicts: {listing}. "
              "confidence and risk: low, medium or high. Answer JSON.")
    messages = [Message(role="system", content=agent.system), Message(role="user", content=prompt)]
    answer: dict[str, Any] | None = None
    problem = ""
    for _ in range(2):
        result = agent.client.complete(CompletionRequest(
            model=agent.spec.model, messages=messages, schema=schema, schema_name="PhaseDecision", max_tokens=120,
            temperature=0.0, anima=agent.name, purpose="verdict"))
        trace.usage += result.usage
        try:
            answer = _valid(json.loads(result.content, strict=False), schema)
            break
        except ValueError as e:
            problem = str(e)
            messages = [*messages, Message(role="assistant", content=result.content[:300]),
                        Message(role="user", content=f"That was not valid ({problem}). Answer the JSON again.")]
    if answer is None:
        _close(agent, engine, task, run, trace, _framework_decision(run, task, agent, f"no valid decision in 2 "
                                                                                      f"attempts ({problem})"))
        return
    # with nothing observed in the run there is nothing to hold a sentence against: it is not asked for
    observed_any = bool(evidence) or any(d.evidence for d in run.decisions)
    words = ""
    if observed_any:
        words, usage = deciding.say(agent.client, model=agent.spec.model, system=agent.system, anima=agent.name,
                                    prompt=f"{_situation(task)}\n\nYour verdict: {answer['verdict']}. In one "
                                           "sentence, say why.", purpose="verdict reason")
        trace.usage += usage
    ran = [r for r in evidence if r.kind == "ran"]
    outcomes = [outcome_of_step(r) for r in ran]
    # the reason is checked against everything the run observed: a reviewer may not call passed what the
    # implementer's pytest left at exit 5, and with nothing run at all a claimed result is invented
    run_ran = [r for d in run.decisions for r in d.evidence if r.kind == "ran"] + ran
    run_outcomes = [outcome_of_step(r) for r in run_ran]
    grounds = "\n".join([task.title, task.detail, *(f"{r.command}\n{r.output}" for r in run_ran)])
    reason = " ".join(o.sentence() for o in outcomes[-2:])
    why = None
    if words:
        why = (contradiction(words, run_outcomes) if run_outcomes else unobserved_claim(words)) \
            or ungrounded(words, grounds)
    said = ""
    if words and not why:
        said = words[:400]
        reason = f"{reason} {said}".strip()
    elif words:
        agent.org.event(reason="ReportContradicted", object=f"run/{run.id}", anima=agent.name, warning=True,
                        message=f"{agent.name}'s reason {words[:160]!r} was left out of the decision: {why}")
    fields = {k: v for k, v in answer.items() if k not in ("verdict", "confidence", "risk")}
    fields |= _observed(phase, evidence)
    fallback = f"{agent.name} decided {answer['verdict']}" + (
        "" if observed_any else " on the subject alone (nothing observed yet)")
    decision = Decision(phase=phase.id, attempt=run.attempt, agent=phase.agent, anima=agent.name,
                        verdict=answer["verdict"], confidence=answer["confidence"], risk=answer["risk"],
                        reason=(reason or fallback)[:600], said=said, fields=fields, evidence=evidence)
    _close(agent, engine, task, run, trace, decision)


_VERDICT_MEANING = {"advance": "the phase's work is done, go on", "rework": "send the work back to be redone",
                    "skip": "nothing to do in this phase", "fail": "stop the run: it cannot succeed"}


def _framework_decision(run: Run, task: Task, agent: Agent, why: str) -> Decision:
    phase = run.workflow.phase(run.phase or "")
    return Decision(phase=phase.id, attempt=run.attempt, agent=phase.agent, anima=agent.name, verdict="fail",
                    by="framework", reason=why, evidence=[r for r in task.records if r.kind in EVIDENCE_KINDS])


def _close(agent: Agent, engine: Engine, task: Task, run: Run, trace: Trace, decision: Decision) -> None:
    """Record the decision with the run first (a crash after it leaves a task the engine closes), then end the
    phase's task with the decision as its result."""
    engine.decide(run.id, decision)
    summary = f"{decision.verdict}: {decision.reason}"
    agent.org.queue(agent.name).update(task.id, by=agent.name, status="done" if decision.verdict != "fail"
                                       else "failed", result=summary[:4000], note=f"decided {summary[:200]}")
    trace.did.append(f"decided {run.workflow.name}/{decision.phase}#{decision.attempt} of {run.id}: {summary[:200]}")
