"""``workflows/<name>.yaml``: pipelines of phases, each run by an agent and ended by a verdict (docs/workflows.md).

The file follows the Animus seed's shape ("Agents and Phases"): ``agents:`` profiles, ``mcp_servers:``
defined once for the workflow, and ``phases:`` in order. A profile either binds to an Anima of the org
(``anima: bob``: its identity, memory and permissions) or stands alone (its own ``model``, ``system_prompt``,
``persona`` and ``permissions``; no memory beyond the run's record; it talks only through the run)::

    description: triage, implement, review, test
    agents:
      triager: {anima: alice}
      implementer: {anima: bob, mcp_servers: [files]}
    mcp_servers:
      files: {command: [python, -m, files_server], description: read the repo's files}
    phases:
      - id: triage
        agent: triager
        decision:
          kind: {type: string, enum: [code, docs]}
      - id: implement
        agent: implementer
        skip_if: 'decisions.triage.kind == "docs"'
      - id: review
        agent: triager
        max_rework_attempts: 2
        on_verdict: {rework: implement}

Routing: a phase's verdict (``advance``, ``rework``, ``skip``, ``fail``) goes where ``on_verdict`` says:
a phase id, :data:`FINISH` (the run succeeds) or :data:`FAIL` (the run fails), or a list of
``{when: CEL, goto: target}`` tried in order. Unrouted, ``advance`` and ``skip`` go to the next phase (after
the last: finish), ``fail`` fails the run, and ``rework`` is not offered at all. A route back to the same or
an earlier phase is a rework loop: the phase needs ``max_rework_attempts``.

Everything that can be checked before a run is checked here, with the file and line: unknown agents,
Animas, phases, targets and servers; phases no route reaches; loops without a limit; guards (CEL, with
cel-python) that do not parse. What a guard sees is :data:`GUARD_VARIABLES`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, model_validator

from orgctl.desired.documents import Located
from orgctl.desired.permissions import MCP_TOOL, PermissionsFrontmatter
from orgctl.desired.values import Model, OrShorthand
from orgctl.errors import Diagnostic

WORKFLOWS_DIR = "workflows"
VERDICTS = ("advance", "rework", "skip", "fail")
Verdict = Literal["advance", "rework", "skip", "fail"]
FINISH, FAIL = "finish", "fail"
"""The two targets that end a run: succeeded, failed. No phase may be named so."""
CORE_FIELDS = ("verdict", "reason", "confidence", "risk", "evidence")
"""Every phase decision's shared core (:mod:`orgctl.work.runs`); phase-local fields may not reuse the names."""
LEVELS = ("low", "medium", "high")
"""The closed answers of ``confidence`` and ``risk``."""
GUARD_VARIABLES = {
    "task": "the task the run works on: {id, title, detail, requester} (id and requester empty when started "
            "by `workflow run`)",
    "subject": "the run's subject, a string (the task's title and detail)",
    "decisions": "the latest decision of each finished phase, by phase id: {verdict, reason, confidence, risk, "
                 "<phase-local fields>}; a phase not yet decided is absent (test with `has(decisions.id)`)",
    "decision": "in a `when:` of on_verdict: the decision being routed; in skip_if: absent",
    "run": "{id, workflow, revision, phase, attempts: {phase id: reworks so far}}",
}
"""The variables a guard (``skip_if``, ``when``) is evaluated with. A guard that refers to anything else, or
errors, fails the run closed: nothing is skipped or routed on an error."""
STANDALONE_TOOLS = ("run_command",)
"""The built-in tools a standalone agent may list (beside ``mcp:`` ones): it has no memory and talks only
through the run, so no messaging, Board, delegation, memory or org tool means anything for it."""
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PhaseId = Annotated[StrictStr, Field(pattern=_ID.pattern)]
FieldName = Annotated[StrictStr, Field(pattern=_FIELD.pattern)]


class McpServer(_Strict):
    """One MCP server (stdio transport), started for a run and stopped after it (:mod:`orgctl.runtime.mcp`)."""

    command: list[StrictStr] = Field(min_length=1, description="argv of the server; run without a shell, in the "
                                                               "run's directory")
    env: dict[StrictStr, StrictStr] = Field(default={}, description="extra environment variables (no secrets: "
                                            "this file is in git; name them with ${VAR} to pass one through)")
    description: StrictStr = ""
    timeout_seconds: StrictInt = Field(default=30, ge=1, le=600, description="per tool call and for start-up")


