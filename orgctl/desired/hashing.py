"""The spec hash, as one plain function of JSON data: the loader, the planner, the Anima process and drift
detection (which reads snapshot files without pydantic) all hash a resolved spec with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

LATER_DEFAULTS: dict[str, Any] = {
    "skills": [],
    "memory": {"hooks": True,
               "schedule": {"consolidate": "0 2 * * *", "compress": "0 3 * * 0", "forget": "0 4 1 * *"},
               "forgetting": {"downscale_after_days": 90, "min_uses": 3, "archive_after_days": 180,
                              "forget_after_days": 365, "protect": ["procedures"]}},
    "sandbox": {"mode": "on", "read_only": [],
                "limits": {"cpu_seconds": 120, "memory_mb": 2048, "open_files": 256, "processes": 128,
                           "file_size_mb": 1024, "tmp_mb": 256, "timeout_seconds": 30}},
}
"""Fields added to the resolved spec after a release, with their defaults: a field at its default does not
enter the hash, so upgrading changes no Anima's hash (and restarts none). tests/unit check these equal the
models' defaults."""
LATER_FIELD_DEFAULTS: dict[str, dict[str, Any]] = {"permissions": {"network": False}}
"""The same for fields added inside a section of the resolved spec (``permissions.network``)."""


def spec_digest(spec: Mapping[str, Any], peers: Sequence[str]) -> str:
    """sha256 of a resolved Anima spec in JSON form (canonical: sorted keys, no spaces).

    ``org.peers`` enters as one digest of ``peers`` (names hold no newline), whether or not ``spec``
    still holds it: under one manager of 1,000 Animas each lists 998 peers, and dumping them as JSON
    cost 0.4 s of every plan. Raises KeyError or TypeError when ``spec`` has no ``org`` mapping.
    """
    org = {k: v for k, v in spec["org"].items() if k != "peers"}
    org["peers_sha256"] = hashlib.sha256("\n".join(peers).encode()).hexdigest()
    data = {**{k: v for k, v in spec.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}, "org": org}
    for section, defaults in LATER_FIELD_DEFAULTS.items():
        if isinstance(data.get(section), Mapping):
            data[section] = {k: v for k, v in data[section].items() if k not in defaults or v != defaults[k]}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
