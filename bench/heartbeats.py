"""Bench (a): heartbeats on the embedded model, with 1 and with 3 Animas awake and work in their queues.

Goal (issue 6): p95 <= 10 s with one Anima, and >= 95 % of heartbeats end in a valid decision.

Each Anima of the real template (`orgctl init`) runs its heartbeats in its own thread, as its own
process would, against the org's one model server (SmolLM2-135M, llama.cpp on loopback, through
the real gateway). Before each beat the bench hands the Anima real work, in turn:

* a person's task ("pending": the beat must plan it: delegate to a report or start it),
* a colleague's question (a reply: one short free-text call),
* a person's chat (a reply),
* a Board post that @mentions it (a one-line answer).

A heartbeat is *valid* when it did not fail (no invalid JSON after the retry, no model error) and
it acted on the work (its trace records at least one action). Latency is the wall time of
``Agent.heartbeat``, model calls included, queueing behind the other Animas' calls included.
Beats with a single possible action make no model call by design; they are counted, and the
latency figures are given over all beats and over beats that called the model.

Run: .venv/bin/python bench/heartbeats.py [--animas 1|3] [--beats N]   (N per Anima; default 100 / 34)
Records bench/results/heartbeats.json (one entry per --animas value).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops.bootstrapping import init_org
from orgctl.gitops.repos import prepare_workspace
from orgctl.llm.budgets import read_usage
from orgctl.llm.gateways import Gateway
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths, template_dir
from orgctl.runtime.cycle import Agent
from orgctl.runtime.organization import Organization
from orgctl.runtime.permissions import Policy

QUESTIONS = ["Which branch should the release be cut from?", "Can you check the build status today?",
             "What did you finish yesterday?", "Do we need a new test for the parser?"]
TASKS = ["Find out what changed in the org repo this week and report",
         "Summarize the open risks for the release", "Check the last five commits and report",
         "Compare two options for the log storage"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(q * len(ordered))) - 1)] if ordered else 0.0


def _rss_mb(pid: int) -> float | None:
    try:
        line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return round(int(line.split()[1]) / 1024, 1)


def give_work(org: Organization, name: str, i: int) -> None:
    spec = org.specs[name]
    colleague = spec.org.supervisor or (spec.org.reports[0] if spec.org.reports else None)
    kind = i % 4
    if kind == 0:
        org.add_task(name, TASKS[i % len(TASKS)])
    elif kind == 1 and colleague:
        sent = org.send(colleague, name, "question", f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})")
        if not sent.accepted:
            raise RuntimeError(f"{colleague} -> {name} refused: {sent.reason}")
    elif kind == 2 or (kind == 1 and not colleague):
        org.human_message(name, f"{QUESTIONS[(i + 1) % len(QUESTIONS)]} (#{i})", intent="chat")
    else:
        org.post("general", f"@{name} quick one: {QUESTIONS[(i + 2) % len(QUESTIONS)]} (#{i})", sender="human")


def run(animas: int, beats: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        org_dir = Path(tmp) / "acme"
        init_org(dest=org_dir, template=template_dir(), name="acme")
        spec = load_org(GitRevisionSource(org_dir, "HEAD"))
        paths = StatePaths(Path(tmp) / "state").ensure()
        loose = {n: s.model_copy(update={"messaging": s.messaging.model_copy(update={
            "per_hour": 10**6, "per_day": 10**6, "pair_depth": 10**6})}) for n, s in spec.animas.items()}
        org = Organization(paths=paths, specs=loose)
        gateway = Gateway(paths=paths)
        names = ["alice", "bob", "carol"][:animas]
        agents = {}
        for name in names:
            workspace = paths.workspace(name)
            prepare_workspace(org_dir, workspace, revision=spec.revision)
            agents[name] = Agent(spec=loose[name], org=org, client=gateway,
                                 store=MemoryStore(org_dir / "animas" / name / "memory", anima=name),
                                 policy=Policy(loose[name].permissions, workspace=workspace), revision=spec.revision)
        gateway.local.ensure()  # the server's start-up is not a heartbeat
        agents[names[0]].heartbeat(now=datetime.now(UTC))  # nor is the first prompt's prefix-cache fill
        samples: list[dict[str, object]] = []
        lock = threading.Lock()

        def beat_loop(name: str) -> None:
            for i in range(beats):
                give_work(org, name, i)
                started = time.perf_counter()
                trace = agents[name].heartbeat(now=datetime.now(UTC))
                took = time.perf_counter() - started
                with lock:
                    samples.append({"anima": name, "seconds": took, "calls": trace.usage.calls,
                                    "failed": trace.failed, "acted": bool(trace.did)})

        started = time.perf_counter()
        threads = [threading.Thread(target=beat_loop, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        server_rss_mb = _rss_mb(int((gateway.server_info() or {}).get("pid", 0)))
        gateway.close()
        calls: dict[str, list[dict[str, float]]] = {}
        for record in read_usage(paths.usage)[1:]:  # the warm-up beat's call is not counted
            calls.setdefault(str(record.get("purpose")), []).append(record)
        per_call = {purpose: {"calls": len(rs),
                              "latency_p50_s": round(statistics.median(r["latency_s"] for r in rs), 2),
                              "prompt_tokens_mean": round(statistics.mean(r["prompt_tokens"] for r in rs)),
                              "completion_tokens_mean": round(statistics.mean(r["completion_tokens"] for r in rs))}
                    for purpose, rs in sorted(calls.items())}
    latencies = [float(s["seconds"]) for s in samples]  # type: ignore[arg-type]
    with_model = [float(s["seconds"]) for s in samples if s["calls"]]  # type: ignore[arg-type]
    valid = [s for s in samples if not s["failed"] and s["acted"]]
    failures = sorted({str(s["failed"])[:160] for s in samples if s["failed"]})
    return {
        "animas": animas, "heartbeats": len(samples), "wall_s": round(wall, 1),
        "valid": len(valid), "valid_share": round(len(valid) / len(samples), 3),
        "failed": sum(1 for s in samples if s["failed"]), "no_action": sum(1 for s in samples if not s["acted"]),
        "model_calls": sum(int(s["calls"]) for s in samples),  # type: ignore[call-overload]
        "p50_s": round(statistics.median(latencies), 2), "p95_s": round(percentile(latencies, 0.95), 2),
        "max_s": round(max(latencies), 2),
        "with_model": {"heartbeats": len(with_model), "p50_s": round(statistics.median(with_model), 2),
                       "p95_s": round(percentile(with_model, 0.95), 2)} if with_model else None,
        "failures": failures[:5],
        "per_call": per_call,
        "model_server_rss_mb": server_rss_mb,
        "goal": {"p95_s_one_anima": 10, "valid_share": 0.95},
        "machine": "2 cores, no GPU; SmolLM2-135M-Instruct Q4_1 via llama.cpp",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--animas", type=int, choices=(1, 3), default=1)
    parser.add_argument("--beats", type=int, default=None, help="heartbeats per Anima")
    args = parser.parse_args()
    beats = args.beats or (100 if args.animas == 1 else 34)
    result = run(args.animas, beats)
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "heartbeats.json"
    recorded = json.loads(out.read_text()) if out.exists() else {}
    recorded[f"{args.animas}_animas"] = result
    out.write_text(json.dumps(recorded, indent=2) + "\n")


if __name__ == "__main__":
    main()
