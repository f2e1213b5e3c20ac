"""The template workflow (workflows/task.yaml: triage -> implement -> review -> test) on the real embedded model
(SmolLM2-135M via llama.cpp on loopback), with the template's three Animas applied as real processes.

With so small a model the verdicts are poor; what is asserted is the framework's part: the run finishes
(succeeded or failed) within bounds, every transition is valid (each verdict one the phase was offered, each
target the phase's route for it), every reason is true to the run's evidence, the person who started it gets
the outcome, and the run is recorded as one memory commit with its trailers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orgctl.paths import StatePaths
from orgctl.runtime.organization import Organization
from orgctl.runtime.outcomes import contradiction, outcome_of_step
from tests.conftest import commit_all, edit, git, run_cli

pytestmark = pytest.mark.e2e
SUBJECT = "Run the test suite and report whether it passes"


def test_the_template_workflow_runs_to_its_end_with_every_transition_valid(running: Path,
                                                                           state: StatePaths) -> None:
    org_dir = running
    edit(org_dir / "org.yaml", 'active_hours: "08:00-20:00"', "active_hours: always")
    edit(org_dir / "animas/carol/anima.yaml", 'active_hours: "09:00-17:00"', "active_hours: always")
    commit_all(org_dir, "awake all day")
    assert run_cli("apply", str(org_dir), "--auto-approve").exit_code == 0
    started = run_cli("workflow", "run", "task", "--subject", SUBJECT, "--json", "-C", str(org_dir))
    assert started.exit_code == 0, started.output
    run_id = json.loads(started.output)["id"]

    org = Organization.with_services(state)
    deadline = time.monotonic() + 600
    while (run := org.runs.require(run_id)).active:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status} at {run.phase}"
        time.sleep(1)
    assert run.status in ("succeeded", "failed") and run.reason

    flow = run.workflow
    ran = []
    for d in run.decisions:
        phase = flow.phase(d.phase)
        assert d.verdict in flow.offered(phase), d
        assert d.target in flow.targets(phase) | {"fail"}, d  # fail: also where an exhausted rework limit goes
        ran += [e for e in d.evidence if e.kind == "ran"]
        outcomes = [outcome_of_step(e) for e in ran]
        assert contradiction(d.said, outcomes) is None, d.reason  # no reason claims what the evidence denies
    assert run.decisions[0].phase == "triage" and run.decisions[0].anima == "alice"

    log = run_cli("workflow", "log", run_id, "-C", str(org_dir))
    assert log.exit_code == 0 and f"run {run.status}" in log.output
    assert any(f"run {run_id} {run.status}" in m.text for m in org.inbox("human").unread())

    deadline = time.monotonic() + 60  # the supervisor's periodic pass commits the record
    while not org.runs.require(run_id).recorded:
        assert time.monotonic() < deadline, "the run was never recorded in memory"
        time.sleep(1)
    trailers = git(state.clone, "log", "-1", f"--grep=^Orgctl-Run: {run_id}$", "--format=%(trailers)")
    assert f"Orgctl-Run: {run_id}" in trailers and "Orgctl-Workflow: task" in trailers
    assert f"Orgctl-Status: {run.status}" in trailers and "Orgctl-Verdicts: triage=" in trailers


SLOW_SUITE = """\
import pathlib
import time


def test_slow():
    marker = pathlib.Path("started")
    if not marker.exists():  # the first run only: the runtime is killed while it waits
        marker.write_text("started")
        time.sleep(60)
"""


RESUME_FLOW = """\
agents:
  first: {anima: alice}
  implementer: {anima: bob}
phases:
  - id: triage
    agent: first
    on_verdict: {fail: implement}  # whatever the tiny model decides, the run reaches implement
  - id: implement
    agent: implementer
    description: Run the test suite and report whether it passes.
