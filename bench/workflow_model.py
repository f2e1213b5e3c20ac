"""Bench: the template workflow on the real embedded model, 10 runs (issue 23, point 7).

A new user's setup: ``orgctl init`` into a temporary directory, the three Animas awake all day, ``orgctl
apply`` (the supervisor, one process per Anima, the embedded model ``local/smollm2`` served by llama.cpp on
loopback), then ``orgctl workflow run task --subject ...`` ten times, one after another, each followed to its
end. Figures:

* **finished with every transition valid** (goal 10/10): the run ended ``succeeded`` or ``failed`` within
  the limit, every decision's verdict is one its phase is offered, every target one of the phase's routes
  (or ``fail``, where an exhausted rework limit goes), and no reason claims what the run's evidence
  contradicts (:func:`orgctl.runtime.outcomes.contradiction`);
* **phase latency** (p50, p95, max): from a phase handed over (the previous decision, or the run's start) to
  its decision, for the phases an Anima ran (a phase skipped by its guard takes no model time);
* the verdicts, to read how poor the tiny model's judgment is next to how sound the transitions are.

Run: .venv/bin/python bench/workflow_model.py [--runs N]   (about 5 minutes; results written for 10 runs)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNS = 10
LIMIT_S = 600  # per run
SUBJECTS = ["Run the test suite and report whether it passes", "Find out what changed in the org repo this week",
            "Check the repo for uncommitted changes", "Update the README's install section",
            "Which files did the last commit change?"]
RESULTS = Path(__file__).parent / "results" / "workflow_model.json"
ORGCTL = str(Path(sys.executable).parent / "orgctl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    from orgctl.desired.workflows import WorkflowSpec
    from orgctl.runtime.outcomes import contradiction, outcome_of_step, unobserved_claim
    from orgctl.work.runs import RunStore

    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="workflow-model-") as tmp:
        org, state = Path(tmp) / "acme", Path(tmp) / "state"
        env = {**os.environ, "ORGCTL_STATE_DIR": str(state), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

        def orgctl(*argv: str) -> str:
            return subprocess.run([ORGCTL, *argv], cwd=org if org.exists() else tmp, env=env, check=True, text=True,
                                  capture_output=True).stdout

        orgctl("init", str(org))
        awake = ((org / "org.yaml", 'active_hours: "08:00-20:00"', "active_hours: always"),
                 (org / "animas/carol/anima.yaml", 'active_hours: "09:00-17:00"', "active_hours: always"))
        for path, old, new in awake:
            path.write_text(path.read_text().replace(old, new))
        subprocess.run(["git", "-C", str(org), "commit", "-qam", "awake all day"], check=True, env=env)
        orgctl("apply", "--auto-approve")
        try:
            runs = RunStore(state / "work" / "runs")
            for n in range(args.runs):
                subject = SUBJECTS[n % len(SUBJECTS)]
                run_id = json.loads(orgctl("workflow", "run", "task", "--subject", subject, "--json"))["id"]
                deadline = time.monotonic() + LIMIT_S
                while (run := runs.require(run_id)).active and time.monotonic() < deadline:
                    time.sleep(0.5)
                flow: WorkflowSpec = run.workflow
                problems, ran, previous = [], [], datetime.fromisoformat(run.created_at)
                for d in run.decisions:
                    phase = flow.phase(d.phase)
                    if d.verdict not in flow.offered(phase):
                        problems.append(f"{d.phase}: verdict {d.verdict} not offered")
                    if d.target not in flow.targets(phase) | {"fail"}:
                        problems.append(f"{d.phase}: target {d.target} not routed")
                    ran += [e for e in d.evidence if e.kind == "ran"]
                    outs = [outcome_of_step(e) for e in ran]
                    if why := (contradiction(d.said, outs) if outs else unobserved_claim(d.said)):
                        problems.append(f"{d.phase}: reason contradicted: {why}")
                    at = datetime.fromisoformat(d.at)
                    if d.by != "guard":
                        latencies.append((at - previous).total_seconds())
                    previous = at
                if run.status not in ("succeeded", "failed"):
                    problems.append(f"not finished: {run.status} at {run.phase}")
                rows.append({"run": run_id, "subject": subject, "status": run.status, "reason": run.reason[:200],
                             "verdicts": [f"{d.phase}={d.verdict}" for d in run.decisions], "valid": not problems,
                             "problems": problems})
                print(f"{n + 1:2}/{args.runs} {run.status:<9} {' '.join(rows[-1]['verdicts'])}"
                      f"{'' if not problems else '  INVALID: ' + '; '.join(problems)}", flush=True)
        finally:
            orgctl("down")
    valid = sum(r["valid"] for r in rows)
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [latencies[0]] * 19
    summary = {"runs": len(rows), "finished_valid": valid, "goal": f"{RUNS}/{RUNS}",
               "statuses": dict(Counter(r["status"] for r in rows)),
               "phase_latency_s": {"p50": round(statistics.median(latencies), 2), "p95": round(q[18], 2),
                                   "max": round(max(latencies), 2), "phases": len(latencies)},
               "verdicts": dict(Counter(v for r in rows for v in r["verdicts"]))}
    print(f"finished with every transition valid: {valid}/{len(rows)}; phase latency p50 "
          f"{summary['phase_latency_s']['p50']} s, p95 {summary['phase_latency_s']['p95']} s, max "
          f"{summary['phase_latency_s']['max']} s over {len(latencies)} phases; {summary['statuses']}")
    if args.runs == RUNS:
        RESULTS.write_text(json.dumps({**summary, "model": "local/smollm2", "python": platform.python_version(),
                                       "at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows},
                                      indent=2) + "\n")
        print(f"recorded in {RESULTS}")
    return 0 if valid == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
