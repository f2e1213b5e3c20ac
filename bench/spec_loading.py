"""Bench: loading and validating a large org spec (``load_org``), 1,000 Animas.

``orgctl validate`` and every ``plan``/``apply`` run :func:`~orgctl.desired.loading.load_org`,
which parses every spec file and scans each one once for secrets. This builds an org of
1,000 Animas (each a copy of the template's bob: 5 files, about 40 lines, under one manager)
in a temporary directory, commits it, and times ``load_org`` from the work tree (what
``validate`` reads) and from ``HEAD`` (what ``plan`` and ``apply`` read), median of a few runs,
plus the secret scan alone over the same files.

Issue 7's bench (b) is here too: ``orgctl plan`` on the same org as a whole process, as a ratio
to a bare Python process that reads the same files and parses their YAML (``org.yaml``,
``anima.yaml``, the Markdown frontmatter) with libyaml; both include interpreter start-up.
Goal: at most 2x.

Run: ``.venv/bin/python bench/spec_loading.py [N]``. Recorded in bench/results/spec_loading.json.
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

from orgctl.desired.loading import load_org
from orgctl.desired.secrets import scan_text
from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
from orgctl.paths import StatePaths

sys.path.insert(0, str(Path(__file__).parent))
from orgs import build_org  # noqa: E402  (bench/orgs.py, shared by the benches)

RESULTS = Path(__file__).parent / "results" / "spec_loading.json"
RUNS = 3


def median_seconds(fn, runs: int = RUNS) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def scan_all(org: Path) -> int:
    found = 0
    for path in sorted(org.glob("animas/*/*")):
        if path.is_file():
            found += len(scan_text(path.read_text(), filename=str(path.relative_to(org))))
    return found


BARE_PARSE = """
import sys, pathlib, yaml
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
root = pathlib.Path(sys.argv[1])
docs = 0
for path in [root / "org.yaml", *sorted(root.glob("animas/*/*"))]:
    if not path.is_file():
        continue
    text = path.read_text()
    if path.suffix == ".yaml":
        yaml.load(text, Loader=loader)
    elif text.startswith("---\\n") and "\\n---\\n" in text[4:]:
        yaml.load(text[4:].split("\\n---\\n", 1)[0], Loader=loader)
    docs += 1
print(docs)
"""


def process_seconds(argv: list[str], runs: int = RUNS, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``argv`` as a whole process (interpreter start-up included)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        org = build_org(Path(tmp), n)
        # packed, as a repository cloned or fetched from a remote is (6,000 loose objects cost git ~0.3 s more)
        subprocess.run(["git", "-C", str(org), "repack", "-adq"], check=True)
        files = sum(1 for p in org.glob("animas/*/*") if p.is_file()) + 1
        lines = sum(len(p.read_text().splitlines()) for p in org.glob("animas/*/*") if p.is_file())
        assert len(load_org(WorkTreeSource(org)).animas) == n
        work_tree = median_seconds(lambda: load_org(WorkTreeSource(org)))
        head = median_seconds(lambda: load_org(GitRevisionSource(org, "HEAD")))
        assert scan_all(org) == 0
        scan = median_seconds(lambda: scan_all(org))
        # issue 7 bench (b): `orgctl plan` as a whole process against a bare script that reads and
        # parses the same files (YAML, and the frontmatter of the Markdown files) with libyaml
        # An org someone plans has a state dir (apply made it), where the secret-scan cache lives: the first
        # plan scans every file (cold), later ones only files whose content is new (warm: what a controller
        # pass or a plan after a one-Anima commit costs). Bytecode cached, as installed.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["ORGCTL_STATE_DIR"] = str(Path(tmp) / "state")
        StatePaths(root=Path(tmp) / "state").ensure()
        orgctl = str(Path(sys.executable).with_name("orgctl"))
        plan_cold = process_seconds([orgctl, "plan", str(org)], runs=1, env=env)
        plan = process_seconds([orgctl, "plan", str(org)], runs=5, env=env)
        bare = process_seconds([sys.executable, "-c", BARE_PARSE, str(org)], runs=9, env=env)  # noisy: 0.6-0.8 s
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "animas": n, "spec_files": files, "spec_lines": lines,
        "load_org_work_tree_s": round(work_tree, 3),
        "load_org_head_s": round(head, 3),
        "secret_scan_alone_s": round(scan, 3),
        "plan_process_cold_s": round(plan_cold, 3),
        "plan_process_s": round(plan, 3),
        "bare_parse_process_s": round(bare, 3),
        "plan_vs_bare_ratio": round(plan / bare, 2),
        "plan_cold_vs_bare_ratio": round(plan_cold / bare, 2),
        "plan_goal_ratio": 2.0,
    }
    print(f"{n} Animas, {files} spec files, {lines} lines")
    print(f"load_org, work tree  {work_tree:6.2f} s")
    print(f"load_org, HEAD       {head:6.2f} s")
    print(f"secret scan alone    {scan:6.2f} s  (included in both)")
    print(f"orgctl plan process  {plan:6.2f} s  vs a bare read+parse process {bare:.2f} s: "
          f"{plan / bare:.1f}x (goal 2x); cold (empty scan cache) {plan_cold:.2f} s = {plan_cold / bare:.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