class Persona(_Strict):
    """How a standalone agent speaks: one line of its system prompt."""

    style: StrictStr = ""
    traits: list[StrictStr] = []


class AgentProfile(_Strict):
    """An agent of the workflow: bound to an Anima (``anima``) or standalone."""

    anima: StrictStr | None = Field(default=None, description="the Anima this agent is (its folder under animas/): "
                                    "its identity, model, memory and permissions; null: a standalone agent")
    model: Model | None = Field(default=None, description="standalone only; default: org.yaml defaults.model")
    system_prompt: StrictStr = Field(default="", description="what the agent is for in this workflow (a bound "
                                     "agent gets it after its own identity)")
    persona: Persona = Persona()
    memory: Literal["anima", "run"] | None = Field(default=None, description="anima: the bound Anima's memory "
                                                   "(primed, and the run recorded in it); run: the run's record "
                                                   "only (standalone agents); default by binding")
    communication: list[Literal["run", "inbox"]] = Field(default=["run"], description="run: the run's record; "
                                                         "inbox: the bound Anima may also be messaged about it")
    mcp_servers: list[StrictStr] = Field(default=[], description="names from the workflow's mcp_servers")
    permissions: PermissionsFrontmatter | None = Field(default=None, description="standalone only: what it may "
                                                       "run (the same keys as permissions.md; default: nothing)")


