"""The spec hash, as one plain function of JSON data: the loader, the planner, the Anima process and drift
detection (which reads snapshot files without pydantic) all hash a resolved spec with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def spec_digest(spec: Mapping[str, Any], peers: Sequence[str]) -> str:
    """sha256 of a resolved Anima spec in JSON form (canonical: sorted keys, no spaces).

    ``org.peers`` enters as one digest of ``peers`` (names hold no newline), whether or not ``spec``
    still holds it: under one manager of 1,000 Animas each lists 998 peers, and dumping them as JSON
    cost 0.4 s of every plan. Raises KeyError or TypeError when ``spec`` has no ``org`` mapping.
    """
    org = {k: v for k, v in spec["org"].items() if k != "peers"}
    org["peers_sha256"] = hashlib.sha256("\n".join(peers).encode()).hexdigest()
    data = {**spec, "org": org}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
