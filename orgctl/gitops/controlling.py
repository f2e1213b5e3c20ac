"""The controller: a level-triggered reconcile loop that keeps the running org converged on git.

Each pass reads the whole desired state (the tracked branch, from the runtime's own mirror:
:mod:`orgctl.gitops.mirrors`) and the whole observed state (inventory, runtime status, pauses),
computes the plan and carries it out one Anima at a time. A pass is idempotent: run twice with
nothing changed, the second does nothing. Triggers only decide *when* a pass runs; what it does
never depends on which trigger fired (Kubernetes controllers work the same way).

Failure handling, as controller-runtime's work queue and Flux do it:

* **per-Anima retry with exponential backoff**: a failed change for one Anima is retried after
  ``backoff_base * 2**(failures-1)`` seconds, capped at ``backoff_cap``; the other Animas are not
  held back, and a pass never retries an Anima before its time;
* **a global rate limit** (a token bucket over every action), so a broken Anima or a flapping
  supervisor cannot restart processes, and burn the model budget, in a tight loop;
* **temporary vs permanent errors**: a git, lock or process failure is temporary (retried); a spec
  that does not validate, or a plan that would retire most of the org, is permanent: the revision
  is **Stalled** and not retried until the tracked branch moves. The org keeps running what it
  last applied meanwhile, and killed processes are still healed.

Every pass ends by writing ``<state>/status.json`` (:mod:`orgctl.state.conditions`), which
``orgctl status`` reads.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orgctl.errors import OrgctlError, SpecError, StateError
from orgctl.gitops.applying import ApplyResult, apply_change
from orgctl.gitops.backends import Backend
from orgctl.gitops.clones import RuntimeClone
from orgctl.gitops.drifting import detect_drift
from orgctl.gitops.mirrors import OrgMirror
from orgctl.gitops.planning import Action, Change, Plan, compute_plan
from orgctl.pacing import backoff
from orgctl.paths import StatePaths
from orgctl.state import conditions, events
from orgctl.state.files import append_jsonl, read_json, write_json
from orgctl.state.inventories import load_inventory, now_iso, save_inventory
from orgctl.state.locking import state_lock
from orgctl.state.pauses import org_suspension, read_pauses

log = logging.getLogger("orgctl.controller")

DriftMode = Literal["heal", "warn"]


@dataclass(frozen=True)
class ControllerOptions:
    """Timings (seconds) and limits of the loop; the defaults are documented in docs/operations.md."""

    resync_interval: float = 30.0
    """A full pass at least this often, whatever else happens (drift, killed processes)."""
    poll_interval: float = 1.0
    """How often the tracked branch's tip is checked when it is on this machine (one ``git rev-parse``)."""
    remote_poll_interval: float = 60.0
    """How often a network remote is asked (``git ls-remote``), with ±10 % jitter; webhooks make it sooner."""
    drift: DriftMode = "heal"
    rate_per_second: float = 2.0
    burst: int = 200
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    lock_timeout: float = 30.0


class RateLimiter:
    """A token bucket: ``burst`` actions at once, then ``rate`` per second. ``clock`` is monotonic seconds."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        """Spend one token; False (and nothing spent) when the bucket is empty."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class _Retry:
    failures: int = 0
    not_before: float = 0.0
    error: str = ""