class DecisionField(_Strict):
    """A phase-local decision field, sent to the model inside the decision's JSON schema."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    enum: list[StrictStr | StrictInt] | None = Field(default=None, description="the closed set of answers")
    description: StrictStr = ""
    max_length: StrictInt = Field(default=120, ge=1, le=400, description="strings: at most this many characters")
    minimum: StrictInt | None = None
    maximum: StrictInt | None = None
    observed: Literal["exit_code", "command", "output_lines"] | None = Field(default=None, description="filled "
                                        "by the framework from the phase's last command, never asked of the model")

    @model_validator(mode="after")
    def _enum_fits(self) -> DecisionField:
        if self.enum is not None:
            if not self.enum:
                raise ValueError("enum must list at least one value")
            wanted = str if self.type == "string" else int if self.type in ("integer", "number") else None
            if wanted is None or any(not isinstance(v, wanted) for v in self.enum):
                raise ValueError(f"enum values must all be of type {self.type} (booleans take no enum)")
        return self

    def json_schema(self) -> dict[str, Any]:
        """This field's JSON Schema for the model's answer."""
        schema: dict[str, Any] = {"type": self.type}
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        elif self.type == "string":
            schema["maxLength"] = self.max_length
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None and self.type in ("integer", "number"):
                schema[key] = getattr(self, key)
        return schema


class Route(_Strict):
    """One routing rule: go to ``goto`` when the CEL expression ``when`` holds (no ``when``: always)."""

    when: StrictStr | None = None
    goto: StrictStr


def _routes(value: Any) -> Any:
    """``rework: implement`` is short for ``rework: [{goto: implement}]``."""
    if isinstance(value, str):
        return [{"goto": value}]
    return value


Routes = Annotated[list[Route], BeforeValidator(_routes), OrShorthand({"type": "string"})]


class Phase(_Strict):
    """One phase: its agent works on the subject and ends with a decision whose verdict routes the run."""

    id: PhaseId
    agent: StrictStr
    description: StrictStr = Field(default="", description="what the phase is for: the agent's instructions")
    max_rework_attempts: StrictInt | None = Field(default=None, ge=0, le=20, description="how often this phase "
                                                  "may send the run back; one more fails the run")
    skip_if: StrictStr | None = Field(default=None, description="CEL: when true, the phase is skipped (recorded)")
    on_verdict: dict[Verdict, Routes] = Field(default={}, description="verdict -> target phase id, finish or "
                                              "fail, or a list of {when, goto}")
    decision: dict[FieldName, DecisionField] = Field(default={}, description="phase-local decision fields")


class WorkflowFile(_Strict):
    """``workflows/<name>.yaml``."""

    description: StrictStr = ""
    agents: dict[StrictStr, AgentProfile] = Field(min_length=1)
    mcp_servers: dict[StrictStr, McpServer] = {}
    phases: list[Phase] = Field(min_length=1)
    max_concurrent_runs: StrictInt = Field(default=4, ge=1, le=64, description="runs of this workflow that make "
                                           "progress at once; more wait, queued")


class WorkflowSpec(BaseModel):
    """A validated workflow: its name (the file's stem), file, text digest and content."""

    model_config = ConfigDict(frozen=True)

    name: str
    file: str
    digest: str = Field(description="sha256 of the validated content (:func:`workflow_digest`)")
    spec: WorkflowFile

    def runner(self, agent: str) -> str:
        """Who runs ``agent``'s phases: its Anima, or for a standalone agent :func:`standalone_name`."""
        return self.spec.agents[agent].anima or standalone_name(self.name, agent)

    @property
    def bound_animas(self) -> set[str]:
        """The Animas the workflow's agents bind to."""
        return {p.anima for p in self.spec.agents.values() if p.anima}

    def with_default_model(self, model: str) -> WorkflowSpec:
        """This workflow with ``model`` (org.yaml's ``defaults.model``) written into each standalone agent that
        names none, so the snapshot says what runs, and a change of the default is a change of the workflow."""
        agents = {n: p.model_copy(update={"model": model}) if p.anima is None and p.model is None else p
                  for n, p in self.spec.agents.items()}
        if agents == self.spec.agents:
            return self
        spec = self.spec.model_copy(update={"agents": agents})
        return self.model_copy(update={"spec": spec, "digest": workflow_digest(spec)})

    def phase(self, phase_id: str) -> Phase:
        """The phase called ``phase_id``. Raises KeyError."""
        for p in self.spec.phases:
            if p.id == phase_id:
                return p
        raise KeyError(phase_id)

    def index(self, phase_id: str) -> int:
        return [p.id for p in self.spec.phases].index(phase_id)

    def offered(self, phase: Phase) -> list[str]:
        """The verdicts the phase's decision may take: rework only when it is routed somewhere."""
        return [v for v in VERDICTS if v != "rework" or "rework" in phase.on_verdict]

    def default_target(self, phase: Phase, verdict: str) -> str:
        """Where ``verdict`` goes when no route of ``on_verdict`` applies."""
        if verdict == "fail":
            return FAIL
        i = self.index(phase.id)
        return self.spec.phases[i + 1].id if i + 1 < len(self.spec.phases) else FINISH

    def targets(self, phase: Phase) -> set[str]:
        """Every target a decision of ``phase`` may route to."""
        out = {r.goto for routes in phase.on_verdict.values() for r in routes}
        for verdict in self.offered(phase):
            routes = phase.on_verdict.get(verdict, [])  # type: ignore[call-overload]
            if not routes or routes[-1].when is not None:
                out.add(self.default_target(phase, verdict))
        return out

    def loops_back(self, phase: Phase, target: str) -> bool:
        """True when routing ``phase`` to ``target`` returns to it or to an earlier phase (a rework loop)."""
        return target not in (FINISH, FAIL) and self.index(target) <= self.index(phase.id)


def standalone_name(workflow: str, agent: str) -> str:
    """``<agent>@<workflow>``: the name a standalone agent's phases run under (its task queue, its events, its
    per-run workspace). ``@`` is in no Anima name (:func:`orgctl.desired.loading.check_name`), so it is never
    one."""
    return f"{agent}@{workflow}"


def is_standalone_name(name: str) -> bool:
    """Whether ``name`` (a queue's, a decision's ``anima``) is a standalone agent's :func:`standalone_name`."""
    return "@" in name


@functools.lru_cache(maxsize=1)
def _cel_environment() -> Any:
    import celpy  # cel-python: pure Python, imported only where a guard is compiled (~0.1 s)

    return celpy.Environment()


@functools.lru_cache(maxsize=1024)
def _parse(expression: str) -> Any:
    import celpy

    try:
        return _cel_environment().compile(expression)
    except celpy.CELParseError as e:
        near = expression[max(0, (e.column or 1) - 1):][:20]
        raise ValueError(f"syntax error at column {e.column}" + (f" (near {near!r})" if near else
                                                                 " (the expression ends too soon)")) from e


@functools.lru_cache(maxsize=1024)
def compile_guard(expression: str) -> Any:
    """A cel-python program for the CEL ``expression``, cached by text; ``program.evaluate(activation)`` runs it.
    Raises ValueError (with the column) when it does not parse."""
    return _cel_environment().program(_parse(expression))


_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _seen(kind: str) -> list[str]:
    return [v for v in GUARD_VARIABLES if kind != "skip_if" or v != "decision"]


@functools.lru_cache(maxsize=1024)
def guard_names(expression: str) -> frozenset[str]:
    """The free variables of the CEL ``expression`` (names a macro such as ``exists(x, ...)`` binds are not
    free). Raises ValueError when it does not parse."""
    import lark

    names, bound = set(), set()
    for node in _parse(expression).iter_subtrees():
        if node.data == "ident":
            names.add(str(node.children[0]))
        if node.data == "member_dot_arg" and len(node.children) == 3 and str(node.children[1]) in _MACROS:
            first = node.children[2].children[0] if node.children[2].children else None
            bound.update(str(t) for t in (first.scan_values(lambda v: isinstance(v, lark.Token)
                                                             and v.type == "IDENT") if first is not None else ()))
    return frozenset(names - bound)


def check_workflow(name: str, file: str, workflow: WorkflowFile, located: Located, *,
                   animas: set[str]) -> list[Diagnostic]:
    """Every problem of ``workflow`` that its schema cannot see, with its line: unknown Animas, agents, servers,
    phases and targets, duplicate phase ids, reserved names, profiles that mix binding and standalone keys,
    unreachable phases, rework loops without a limit, guards that do not parse. ``animas``: the org's names."""
    diags: list[Diagnostic] = []

    def at(*loc: Any) -> int:
        return located.line_of(loc)

    for agent_name, profile in workflow.agents.items():
        where = ("agents", agent_name)
        if not _ID.match(agent_name):
            diags.append(Diagnostic(file, at(*where), f"agent name {agent_name!r}: use lowercase letters, digits, "
                                    "'-' and '_', starting with a letter (at most 63 characters)"))
        if profile.anima is not None:
            if profile.anima not in animas:
                diags.append(Diagnostic(file, at(*where, "anima"), f"agent {agent_name!r}: unknown Anima "
                                        f"{profile.anima!r}: there is no animas/{profile.anima}/"))
            for key, why in (("permissions", "its permissions are the Anima's permissions.md"),
                             ("model", "it runs on the Anima's model")):
                if getattr(profile, key) is not None:
                    diags.append(Diagnostic(file, at(*where, key), f"agent {agent_name!r} is bound to "
                                            f"{profile.anima!r}: `{key}` is not allowed ({why})"))
        else:
            if profile.memory == "anima":
                diags.append(Diagnostic(file, at(*where, "memory"), f"agent {agent_name!r} is standalone (no "
                                        "`anima:`): it has no memory beyond the run's record (memory: run)"))
            if "inbox" in profile.communication:
                diags.append(Diagnostic(file, at(*where, "communication"), f"agent {agent_name!r} is standalone: "
                                        "it talks only through the run (communication: [run])"))
            perms = profile.permissions
            for i, tool in enumerate(perms.tools if perms is not None else []):
                if tool not in STANDALONE_TOOLS and not MCP_TOOL.match(tool):
                    diags.append(Diagnostic(file, at(*where, "permissions", "tools", i), f"agent {agent_name!r} "
                                            f"is standalone: tool {tool!r} is not available to it (it has no "
                                            "memory and talks only through the run; it may list run_command "
                                            "and mcp:<server>[.<tool>])"))
            if perms is not None and perms.ask:
                diags.append(Diagnostic(file, at(*where, "permissions", "ask"), f"agent {agent_name!r} is "
                                        "standalone: `ask:` needs an Anima to resume after a person approves "
                                        "(use deny:, or bind the agent to an Anima)"))
        for i, server in enumerate(profile.mcp_servers):
            if server not in workflow.mcp_servers:
                known = ", ".join(sorted(workflow.mcp_servers)) or "none are defined"
                diags.append(Diagnostic(file, at(*where, "mcp_servers", i), f"agent {agent_name!r}: unknown MCP "
                                        f"server {server!r} (the workflow's mcp_servers: {known})"))

    ids: dict[str, int] = {}
    known = {p.id for p in workflow.phases}
    for i, phase in enumerate(workflow.phases):
        if phase.id in (FINISH, FAIL):
            diags.append(Diagnostic(file, at("phases", i, "id"), f"phase id {phase.id!r} is reserved: it is the "
                                    "target that ends a run"))
        elif phase.id in ids:
            diags.append(Diagnostic(file, at("phases", i, "id"), f"duplicate phase id {phase.id!r} (first at "
                                    f"phases[{ids[phase.id]}])"))
        ids.setdefault(phase.id, i)
        if phase.agent not in workflow.agents:
            diags.append(Diagnostic(file, at("phases", i, "agent"), f"phase {phase.id!r}: unknown agent "
                                    f"{phase.agent!r} (agents: {', '.join(sorted(workflow.agents))})"))
        for key in phase.decision:
            if key in CORE_FIELDS:
                diags.append(Diagnostic(file, at("phases", i, "decision", key), f"phase {phase.id!r}: "
                                        f"`{key}` is a core decision field ({', '.join(CORE_FIELDS)})"))
        guards = [(("skip_if",), phase.skip_if)] + [
            (("on_verdict", verdict, j, "when"), route.when)
            for verdict, routes in phase.on_verdict.items() for j, route in enumerate(routes)]
        for loc, expression in guards:
            if expression is None:
                continue
            try:
                unknown = guard_names(expression) - set(GUARD_VARIABLES) | (
                    {"decision"} & guard_names(expression) if loc == ("skip_if",) else set())
            except ValueError as e:
                diags.append(Diagnostic(file, at("phases", i, *loc), f"phase {phase.id!r}: guard does not parse "
                                        f"as CEL: {e}"))
                continue
            if unknown:
                diags.append(Diagnostic(file, at("phases", i, *loc), f"phase {phase.id!r}: guard uses unknown "
                                        f"variable{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))} "
                                        f"(a {loc[0]} guard sees {', '.join(_seen(loc[0]))})"))
        for verdict, routes in phase.on_verdict.items():
            for j, route in enumerate(routes):
                if route.goto not in (FINISH, FAIL) and route.goto not in known:
                    diags.append(Diagnostic(file, at("phases", i, "on_verdict", verdict, j), f"phase {phase.id!r}: "
                                            f"{verdict} goes to unknown phase {route.goto!r} (phases: "
                                            f"{', '.join(p.id for p in workflow.phases)}; or {FINISH}, {FAIL})"))
    if diags:
        return diags
    return _check_graph(WorkflowSpec(name=name, file=file, digest="", spec=workflow), located)


def _check_graph(workflow: WorkflowSpec, located: Located) -> list[Diagnostic]:
    """Phases no route reaches from the first, and rework loops without ``max_rework_attempts``."""
    diags = []
    phases = workflow.spec.phases
    reached, todo = {phases[0].id}, [phases[0]]
    while todo:
        phase = todo.pop()
        for target in workflow.targets(phase):
            if target not in (FINISH, FAIL) and target not in reached:
                reached.add(target)
                todo.append(workflow.phase(target))
    for i, phase in enumerate(phases):
        if phase.id not in reached:
            diags.append(Diagnostic(workflow.file, located.line_of(("phases", i, "id")), f"phase {phase.id!r} "
                                    "is unreachable: no route from the first phase leads to it"))
        back = sorted(t for t in workflow.targets(phase) if workflow.loops_back(phase, t))
        if back and phase.max_rework_attempts is None:
            diags.append(Diagnostic(workflow.file, located.line_of(("phases", i, "on_verdict")),
                                    f"phase {phase.id!r} routes back to {', '.join(map(repr, back))}: a rework "
                                    "loop needs a limit (max_rework_attempts: N)"))
    return diags


def workflow_digest(workflow: WorkflowFile) -> str:
    """sha256 of the validated content (key order and comments are no change; a default written out is none)."""
    return hashlib.sha256(json.dumps(workflow.model_dump(mode="json"), sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()
