"""Bench (b): Anima -> Anima message delivery without model time, p50/p95 in ms. Goal: p95 <= 50 ms.

Each sample is one `Organization.send` from bob to alice through the messaging rules: the durable
Maildir delivery (fsync of the file and the directory) and the outbox record. The org is the
real template (`orgctl init`), in a temporary directory. No supervisor runs, so waking the
recipient is not measured. Run: .venv/bin/python bench/message_delivery.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops.bootstrapping import init_org
from orgctl.paths import StatePaths, template_dir
from orgctl.runtime.organization import Organization

SAMPLES = 200


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        org_dir = Path(tmp) / "acme"
        init_org(dest=org_dir, template=template_dir(), name="acme")
        spec = load_org(GitRevisionSource(org_dir, "HEAD"))
        limits = spec.animas["bob"].messaging.model_copy(update={"per_hour": 10**6, "per_day": 10**6,
                                                                 "pair_depth": 10**6})
        specs = {**spec.animas, "bob": spec.animas["bob"].model_copy(update={"messaging": limits})}
        org = Organization(paths=StatePaths(Path(tmp) / "state").ensure(), specs=specs)
        times = []
        for i in range(SAMPLES):
            started = time.perf_counter()
            assert org.send("bob", "alice", "report", f"Status {i}: the build is green").accepted
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    result = {"samples": SAMPLES, "p50_ms": round(statistics.median(times), 2),
              "p95_ms": round(times[int(0.95 * len(times)) - 1], 2), "max_ms": round(times[-1], 2), "goal_p95_ms": 50}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "message_delivery.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