class WorkQueue:
    """Per-Anima retry state: failures, when the next attempt may run, the last error.

    The plan is the queue's content (one item per Anima with a change: de-duplicated by
    construction); this keeps what the plan cannot: how often and how recently each one failed.
    """

    def __init__(self, *, base: float, cap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.cap, self._clock = base, cap, clock
        self._items: dict[str, _Retry] = {}

    def due(self, name: str) -> bool:
        item = self._items.get(name)
        return item is None or self._clock() >= item.not_before

    def failed(self, name: str, error: str) -> float:
        """Record a failure; returns the backoff (seconds) before the next attempt."""
        item = self._items.setdefault(name, _Retry())
        item.failures += 1
        delay = backoff(item.failures, base=self.base, cap=self.cap)
        item.not_before, item.error = self._clock() + delay, error
        return delay

    def defer(self, name: str, seconds: float) -> None:
        """Hold ``name`` back for ``seconds`` without counting a failure (the rate limit)."""
        item = self._items.setdefault(name, _Retry())
        item.not_before, item.error = self._clock() + seconds, item.error or "rate limit"

    def succeeded(self, name: str) -> None:
        self._items.pop(name, None)

    def retain(self, names: set[str]) -> None:
        """Forget every Anima not in ``names``: its change is no longer planned (fixed, or done by hand)."""
        for name in set(self._items) - names:
            del self._items[name]

    def waiting(self, name: str) -> _Retry | None:
        return self._items.get(name)

    def next_due(self) -> float | None:
        """Monotonic time of the earliest pending retry, or None."""
        return min((i.not_before for i in self._items.values()), default=None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class PassReport:
    """What one pass did. ``pending`` maps Animas whose change is still queued to why."""

    trigger: str
    revision: str | None = None
    applied: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    stalled: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    drifted: dict[str, str] = field(default_factory=dict)
    """Drift left in place (``--drift warn``), by Anima."""
    suspended: str | None = None
    """Why nothing was reconciled: the whole org is suspended (``orgctl suspend --all``)."""
    planned: dict[str, int] = field(default_factory=dict)
    """The plan's summary (hire, change, restart, retire counts), for ``orgctl history``."""

    @property
    def converged(self) -> bool:
        return not self.pending and not self.stalled and not self.error and not self.drifted

    def summary(self) -> str:
        rev = (self.revision or "-")[:7]
        if self.suspended:
            return f"pass ({self.trigger}) skipped: {self.suspended}"
        if self.error:
            return f"pass ({self.trigger}) at {rev} failed: {self.error}"
        parts = [f"pass ({self.trigger}) at {rev}: "
                 + (f"applied {len(self.applied)} ({_names(self.applied)})" if self.applied else "no changes")]
        if self.pending:
            parts.append(f"{len(self.pending)} pending ({_names(self.pending)})")
        if self.stalled:
            parts.append(f"stalled: {self.stalled}")
        if self.drifted:
            parts.append(f"drift left in place ({_names(self.drifted)})")
        return "; ".join(parts) + f" in {self.duration_s:.2f}s"


def _names(names: Iterable[str], limit: int = 8) -> str:
    """``a, b, c`` -- or the first ``limit`` and ``(+N more)``, so a pass over 1,000 Animas logs one short line."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:limit])
    return shown + (f" (+{len(ordered) - limit} more)" if len(ordered) > limit else "")


def _stalled_animas(error: SpecError) -> dict[str, str]:
    """The Animas a spec error is about (diagnostics under ``animas/<name>/``), with their messages."""
    out: dict[str, list[str]] = {}
    for d in error.diagnostics:
        parts = str(d.file).split("/")
        if len(parts) >= 2 and parts[0] == "animas":
            out.setdefault(parts[1], []).append(str(d))
    return {name: "; ".join(msgs)[:500] for name, msgs in out.items()}


class Controller:
    """Reconciles one org: ``checkout`` (the person's repo, never written), its ``mirror``, its state.

    ``backend`` runs the Animas. Thread-safe: triggers call :meth:`request` (ask for a pass) or
    :meth:`poke` (check the source now) from any thread; passes run one at a time in :meth:`run`
    (or directly with :meth:`reconcile`).
    """

    def __init__(self, *, checkout: Path, paths: StatePaths, mirror: OrgMirror, backend: Backend,
                 options: ControllerOptions | None = None) -> None:
        self.checkout = Path(checkout).resolve()
        self.paths = paths
        self.mirror = mirror
        self.backend = backend
        self.options = options or ControllerOptions()
        self.queue = WorkQueue(base=self.options.backoff_base, cap=self.options.backoff_cap)
        self.limiter = RateLimiter(rate=self.options.rate_per_second, burst=self.options.burst)
        self._wake = threading.Event()
        self._poked = False
        self._runtime_seen: int | None = None
        self._triggers: list[str] = []
        self._trigger_lock = threading.Lock()
        self._desired: Any = None  # the last OrgSpec that validated
        self._desired_rev: str | None = None
        self._bad_rev: str | None = None  # a revision that did not validate: Stalled until the branch moves
        self._bad: SpecError | None = None
        self._tip: str | None = None
        self._source_error: str | None = None
        self._mass_warned: str | None = None
        self._drift_warned: dict[str, list[str]] = {}
        self.passes = 0
        self.last_report: PassReport | None = None
        self._clone: RuntimeClone | None = None

    def clone(self) -> RuntimeClone:
        """The runtime's clone, where memory is written: made sure of once, tracking the mirror's branch.
        Raises GitError when it cannot be created (a temporary error for the Anima being applied)."""
        if self._clone is None:
            self._clone = RuntimeClone.for_checkout(self.checkout, self.paths.clone, branch=self.mirror.branch)
        return self._clone

    @property
    def desired(self) -> Any:
        """The last desired state that validated (an OrgSpec), or None before the first good revision."""
        return self._desired

    # ------------------------------------------------------------------ triggers

    def request(self, trigger: str) -> None:
        """Ask for a pass soon (``commit``, ``webhook``, ``reconcile``, ``resync`` ...). Coalesced."""
        with self._trigger_lock:
            if trigger not in self._triggers:
                self._triggers.append(trigger)
        self._wake.set()

    def poke(self) -> None:
        """Check the tracked branch's tip now (a watcher saw its refs change); a pass follows if it moved."""
        self._poked = True
        self._wake.set()

    def _take_triggers(self) -> str | None:
        with self._trigger_lock:
            names, self._triggers = self._triggers, []
        return ",".join(names) or None

    # ------------------------------------------------------------------ events

    def emit(self, reason: str, message: str, *, anima: str | None = None, type: events.EventType = "Normal",
             object: str | None = None) -> None:
        """An event in the org's stream, and a line in the controller's log."""
        events.emit(self.paths.work.events, reason=reason, message=message, type=type, anima=anima,
                    object=object or (f"anima/{anima}" if anima else "controller"))
        log.log(logging.WARNING if type == "Warning" else logging.INFO, "%s: %s", reason, message)

    # ------------------------------------------------------------------ source

    def _source(self) -> str | None:
        """The tracked revision to converge on (fetched into the mirror), or the last one when the source is
        unreachable (a temporary error, reported once per streak)."""
        try:
            tip = self.mirror.tip()
            if tip != self._tip or self.mirror.fetched() != tip:
                tip = self.mirror.fetch()
            self._tip = tip
            if self._source_error:
                self.emit("SourceAvailable", f"{self.mirror.describe()} answers again")
            self._source_error = None
        except OrgctlError as e:
            if self._source_error != e.message:
                self.emit("SourceUnavailable", f"cannot read {self.mirror.describe()}: {e.message}; "
                           "keeping the last fetched revision", type="Warning")
            self._source_error = e.message
            self._tip = self.mirror.fetched()
        return self._tip

    def _load(self, revision: str) -> Any:
        """The desired OrgSpec at ``revision``, or None when it does not validate (Stalled: permanent)."""
        from orgctl.desired.loading import load_org
        from orgctl.desired.sources import GitRevisionSource
        from orgctl.desired.speccache import SpecCache

        if revision == self._desired_rev:
            return self._desired
        if revision == self._bad_rev:
            return None
        try:
            cache = SpecCache(self.paths.spec_cache)  # an unchanged file is not scanned or parsed again
            desired = load_org(GitRevisionSource(self.mirror.path, revision), cache=cache)
        except SpecError as e:
            self._bad_rev, self._bad = revision, e
            details = "; ".join(str(d) for d in e.diagnostics[:5])
            self.emit("SpecInvalid", f"revision {revision[:7]} does not validate: {e.message}"
                       + (f" ({details})" if details else "") + "; not retried until the branch moves",
                       type="Warning", object=f"revision/{revision}")
            return None
        if desired.runtime == "tick":  # the org's ticks run it: a controller would double its heartbeats
            from orgctl.errors import Diagnostic

            self._bad_rev = revision
            self._bad = SpecError([Diagnostic("org.yaml", 0, "runtime: tick: this org runs as `orgctl tick` passes, "
                                              "so the controller does not run it (stop it: `orgctl controller stop`)")])
            self.emit("TickOrg", f"revision {revision[:7]} says runtime: tick: the controller does not run a tick "
                                 "org; not retried until the branch moves", type="Warning",
                      object=f"revision/{revision}")
            return None
        self._desired, self._desired_rev, self._bad_rev, self._bad = desired, revision, None, None
        return desired

    # ------------------------------------------------------------------ a pass

    def reconcile(self, trigger: str = "manual") -> PassReport:
        """One level-triggered pass; returns what it did. Never raises for a user or runtime error."""
        started = time.monotonic()
        report = PassReport(trigger=trigger)
        try:
            self._pass(report)
        except OrgctlError as e:  # a temporary error of the whole pass (the lock, the supervisor)
            report.error = e.message
            log.warning("pass failed: %s", e.message)
        report.duration_s = time.monotonic() - started
        self.passes += 1
        self.last_report = report
        if report.applied or any("failed" in why for why in report.pending.values()):
            with contextlib.suppress(OSError):  # `orgctl history` lists the controller's applies too
                append_jsonl(self.paths.history, {
                    "at": now_iso(), "revision": report.revision, "plan": report.planned, "by": "controller",
                    "result": report.summary(), "duration_s": round(report.duration_s, 2)})
        with contextlib.suppress(OrgctlError, OSError):
            self._write_status(report)
        return report

    def _pass(self, report: PassReport) -> None:
        if (held := org_suspension(self.paths)) is not None:
            report.suspended = f"the reconciliation of the whole org is {held.describe()}"
            return
        tip = self._source()
        report.revision = tip
        if tip is None:
            raise StateError(f"nothing fetched yet from {self.mirror.describe()}")
        desired = self._load(tip)
        if desired is None:
            report.stalled = f"revision {tip[:7]} does not validate: {self._bad.message if self._bad else ''}"
            desired = self._desired  # keep healing what was last applied
            if desired is None:
                return
        self.paths.ensure()
        with state_lock(self.paths.lock, operation="controller", timeout=self.options.lock_timeout):
            inventory = load_inventory(self.paths.inventory)
            runtime = self.backend.observe()
            paused = read_pauses(self.paths)
            drift = detect_drift(inventory, runtime, self.paths, paused=paused)
            self._report_drift(drift, report)
            plan = compute_plan(desired, inventory, runtime, paused, drift if self.options.drift == "heal" else None)
            report.planned = plan.to_json()["summary"]
            self._carry_out(plan, desired=desired, inventory=inventory, report=report)
            if not report.pending and not report.stalled and inventory.revision != desired.revision:
                inventory.revision, inventory.applied_at = desired.revision, now_iso()
                save_inventory(self.paths.inventory, inventory)
        if report.applied:
            self.emit("Reconciled", f"applied revision {str(desired.revision)[:7]} to {_names(report.applied)}",
                      object=f"revision/{desired.revision}")

    def _report_drift(self, drift: dict[str, list[str]], report: PassReport) -> None:
        """A DriftDetected Warning per Anima when its drift first shows (or changes); in ``warn`` mode the drift
        is also left in the report (the Anima is OutOfSync until someone acts)."""
        heal = self.options.drift == "heal"
        for name, reasons in drift.items():
            if self._drift_warned.get(name) != reasons:
                self.emit("DriftDetected", f"{name} changed outside orgctl: {'; '.join(reasons)}; "
                          + ("converging it back to the applied spec" if heal else
                             "not converged (--drift warn): `orgctl apply` or a controller with --drift heal does"),
                          anima=name, type="Warning")
            if not heal:
                report.drifted[name] = "; ".join(reasons)
        self._drift_warned = dict(drift)

    def _carry_out(self, plan: Plan, *, desired: Any, inventory: Any, report: PassReport) -> None:
        changes: list[Change] = list(plan.changes)
        if (mass := plan.mass_retire(inventory)) is not None:
            if self._mass_warned != desired.revision:
                self.emit("MassRetireRefused", f"not retiring: {mass}; run `orgctl apply --allow-mass-retire` "
                           "if it is intended", type="Warning", object=f"revision/{desired.revision}")
                self._mass_warned = desired.revision
            report.stalled = f"mass retirement refused ({mass})"
            for c in changes:
                if c.action == Action.RETIRE:
                    report.pending[c.name] = "retirement held: mass-retire guard"
            changes = [c for c in changes if c.action != Action.RETIRE]
        self.queue.retain({c.name for c in changes})
        prepared = False
        result = ApplyResult()
        for change in changes:
            name = change.name
            if not self.queue.due(name):
                item = self.queue.waiting(name)
                report.pending[name] = f"{change.action.value} retrying after backoff: {item.error if item else ''}"
                continue
            if not self.limiter.take():
                self.queue.defer(name, 1.0 / max(self.options.rate_per_second, 0.01))
                report.pending[name] = f"{change.action.value} deferred: rate limit"
                continue
            try:
                if change.action != Action.RETIRE and not prepared:
                    self.backend.prepare()
                    prepared = True
                apply_change(change, desired=desired, inventory=inventory, org_dir=self.checkout,
                             paths=self.paths, backend=self.backend, result=result, clone=self.clone(),
                             source_repo=self.mirror.path)
                save_inventory(self.paths.inventory, inventory)
            except OrgctlError as e:
                delay = self.queue.failed(name, e.message)
                report.pending[name] = f"{change.action.value} failed: {e.message}; retry in {delay:.0f}s"
                self.emit("ReconcileFailed", f"{change.action.value} {name} failed: {e.message}; "
                           f"retrying in {delay:.0f}s", anima=name, type="Warning")
                continue
            self.queue.succeeded(name)
            report.applied.append(name)

    # ------------------------------------------------------------------ status

    def _write_status(self, report: PassReport) -> None:
        """``<state>/status.json``: conditions, sync and health per Anima, the org's, and this pass."""
        from orgctl.state.observing import observe_status

        observed = observe_status(self.paths)
        old = read_json(self.paths.status, default={}) or {}
        old_animas = old.get("animas") or {}
        now = now_iso()
        spec_stalled = _stalled_animas(self._bad) if self._bad is not None and self._bad_rev == report.revision else {}
        pauses = read_pauses(self.paths)
        animas: dict[str, Any] = {}
        for row in observed["animas"]:
            if row["state"] in ("retired", "orphaned"):
                continue
            name = row["name"]
            pending = report.pending.get(name)
            drifted = report.drifted.get(name)
            stalled = spec_stalled.get(name)
            synced = pending is None and stalled is None and drifted is None
            suspended = pauses[name].describe() if name in pauses else report.suspended
            conds = conditions.anima_conditions(health=row["health"], health_reason=row["reason"], synced=synced,
                                                pending=pending, stalled=stalled, suspended=suspended,
                                                resting=row["state"] == "resting", drifted=drifted)
            prev = old_animas.get(name) or {}
            animas[name] = {
                "name": name, "role": row["role"], "state": row["state"], "pid": row["pid"],
                "sync": "Synced" if synced else "OutOfSync", "health": row["health"], "health_reason": row["reason"],
                "conditions": conditions.carry_transitions(conds, prev.get("conditions"), now),
                "lastAppliedRevision": row["revision"], "lastAttemptedRevision": report.revision,
                "last_heartbeat": row["last_heartbeat"], "heartbeats": row["heartbeats"], "restarts": row["restarts"],
            }
        org_health = conditions.worst_health([a["health"] for a in animas.values()])
        org_synced = report.converged
        org_conds = [conditions.condition("Ready", None, "Suspended", report.suspended)] if report.suspended else [
            conditions.condition("Ready", org_synced and org_health == "Healthy" and not report.error,
                                 "Succeeded" if org_synced and org_health == "Healthy" else
                                 ("Stalled" if report.stalled else ("Failed" if report.error else org_health)),
                                 report.summary()),
        ]
        org_conds += [
            conditions.condition("Reconciling", bool(report.pending) and not report.stalled,
                                 "Progressing" if report.pending else "Succeeded"),
            conditions.condition("Stalled", bool(report.stalled), "PermanentError" if report.stalled else "",
                                 report.stalled or ""),
        ]
        write_json(self.paths.status, {
            "format_version": conditions.STATUS_FORMAT,
            "written_by": "controller",
            "updated_at": now,
            "source": {"url": self.mirror.url, "branch": self.mirror.branch, "revision": report.revision},
            "org": {"health": org_health, "sync": "Synced" if org_synced else "OutOfSync",
                    "conditions": conditions.carry_transitions(org_conds, (old.get("org") or {}).get("conditions"),
                                                               now),
                    "lastAppliedRevision": observed["revision"], "lastAttemptedRevision": report.revision},
            "last_pass": {"at": now, "trigger": report.trigger, "duration_s": round(report.duration_s, 3),
                          "summary": report.summary(), "applied": report.applied, "pending": report.pending},
            "passes": self.passes,
            "queue_depth": len(report.pending),
            "animas": animas,
        })

    def _refresh_status(self) -> None:
        """Rewrite ``status.json`` between passes when the supervisor's record changed (a process came up,
        crashed, beat), so health and Ready move when they happen, not at the next pass."""
        try:
            mtime = self.paths.runtime.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._runtime_seen and self.last_report is not None:
            self._runtime_seen = mtime
            with contextlib.suppress(OrgctlError, OSError):
                self._write_status(self.last_report)

    # ------------------------------------------------------------------ the loop

    def _next_poll(self) -> float:
        if self.mirror.local:
            return self.options.poll_interval
        base = self.options.remote_poll_interval
        return base * random.uniform(0.9, 1.1)  # jitter: many controllers never ask a forge in step

    def _source_moved(self) -> bool:
        try:
            return self.mirror.tip() != self._tip
        except OrgctlError:
            return False

    def run(self, stop: threading.Event, *, on_pass: Callable[[PassReport], None] | None = None,
            each_turn: Callable[[], None] | None = None) -> None:
        """Run passes until ``stop`` is set: at start, on every trigger, when the tracked tip moves, when a
        retry is due, and every ``resync_interval`` seconds. ``each_turn`` runs on every wake-up (at least
        once a second), for the process's own chores (alerts, reconcile requests)."""
        self.request("start")
        next_resync = time.monotonic() + self.options.resync_interval
        next_poll = time.monotonic() + self._next_poll()
        while not stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            if now >= next_poll or self._poked:
                self._poked = False
                next_poll = now + self._next_poll()
                if self._source_moved():
                    self.request("commit")
                elif not self.backend_alive():
                    self.request("supervisor-gone")
            if now >= next_resync:
                self.request("resync")
            due = self.queue.next_due()
            if due is not None and now >= due:
                self.request("retry")
            if each_turn is not None:
                each_turn()
            self._refresh_status()
            trigger = self._take_triggers()
            if trigger is not None:
                report = self.reconcile(trigger)
                next_resync = time.monotonic() + self.options.resync_interval
                if on_pass is not None:
                    on_pass(report)
                continue
            wait_until = min(next_poll, next_resync, *([due] if due is not None else []))
            self._wake.wait(max(0.0, min(wait_until - time.monotonic(), 1.0)))

    def backend_alive(self) -> bool:
        """False when Animas should run and the supervisor is gone (it is then restarted by the next pass)."""
        applied = any(e.get("status") == "active"
                      for e in ((read_json(self.paths.inventory, default={}) or {}).get("animas") or {}).values())
        if not applied:
            return True
        alive = getattr(self.backend, "supervisor_alive", None)
        return bool(alive()) if callable(alive) else True
