"""The quick-start demo (`make demo`): one real piece of work through the org, end to end.

init -> apply -> a person's task to the manager -> delegated to the engineer,
who runs an allowed command and reports back -> the manager reports to the
person -> chat -> the template workflow (triage -> implement -> review -> test,
each phase ended by a verdict) -> consolidate (memory commits) -> pull -> down. Runs the real
`orgctl` commands a user would type, on the embedded local model, in
./demo/acme, and stops everything it started at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORG = ROOT / "demo" / "acme"
ORGCTL = str(Path(sys.executable).parent / "orgctl")
WAIT_LIMIT = 600  # seconds
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
       "GIT_AUTHOR_NAME": "Demo User", "GIT_AUTHOR_EMAIL": "demo@example.com",
       "GIT_COMMITTER_NAME": "Demo User", "GIT_COMMITTER_EMAIL": "demo@example.com"}
ENV.pop("ORGCTL_STATE_DIR", None)


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def run(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print(f"$ {' '.join(Path(a).name if a == ORGCTL else a for a in args)}", flush=True)
    proc = subprocess.run(args, cwd=ORG if ORG.exists() else ROOT, env=ENV, text=True,
                          capture_output=quiet)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo failed: {' '.join(args)} exited {proc.returncode}")
    return proc


TASK = "Find out what changed in the org repo this week and report"


def wait_for_task(task_id: str) -> bool:
    """Print each task transition (alice's and any subtask) until the human task is done; True when it is."""
    deadline = time.monotonic() + WAIT_LIMIT
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        tasks = json.loads(run(ORGCTL, "tasks", "--all", "--json", quiet=True).stdout)
        for t in tasks:
            if seen.get(t["id"]) != t["status"]:
                seen[t["id"]] = t["status"]
                print(f"  {t['id']}  {t['assignee']:<6} {t['status']:<12} (from {t['requester']})", flush=True)
        mine = next((t for t in tasks if t["id"] == task_id), None)
        if mine and mine["status"] in ("done", "blocked", "failed"):
            return mine["status"] == "done"
        time.sleep(2)
    return False


WORKFLOW_SUBJECT = "Run the test suite and report whether it passes"


def wait_for_run(run_id: str) -> str:
    """Print each phase transition of the run until it ends; its final status ("timeout" past the limit)."""
    deadline = time.monotonic() + WAIT_LIMIT
    seen = 0
    while time.monotonic() < deadline:
        run_ = json.loads(run(ORGCTL, "workflow", "status", run_id, "--json", quiet=True).stdout)
        for d in run_["decisions"][seen:]:
            print(f"  {d['phase']:<10} {d['anima'] or '-':<6} {d['verdict']:<8} -> {d['target']}  (by {d['by']})",
                  flush=True)
        seen = len(run_["decisions"])
        if run_["status"] not in ("queued", "running"):
            return str(run_["status"])
        time.sleep(2)
    return "timeout"


def main() -> None:
    if ORG.exists():
        run(ORGCTL, "down", str(ORG), check=False, quiet=True)
    shutil.rmtree(ORG, ignore_errors=True)
    ORG.parent.mkdir(parents=True, exist_ok=True)

    step("Create an org repo from the template (three Animas, one commit)")
    run(ORGCTL, "init", str(ORG))
    step("A human change, committed to git: awake all day")
    org_yaml = ORG / "org.yaml"
    org_yaml.write_text(org_yaml.read_text().replace('active_hours: "08:00-20:00"', 'active_hours: always       '))
    carol = ORG / "animas" / "carol" / "anima.yaml"  # she has her own hours; the demo wants all three awake
    carol.write_text(carol.read_text().replace('active_hours: "09:00-17:00"', "active_hours: always"))
    run("git", "commit", "-qam", "Demo: awake all day")
    run("git", "log", "--oneline")
    try:
        step("Validate and plan (desired state: HEAD; observed: nothing runs yet)")
        run(ORGCTL, "validate")
        run(ORGCTL, "plan")
        step("Apply: start the supervisor and one process per Anima (they introduce themselves on the Board)")
        run(ORGCTL, "apply", "--auto-approve")
        run(ORGCTL, "can-i", "bob", "run", "git log --oneline --since=1.week")
        run(ORGCTL, "can-i", "bob", "run", "rm -rf /", check=False)
        step("A person gives the manager real work")
        added = json.loads(run(ORGCTL, "task", "add", "alice", TASK, "--json", quiet=True).stdout)
        print(f"$ orgctl task add alice {TASK!r}\n  queued {added['id']}", flush=True)
        step("The org works on it: alice delegates to bob, bob runs an allowed command and reports, "
             "alice reports to the person (embedded model, SmolLM2-135M, local)")
        done = wait_for_task(added["id"])
        run(ORGCTL, "tasks", "--all")
        step("What the person received")
        run(ORGCTL, "inbox", "human")
        step("The Board and the event stream")
        run(ORGCTL, "board")
        run(ORGCTL, "events", "--limit", "25")
        step("Chat with the manager")
        run(ORGCTL, "chat", "alice", "What did bob find this week?", "--timeout", "180", check=False)
        step("A workflow run: triage (alice) -> implement (bob) -> review (carol) -> test (bob), "
             "each phase ended by a verdict on what the framework observed")
        started = json.loads(run(ORGCTL, "workflow", "run", "task", "--subject", WORKFLOW_SUBJECT, "--json",
                                 quiet=True).stdout)
        print(f"$ orgctl workflow run task --subject {WORKFLOW_SUBJECT!r}\n  started {started['id']}", flush=True)
        outcome = wait_for_run(started["id"])
        run(ORGCTL, "workflow", "log", started["id"])
        step("Consolidate: file the day's episodes into knowledge notes by subject, one commit per Anima")
        run(ORGCTL, "consolidate", "--dry-run", "--anima", "bob")
        run(ORGCTL, "consolidate")
        step("Bring the memory commits into this checkout (the runtime never writes it), and review them")
        run(ORGCTL, "pull")
        run("git", "log", "--stat", "-n", "3", "--author=orgctl-bot", "--grep=consolidate")
        run("git", "log", "-n", "1", "--stat", "--grep=^Orgctl-Run: ")  # the run's one memory commit
        run(ORGCTL, "status")
        if not done:
            raise SystemExit("demo failed: the task did not complete")
        if outcome not in ("succeeded", "failed"):  # a poor verdict may fail the run; it must finish
            raise SystemExit(f"demo failed: the workflow run did not finish ({outcome})")
    finally:
        step("Stop everything orgctl started")
        run(ORGCTL, "down")
    print(f"\nDone. The org repo is in {ORG.relative_to(ROOT)}; try `git -C {ORG.relative_to(ROOT)} log -p`.")


if __name__ == "__main__":
    main()