"""


def test_a_run_survives_sigkill_of_the_runtime_mid_phase(running: Path, state: StatePaths) -> None:
    """The supervisor is killed with SIGKILL while bob's implement phase runs ``pytest -q`` in the sandbox (its
    Animas and the command die with it). ``orgctl apply`` starts the runtime again; the run resumes at implement
    (attempt 1, its task the same) and goes on to its end, and triage, finished before the kill, is not redone."""
    import os
    import signal

    from orgctl.state.runtimes import load_runtime
    from tests.conftest import anima_processes, wait_for

    org_dir = running
    edit(org_dir / "org.yaml", 'active_hours: "08:00-20:00"', "active_hours: always")
    edit(org_dir / "animas/carol/anima.yaml", 'active_hours: "09:00-17:00"', "active_hours: always")
    (org_dir / "test_slow.py").write_text(SLOW_SUITE)  # bob's workspace is a clone of the repo
    (org_dir / "workflows" / "resume.yaml").write_text(RESUME_FLOW)
    commit_all(org_dir, "awake all day; a slow test suite; a workflow whose triage always leads to implement")
    assert run_cli("apply", str(org_dir), "--auto-approve").exit_code == 0
    started = run_cli("workflow", "run", "resume", "--subject", SUBJECT, "--json", "-C", str(org_dir))
    run_id = json.loads(started.output)["id"]
    org = Organization.with_services(state)
    marker = state.workspace("bob") / "started"
    wait_for(lambda: marker.exists(), timeout=300, what="bob's pytest to start in the implement phase")
    before = org.runs.require(run_id)
    assert (before.phase, [d.phase for d in before.decisions]) == ("implement", ["triage"])
    supervisor = load_runtime(state.runtime).supervisor_pid
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not anima_processes(state), timeout=30, what="the Animas to die with their supervisor")

    assert run_cli("apply", str(org_dir), "--auto-approve").exit_code == 0
    deadline = time.monotonic() + 600
    while (run := org.runs.require(run_id)).active:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status} at {run.phase}"
        time.sleep(1)
    phases = [(d.phase, d.attempt) for d in run.decisions]
    assert phases[0] == ("triage", 1) and phases.count(("triage", 1)) == 1  # not redone
    assert phases[1] == ("implement", 1) and run.decisions[0].at == before.decisions[0].at
    implement = run.decisions[1]
    assert any(e.kind == "ran" and e.command == "pytest -q" and e.exit_code == 0 for e in implement.evidence)


AUDIT_FLOW = """\
agents:
  checker:
    system_prompt: You make sure the build has settled before anyone looks at it.
    persona: {style: brief}
    permissions:
      tools: [run_command]
      commands:
        - {command: sleep 6, description: wait for the build to settle and report when it has}
phases:
  - id: settle
    agent: checker
    description: Wait for the build to settle, then report.
"""


def _processes(*needles: bytes) -> list[int]:
    """Live processes whose command line holds every one of ``needles``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if argv and all(n in argv for n in needles):
                found.append(int(entry.name))
    return found


def test_a_standalone_phase_runs_in_a_worker_process_that_survives_sigkill(running: Path, state: StatePaths) -> None:
    """A standalone agent (no ``anima:``) on the real embedded model: the supervisor runs its phase in a worker
    process of its own (``python -m orgctl.runtime.standalone``), whose sandboxed ``sleep 6`` is its command.
    The worker is killed with SIGKILL while the command runs (the sandbox dies with it); the supervisor's next
    pass starts another, which resumes the same phase task (attempt 1), and the run ends with one decision by
    ``checker@audit``. Afterwards no worker, no sandbox and no workspace of the run is left, and the run is in
    no Anima's memory (it bound none)."""
    import os
    import signal

    from tests.conftest import wait_for

    org_dir = running
    (org_dir / "workflows" / "audit.yaml").write_text(AUDIT_FLOW)
    commit_all(org_dir, "a workflow with a standalone agent")
    assert run_cli("apply", str(org_dir), "--auto-approve").exit_code == 0
    started = run_cli("workflow", "run", "audit", "--subject", "Wait for the build to settle", "--json",
                      "-C", str(org_dir))
    assert started.exit_code == 0, started.output
    run_id = json.loads(started.output)["id"]
    worker = (b"orgctl.runtime.standalone", run_id.encode())
    first = wait_for(lambda: _processes(*worker), timeout=60, what="the supervisor to start the phase's worker")
    wait_for(lambda: _processes(b"sleep\0" + b"6\0"), timeout=120, what="the worker's sandboxed sleep 6")
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    second = wait_for(lambda: [p for p in _processes(*worker) if p not in first], timeout=60,
                      what="a second worker for the same phase")
    assert second

    org = Organization.with_services(state)
    deadline = time.monotonic() + 300
    while (run := org.runs.require(run_id)).active:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status} at {run.phase}"
        time.sleep(1)
    assert [(d.phase, d.attempt, d.anima) for d in run.decisions] == [("settle", 1, "checker@audit")]
    decision = run.decisions[0]
    assert decision.verdict in run.workflow.offered(run.workflow.phase("settle"))
    ran = [e for e in decision.evidence if e.kind == "ran"]
    assert all(e.command == "sleep 6" and e.exit_code == 0 for e in ran), ran  # the killed attempt left no step
    reasons = [e.reason for e in org_events(state)]
    assert "WorkflowPhaseCrashed" not in reasons
    wait_for(lambda: not _processes(*worker) and not _processes(b"sleep\0" + b"6\0"), timeout=30,
             what="the workers and their sandbox to be gone")
    assert not list((state.root / "workspaces").glob(f"{run_id}.*"))
    log = run_cli("workflow", "log", run_id, "-C", str(org_dir))
    assert log.exit_code == 0 and "(checker@audit)" in log.output, log.output
    wait_for(lambda: org.runs.require(run_id).recorded, timeout=60, what="the run's end to be processed")
    assert org.runs.require(run_id).memory_commit is None  # no Anima ran a phase: nothing to commit


def org_events(state: StatePaths) -> list:  # type: ignore[type-arg]
    from orgctl.state.events import read_events

    return read_events(state.work.events)
