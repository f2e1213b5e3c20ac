"""Bench (issue 7, a): latency from a commit on the tracked remote branch to the running org converged.

An org of N Animas (default 50) with a bare remote on disk; the controller runs detached and tracks the
remote's ``main``. Each of C commits (default 20) changes one Anima's ``injection.md`` and is pushed from a
second clone; the clock starts when ``git push`` returns (the commit is on the remote) and stops when the
controller's ``status.json`` says the org applied that revision with every Anima Synced (polled every
5 ms). Goal: p95 <= 2 s (Argo CD polls every 120-180 s by default).

Run: ``.venv/bin/python bench/converge_latency.py [--animas 50] [--commits 20]``.
Recorded in bench/results/converge_latency.json.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from orgs import GIT_ENV, build_org, orgctl  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "converge_latency.json"
GOAL_P95_S = 2.0


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def _converged(status: Path, sha: str) -> bool:
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return False
    animas = doc.get("animas") or {}
    return (doc.get("org") or {}).get("lastAppliedRevision") == sha and all(
        a.get("sync") == "Synced" for a in animas.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--animas", type=int, default=50)
    parser.add_argument("--commits", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        org = build_org(root, args.animas)
        bare = root / "remote.git"
        _git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        _git(org, "remote", "add", "origin", str(bare))
        _git(org, "push", "--quiet", "-u", "origin", "main")
        pusher = root / "pusher"
        _git(root, "clone", "--quiet", str(bare), str(pusher))
        state = root / "state"
        env = {**os.environ, "ORGCTL_STATE_DIR": str(state)}
        orgctl("controller", "--detach", str(org), env=env)
        status = state / "status.json"
        latencies = []
        try:
            head = _git(org, "rev-parse", "HEAD")
            deadline = time.monotonic() + 300
            while not _converged(status, head):
                if time.monotonic() > deadline:
                    raise SystemExit("the initial revision did not converge in 300 s")
                time.sleep(0.2)
            names = sorted(p.name for p in (pusher / "animas").iterdir())
            for i in range(args.commits):
                name = names[i % len(names)]
                with open(pusher / "animas" / name / "injection.md", "a", encoding="utf-8") as f:
                    f.write(f"\nChange {i}: keep answers under {i + 3} sentences.\n")
                _git(pusher, "commit", "-qam", f"{name}: change {i}")
                sha = _git(pusher, "rev-parse", "HEAD")
                _git(pusher, "push", "--quiet", "origin", "main")
                pushed = time.perf_counter()
                while not _converged(status, sha):
                    if time.perf_counter() - pushed > 60:
                        raise SystemExit(f"commit {i} did not converge in 60 s")
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - pushed)
                time.sleep(0.2)
        finally:
            orgctl("down", str(org), env=env)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "animas": args.animas, "commits": len(latencies),
        "p50_s": round(p50, 3), "p95_s": round(p95, 3), "max_s": round(latencies[-1], 3),
        "goal_p95_s": GOAL_P95_S,
    }
    print(f"{args.animas} Animas, {len(latencies)} commits on the remote: commit → converged "
          f"p50 {p50:.3f} s, p95 {p95:.3f} s, max {latencies[-1]:.3f} s (goal p95 <= {GOAL_P95_S} s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
