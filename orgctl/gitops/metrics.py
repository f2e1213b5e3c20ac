"""Prometheus metrics of the controller (``orgctl controller --metrics-addr HOST:PORT``), with ``prometheus_client``.

==================================== ========= =================================================
``orgctl_reconcile_total``            counter   passes, by ``result`` (converged, pending, stalled, error)
``orgctl_reconcile_duration_seconds`` histogram how long a pass took
``orgctl_animas``                     gauge     Animas by ``health`` (Healthy, Progressing, ...)
``orgctl_reconcile_queue_depth``      gauge     Animas with a change still queued (backoff, rate limit)
``orgctl_model_tokens_total``         counter   model tokens by ``anima`` and ``kind`` (prompt, completion)
==================================== ========= =================================================

The model token counter follows ``<state>/usage.jsonl`` from where it stood when the controller
started (a counter starts at zero with its process, which Prometheus' ``rate()`` expects).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from orgctl.gitops.controlling import PassReport
from orgctl.paths import StatePaths
from orgctl.state.files import JsonlTail, read_json


class ControllerMetrics:
    """The controller's metrics in a registry of their own, refreshed after every pass."""

    def __init__(self, paths: StatePaths) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.paths = paths
        self.registry = CollectorRegistry()
        self.passes = Counter("orgctl_reconcile", "Reconcile passes, by result.", ["result"], registry=self.registry)
        self.duration = Histogram("orgctl_reconcile_duration_seconds", "Duration of a reconcile pass.",
                                  registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.animas = Gauge("orgctl_animas", "Animas by health.", ["health"], registry=self.registry)
        self.queue = Gauge("orgctl_reconcile_queue_depth", "Animas with a change still queued.",
                           registry=self.registry)
        self.tokens = Counter("orgctl_model_tokens", "Model tokens, by Anima and kind.", ["anima", "kind"],
                              registry=self.registry)
        self._usage = JsonlTail(paths.usage)
        with contextlib.suppress(OSError):
            self._usage.offset = os.stat(paths.usage).st_size
        self._server: Any = None

    def observe(self, report: PassReport) -> None:
        """Count one pass and refresh the gauges from ``status.json`` and the token counter from usage."""
        result = ("error" if report.error else "stalled" if report.stalled else
                  "pending" if report.pending else "converged")
        self.passes.labels(result=result).inc()
        self.duration.observe(report.duration_s)
        self.queue.set(len(report.pending))
        status = read_json(self.paths.status, default={}) or {}
        counts: dict[str, int] = {h: 0 for h in ("Healthy", "Progressing", "Degraded", "Suspended", "Missing")}
        for entry in (status.get("animas") or {}).values():
            counts[str(entry.get("health"))] = counts.get(str(entry.get("health")), 0) + 1
        for health, n in counts.items():
            self.animas.labels(health=health).set(n)
        _, records = self._usage.read_new()
        for r in records:
            anima = str(r.get("anima") or "-")
            for kind in ("prompt", "completion"):
                n = r.get(f"{kind}_tokens")
                if isinstance(n, int) and n > 0:
                    self.tokens.labels(anima=anima, kind=kind).inc(n)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread. Raises OSError when the port is taken."""
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

