"""Helpers the benches share: a generated org of N Animas, the orgctl CLI as a process, PSS of a process,
recording a result in bench/results/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from orgctl.gitops.bootstrapping import init_org
from orgctl.paths import template_dir

ORGCTL = str(Path(sys.executable).with_name("orgctl"))
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def build_org(root: Path, n: int, *, name: str = "big") -> Path:
    """An org repo of ``n`` Animas under ``root``: the template's three plus copies of bob (5 files, ~40 lines
    each, reporting to alice), committed. Each copy's files end with a line naming it, so no two files
    have the same content (a content-addressed cache sees 1,000 Animas as 1,000, not as one)."""
    org = root / name
    init_org(dest=org, template=template_dir(), name=name)
    bob = org / "animas" / "bob"
    for i in range(n - 3):  # alice, bob, carol are there already
        copy = org / "animas" / f"eng{i:04d}"
        shutil.copytree(bob, copy)
        for path in copy.iterdir():
            if path.is_file():
                mark = f"# eng{i:04d}\n" if path.suffix == ".yaml" else f"\n<!-- eng{i:04d} -->\n"
                path.write_text(path.read_text() + mark)
    if n > 3:
        env = {**os.environ, **GIT_ENV}
        subprocess.run(["git", "-C", str(org), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(org), "commit", "-qm", f"{n} Animas"], check=True, env=env)
    return org


def orgctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``orgctl ARGS`` to completion; raises CalledProcessError (with its output) on failure."""
    return subprocess.run([ORGCTL, *args], check=True, capture_output=True, text=True, env=env)


def pss_kb(pid: int) -> int | None:
    """Proportional set size of ``pid`` in kB (/proc/PID/smaps_rollup): shared pages divided among sharers;
    None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def record_result(path: Path, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` (bench/results/<bench>.json), stamped with the machine and the time."""
    record = {**record, "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "at": datetime.now().isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
