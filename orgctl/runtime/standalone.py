"""Standalone workflow agents: phases whose agent binds no Anima (docs/workflows.md#standalone-agents).

A profile without ``anima:`` declares everything itself in the workflow file: its ``model`` (default:
org.yaml's ``defaults.model``, written in at load time), ``system_prompt``, ``persona`` and ``permissions``
(``run_command`` and ``mcp:`` tools only, no ``ask:``: :func:`orgctl.desired.workflows.check_workflow`).
It has no memory beyond the run's record and talks only through the run: no inbox, no heartbeat, no
episodes. Its phases run under the name ``<agent>@<workflow>`` (:func:`standalone_name`; ``@`` is in no
Anima name), as a task in that name's queue, on the same phase cycle as a bound agent's
(:func:`orgctl.runtime.phases.run_phase`): the same closed choices, hard blocks, command sandbox, MCP tools
and decision. Its workspace belongs to the run (``workspaces/<run id>.<agent>@<workflow>``, empty at the
start, removed when the run has ended), so nothing carries from one run to the next.

Who runs it: the supervisor starts one short-lived process per standalone phase in progress
(:class:`PhaseWorkers`, ``python -m orgctl.runtime.standalone``; keyless, its model calls and command
ranking over the supervisor's socket, as an Anima process), restarting one that dies up to
:data:`MAX_STARTS` times, after which the phase's task fails and the run fails closed; a tick runs them
in-process (:func:`run_pending`). A killed worker loses nothing: the task's steps and the run's log are on
disk, and the restarted one resumes the phase where they end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orgctl.desired.models import AnimaSpec, OrgPlacement, SandboxConfig
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.desired.workflows import WorkflowSpec, standalone_name
from orgctl.paths import StatePaths
from orgctl.runtime.cycle import Agent, Trace
from orgctl.runtime.permissions import Policy
from orgctl.work.runs import Run
from orgctl.work.tasks import FINAL

log = logging.getLogger("orgctl.standalone")

MAX_STARTS = 3
"""Worker processes one standalone phase gets: one that exits with the phase still in progress is started
again, up to this many in all; then the phase's task fails (the run fails closed, with the reason)."""


def is_standalone(run: Run) -> bool:
    """Whether ``run``'s phase in progress belongs to a standalone agent."""
    if not run.active or run.phase is None or run.phase_task is None:
        return False
    return run.workflow.spec.agents[run.workflow.phase(run.phase).agent].anima is None


def pending(org: Any) -> list[Run]:
    """The active runs whose phase in progress is a standalone agent's and whose task is still in progress."""
    out = []
    for run in org.runs.all():
        if is_standalone(run) and run.phase_anima:
            task = org.queue(run.phase_anima).get(run.phase_task)
            if task is not None and task.status not in FINAL:
                out.append(run)
    return out


def workspace_of(paths: StatePaths, run: Run, runner: str) -> Path:
    """``workspaces/<run id>.<agent>@<workflow>``: the standalone agent's workspace for this run only."""
    return paths.workspace(f"{run.id}.{runner}")


def _system(workflow: WorkflowSpec, agent: str, spec: AnimaSpec) -> str:
    profile = workflow.spec.agents[agent]
    parts = [f"You are {agent}, an agent of the workflow {workflow.name} in an organization of AI agents.",
             profile.system_prompt.strip()]
    if profile.persona.style or profile.persona.traits:
        parts.append(" ".join(p for p in (f"Style: {profile.persona.style}." if profile.persona.style else "",
                                          f"Traits: {', '.join(profile.persona.traits)}."
                                          if profile.persona.traits else "") if p))
    parts.append(f"Tools you may use: {', '.join(spec.permissions.tools) or 'none'}.")
    parts.append("You choose among the listed choices; the organization carries them out.")
    return "\n\n".join(p for p in parts if p)


def _sandbox(org: Any) -> SandboxConfig:
    """org.yaml's ``sandbox:`` as applied (every Anima's snapshot carries the same); the default (on) when no
    Anima is applied."""
    for name in org.specs:
        return org.specs[name].sandbox  # type: ignore[no-any-return]
    return SandboxConfig()


def standalone_agent(org: Any, run: Run, *, client: Any, recall: Any = None) -> Agent:
    """An :class:`Agent` for the standalone agent of ``run``'s phase in progress: named ``<agent>@<workflow>``,
    on its profile's model, prompt and permissions, in the run's workspace for it, with no memory store.
    ``recall`` is used only to rank commands by meaning (its tools never include ``search_memory``).
    Raises KeyError when the run has no phase in progress."""
    workflow = run.workflow
    agent = workflow.phase(run.phase or "").agent
    profile = workflow.spec.agents[agent]
    name = standalone_name(workflow.name, agent)
    permissions = profile.permissions or PermissionsFrontmatter()
    sandbox = _sandbox(org)
    model = str(profile.model or "")
    spec = AnimaSpec(name=name, role="general", model=model, background_model=model, heartbeat_interval=1800,
                     active_hours="always", timezone="UTC", enabled=True, identity=profile.system_prompt,
                     injection="", permissions=permissions, permissions_text="", cron=[],
                     org=OrgPlacement(supervisor=None, reports=[], peers=[], chain=[]), files={}, sandbox=sandbox)
    workspace = workspace_of(org.paths, run, name)
    workspace.mkdir(parents=True, exist_ok=True)
    out = Agent(spec=spec, org=org, client=client, store=None, recall=recall, revision=run.revision,
                policy=Policy(permissions, workspace=workspace, sandbox=sandbox,
                              source=f"{workflow.file} agents.{agent}.permissions"))
    out.system = _system(workflow, agent, spec)
    return out


