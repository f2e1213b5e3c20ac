"""Bench: the workflow engine's own overhead (docs/workflows.md), with a replayed model.

Two figures, on the real template org (``orgctl init`` into a temporary directory) with a 4-phase
workflow over its three Animas (triage: alice, implement: bob, review: carol, publish: alice):

1. **Overhead per phase transition** (goal <= 10 ms): the wall time of one phase, from its task's start
   on the bound Anima's task cycle to the next phase handed over (the decision recorded, routed, the
   next task queued in the next Anima's queue), minus the time inside the model client. Each phase
   makes the calls a real one makes: the step choice (``decide``), the decision's JSON call and the
   reason's sentence. Also printed apart: :meth:`Engine.decide` alone (record, route, hand over).
2. **A 200-run batch** (``max_concurrent_runs: 64``, the most a file may say): 200 runs started at once (64 in
   progress, the rest queued and started as runs end) and driven phase by
   phase, round-robin over the runs in flight, until all have ended: wall time, runs per minute,
   peak RSS of the process, and a check that every run succeeded with 4 decisions.

The model is a replay (:class:`ScriptedPhases`: the answers a phase of the embedded model gives when it
advances, fixed), so the bench measures framework time, not model time; the p95 phase latency on the
real embedded model is the demo's and ``bench/workflow_model.py``'s business. The Animas' processes,
the supervisor's socket and the memory record's git commit are not in the loop (the record is one
commit per run, measured by the integration tests). Phases run commands? No: the phases here decide
at their first step, so no child process runs and the figure is the engine's and the task cycle's.

Run: .venv/bin/python bench/workflow_runs.py [--runs N]   (results written for 200 runs only)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops.bootstrapping import init_org
from orgctl.llm.requests import CompletionRequest, CompletionResult, Usage
from orgctl.paths import StatePaths, template_dir
from orgctl.runtime.organization import Organization
from orgctl.runtime.workflows import Engine
from orgctl.work.runs import Decision, RunStore

RUNS = 200
GOAL_MS = 10.0
RESULTS = Path(__file__).parent / "results" / "workflow_runs.json"
FLOW = """\
max_concurrent_runs: 64
agents:
  triager: {anima: alice}
  implementer: {anima: bob}
  reviewer: {anima: carol}
phases:
  - id: triage
    agent: triager
    decision:
      kind: {type: string, enum: [code, docs, ops]}
  - id: implement
    agent: implementer
  - id: review
    agent: reviewer
    max_rework_attempts: 2
    on_verdict: {rework: implement}
  - id: publish
    agent: triager
"""


class ScriptedPhases:
    """A replayed model: every step choice is ``decide``, every decision advances with the first value of each
    field, every sentence is a fixed one. Counts the seconds spent inside it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def complete(self, request: CompletionRequest) -> CompletionResult:
        started = time.perf_counter()
        schema = request.schema_
        if schema and "choice" in schema["properties"]:
            content = json.dumps({"choice": "decide"})
        elif schema:
            answer: dict[str, Any] = {}
            for name, prop in schema["properties"].items():
                answer[name] = "advance" if name == "verdict" else prop["enum"][0] if "enum" in prop else 0
            content = json.dumps(answer)
        else:
            content = "The phase is done."
        self.calls += 1
        result = CompletionResult(content=content, usage=Usage(calls=1), model=request.model, replayed=True)
        self.seconds += time.perf_counter() - started
        return result


def setup(root: Path) -> tuple[Organization, Any, StatePaths]:
    """The template org with the bench's workflow committed; its work in flight under ``root/state``."""
    import subprocess

    org = root / "acme"
    init_org(dest=org, template=template_dir(), name="acme")
    (org / "workflows" / "four.yaml").write_text(FLOW)
    subprocess.run(["git", "-C", str(org), "add", "--all"], check=True)
    subprocess.run(["git", "-C", str(org), "commit", "-qm", "bench workflow"], check=True)
    spec = load_org(GitRevisionSource(org, "HEAD"))
    paths = StatePaths(root / "state").ensure()
    work = Organization(paths=paths, specs=spec.animas)
    return work, spec.workflows["four"], paths


