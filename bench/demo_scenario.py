"""Bench: the demo's scenario, N times from scratch; how many complete. Goal: 10 of 10.

Each run is what `make demo` does, with the real CLI in child processes on the embedded model:
`orgctl init` a fresh org (the template's three Animas, all awake), `orgctl apply`, a person's
task to the manager ("find out what changed in the org repo this week and report"), then wait.
A run *completes* when, within the time limit:

* alice's task is done and was delegated to bob (a direct report),
* bob's subtask is done and its result shows an allowed command that ran (``$ git …`` and ``exit 0``),
* the report reached the person's inbox from alice,

and after `orgctl down` no process of that org is left and exactly one model server had served it.

Run: .venv/bin/python bench/demo_scenario.py [--runs 10]   Records bench/results/demo_scenario.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ORGCTL = str(Path(sys.executable).parent / "orgctl")
TASK = "Find out what changed in the org repo this week and report"
LIMIT = 300.0  # seconds per run for the task to travel down and back up


def orgctl(org: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORGCTL, *args], cwd=org, env=env, text=True, capture_output=True, check=False)


def processes_of(state_dir: Path) -> list[int]:
    """Live processes whose environment or command line names this run's state dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(state_dir).encode() in blob:
            found.append(int(proc.name))
    return found


def one_run(index: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"orgctl-scenario-{index}-") as tmp:
        org, state = Path(tmp) / "acme", Path(tmp) / "state"
        env = {**os.environ, "ORGCTL_STATE_DIR": str(state), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
        subprocess.run([ORGCTL, "init", str(org)], env=env, check=True, capture_output=True)
        for rel, old in (("org.yaml", 'active_hours: "08:00-20:00"'),
                         ("animas/carol/anima.yaml", 'active_hours: "09:00-17:00"')):
            path = org / rel
            path.write_text(path.read_text().replace(old, "active_hours: always"))
        subprocess.run(["git", "commit", "-qam", "awake"], cwd=org, env=env, check=True)
        started = time.monotonic()
        record: dict[str, object] = {"run": index, "complete": False}
        servers: set[int] = set()
        try:
            applied = orgctl(org, env, "apply", "--auto-approve")
            if applied.returncode != 0:
                record["problem"] = f"apply exited {applied.returncode}: {applied.stderr[-300:]}"
                return record
            added = json.loads(orgctl(org, env, "task", "add", "alice", TASK, "--json").stdout)
            deadline = time.monotonic() + LIMIT
            tasks: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                tasks = json.loads(orgctl(org, env, "tasks", "--all", "--json").stdout or "[]")
                run_json = state / "run" / "model-server.json"
                if run_json.exists():
                    servers.add(int(json.loads(run_json.read_text()).get("pid", 0)))
                mine = next((t for t in tasks if t["id"] == added["id"]), None)
                if mine and mine["status"] in ("done", "blocked", "failed"):
                    break
                time.sleep(2)
            record["seconds"] = round(time.monotonic() - started, 1)
            by_id = {t["id"]: t for t in tasks}
            mine = by_id.get(added["id"], {})
            subs = [by_id.get(str(s["id"]), {}) for s in mine.get("subtasks", [])]  # type: ignore[union-attr]
            inbox = json.loads(orgctl(org, env, "inbox", "human", "--json").stdout or "[]")
            checks = {
                "manager_done": mine.get("status") == "done",
                "delegated_to_bob": bool(subs) and subs[0].get("assignee") == "bob",
                "bob_ran_a_command": bool(subs) and subs[0].get("status") == "done"
                and "$ git" in str(subs[0].get("result")) and "exit 0" in str(subs[0].get("result")),
                "report_reached_person": any(m.get("task_id") == added["id"] and m.get("sender") == "alice"
                                             for m in inbox),
            }
            record["checks"] = checks
            record["complete"] = all(checks.values())
        finally:
            orgctl(org, env, "down")
            time.sleep(0.5)
            record["left_running"] = processes_of(state)
            record["model_servers"] = len(servers - {0})
        if record["left_running"] or record["model_servers"] > 1:  # type: ignore[operator]
            record["complete"] = False
        return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        record = one_run(i)
        runs.append(record)
        print(json.dumps(record), flush=True)
    seconds = [float(r["seconds"]) for r in runs if r.get("complete")]  # type: ignore[arg-type]
    result = {"runs": len(runs), "complete": sum(1 for r in runs if r["complete"]),
              "goal": f"{len(runs)}/{len(runs)}",
              "seconds_p50": round(statistics.median(seconds), 1) if seconds else None,
              "seconds_max": max(seconds) if seconds else None,
              "at": datetime.now(UTC).isoformat(timespec="seconds"), "detail": runs}
    print(json.dumps({k: v for k, v in result.items() if k != "detail"}, indent=2))
    out = Path(__file__).parent / "results" / "demo_scenario.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0 if result["complete"] == result["runs"] else 1)


if __name__ == "__main__":
    main()
