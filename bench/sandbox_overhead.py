"""Bench (issue 20, 5): what the kernel's sandbox costs per command.

``true`` and ``git status`` (in a real workspace: a clone with 200 files) run through the runtime's own
path, :func:`orgctl.runtime.spawning.spawn`, with the Anima's profile on and with ``sandbox: off``,
alternated run for run (on off on off ...) so a drift in the machine's speed moves both; the figures are
medians, the ratio the median of the pairs' ratios. The first command of a process also pays the probe
(one real sandbox started to see that the kernel allows it): reported on its own, as a new Anima meets it.
Goal: <= 1.3x, or <= 5 ms added per command.

Run: ``.venv/bin/python bench/sandbox_overhead.py [--runs 101]``. Recorded in bench/results/sandbox_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from orgs import record_result  # noqa: E402

from orgctl.desired.models import SandboxConfig  # noqa: E402
from orgctl.desired.permissions import PermissionsFrontmatter  # noqa: E402
from orgctl.runtime import sandboxing, spawning  # noqa: E402
from orgctl.runtime.commands import minimal_env  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "sandbox_overhead.json"
GOAL_RATIO, GOAL_ADDED_MS = 1.3, 5.0


def workspace(root: Path) -> Path:
    ws = root / "workspaces" / "bob"
    ws.mkdir(parents=True)
    for i in range(200):
        (ws / f"note-{i:03}.md").write_text(f"note {i}\n")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(ws), *args], check=True)
    return ws


def once(argv: list[str], profile: sandboxing.Profile) -> float:
    started = time.perf_counter()
    env = minimal_env(profile.workspace, confined=profile.mode != "off")
    done = spawning.spawn(argv, profile=profile, env=env, cap=8192)
    assert done.exit_code == 0, done.output
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=101)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        ws = workspace(Path(tmp))
        perms = PermissionsFrontmatter()
        on = sandboxing.profile_for(permissions=perms, config=SandboxConfig(), workspace=ws)
        off = sandboxing.profile_for(permissions=perms, config=SandboxConfig(mode="off"), workspace=ws)
        started = time.perf_counter()
        if on.refusal:
            raise SystemExit(f"no sandbox here: {on.refusal}")
        probe_ms = (time.perf_counter() - started) * 1000
        record: dict = {"runs": args.runs, "probe_ms": round(probe_ms, 2), "bwrap": on.kernel.version,
                        "process_limit": on.kernel.process_limit, "commands": {}}
        for name, argv in (("true", ["true"]), ("git status", ["git", "status", "--short"])):
            once(argv, on), once(argv, off)  # warm-up
            a, b = [], []
            for _ in range(args.runs):
                a.append(once(argv, on))
                b.append(once(argv, off))
            on_ms, off_ms = statistics.median(a) * 1000, statistics.median(b) * 1000
            ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
            added = on_ms - off_ms
            met = ratio <= GOAL_RATIO or added <= GOAL_ADDED_MS
            record["commands"][name] = {"sandboxed_ms": round(on_ms, 2), "unconfined_ms": round(off_ms, 2),
                                        "ratio": round(ratio, 2), "added_ms": round(added, 2), "goal_met": met}
            print(f"{name:11} sandboxed {on_ms:6.2f} ms, unconfined {off_ms:6.2f} ms: {ratio:.2f}x, "
                  f"+{added:.2f} ms ({'met' if met else 'NOT met'}: <= {GOAL_RATIO}x or <= {GOAL_ADDED_MS} ms added)")
        print(f"first command of a process also pays the probe: {probe_ms:.1f} ms, once")
    record_result(RESULTS, record)


if __name__ == "__main__":
    main()
