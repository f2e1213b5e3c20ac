"""Bench (issue 7, c): CLI start-up, ``orgctl --help`` and ``orgctl status``, as ratios to ``python -c pass``.

Each command is timed as a whole process (interpreter start-up included), alternated with the baseline run
for run (A B A B ...) so a drift in the machine's speed moves both; the ratio is the median of the pairs'
ratios. ``status`` runs against a state dir with three applied Animas and a live controller record, as a
person would see it. Goals: ``--help`` <= 3x, ``status`` <= 4x.

Run: ``.venv/bin/python bench/startup.py [--runs 21]``. Recorded in bench/results/startup.json.
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
from orgs import ORGCTL, build_org, orgctl  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "startup.json"
GOALS = {"help": 3.0, "status": 4.0}


def _run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def paired(argv: list[str], baseline: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, float]:
    """(median seconds of argv, median seconds of baseline, median of the per-pair ratios)."""
    _run(argv, env), _run(baseline, env)  # warm-up: caches, .pyc files
    a, b = [], []
    for _ in range(runs):
        a.append(_run(argv, env))
        b.append(_run(baseline, env))
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    baseline = [sys.executable, "-c", "pass"]
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        org = build_org(Path(tmp), 3)
        # as installed for a person: bytecode cached (a sandbox's PYTHONDONTWRITEBYTECODE would make every
        # run compile every module, measuring the compiler rather than orgctl's start-up)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["ORGCTL_STATE_DIR"] = str(Path(tmp) / "state")
        orgctl("controller", "--detach", str(org), env=env)
        try:
            time.sleep(3)
            for name, argv in (("help", [ORGCTL, "--help"]), ("status", [ORGCTL, "status", str(org)])):
                cmd, base, ratio = paired(argv, baseline, args.runs, env)
                result[name] = {"median_s": round(cmd, 4), "python_c_pass_s": round(base, 4),
                                "ratio": round(ratio, 2), "goal_ratio": GOALS[name]}
                print(f"orgctl {name:<7} {cmd * 1000:6.1f} ms = {ratio:.2f}x python -c pass ({base * 1000:.1f} ms); "
                      f"goal <= {GOALS[name]:.0f}x")
        finally:
            orgctl("down", str(org), env=env)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
