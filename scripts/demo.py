"""The quick-start demo (`make demo`): init -> apply -> heartbeats -> consolidate -> status -> git log.

Runs the real `orgctl` commands a user would type, on the embedded local
model, in ./demo/acme, and stops everything it started at the end.
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
HEARTBEATS = 2  # per awake Anima
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


def wait_for_heartbeats() -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    last = ""
    while time.monotonic() < deadline:
        status = json.loads(run(ORGCTL, "status", "--json", quiet=True).stdout)
        awake = [a for a in status["animas"] if a["state"] != "resting"]
        line = "  ".join(f"{a['name']}: {a['heartbeats']}/{HEARTBEATS}"
                         if a["state"] != "resting" else f"{a['name']}: resting (outside active hours)"
                         for a in status["animas"])
        if line != last:
            print(f"  heartbeats  {line}", flush=True)
            last = line
        if awake and all(a["heartbeats"] >= HEARTBEATS for a in awake):
            return
        time.sleep(3)
    raise SystemExit(f"demo failed: fewer than {HEARTBEATS} heartbeats within {WAIT_LIMIT}s; "
                     f"see {ORG / '.orgctl' / 'logs'}")


def main() -> None:
    if (ORG / ".orgctl").exists():
        run(ORGCTL, "down", str(ORG), check=False, quiet=True)
    shutil.rmtree(ORG, ignore_errors=True)
    ORG.parent.mkdir(parents=True, exist_ok=True)

    step("Create an org repo from the template (three Animas, one commit)")
    run(ORGCTL, "init", str(ORG))
    step("A human change, committed to git: heartbeat every 20s, awake all day")
    org_yaml = ORG / "org.yaml"
    text = org_yaml.read_text()
    text = text.replace("heartbeat_interval: 30m ", "heartbeat_interval: 20s ")
    text = text.replace('active_hours: "08:00-20:00"', 'active_hours: always       ')
    org_yaml.write_text(text)
    run("git", "commit", "-qam", "Demo: heartbeat every 20s, awake all day")
    run("git", "log", "--oneline")
    try:
        step("Validate and plan (desired state: HEAD; observed: nothing runs yet)")
        run(ORGCTL, "validate")
        run(ORGCTL, "plan")
        step("Apply: start the supervisor and one process per Anima")
        run(ORGCTL, "apply", "--auto-approve")
        step(f"Let them run {HEARTBEATS} heartbeats each on the embedded model (SmolLM2-135M, local)")
        wait_for_heartbeats()
        run(ORGCTL, "status")
        step("Consolidate: distil the day's episodes into knowledge, one commit per Anima")
        run(ORGCTL, "consolidate")
        step("Observed state after the run")
        run(ORGCTL, "status")
        run(ORGCTL, "plan")
        step("The memory commits, reviewable like any other change")
        run("git", "log", "--stat", "-n", "3", "--author=orgctl-bot")
        notes = sorted(ORG.glob("animas/*/memory/knowledge/*.md"))
        if notes:
            step(f"One knowledge note: {notes[0].relative_to(ORG)}")
            print(notes[0].read_text())
    finally:
        step("Stop everything orgctl started")
        run(ORGCTL, "down")
    print(f"\nDone. The org repo is in {ORG.relative_to(ROOT)}; try `git -C {ORG.relative_to(ROOT)} log -p`.")


if __name__ == "__main__":
    main()
