"""Bench (issue 7, d): memory per idle Anima at 200 Animas.

Generates an org of N Animas (default 200), starts the controller (which applies it: supervisor,
fork server, one process per Anima), waits until every Anima is up, loads the supervisor's model
gateway (one model request for a provider without a key: litellm is imported, nothing is served) and
its memory service (one ``search_memory`` per Anima: the embedding model, Chroma and 200 small indexes),
then sums the PSS (/proc/PID/smaps_rollup) of every process orgctl runs for the org -- controller,
supervisor, fork server and Animas; not the model server -- and divides by N. Goal: <= 10 MB.
Then it waits out the embedding model's keep-alive (``ORGCTL_EMBEDDER_KEEP_ALIVE``, set to
:data:`KEEP_ALIVE` seconds here; 300 by default) and measures again: the org idle for longer than that.

``--spawn exec`` measures the old process model (a fresh interpreter per Anima) for comparison.

Run: ``.venv/bin/python bench/idle_memory.py [--animas 200] [--spawn fork|exec]``.
Recorded in bench/results/idle_memory.json (one entry per spawn mode).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from orgs import build_org, orgctl, pss_kb  # noqa: E402

from orgctl.paths import StatePaths  # noqa: E402
from orgctl.runtime import protocol  # noqa: E402
from orgctl.state.files import read_json  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "idle_memory.json"
GOAL_MB = 10.0
KEEP_ALIVE = 20  # seconds: the supervisor checks every keep / 2


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    out = [pid]
    for child in _children(pid):
        out += _tree(child)
    return out


def _pss(paths: StatePaths, controller: int, supervisor: int) -> dict[int, int]:
    """PSS in kB of each process of the controller's and the supervisor's trees, the model server left out."""
    server = (read_json(paths.model_server, default={}) or {}).get("pid")
    pids = sorted(set(_tree(controller) + _tree(supervisor)) - ({int(server)} if server else set()))
    return {pid: kb for pid in pids if (kb := pss_kb(pid)) is not None}  # a short-lived git may be gone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--animas", type=int, default=200)
    parser.add_argument("--spawn", choices=["fork", "exec"], default="fork")
    args = parser.parse_args()
    n = args.animas
    with tempfile.TemporaryDirectory() as tmp:
        org = build_org(Path(tmp), n)
        paths = StatePaths(root=Path(tmp) / "state")
        env = {**os.environ, "ORGCTL_STATE_DIR": str(paths.root), "ORGCTL_SPAWN": args.spawn,
               "ORGCTL_EMBEDDER_KEEP_ALIVE": str(KEEP_ALIVE)}
        started = time.monotonic()
        orgctl("controller", "--detach", str(org), "--burst", str(n + 10), env=env)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                rows = json.loads(orgctl("status", "--json", str(org), env=env).stdout)["animas"]
                if len(rows) == n and all(r["state"] in ("running", "resting") for r in rows):
                    break
                time.sleep(2)
            else:
                raise SystemExit("not every Anima came up within 600 s")
            up = time.monotonic() - started
            reply = protocol.request(paths.socket, "complete", timeout=120.0, request={
                "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
            names = [r["name"] for r in rows]
            searched = sum(bool(protocol.request(paths.socket, "search_memory", timeout=300.0, name=name,
                                                 query="what did I do today", k=3, record=False).get("ok"))
                           for name in names)
            time.sleep(5)  # settle
            searched_at = time.monotonic()
            controller = int(read_json(paths.controller)["pid"])
            supervisor = int(read_json(paths.supervisor_pid)["pid"])
            per = _pss(paths, controller, supervisor)
            pids = sorted(per)
            total_mb = sum(per.values()) / 1024
            sup_tree = _tree(supervisor)
            biggest = sorted(per.items(), key=lambda kv: -kv[1])[:4]
            time.sleep(max(0.0, searched_at + KEEP_ALIVE * 1.5 + 5 - time.monotonic()))
            later = _pss(paths, controller, supervisor)
        finally:
            orgctl("down", str(org), env=env)
    animas_mb = [kb / 1024 for pid, kb in per.items() if pid not in (controller, supervisor) and pid in sup_tree]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "spawn": args.spawn, "animas": n, "processes": len(pids),
        "gateway_loaded": bool(reply.get("ok")),
        "memory_service_loaded_for": searched,
        "seconds_until_all_up": round(up, 1),
        "total_pss_mb": round(total_mb, 1),
        "per_anima_mb": round(total_mb / n, 2),
        "goal_per_anima_mb": GOAL_MB,
        "controller_pss_mb": round(per[controller] / 1024, 1),
        "supervisor_pss_mb": round(per[supervisor] / 1024, 1),
        "median_anima_process_pss_mb": round(sorted(animas_mb)[len(animas_mb) // 2], 2) if animas_mb else None,
        "after_keep_alive": {"keep_alive_s": KEEP_ALIVE,
                             "per_anima_mb": round(sum(later.values()) / 1024 / n, 2),
                             "supervisor_pss_mb": round(later.get(supervisor, 0) / 1024, 1)},
    }
    print(f"{n} Animas ({args.spawn}): {len(pids)} processes, {total_mb:.0f} MB PSS in all, "
          f"{total_mb / n:.2f} MB per Anima (goal <= {GOAL_MB:.0f} MB); all up in {up:.0f} s")
    print(f"controller {result['controller_pss_mb']} MB, supervisor (gateway and memory service loaded) "
          f"{result['supervisor_pss_mb']} MB, "
          f"median Anima process {result['median_anima_process_pss_mb']} MB; biggest: "
          + ", ".join(f"{pid}={kb / 1024:.0f} MB" for pid, kb in biggest))
    print(f"after the embedding model's keep-alive ({KEEP_ALIVE} s unused): "
          f"{result['after_keep_alive']['per_anima_mb']} MB per Anima, supervisor "
          f"{result['after_keep_alive']['supervisor_pss_mb']} MB")
    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    recorded[args.spawn] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")


if __name__ == "__main__":
    main()
