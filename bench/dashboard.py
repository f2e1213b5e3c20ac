"""Bench (issue 24, point 6): the dashboard's Org view at 200 Animas, and the dashboard process's memory.

Generates an org of N Animas (default 200), applies it (supervisor, fork server, one process per Anima; the
model a replay of an empty cassette, so no model is reached), gives every Anima a task (their cycles fail
on the replay and back off: a busy org with Warning events), then starts ``orgctl dashboard`` as its own
process and measures, over loopback, a new connection per request as a polling browser makes them:

* the first ``/api/org`` (what a person who opens the dashboard waits for: it includes the first plan, run
  in the planner child process), then ``--requests`` more (the 2-second polls): p50, p95, max in ms and the
  payload in KB. Goal: p95 <= 100 ms, payload <= 500 KB.
* the dashboard process's PSS (/proc/PID/smaps_rollup) after the Org view, and after every view (an Anima
  page, Work, Plan and both charts) was served. Goal: <= 60 MB.

Run: ``.venv/bin/python bench/dashboard.py [--animas 200] [--requests 200]``.
Recorded in bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from orgs import build_org, orgctl, pss_kb, record_result  # noqa: E402

from orgctl.paths import StatePaths  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "dashboard.json"
GOAL_P95_MS, GOAL_PAYLOAD_KB, GOAL_PSS_MB = 100.0, 500.0, 60.0


def get(port: int, path: str) -> tuple[float, int]:
    """``(milliseconds, bytes)`` of one GET on a new connection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, (path, response.status, body[:200])
    return (time.perf_counter() - started) * 1000, len(body)


def wait_running(paths: StatePaths, n: int, timeout: float = 600) -> None:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            animas = json.loads(paths.runtime.read_text()).get("animas") or {}
        except (OSError, ValueError):
            animas = {}
        if sum(1 for a in animas.values() if a.get("state") in ("running", "resting")) >= n:
            return
        time.sleep(1)
    raise SystemExit(f"not every Anima came up in {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animas", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orgctl-bench-dashboard-") as tmp:
        root = Path(tmp)
        org = build_org(root, args.animas)
        cassette = root / "cassette.jsonl"
        cassette.write_text("")
        env = {**os.environ, "ORGCTL_STATE_DIR": str(root / "state"), "ORGCTL_CASSETTE": str(cassette),
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        paths = StatePaths(root=(root / "state").resolve())
        started = time.perf_counter()
        orgctl("apply", str(org), "--auto-approve", env=env)
        wait_running(paths, args.animas)
        print(f"applied {args.animas} Animas in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        os.environ.update({k: env[k] for k in ("ORGCTL_STATE_DIR", "ORGCTL_CASSETTE")})
        from orgctl.runtime.organization import Organization

        work = Organization(paths=paths)
        for name in sorted(work.specs):
            work.add_task(name, f"Review the change list for {name}", priority="normal")
        dashboard = subprocess.Popen([str(Path(sys.executable).with_name("orgctl")), "dashboard", str(org),
                                      "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True, env=env)
        try:
            line = dashboard.stdout.readline() if dashboard.stdout else ""
            port = int(line.split("127.0.0.1:", 1)[1].split("/", 1)[0])
            pss_idle = pss_kb(dashboard.pid) or 0
            first_ms, payload = get(port, "/api/org")
            times = []
            for _ in range(args.requests):
                ms, payload = get(port, "/api/org")
                times.append(ms)
            pss_org = pss_kb(dashboard.pid) or 0
            others = {path: get(port, path)[0] for path in ("/api/anima/eng0007", "/api/work", "/api/plan",
                                                             "/api/plan/before.svg", "/api/plan/after.svg")}
            for _ in range(20):  # every view polled a while, as a person clicking around would
                for path in others:
                    get(port, path)
            pss_all = pss_kb(dashboard.pid) or 0
        finally:
            dashboard.terminate()
            dashboard.wait(timeout=10)
            orgctl("down", str(org), env=env)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    record = {
        "bench": "dashboard", "animas": args.animas, "requests": args.requests,
        "org_view_first_ms": round(first_ms, 1), "org_view_p50_ms": round(statistics.median(times), 1),
        "org_view_p95_ms": round(p95, 1), "org_view_max_ms": round(times[-1], 1),
        "org_view_payload_kb": round(payload / 1024, 1),
        "other_views_first_ms": {k: round(v, 1) for k, v in others.items()},
        "pss_mb_started": round(pss_idle / 1024, 1), "pss_mb_after_org_view": round(pss_org / 1024, 1),
        "pss_mb_after_every_view": round(pss_all / 1024, 1),
        "goals": {"org_view_p95_ms": GOAL_P95_MS, "org_view_payload_kb": GOAL_PAYLOAD_KB, "pss_mb": GOAL_PSS_MB},
        "met": p95 <= GOAL_P95_MS and payload / 1024 <= GOAL_PAYLOAD_KB and pss_all / 1024 <= GOAL_PSS_MB,
    }
    record_result(RESULTS, record)
    for key, value in record.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
