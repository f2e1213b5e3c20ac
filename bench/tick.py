"""Bench (issue 21): ``orgctl tick`` on a 50-Anima org with work in every queue, and the state branch's size.

Setup: an org of N Animas (default 50: the template's three plus copies of bob), ``runtime: tick``,
``shards: 5``, everyone awake, pushed to a bare remote on disk. Before each tick a person gives every Anima
a task and a question (through the state branch, as ``orgctl task add`` and ``orgctl send`` do on a tick
org), so every queue has work. The tick runs as its own process (``python bench/tick.py --one-tick``: the
interpreter, the imports and the whole tick), with a scripted model that answers at once by choosing among
the options the framework offers (``tests/integration/tick_runner.Scripted``): the model's time is measured
and subtracted anyway, so what is left is the framework's share.

* **cold**: a fresh runner, as a CI job is: a new clone of the remote, an empty state dir;
* **warm**: the same runner again, its state dir kept (the runtime's clone, the workspaces, the spec
  cache: what a self-hosted runner or a cached state dir keeps);
* each for the whole org (``--shard 5/5`` of 5 is not it: ``shards: 1`` then) and for ``--shard 1/5``.

Goals: the whole org's tick, framework share <= 10 s warm (cold reported beside it); one shard of five
<= 3 s. Then the state branch's size after ``--ticks`` (default 1,000) ticks of the template org, a clock
an hour apart, a person's message every tick and a task every fifth: the tip's tree, the commits on the
branch and the packed size of everything reachable from it, every 100 ticks. Bounded means flat.

Run: ``.venv/bin/python bench/tick.py [--animas 50] [--runs 3] [--ticks 1000]``.
Recorded in bench/results/tick.json.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from orgs import GIT_ENV, build_org, record_result  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tick.json"
GOAL_ORG_S, GOAL_SHARD_S = 10.0, 3.0
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def tick_org(root: Path, n: int, *, shards: int) -> Path:
    """An org of ``n`` Animas as a tick org of ``shards`` shards, everyone awake, pushed to ``root/remote.git``."""
    org = build_org(root, n, name=f"org{n}")
    text = (org / "org.yaml").read_text().replace('active_hours: "08:00-20:00"', "active_hours: always")
    (org / "org.yaml").write_text(text + f"runtime: tick\nshards: {shards}\n")
    carol = org / "animas" / "carol" / "anima.yaml"
    carol.write_text(carol.read_text().replace('active_hours: "09:00-17:00"', "active_hours: always"))
    _git(org, "commit", "-qam", "run as ticks")
    remote = root / f"remote{n}.git"
    _git(root, "init", "-q", "--bare", f"--initial-branch={_git(org, 'branch', '--show-current')}", str(remote))
    _git(org, "remote", "add", "origin", str(remote))
    _git(org, "push", "-q", "-u", "origin", "HEAD")
    return remote


def clone(remote: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(remote), str(dest)], check=True, capture_output=True)
    return dest


def give_work(person: Path, *, day: int, tasks: bool = True, only: list[str] | None = None) -> None:
    """A task and a question for every Anima (or ``only`` these), saved to the state branch (the person's
    checkout need not pull the memory commits: only the spec, unchanged, is read from it)."""
    from orgctl.paths import StatePaths
    from orgctl.runtime.ticking import work_in_flight

    paths = StatePaths(root=person.parent / "person-state")
    with work_in_flight(person, paths) as org:
        for name in only or sorted(org.specs):
            if tasks:
                org.add_task(name, f"Check the build for day {day}")
            org.human_message(name, f"Anything blocking on day {day}?", intent="question")


def one_tick(checkout: str, state: str, shard: str, at: str) -> None:
    """The child: one tick, its report as JSON on stdout."""
    from orgctl.paths import StatePaths
    from orgctl.runtime.ticking import Tick, parse_shard
    from tests.integration.tick_runner import Scripted

    when = datetime.fromisoformat(at)
    report = Tick(root=Path(checkout), paths=StatePaths(root=Path(state)), shard=parse_shard(shard),
                  now=lambda: when, client=Scripted()).run()
    print(json.dumps(report.as_json()))


def timed_tick(checkout: Path, state: Path, shard: str, at: datetime) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--one-tick", str(checkout), str(state), shard, at.isoformat()],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    report = json.loads(done.stdout.strip().splitlines()[-1])
    worked = sum(1 for a in report["animas"] if a["cycles"] or a["tasks"])
    return {"process_s": round(wall, 3), "model_s": report["model_s"], "tick_s": report["wall_s"],
            "framework_s": round(wall - report["model_s"], 3),
            "animas": len(report["animas"]), "worked": worked, "calls": report["calls"],
            "unfinished": len(report["unfinished"])}


def measure(root: Path, n: int, shards: int, shard: str, runs: int) -> dict[str, object]:
    remote = tick_org(root / f"s{shards}", n, shards=shards)
    person = clone(remote, root / f"s{shards}" / "person" / "checkout")
    cold, warm = [], []
    for run in range(runs):
        at = START + timedelta(hours=2 * run)
        give_work(person, day=run)
        runner = root / f"s{shards}" / f"runner{run}"
        checkout, state = clone(remote, runner / "checkout"), runner / "state"
        cold.append(timed_tick(checkout, state, shard, at))
        give_work(person, day=run)
        _git(checkout, "pull", "-q", "--ff-only")
        warm.append(timed_tick(checkout, state, shard, at + timedelta(hours=1)))
        print(f"  {shard} run {run + 1}: cold {cold[-1]['framework_s']:.2f} s, warm {warm[-1]['framework_s']:.2f} s "
              f"({warm[-1]['worked']}/{warm[-1]['animas']} Animas worked, {warm[-1]['calls']} model calls)",
              file=sys.stderr)

    def summary(rows: list[dict[str, float]]) -> dict[str, object]:
        shares = [r["framework_s"] for r in rows]
        return {"framework_s_median": round(statistics.median(shares), 3), "framework_s_max": round(max(shares), 3),
                "runs": rows}

    return {"animas": n, "shards": shards, "shard": shard, "cold": summary(cold), "warm": summary(warm)}


CLOCK = [START]


def simulated_clock() -> None:
    """Every timestamp orgctl writes (messages, tasks, events: :func:`orgctl.state.inventories.now_iso`)
    follows :data:`CLOCK`, the ticks' clock, so the compaction rules (7 days, 14 days) see the ages a real
    month and a half would give them. (The function's code is swapped, since pydantic models hold it as their
    default factory.)"""
    from orgctl.state import inventories

    def simulated() -> str:
        return CLOCK[0].isoformat(timespec="seconds")

    inventories.now_iso.__code__ = simulated.__code__
    inventories.now_iso.__globals__["CLOCK"] = CLOCK


def state_size(root: Path, ticks: int) -> list[dict[str, int]]:
    """``ticks`` ticks of the template org in one process, a clock an hour apart; sizes every 100 ticks."""
    from orgctl.paths import StatePaths
    from orgctl.runtime.ticking import Tick
    from tests.integration.tick_runner import Scripted

    simulated_clock()
    remote = tick_org(root / "size", 3, shards=1)
    person = clone(remote, root / "size" / "person" / "checkout")
    runner = clone(remote, root / "size" / "runner" / "checkout")
    paths = StatePaths(root=root / "size" / "runner" / "state")
    names = ["alice", "bob", "carol"]
    sizes = []
    started = time.perf_counter()
    for i in range(1, ticks + 1):
        give_work(person, day=i, tasks=i % 5 == 0, only=[names[i % 3]])
        at = START + timedelta(hours=i)
        CLOCK[0] = at
        Tick(root=runner, paths=paths, now=lambda at=at: at, client=Scripted()).run()
        if i % 100 == 0:
            tip = _git(remote, "rev-parse", "orgctl/state")
            blobs = _git(remote, "ls-tree", "-r", "-l", tip).splitlines()
            tree_bytes = sum(int(line.split()[3]) for line in blobs)
            objects = _git(remote, "rev-list", "--objects", "orgctl/state").splitlines()
            listed = "\n".join(o.split()[0] for o in objects) + "\n"
            disk = subprocess.run(["git", "-C", str(remote), "cat-file", "--batch-check=%(objectsize:disk)"],
                                  input=listed, check=True, capture_output=True, text=True).stdout.split()
            row = {"ticks": i, "files": len(blobs), "tree_bytes": tree_bytes,
                   "commits": int(_git(remote, "rev-list", "--count", "orgctl/state")),
                   "reachable_objects": len(objects), "reachable_disk_bytes": sum(int(x) for x in disk),
                   "elapsed_s": round(time.perf_counter() - started, 1)}
            sizes.append(row)
            print(f"  after {i} ticks: {row['files']} files, {row['tree_bytes'] / 1024:.0f} KiB tree, "
                  f"{row['commits']} commits, {row['reachable_disk_bytes'] / 1024:.0f} KiB reachable", file=sys.stderr)
    return sizes


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one-tick":
        one_tick(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--animas", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=1000, help="ticks for the state branch's size (0: skip)")
    parser.add_argument("--sizes-only", action="store_true",
                        help="only the state branch's size, added to the last recorded timings")
    args = parser.parse_args()
    if args.sizes_only:
        with tempfile.TemporaryDirectory(prefix="orgctl-tick-bench-") as tmp:
            os.environ["XDG_STATE_HOME"] = str(Path(tmp) / "xdg")
            sizes = state_size(Path(tmp), args.ticks)
        last = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"bench": "tick"}
        record_result(RESULTS, {**{k: v for k, v in last.items() if k not in ("machine", "at")},
                                "state_branch": sizes})
        print(json.dumps(sizes[-1] if sizes else {}, indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="orgctl-tick-bench-") as tmp:
        root = Path(tmp)
        os.environ["XDG_STATE_HOME"] = str(root / "xdg")
        print(f"{args.animas} Animas, the whole org (shards: 1):", file=sys.stderr)
        whole = measure(root, args.animas, 1, "1/1", args.runs)
        print(f"{args.animas} Animas, one shard of five:", file=sys.stderr)
        shard = measure(root, args.animas, 5, "1/5", args.runs)
        sizes = state_size(root, args.ticks) if args.ticks else []
    record = {"bench": "tick", "org": whole, "shard": shard, "state_branch": sizes,
              "goals": {"org_framework_s_warm": GOAL_ORG_S, "shard_framework_s_warm": GOAL_SHARD_S},
              "met": {"org": whole["warm"]["framework_s_median"] <= GOAL_ORG_S,  # type: ignore[index]
                      "shard": shard["warm"]["framework_s_median"] <= GOAL_SHARD_S}}  # type: ignore[index]
    record_result(RESULTS, record)
    print(json.dumps({k: record[k] for k in ("met", "goals")}, indent=2))
    print(f"whole org: warm {whole['warm']['framework_s_median']} s, cold {whole['cold']['framework_s_median']} s; "
          f"shard 1/5: warm {shard['warm']['framework_s_median']} s, cold {shard['cold']['framework_s_median']} s")


if __name__ == "__main__":
    main()
