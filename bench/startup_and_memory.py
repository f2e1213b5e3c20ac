"""Benchmarks for two ROADMAP targets, printed and recorded in bench/results/.

* CLI start-up: ``orgctl --help`` against ``python -c pass`` (target <= 3x).
* Idle Anima memory: PSS of each Anima process after apply (target <= 25 MB).

Run: ``.venv/bin/python bench/startup_and_memory.py``. No model is called
(heartbeats are the template's 30 minutes).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results" / "startup_and_memory.json"


def median_seconds(cmd: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no Pss line")


def idle_anima_pss() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        org = Path(tmp) / "bench-org"
        env = {**os.environ, "ORGCTL_STATE_DIR": str(Path(tmp) / "state"),
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
        run = lambda *a: subprocess.run([str(BIN / "orgctl"), *a], check=True, capture_output=True,  # noqa: E731
                                        text=True, env=env)
        run("init", str(org))
        try:
            run("apply", str(org), "--auto-approve")
            time.sleep(3)  # let them connect and settle
            status = json.loads(run("status", str(org), "--json").stdout)
            return {a["name"]: round(pss_mb(a["pid"]), 1) for a in status["animas"] if a["pid"]}
        finally:
            run("down", str(org))


def main() -> None:
    baseline = median_seconds([sys.executable, "-c", "pass"])
    help_s = median_seconds([str(BIN / "orgctl"), "--help"])
    pss = idle_anima_pss()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "python_c_pass_s": round(baseline, 4),
        "orgctl_help_s": round(help_s, 4),
        "help_vs_python_ratio": round(help_s / baseline, 2),
        "help_target_ratio": 3.0,
        "idle_anima_pss_mb": pss,
        "idle_anima_pss_target_mb": 25.0,
    }
    print(f"orgctl --help       {help_s * 1000:7.1f} ms  ({help_s / baseline:.1f}x python -c pass "
          f"{baseline * 1000:.1f} ms; target <= 3x)")
    for name, mb in pss.items():
        print(f"idle Anima {name:<8} {mb:6.1f} MB PSS (target <= 25 MB)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"recorded in {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
