"""Bench: a pull request's plan on an org of 1,000 Animas, what every PR's workflow runs.

Builds an org of N Animas (bench/orgs.py), then a PR commit that hires one, changes one's permissions and
retires one, and times as whole processes (median of a few runs):

* ``orgctl plan --base HEAD~1`` on the first run (a fresh state dir: no spec cache, what a CI runner
  always meets, since it keeps nothing) and warm (the cache filled by the run before);
* ``orgctl pr comment --print --base HEAD~1`` on the first run: the comment's body, charts and memory diff
  included (what the workflow's step costs beside its install);
* ``orgctl plan`` (against observed state: nothing applied) warm, the figure it is compared with.

Also the comment's size in characters against GitHub's 65,536 limit.

Run: ``.venv/bin/python bench/pr_plan.py [N]``. Recorded in bench/results/pr_plan.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from orgs import GIT_ENV, ORGCTL, build_org, record_result  # noqa: E402

RUNS = 5


def timed(args: list[str], *, cwd: Path, state: Path | None = None) -> tuple[float, str]:
    """Seconds and stdout of one ``orgctl ARGS`` process; ``state`` None: a fresh state dir (first run)."""
    fresh = state is None
    state = state or Path(tempfile.mkdtemp(prefix="orgctl-bench-state-"))
    env = {**os.environ, "ORGCTL_STATE_DIR": str(state), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.perf_counter()
    done = subprocess.run([ORGCTL, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"orgctl {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    if fresh:
        shutil.rmtree(state, ignore_errors=True)
    return took, done.stdout


def median(args: list[str], *, cwd: Path, warm: bool) -> float:
    state = Path(tempfile.mkdtemp(prefix="orgctl-bench-warm-")) if warm else None
    if state is not None:
        timed(args, cwd=cwd, state=state)  # fills the spec cache
    try:
        return statistics.median(timed(args, cwd=cwd, state=state)[0] for _ in range(RUNS))
    finally:
        if state is not None:
            shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="orgctl-bench-pr-") as tmp:
        org = build_org(Path(tmp), n)
        shutil.copytree(org / "animas/bob", org / "animas/newhire", ignore=shutil.ignore_patterns("memory"))
        with (org / "animas/eng0000/permissions.md").open("a") as f:
            f.write("\nWidened for the bench.\n")
        shutil.rmtree(org / "animas/eng0001")
        env = {**os.environ, **GIT_ENV}
        subprocess.run(["git", "-C", str(org), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(org), "commit", "-qm", "the PR"], check=True, env=env)
        base = ["plan", "--base", "HEAD~1"]
        first = median(base, cwd=org, warm=False)
        warm = median(base, cwd=org, warm=True)
        comment_first = median(["pr", "comment", "--print", "--base", "HEAD~1"], cwd=org, warm=False)
        plan_warm = median(["plan"], cwd=org, warm=True)
        _, body = timed(["pr", "comment", "--print", "--base", "HEAD~1"], cwd=org)
    result = {
        "animas": n, "runs": RUNS,
        "plan_base_first_run_s": round(first, 3), "plan_base_warm_s": round(warm, 3),
        "pr_comment_print_first_run_s": round(comment_first, 3), "plan_observed_warm_s": round(plan_warm, 3),
        "plan_base_warm_vs_plan_warm": round(warm / plan_warm, 2),
        "comment_chars": len(body), "comment_limit_chars": 65536,
    }
    for key, value in result.items():
        print(f"{key:32} {value}")
    record_result(Path(__file__).parent / "results" / "pr_plan.json", result)


if __name__ == "__main__":
    main()