def run_standalone_phase(org: Any, run_id: str, *, client: Any, recall: Any = None,
                         now: Callable[[], datetime] | None = None) -> Trace | None:
    """Run ``run_id``'s standalone phase in progress to its decision, here; None when it has none (ended,
    bound, or decided meanwhile). Afterwards a run that has ended leaves no workspace."""
    from orgctl.runtime.phases import run_phase

    run = org.runs.get(run_id)
    if run is None or not is_standalone(run):
        return None
    trace = run_phase(standalone_agent(org, run, client=client, recall=recall), run.phase_task or "",
                      now=now or (lambda: datetime.now(UTC)))
    sweep_workspaces(org)
    return trace


def run_pending(org: Any, *, client: Any, recall: Any = None, mine: Callable[[str], bool] = lambda name: True,
                more: Callable[[], bool] = lambda: True, limit: int = 16) -> int:
    """Run standalone phases in progress in this process until none is left (a run whose next phase is also
    standalone goes on), at most ``limit``, while ``more()``; ``mine(name)`` picks this host's share (a tick's
    shard). Returns how many phases ran. What a tick does instead of :class:`PhaseWorkers`."""
    from orgctl.runtime.workflows import Engine

    ran = 0
    while ran < limit and more():
        todo = [r for r in pending(org) if mine(r.phase_anima or "")]
        if not todo:
            break
        run_standalone_phase(org, todo[0].id, client=client, recall=recall)
        Engine(org, org.runs).advance(todo[0].id)
        ran += 1
    return ran


def sweep_workspaces(org: Any) -> list[str]:
    """Remove the standalone workspaces of runs that have ended (or whose log is gone); the names removed."""
    root = org.paths.root / "workspaces"
    removed = []
    for folder in sorted(root.glob("r-*.*@*")) if root.is_dir() else []:
        run = org.runs.get(folder.name.split(".", 1)[0])
        if folder.is_dir() and not folder.is_symlink() and (run is None or not run.active):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


class PhaseWorkers:
    """The supervisor's standalone phase processes, by phase task id (see the module docstring).

    ``start(run)`` returns the process for the run's phase (default: ``python -m orgctl.runtime.standalone``
    with a keyless environment, its output appended to ``logs/<agent>@<workflow>.log``)."""

    def __init__(self, paths: StatePaths, *, start: Callable[[Run], subprocess.Popen[bytes]] | None = None) -> None:
        self.paths = paths
        self._start = start or self._spawn
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._starts: dict[str, int] = {}
        self._lock = threading.Lock()  # a pass and stop_all never interleave: none starts after the stop
        self._closed = False

    def _spawn(self, run: Run) -> subprocess.Popen[bytes]:
        from orgctl.processes import keyless_env
        from orgctl.state.files import open_log

        with open_log(self.paths.logs / f"{run.phase_anima}.log") as out:
            return subprocess.Popen([sys.executable, "-m", "orgctl.runtime.standalone", "--state-dir",
                                     str(self.paths.root), "--run", run.id], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=keyless_env(state_root=self.paths.root))

    @property
    def running(self) -> dict[str, int]:
        """The live workers: ``{phase task id: pid}``."""
        return {t: p.pid for t, p in self._procs.items() if p.poll() is None}

    def reconcile(self, org: Any) -> None:
        """Reap the workers that ended; start one for each standalone phase in progress that has none; fail the
        task of a phase whose workers died :data:`MAX_STARTS` times (the engine then fails the run)."""
        with self._lock:
            if not self._closed:
                self._reconcile(org)

    def _reconcile(self, org: Any) -> None:
        from orgctl.runtime.workflows import Engine

        for task_id, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[task_id]
        for run in pending(org):
            task_id, runner = run.phase_task or "", run.phase_anima or ""
            if task_id in self._procs:
                continue
            if self._starts.get(task_id, 0) >= MAX_STARTS:
                org.queue(runner).update(task_id, by="orgctl", status="failed",
                                         note=f"its worker process ended {MAX_STARTS} times before a decision "
                                              f"(see logs/{runner}.log)")
                org.event(reason="WorkflowPhaseCrashed", object=f"run/{run.id}", anima=runner, warning=True,
                          message=f"{run.id}: {runner}'s worker for {task_id} ended {MAX_STARTS} times "
                                  "before a decision")
                Engine(org, org.runs).advance(run.id)
                continue
            self._starts[task_id] = self._starts.get(task_id, 0) + 1
            self._procs[task_id] = self._start(run)
            log.info("started %s's phase %s of %s (pid %s)", runner, task_id, run.id, self._procs[task_id].pid)
        sweep_workspaces(org)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every worker, SIGKILL after ``grace`` seconds; the phases resume with the next supervisor.
        No worker starts after it."""
        with self._lock:
            self._closed = True
        for proc in self._procs.values():
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


def main(argv: list[str] | None = None) -> None:
    """``python -m orgctl.runtime.standalone --state-dir S --run R``: run R's standalone phase in progress."""
    from orgctl.processes import die_with_parent
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.services import Services

    parser = argparse.ArgumentParser(prog="python -m orgctl.runtime.standalone")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--run", required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    paths = StatePaths(root=args.state_dir.resolve())
    services = Services.over_socket(paths)
    org = Organization(paths=paths, wake=services.wake, notifier=services.notifier)
    trace = run_standalone_phase(org, args.run, client=services.model, recall=services.memory)
    if trace is not None:
        print(f"{args.run}: {'; '.join(trace.did)[:300] or 'no step'}"
              f"{' FAILED: ' + trace.failed if trace.failed else ''}", file=sys.stderr)


if __name__ == "__main__":
    main()