def agents(work: Organization, paths: StatePaths, model: ScriptedPhases) -> dict[str, Any]:
    from orgctl.memory.stores import MemoryStore
    from orgctl.runtime.cycle import Agent
    from orgctl.runtime.permissions import Policy

    out = {}
    for name, spec in work.specs.items():
        workspace = paths.workspace(name)
        workspace.mkdir(parents=True, exist_ok=True)
        out[name] = Agent(spec=spec, org=work, client=model, policy=Policy(spec.permissions, workspace=workspace,
                                                                           sandbox=spec.sandbox),
                          store=MemoryStore(paths.root / "memory" / name, anima=name), revision=None)
    return out


def batch(runs: int) -> dict[str, Any]:
    from orgctl.runtime.tasking import run_task

    with tempfile.TemporaryDirectory(prefix="workflow-bench-") as tmp:
        work, flow, paths = setup(Path(tmp))
        model = ScriptedPhases()
        animas = agents(work, paths, model)
        store = RunStore(work.work.runs)
        engine = Engine(work, store)
        started = time.perf_counter()
        ids = [engine.start(flow, revision="bench", subject=f"request {n}: tidy the release notes").id
               for n in range(runs)]
        phase_ms: list[float] = []
        active = list(ids)
        while active:
            still = []
            for run_id in active:
                run = store.require(run_id)
                if not run.active:
                    continue
                still.append(run_id)
                if run.phase_task is None:  # queued behind max_concurrent_runs: started when a run ends
                    continue
                model_before = model.seconds
                t0 = time.perf_counter()
                run_task(animas[run.phase_anima], run.phase_task, now=lambda: datetime.now(UTC))
                phase_ms.append((time.perf_counter() - t0 - (model.seconds - model_before)) * 1000)
            active = still
        wall = time.perf_counter() - started
        ended = [store.require(i) for i in ids]
        ok = sum(1 for r in ended if r.status == "succeeded" and len(r.decisions) == 4)

        # Engine.decide alone: a phase's decision recorded, routed and the next phase handed over
        decide_ms = []
        for n in range(50):
            run = engine.start(flow, revision="bench", subject=f"decide {n}")
            run = engine.advance(run.id)
            t0 = time.perf_counter()
            engine.decide(run.id, Decision(phase=run.phase, attempt=run.attempt, agent="triager",
                                           anima=run.phase_anima, verdict="advance", reason="bench",
                                           confidence="high", risk="low", fields={"kind": "code"},
                                           target="implement", by="model"))
            decide_ms.append((time.perf_counter() - t0) * 1000)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q = statistics.quantiles(phase_ms, n=20)
    return {"runs": runs, "phases": len(phase_ms), "succeeded_with_4_decisions": ok, "model_calls": model.calls,
            "wall_s": round(wall, 2), "runs_per_min": round(runs / wall * 60, 1),
            "peak_rss_mb": round(peak_mb, 1),
            "transition_ms": {"mean": round(statistics.fmean(phase_ms), 2),
                              "p50": round(statistics.median(phase_ms), 2), "p95": round(q[18], 2),
                              "first_100_mean": round(statistics.fmean(phase_ms[:100]), 2),
                              "last_100_mean": round(statistics.fmean(phase_ms[-100:]), 2)},
            "engine_decide_ms": {"mean": round(statistics.fmean(decide_ms), 2),
                                 "p95": round(statistics.quantiles(decide_ms, n=20)[18], 2)},
            "goal_transition_ms": GOAL_MS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    result = batch(args.runs)
    t = result["transition_ms"]
    print(f"{result['runs']} runs of a 4-phase workflow, replayed model: {result['wall_s']} s wall, "
          f"{result['runs_per_min']} runs/min, peak RSS {result['peak_rss_mb']} MB; "
          f"{result['succeeded_with_4_decisions']}/{result['runs']} succeeded with 4 decisions")
    print(f"per phase transition (framework time, model excluded): mean {t['mean']} ms, p50 {t['p50']} ms, "
          f"p95 {t['p95']} ms (goal: mean <= {GOAL_MS} ms); first 100 {t['first_100_mean']} ms, last 100 "
          f"{t['last_100_mean']} ms")
    print(f"Engine.decide alone (record, route, hand over): mean {result['engine_decide_ms']['mean']} ms, "
          f"p95 {result['engine_decide_ms']['p95']} ms")
    if args.runs == RUNS:
        result["python"] = platform.python_version()
        result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"recorded in {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0 if result["succeeded_with_4_decisions"] == result["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
