"""What the dashboard shows, read from the org's state dir and the runtime's clone: the Org, Anima, Work and
Plan views as JSON.

One source of truth: every view is assembled from the functions behind the CLI's ``--json`` outputs --
:func:`orgctl.state.observing.observe_status` (``status``), :mod:`orgctl.cli.reports` (``tasks``,
``inbox``, ``board``, ``events``, ``approvals``, ``history``, ``usage``, ``memory log``/``diff``) and the
plan ``orgctl plan`` computes -- never from a second model of the org. Nothing here writes spec, memory or
work in flight; the only files written are the spec cache every ``plan`` keeps and, for a tick org, a
private copy of the ``orgctl/state`` branch (:class:`TickWork`), fetched read-only.

Every path read is resolved inside the org's state dir or its clone first
(:func:`~orgctl.state.files.file_inside`); a name from a
URL is checked against the applied Animas, a commit against ``[0-9a-f]{7,40}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths
from orgctl.state.files import file_inside

SHA = re.compile(r"[0-9a-f]{7,40}")
ACTIVITY_LIMIT = 30  # the newest activity records an Anima page shows
NOTE_BYTES = 8_000  # of one knowledge note or procedure: a page, not a dump
NOTES_LIMIT = 60  # notes listed per kind
EVENTS_LIMIT = 200  # event series the Work view holds
PLAN_TTL = 5.0  # seconds a computed plan is reused while HEAD and the inventory are unchanged
TICK_TTL = 10.0  # seconds between two fetches of a tick org's state branch
PLAN_TIMEOUT = 300.0  # seconds the planner may take (a first plan of a large org fills the spec cache)


class NotFound(OrgctlError):
    """A name, commit or note the URL asked for does not exist here (HTTP 404)."""


class _Cached:
    """One value, recomputed when ``key()`` changes; the key is looked at most every ``ttl`` seconds.

    Stale-while-revalidate (RFC 5861): once there is a value, a changed key starts one recomputation in a
    background thread and readers get the last value until it is done, so a poll never waits for a plan;
    only the very first read waits."""

    def __init__(self, compute: Callable[[], Any], key: Callable[[], Any], ttl: float) -> None:
        self.compute, self.key, self.ttl = compute, key, ttl
        self._value: Any = None
        self._key: Any = object()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None

    def _refresh(self, key: Any) -> None:
        value = self.compute()
        with self._lock:
            self._value, self._key, self._refreshing = value, key, None

    def get(self) -> Any:
        with self._lock:
            now = time.monotonic()
            stale = now - self._checked >= self.ttl
            if stale:
                self._checked = now
            first = self._value is None
        if first:
            key = self.key()
            self._refresh(key)
        elif stale:
            key = self.key()
            with self._lock:
                if key != self._key and self._refreshing is None:
                    self._refreshing = threading.Thread(target=self._refresh, args=(key,), daemon=True,
                                                        name="dashboard-refresh")
                    self._refreshing.start()
        with self._lock:
            return self._value


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


class TickWork:
    """A tick org's work in flight, read from its ``orgctl/state`` branch into a private folder ``into``
    (never the org's own state dir), fetched again at most every :data:`TICK_TTL` seconds. Read-only:
    nothing is ever pushed (:meth:`~orgctl.gitops.statebranch.StateBranch.restore` with
    ``save_unpushed=False``)."""

    def __init__(self, root: Path, into: Path) -> None:
        self.root, self.paths = root, StatePaths(root=into)
        self._fetched = 0.0
        self.error = ""
        self.tip: str | None = None  # the branch commit the copy holds

    def refresh(self) -> StatePaths:
        """The private state paths, their ``work/`` as the branch holds it (the last good copy when the
        branch cannot be read now: :attr:`error` says why)."""
        from orgctl.errors import GitError
        from orgctl.gitops.statebranch import StateBranch
        from orgctl.runtime.ticking import carried

        if time.monotonic() - self._fetched >= TICK_TTL:
            self._fetched = time.monotonic()
            self.paths.work.root.mkdir(parents=True, exist_ok=True)
            try:
                self.tip = StateBranch.for_checkout(self.root, git_dir=self.paths.root / "state.git",
                                                    roots={"work": self.paths.work.root}, carried=carried
                                                    ).restore(save_unpushed=False)
                self.error = ""
            except GitError as e:
                self.error = e.message
        return self.paths


class DashboardData:
    """The dashboard's read model of the org checked out at ``root`` whose state dir is ``paths``.

    ``tick_dir``: where a tick org's state branch is copied (a private folder; required for a tick org).
    Methods return JSON-ready dicts; NotFound for an unknown Anima, commit or note.
    """

    def __init__(self, root: Path, paths: StatePaths, *, tick_dir: Path | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        from orgctl.runtime.ticking import is_tick_org

        self.root, self.paths, self.clock = root.resolve(), paths, clock
        self.tick = TickWork(self.root, tick_dir) if is_tick_org(self.root) and tick_dir is not None else None
        self._orgs: dict[str | None, Any] = {}  # the Organization over the work: its task queues read incrementally
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._plan = _Cached(self._compute_plan, self._plan_key, PLAN_TTL)
        self._usage = _Cached(self._read_usage, lambda: _mtime(self._usage_log()), 1.0)

    # ------------------------------------------------------------ sources

    def _work_paths(self) -> StatePaths:
        return self.tick.refresh() if self.tick is not None else self.paths

    def _org(self) -> Any:
        """The :class:`~orgctl.runtime.organization.Organization` over the work in flight (read only here)."""
        from orgctl.runtime.organization import Organization

        paths = self._work_paths()
        # A tick org's copy is rewritten by each fetch, and merged logs need not grow at their end: its task
        # queues are read afresh for each new tip (a runtime's logs only grow, so they are read incrementally).
        key = self.tick.tip if self.tick is not None else None
        with self._lock:
            if key not in self._orgs:
                self._orgs = {key: Organization(paths=paths)}
            return self._orgs[key]

    def _snapshot(self, name: str) -> dict[str, Any]:
        """The applied snapshot of ``name`` as plain JSON (``{}`` when none), re-read when its file changes."""
        path = self.paths.spec_snapshot(name)
        stamp = _mtime(path)
        cached = self._snapshots.get(name)
        if cached is None or cached[0] != stamp:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            cached = (stamp, data if isinstance(data, dict) else {})
            self._snapshots[name] = cached
        return cached[1]

    def _usage_log(self) -> Path:
        """The usage log: the gateway's, or for a tick org the one its state branch carries."""
        if self.tick is not None:
            return self.tick.paths.work.root / "usage" / "usage.jsonl"
        return self.paths.usage

    def _read_usage(self) -> list[dict[str, Any]]:
        from orgctl.llm.budgets import read_usage, usage_files

        month = self.clock().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return [r for f in usage_files(self._usage_log(), since=month) for r in read_usage(f, since=month)]

    def _head(self) -> str | None:
        from orgctl.errors import GitError
        from orgctl.gitexec import run_git

        try:
            return run_git("rev-parse", "--verify", "--quiet", "HEAD", cwd=self.root) or None
        except GitError:
            return None

    def _plan_key(self) -> tuple[Any, ...]:
        return (self._head(), _mtime(self.paths.inventory), _mtime(self.paths.paused), _mtime(self.paths.runtime)
                // 30_000_000_000)  # the runtime record moves every beat; drift is looked at twice a minute

    def _compute_plan(self) -> dict[str, Any]:
        """What :mod:`.planner` prints for this org (the plan at HEAD, both charts, the spec's Animas), run as a
        child process so this one never loads the spec machinery; ``{"error", "diagnostics"}`` when it fails."""
        try:
            done = subprocess.run([sys.executable, "-m", "orgctl.cli.dashboard.planner", str(self.root)],
                                  capture_output=True, text=True, timeout=PLAN_TIMEOUT)
            result = json.loads(done.stdout) if done.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            return {"error": f"the plan could not be computed: {e}", "diagnostics": []}
        if not isinstance(result, dict):
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"the plan could not be computed: {why}", "diagnostics": []}
        return result

    # ------------------------------------------------------------ the Org view

    def _cards(self, report: Mapping[str, Any]) -> list[dict[str, Any]]:
        from orgctl.desired.models import BudgetLimits
        from orgctl.llm.budgets import Budgets, evaluate, spend
        from orgctl.state.conditions import anima_conditions
        from orgctl.state.observing import not_ready

        now = self.clock()
        computed = self._plan.get()
        pending = {c["name"]: "; ".join(c["reasons"]) or c["action"]
                   for c in (computed["plan"]["changes"] if "plan" in computed and self.tick is None else [])}
        unready = not_ready(report, report.get("revision")) if self.tick is None else {}
        records = self._usage.get()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        org = self._org()
        cards = []
        for row in report["animas"]:
            name = row["name"]
            snap = {"spec": row["_spec"]} if "_spec" in row else self._snapshot(name)
            spec = snap.get("spec") or {}
            placement = spec.get("org") or {}
            budget = spec.get("budget") or {}
            sync = row.get("sync") or ("OutOfSync" if name in pending else "Synced" if "plan" in computed else None)
            conditions = row.get("conditions") or anima_conditions(
                health=row["health"], health_reason=row["reason"], synced=sync != "OutOfSync",
                pending=pending.get(name), stalled=None, suspended=row.get("suspended"),
                resting=row["state"] == "resting")
            tasks = org.queue(name).open() if snap else []
            used = spend(records, anima=name, since=day)
            state = evaluate(records, budgets=Budgets(org=BudgetLimits(**(spec.get("org_budget") or {})),
                                                      per_anima=BudgetLimits(**budget)), anima=name, now=now) \
                if spec else None
            cards.append({
                "name": name, "role": row.get("role") or spec.get("role"), "model": spec.get("model"),
                "supervisor": placement.get("supervisor"), "state": row["state"], "sync": sync,
                "health": row["health"], "reason": row["reason"], "suspended": row.get("suspended"),
                "ready": name not in unready and row["state"] in ("running", "resting") or
                (row["state"] == "tick" and row["health"] == "Healthy"),
                "not_ready": unready.get(name, ""), "last_heartbeat": row.get("last_heartbeat"),
                "heartbeats": row.get("heartbeats", 0), "restarts": row.get("restarts", 0),
                "revision": row.get("revision"),
                "conditions": conditions, "transitions_recorded": bool(row.get("conditions")),
                "queue": {"open": len(tasks), "overdue": sum(t.overdue(now) for t in tasks),
                          "stale": sum(t.stale(now) for t in tasks)},
                "spend": {"tokens_today": used.tokens, "cost_today_usd": round(used.cost_usd, 6),
                          "calls_today": used.calls,
                          "tokens_per_day": budget.get("tokens_per_day"),
                          "cost_per_day_usd": budget.get("cost_per_day_usd"),
                          "level": state.level if state else "ok", "reason": state.reason if state else ""},
            })
        return cards

    def _tick_report(self) -> dict[str, Any]:
        """A tick org's report in :func:`~orgctl.state.observing.observe_status`'s shape, from the spec at HEAD
        (what every tick runs: Synced by construction) and each Anima's marks on the state branch (its last tick
        and heartbeat): Missing before its first tick, Degraded when no heartbeat came for twice its interval
        (plus the grace) while in its active hours, Suspended when disabled, else Healthy."""
        from orgctl.runtime.anima import in_active_hours
        from orgctl.runtime.ticking import Marks
        from orgctl.state.conditions import worst_health
        from orgctl.state.observing import STALE_GRACE

        computed = self._plan.get()
        desired = computed.get("desired")
        now = self.clock()
        work = self._work_paths()
        rows = []
        for spec in desired["animas"] if desired is not None else []:
            marks = Marks.read(work, spec["name"], now=now)
            if not spec["enabled"]:
                health, reason = "Suspended", "disabled in the spec"
            elif marks.tick is None:
                health, reason = "Missing", "no tick has run it yet"
            elif in_active_hours(spec["active_hours"], now.astimezone()) and (now - (marks.beat or marks.tick)) \
                    .total_seconds() > 2 * spec["heartbeat_interval"] + STALE_GRACE:
                health, reason = "Degraded", f"no heartbeat since {(marks.beat or marks.tick).isoformat()}"
            else:
                health, reason = "Healthy", ""
            rows.append({"name": spec["name"], "role": spec["role"], "state": "tick" if spec["enabled"] else "disabled",
                         "revision": desired["revision"], "health": health, "reason": reason, "sync": "Synced",
                         "conditions": [], "suspended": None, "running_spec_hash": None, "spec_hash": None,
                         "last_heartbeat": marks.beat.isoformat() if marks.beat else None,
                         "heartbeats": 0, "restarts": 0, "_spec": spec["spec"]})
        return {"revision": desired["revision"] if desired is not None else None, "applied_at": None,
                "supervisor_running": False, "controller": None, "model_server": None,
                "org": {"health": worst_health([r["health"] for r in rows]), "sync": "Synced" if rows else None,
                        "sandbox": None, "suspended": None},
                "animas": rows}

    def _report(self) -> dict[str, Any]:
        """The observed report (:func:`~orgctl.state.observing.observe_status`, or :meth:`_tick_report` for a
        tick org) without retired and orphaned Animas."""
        from orgctl.state.observing import observe_status

        report = self._tick_report() if self.tick is not None else observe_status(self.paths)
        report["animas"] = [r for r in report["animas"] if r["state"] not in ("retired", "orphaned")]
        return report

    def org_view(self) -> dict[str, Any]:
        """``{"org": {...}, "animas": [card, ...]}``: the org's name, revision, health (its worst Anima's),
        sync, supervisor/controller/model server; per Anima its card (role, model, supervisor, sync, health,
        Ready, last heartbeat, queue depth, spend against budget). Retired Animas are left out. A tick org's
        cards come from the spec at HEAD and its state branch (:meth:`_tick_report`)."""
        report = self._report()
        cards = self._cards(report)
        computed = self._plan.get()
        org = report["org"]
        plan = computed.get("plan")
        sync = org.get("sync") or (("OutOfSync" if plan["changes"] or plan.get("settings") or plan["workflows"]
                                    else "Synced") if plan is not None else None)
        desired = computed.get("desired")
        name = desired["name"] if desired is not None else \
            next((s.get("org_name") for c in cards if (s := self._snapshot(c["name"]))), None)
        return {
            "org": {"name": name or self.root.name, "health": org["health"], "sync": sync,
                    "revision": report["revision"], "applied_at": report["applied_at"],
                    "mode": "tick" if self.tick is not None else "runtime",
                    "supervisor_running": report["supervisor_running"],
                    "controller": bool(report["controller"]), "model_server": report["model_server"],
                    "suspended": org.get("suspended"), "sandbox": org.get("sandbox"),
                    "state_branch_error": self.tick.error if self.tick is not None else ""},
            "animas": cards,
        }

    # ------------------------------------------------------------ the Anima view

    def _check(self, name: str) -> dict[str, Any]:
        from orgctl.state.snapshots import unknown_anima

        if unknown_anima(self.paths, name):
            raise NotFound(f"no applied Anima named {name[:80]!r}")
        return self._snapshot(name)

    def _memory_dir(self, name: str, snap: Mapping[str, Any]) -> Path | None:
        """The Anima's memory folder, when it lies inside the runtime's clone (or the checkout)."""
        raw = snap.get("memory_dir")
        if not raw:
            return None
        folder = Path(raw).resolve()
        for base in (self.paths.clone, self.root):
            if folder.is_relative_to(base.resolve()) and folder.is_dir() and not Path(raw).is_symlink():
                return folder
        return None

    def _notes(self, memory: Path | None, kind: str) -> list[dict[str, Any]]:
        from orgctl.memory.notes import split_frontmatter

        if memory is None or not (memory / kind).is_dir():
            return []
        out = []
        for path in sorted((memory / kind).glob("*.md"))[:NOTES_LIMIT]:
            target = file_inside(memory, f"{kind}/{path.name}")
            try:
                text = target.read_text(encoding="utf-8", errors="replace")[:NOTE_BYTES] if target else None
            except OSError:
                text = None
            if text is None:
                continue
            meta, body = split_frontmatter(text)
            meta = meta or {}
            out.append({"path": f"{kind}/{path.name}", "title": str(meta.get("title") or path.stem),
                        "updated": str(meta.get("updated") or ""), "protected": bool(meta.get("protected")),
                        "body": body.strip()})
        return out

    @staticmethod
    def _activity(memory: Path | None) -> list[dict[str, Any]]:
        """The newest :data:`ACTIVITY_LIMIT` records of the committed activity log, newest first."""
        if memory is None or not (memory / "activity_log").is_dir():
            return []
        out: list[dict[str, Any]] = []
        for path in sorted((memory / "activity_log").glob("*.jsonl"), reverse=True):
            if path.is_symlink():
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            for line in reversed(lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append({k: record.get(k) for k in ("at", "trigger", "kind", "summary", "did", "observed",
                                                            "tokens", "calls", "duration_s") if k in record})
                if len(out) >= ACTIVITY_LIMIT:
                    return out
        return out

    def anima_view(self, name: str) -> dict[str, Any]:
        """One Anima's page: ``{"card", "conditions", "tasks", "inbox", "activity", "knowledge", "procedures",
        "memory_log"}``. Raises NotFound for a name that is not an applied Anima."""
        from orgctl.cli.reports import inbox_report, memory_log_report, memory_repo, tasks_report
        from orgctl.errors import GitError

        snap = self._check(name)
        report = self._report()
        report["animas"] = [r for r in report["animas"] if r["name"] == name]  # its card only, not the org's
        card = next(iter(self._cards(report)), None)
        org = self._org()
        now = self.clock()
        memory = self._memory_dir(name, snap)
        try:
            log = memory_log_report(memory_repo(self.paths, self.root), anima=name, limit=20)
        except GitError:
            log = []
        tasks = tasks_report(org, [name], show_all=True, now=now)
        tasks = [t for t in tasks if t["status"] not in ("done", "failed", "cancelled")] + \
            [t for t in tasks if t["status"] in ("done", "failed", "cancelled")][-20:]
        return {"card": card, "tasks": [_lean(t) for t in tasks],
                "inbox": inbox_report(org, name, unread=False, limit=30),
                "activity": self._activity(memory), "knowledge": self._notes(memory, "knowledge"),
                "procedures": self._notes(memory, "procedures"), "memory_log": log}

    def memory_commit(self, name: str, sha: str) -> dict[str, Any]:
        """``memory diff SHA NAME --json`` plus the text ``memory diff`` prints. Raises NotFound for a
        commit that is not a hexadecimal sha or not one of ``name``'s memory commits."""
        from orgctl.cli.reports import memory_diff_report, memory_repo
        from orgctl.errors import GitError
        from orgctl.memory.review import NoteDiff, describe_diffs

        self._check(name)
        if not SHA.fullmatch(sha):
            raise NotFound(f"no memory commit {sha[:60]!r}")
        try:
            report = memory_diff_report(memory_repo(self.paths, self.root), sha, anima=name)
        except GitError:
            raise NotFound(f"no memory commit {sha[:60]!r}") from None
        if report["trailers"].get("Anima") != name:
            raise NotFound(f"{sha[:12]} is not a memory commit of {name}")
        notes = [NoteDiff(**{**n, "meta": {k: tuple(v) for k, v in n["meta"].items()}}) for n in report["notes"]]
        return report | {"anima": name, "text": describe_diffs(notes, sha)}

    # ------------------------------------------------------------ the Work view

    def work_view(self, *, event_type: str | None = None, anima: str | None = None,
                  reason: str | None = None) -> dict[str, Any]:
        """``{"tasks", "board": [{"channel", "posts"}], "approvals", "events"}``: open tasks across the org,
        the Board's newest posts per channel, approvals waiting for a person, event series Warning first
        (then newest first), filtered by ``event_type``/``anima``/``reason``."""
        from orgctl.cli.reports import approvals_report, board_report, events_report, tasks_report

        org = self._org()
        names = sorted({r["name"] for r in self._report()["animas"]} | set(org.specs))
        events = events_report(self.paths, anima=anima,
                               reason=reason, kind=event_type if event_type in ("Normal", "Warning") else None,
                               limit=EVENTS_LIMIT)
        events.sort(key=lambda e: e.get("last_seen") or "", reverse=True)
        events.sort(key=lambda e: e.get("type") != "Warning")
        return {
            "tasks": [_lean(t) for t in tasks_report(org, names, show_all=False, now=self.clock())],
            "board": [{"channel": c, "posts": board_report(org, [c], limit=20)} for c in org.board.channels()],
            "approvals": [a for a in approvals_report(org) if a.get("status") == "pending"],
            "events": events,
        }

    # ------------------------------------------------------------ the Plan view

    def plan_view(self) -> dict[str, Any]:
        """``{"plan": plan JSON | None, "error", "diagnostics", "history"}``: the plan of the spec at HEAD
        against what runs (as ``orgctl plan --json``), and the newest applies (``history --json``)."""
        from orgctl.cli.reports import history_report

        computed = self._plan.get()
        history = history_report(self.paths, limit=20)[::-1]
        if self.tick is not None and "plan" in computed:
            return {"plan": None, "error": "a tick org is not applied on a machine: each tick runs the spec at HEAD "
                                           f"({str(computed['desired']['revision'])[:7]})", "diagnostics": [],
                    "history": history}
        if "plan" not in computed:
            return {"plan": None, "error": computed["error"], "diagnostics": computed["diagnostics"],
                    "history": history}
        return {"plan": computed["plan"], "error": "", "diagnostics": [], "history": history}

    def plan_chart(self, which: str) -> str:
        """The org chart ``before`` or ``after`` the plan at HEAD, as SVG (nodes link to Anima pages).
        Raises NotFound for another ``which`` or when the spec at HEAD does not load."""
        computed = self._plan.get()
        if which not in ("before", "after") or "plan" not in computed:
            raise NotFound(f"no chart {which[:20]!r}")
        return str(computed[which])


def _lean(task: dict[str, Any]) -> dict[str, Any]:
    """A task without its typed step records (the cycle's input, not for people; its ``log`` says it)."""
    return {k: v for k, v in task.items() if k != "records"}
