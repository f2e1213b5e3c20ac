"""``orgctl tick``: the runtime's steps as one bounded pass, for a runner that keeps nothing between runs.

An org runs either a long-lived controller and supervisor or ticks (``runtime: controller | tick`` in
``org.yaml``). A tick is the same Observe -> Decide -> Act -> Remember cycle as an Anima process runs
(:mod:`orgctl.runtime.cycle`, :mod:`orgctl.runtime.tasking`), hosted differently: the services are
the in-process ones (:meth:`orgctl.runtime.services.Services.local`: no fork, no socket), and the work
in flight comes from, and goes back to, the orphan branch ``orgctl/state``
(:mod:`orgctl.gitops.statebranch`).

One tick, in order:

1. load the spec at the checkout's HEAD (the tracked branch) and refuse unless ``runtime: tick``;
2. restore the work in flight from ``orgctl/state`` and the memory from the tracked branch (the
   runtime's clone, :mod:`orgctl.gitops.clones`), in a state dir of its own;
3. for each Anima of its shard (:func:`shard_of`), in name order, while the deadline allows: the cron
   tasks due since its last tick, one heartbeat when its interval has passed since its last beat (or at
   once when work waits for it: a message, a task, a decided approval), more cycles while a decision is
   pending, then its ready tasks, then its memory passes due since its last tick;
4. commit memory (one commit per Anima per batch or pass, bot-owned paths only) and push it with the
   fetch-replay-push loop; then save the work in flight, compacted, to ``orgctl/state``.

**Due** is measured from the Anima's last tick (``beats/<name>.json`` on the state branch): a cron time or
a pass time that fell between its last tick and now fires **once** (a runner that was down for a day
catches up with one run, never one per missed time), and a heartbeat runs when ``heartbeat_interval``
has passed since the last one. An Anima's first tick fires no cron and no pass: nothing was missed.

**Bounded.** Work stops being started once less than :func:`reserve` seconds are left of ``--deadline``;
what was not started stays queued for the next tick, and what was done is committed whole. ``--budget``
caps the model tokens a tick spends; past it, model calls fail like a hard spend limit and no more
Animas are started.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from orgctl.desired.models import AnimaSpec, OrgSpec
from orgctl.errors import BudgetExceeded, OrgctlError
from orgctl.llm.requests import CompletionRequest, CompletionResult
from orgctl.paths import StatePaths
from orgctl.state.events import read_events
from orgctl.state.files import durable, write_json

log = logging.getLogger("orgctl.tick")

DEFAULT_DEADLINE = 600.0  # seconds
KEEP_CLOSED = timedelta(days=7)  # closed tasks and read messages stay on the state branch this long
KEEP_HUMAN = timedelta(days=14)  # what the org sent to people (reports, notices), read or not
KEEP_OUTBOX = timedelta(days=1)  # the rate counters look back one hour; a day is kept for reading


CARRIED = re.compile(r"""(
      inboxes/[^/]+/(new|cur)/[^/]+\.json     # one message per file (a Maildir; tmp/ is a delivery in progress)
    | (tasks|board|chats)/[^/]+\.jsonl        # a task queue, a Board channel, a chat transcript
    | runs/[^/]+\.jsonl                       # a workflow run (docs/workflows.md)
    | approvals/[^/]+\.json                   # an action waiting for a person
    | cursors/[^/]+\.json | beats/[^/]+\.json  # each Anima's place and last tick
    | outbox\.jsonl | proposals\.jsonl | usage/usage\.jsonl
    )""", re.VERBOSE)


def carried(rel: str) -> bool:
    """Whether a file of the work in flight (``rel`` to its root) goes on the state branch: the layout orgctl
    writes (:data:`CARRIED`), nothing else. Not the events (operational: the tick prints them), not a
    Maildir's ``tmp/``, not locks; and a restore writes no file the runtime would not have written itself
    (a file where a folder belongs, an unknown path)."""
    return CARRIED.fullmatch(rel) is not None


def state_branch(root: Path, paths: StatePaths) -> Any:
    """The org's :class:`~orgctl.gitops.statebranch.StateBranch` for the work in flight in ``paths``."""
    from orgctl.gitops.statebranch import StateBranch

    return StateBranch.for_checkout(root, git_dir=paths.state_git, roots={"work": paths.work.root}, carried=carried)


def is_tick_org(root: Path) -> bool:
    """True when ``org.yaml`` in ``root``'s work tree says ``runtime: tick`` (read without validating the
    spec: the work commands ask this on every run)."""
    import yaml

    try:
        data = yaml.safe_load((Path(root) / "org.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("runtime") == "tick"


@contextmanager
def work_in_flight(root: Path, paths: StatePaths, *, by: str = "a person") -> Iterator[Any]:
    """A person's work command on a tick org: the work in flight is restored from ``orgctl/state`` into
    ``paths`` (under the state lock), the command runs on the :class:`~orgctl.runtime.organization.Organization`
    yielded (its org chart from the spec at HEAD: nothing is applied on a tick org's machines), and what it
    changed is saved back, merged with what ticks pushed meanwhile. Raises GitError when the branch cannot be
    read or written, SpecError when the spec does not validate."""
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource
    from orgctl.runtime.organization import Organization
    from orgctl.state.locking import state_lock

    desired = load_org(GitRevisionSource(root, "HEAD"))
    paths.ensure()
    with state_lock(paths.lock, operation="work", timeout=30.0):
        branch = state_branch(root, paths)
        branch.restore()
        yield Organization(paths=paths, specs={s.name: s for s in desired.enabled()})
        branch.save(message=f"work in flight from {by}", trailers={"Pass": "work"})


def shard_of(name: str, shards: int) -> int:
    """The shard (1-based) that runs ``name``: ``1 + int(sha256(name)[:8], 16) % shards``. Stable across
    machines, versions and the order of the org; it depends only on the name and the number of shards."""
    return 1 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % shards


def parse_shard(value: str) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)`` with ``1 <= i <= n``. Raises OrgctlError."""
    head, sep, tail = value.partition("/")
    if not sep or not head.isdigit() or not tail.isdigit() or not 1 <= int(head) <= int(tail):
        raise OrgctlError(f"--shard {value!r}: use i/n with 1 <= i <= n (e.g. 2/5)")
    return int(head), int(tail)


def reserve(deadline: float) -> float:
    """Seconds kept back from ``deadline`` for committing and pushing: a fifth, between 5 s and 60 s."""
    return min(60.0, max(5.0, deadline / 5))


def require_tick(desired: OrgSpec) -> None:
    """Raises OrgctlError unless the org says ``runtime: tick``: a controller org would get double
    heartbeats."""
    if desired.runtime != "tick":
        raise OrgctlError("this org runs a long-lived controller (org.yaml: runtime: controller), so a tick "
                          "would run its heartbeats a second time",
                          hint="set `runtime: tick` in org.yaml to run it with `orgctl tick` (and stop its "
                               "controller and supervisor: `orgctl controller stop`, `orgctl down`)")


def refuse_tick_org(desired: OrgSpec, command: str) -> None:
    """Raises OrgctlError when the org says ``runtime: tick``: ``command`` would start a long-lived runtime
    beside its ticks."""
    if desired.runtime == "tick":
        raise OrgctlError(f"this org runs as ticks (org.yaml: runtime: tick), so `orgctl {command}` would start "
                          "a long-lived runtime beside them and double its heartbeats",
                          hint="run `orgctl tick`, or set `runtime: controller` in org.yaml")


class MeteredModel:
    """A model client that counts what a tick spends (tokens, calls, seconds in the model) and refuses calls
    past ``budget`` tokens with :class:`BudgetExceeded` (the cycle then fails like at a hard spend limit)."""

    def __init__(self, inner: Any, *, budget: int | None) -> None:
        self.inner = inner
        self.limit = budget
        self.tokens = 0
        self.calls = 0
        self.seconds = 0.0

    @property
    def budget(self) -> str:
        return "hard" if self.spent else str(getattr(self.inner, "budget", "ok"))

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.tokens >= self.limit

    def complete(self, request: CompletionRequest) -> CompletionResult:
        if self.spent:
            raise BudgetExceeded(f"this tick's budget of {self.limit} tokens is spent",
                                 hint="the rest waits for the next tick (`orgctl tick --budget`)")
        started = time.monotonic()
        try:
            result = self.inner.complete(request)
        finally:
            self.seconds += time.monotonic() - started
            self.calls += 1
        self.tokens += result.usage.total_tokens
        return result


@dataclass
class AnimaTick:
    """What one Anima did in a tick: ``cycles`` run (with their triggers), ``cron`` fired, ``tasks`` run,
    memory ``passes``, and ``skipped`` (why it did nothing: resting, not due, out of time)."""

    name: str
    cycles: list[str] = field(default_factory=list)
    cron: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: str = ""


@dataclass
class TickReport:
    """One tick: per Anima what it did, what was left for the next tick, the memory commits, the state
    commit, and where the time went (``wall_s``, ``model_s``: the framework's share is their difference)."""

    shard: tuple[int, int]
    revision: str | None
    animas: list[AnimaTick] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    memory_commits: dict[str, str] = field(default_factory=dict)
    memory_pushed: bool = False
    state_commit: str | None = None
    state_attempts: int = 0
    conflicts: list[str] = field(default_factory=list)
    tokens: int = 0
    calls: int = 0
    model_s: float = 0.0
    wall_s: float = 0.0
    budget_spent: bool = False
    retired: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def framework_s(self) -> float:
        return max(0.0, self.wall_s - self.model_s)

    def as_json(self) -> dict[str, Any]:
        return {"shard": f"{self.shard[0]}/{self.shard[1]}", "revision": self.revision,
                "animas": [a.__dict__ for a in self.animas], "unfinished": self.unfinished,
                "memory_commits": self.memory_commits, "memory_pushed": self.memory_pushed,
                "state_commit": self.state_commit, "state_attempts": self.state_attempts,
                "conflicts": self.conflicts, "tokens": self.tokens, "calls": self.calls,
                "model_s": round(self.model_s, 3), "wall_s": round(self.wall_s, 3),
                "framework_s": round(self.framework_s, 3), "budget_spent": self.budget_spent,
                "retired": self.retired, "warnings": self.warnings}


# ---------------------------------------------------------------- the last tick of each Anima


def _beats_file(paths: StatePaths, name: str) -> Path:
    return paths.work.root / "beats" / f"{name}.json"


@dataclass
class Marks:
    """When an Anima's steps last ran, as recorded on the state branch (``beats/<name>.json``), each UTC:
    ``tick`` its last tick, ``beat`` its last heartbeat, ``cron`` up to when its cron times were fired (not
    moved while it rests: a time that fell then fires when it wakes, as in an Anima process), ``passes`` up
    to when its memory passes ran (not moved when the deadline left no time for them)."""

    tick: datetime | None = None
    beat: datetime | None = None
    cron: datetime | None = None
    passes: datetime | None = None

    @classmethod
    def read(cls, paths: StatePaths, name: str, *, now: datetime) -> Marks:
        """The marks of ``name``; a missing or unreadable file is no marks (a first tick), a time without a zone
        is UTC, and a time after ``now`` (a clock ahead, a forged file) counts as ``now``."""
        path = _beats_file(paths, name)
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}

        def at(key: str) -> datetime | None:
            try:
                value = datetime.fromisoformat(str(data[key]))
            except (KeyError, ValueError, TypeError):
                return None
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
            return min(value, now)

        tick = at("tick")
        return cls(tick=tick, beat=at("beat"), cron=at("cron") or tick, passes=at("passes") or tick)

    def write(self, paths: StatePaths, name: str) -> None:
        write_json(_beats_file(paths, name), {k: v.isoformat(timespec="seconds") if v else None
                                              for k, v in self.__dict__.items()})


def beat_due(last: datetime | None, now: datetime, interval: float) -> bool:
    """A heartbeat is due when ``interval`` seconds have passed since the last one, less a tolerance (a tenth
    of it, at most a minute) for the scheduler's jitter: ticks every 15 minutes beat a 30-minute Anima every
    other tick, not every third."""
    return last is None or (now - last).total_seconds() >= interval - min(60.0, interval / 10)


# ---------------------------------------------------------------- one tick


class Tick:
    """One tick of the org at ``root`` (a checkout of the tracked branch), with its state in ``paths``.

    ``now`` is the clock (tests move it); ``deadline`` seconds; ``shard`` ``(i, n)``; ``budget`` tokens.
    ``client`` replaces the model client (a bench's replayed model); default: the in-process gateway.
    """

    def __init__(self, *, root: Path, paths: StatePaths, deadline: float = DEFAULT_DEADLINE,
                 shard: tuple[int, int] = (1, 1), budget: int | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), client: Any = None,
                 progress: Callable[[str], None] = lambda line: None) -> None:
        self.root = Path(root).resolve()
        self.paths = paths
        self.deadline = deadline
        self.shard = shard
        self.budget = budget
        self.clock = now
        self.client = client
        self.progress = progress
        self._started = time.monotonic()

    def left(self) -> float:
        """Seconds left before work must stop being started."""
        return self.deadline - reserve(self.deadline) - (time.monotonic() - self._started)

    def run(self) -> TickReport:
        """The whole tick (module docstring). Raises OrgctlError (a spec that does not validate, not a tick
        org, a shard count that is not org.yaml's, git that cannot be reached). A failure after the work (a
        push that kept losing its race) raises too: what was not saved is done again by the next tick."""
        from orgctl.desired.loading import load_org
        from orgctl.desired.sources import GitRevisionSource

        desired = load_org(GitRevisionSource(self.root, "HEAD"))
        require_tick(desired)
        if self.shard[1] != desired.shards:
            raise OrgctlError(f"--shard {self.shard[0]}/{self.shard[1]} does not match org.yaml's shards: "
                              f"{desired.shards}", hint=f"run {desired.shards} ticks, --shard 1/{desired.shards} "
                                                        f"to {desired.shards}/{desired.shards}, so every Anima "
                                                        "runs exactly once")
        self.paths.ensure()
        report = TickReport(shard=self.shard, revision=desired.revision)
        # a runner's disk is thrown away: the durable writes of a tick are its pushes, not fsyncs
        was_durable = durable(False)
        try:
            self._run(desired, report)
        finally:
            durable(was_durable)
        report.wall_s = time.monotonic() - self._started
        return report

    def _run(self, desired: OrgSpec, report: TickReport) -> None:
        from orgctl.gitops.clones import RuntimeClone
        from orgctl.state.locking import state_lock

        with state_lock(self.paths.lock, operation="tick", timeout=30.0):
            clone = RuntimeClone.for_checkout(self.root, self.paths.clone)
            state = state_branch(self.root, self.paths)
            state.restore()
            report.warnings += [f"not restored from orgctl/state: {s}" for s in state.skipped]
            _usage_in(self.paths)
            mine = self._hand_over(desired, clone)
            report.retired = self._retire(desired, clone)
            self._work(desired, mine, report)
            self._commit_memory(report, only={s.name for s in mine} | set(report.retired))
            _usage_out(self.paths, now=self.clock())
            compact(self.paths, now=self.clock())
            saved = state.save(message=f"tick: shard {self.shard[0]}/{self.shard[1]} at "
                                       f"{(desired.revision or 'work-tree')[:12]}",
                               trailers={"Pass": "tick", "Shard": f"{self.shard[0]}/{self.shard[1]}",
                                         "Source-Revision": desired.revision or "work-tree",
                                         "Animas": len(mine)})
            report.state_commit, report.state_attempts, report.conflicts = saved.commit, saved.attempts, saved.conflicts
            report.warnings += state.warnings

    def _hand_over(self, desired: OrgSpec, clone: Any) -> list[AnimaSpec]:
        """Snapshots (and workspaces, memory folders) of every enabled Anima, as apply would write them; returns
        this shard's, in name order. Every Anima gets a snapshot: the others are who this shard's talk to."""
        from concurrent.futures import ThreadPoolExecutor

        from orgctl.gitops import repos
        from orgctl.state.inventories import now_iso
        from orgctl.state.snapshots import Snapshot, write_snapshot, write_workflows

        write_workflows(self.paths.specs, desired.workflows, revision=desired.revision)
        mine = []
        for spec in sorted(desired.enabled(), key=lambda s: s.name):
            write_snapshot(self.paths.spec_snapshot(spec.name), Snapshot(
                spec=spec, revision=desired.revision, org_name=desired.name,
                memory_dir=str(clone.memory_dir(spec.name)), applied_at=now_iso()))
            if shard_of(spec.name, self.shard[1]) != self.shard[0]:
                continue
            clone.memory_dir(spec.name).mkdir(parents=True, exist_ok=True)
            mine.append(spec)
        # Only an Anima that runs commands needs a workspace. A kept one (a runner that keeps its state dir) whose
        # checkout differs from HEAD in memory only is left alone, as under a controller, where memory commits do
        # not move it either. The rest are checked out at HEAD, four at a time (each is a few git processes).
        from orgctl.paths import workspace_git_dir

        workspaces = [self.paths.workspace(s.name) for s in mine if "run_command" in s.permissions.tools]
        heads = {ws: _head(workspace_git_dir(ws)) for ws in workspaces}
        current = {h: h is not None and _same_spec(self.root, h, "HEAD") for h in set(heads.values())}
        stale = [ws for ws in workspaces if not current[heads[ws]]]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="workspace") as pool:
            list(pool.map(lambda ws: repos.prepare_workspace(self.root, ws, revision=desired.revision), stale))
        return mine

    def _retire(self, desired: OrgSpec, clone: Any) -> dict[str, str]:
        """Archive the memory of every Anima of this shard that is no longer in the spec: its folder moves to
        ``archive/animas/<name>-<date>/memory`` by one bot commit, so it stays in git, reviewable, and a
        runner's disk never holds it. Returns ``{name: archive path}``."""
        import shutil

        archived = {}
        animas = clone.root / "animas"
        for folder in sorted(animas.iterdir()) if animas.is_dir() else []:
            name, memory = folder.name, folder / "memory"
            if (name in desired.animas or folder.is_symlink() or not memory.is_dir() or memory.is_symlink()
                    or shard_of(name, self.shard[1]) != self.shard[0] or not _retired_upstream(clone, name)):
                continue
            stamp = self.clock().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
            target = f"archive/animas/{name}-{stamp}/memory"
            (clone.root / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(memory), str(clone.root / target))
            sha = clone.commit([f"animas/{name}/memory", target], subject=f"memory({name}): archive on retirement",
                               body=f"{name} is no longer in the spec at {(desired.revision or 'work-tree')[:12]}; "
                                    f"its memory moves to {target}.", list_files=False,
                               trailers={"Anima": name, "Pass": "retire",
                                         "Source-Revision": desired.revision or "work-tree"})
            if sha:
                archived[name] = target
                self.progress(f"{name}: retired; memory archived to {target}")
        return archived

    def _work(self, desired: OrgSpec, mine: list[AnimaSpec], report: TickReport) -> None:
        from orgctl.runtime.organization import Organization
        from orgctl.runtime.services import Services

        services = Services.local(self.paths)
        model = MeteredModel(self.client or services.model, budget=self.budget)
        org = Organization(paths=self.paths, specs={s.name: s for s in desired.enabled()},
                           notifier=services.notifier)
        try:
            for spec in mine:
                if self.left() <= 0 or model.spent:
                    report.unfinished.append(spec.name)
                    report.animas.append(AnimaTick(spec.name, skipped="out of time" if not model.spent
                                                   else "out of budget"))
                    continue
                try:
                    report.animas.append(self._anima(spec, org=org, model=model, services=services, report=report))
                except Exception as e:  # one Anima's broken state (a hand-edited or forged file) stops no other
                    log.exception("the tick of %s failed", spec.name)
                    report.animas.append(AnimaTick(spec.name, failed=[f"{type(e).__name__}: {e}"[:300]]))
                    org.event(reason="TickFailed", object=f"anima/{spec.name}", anima=spec.name, warning=True,
                              message=f"the tick of {spec.name} failed: {type(e).__name__}: {str(e)[:200]}")
            self._drive_workflows(org, model=model, services=services)
        finally:
            report.tokens, report.calls, report.model_s = model.tokens, model.calls, model.seconds
            report.budget_spent = model.spent
            services.close()

    def _anima(self, spec: AnimaSpec, *, org: Any, model: MeteredModel, services: Any,
               report: TickReport) -> AnimaTick:
        from orgctl.memory.passes import due_passes
        from orgctl.memory.stores import MemoryStore
        from orgctl.runtime.anima import first_boot, in_active_hours
        from orgctl.runtime.cycle import Agent
        from orgctl.runtime.permissions import Policy
        from orgctl.runtime.scheduling import CronSchedule, fire
        from orgctl.runtime.tasking import run_task
        from orgctl.state.snapshots import read_snapshot

        done = AnimaTick(spec.name)
        zone = ZoneInfo(spec.timezone)
        now = self.clock().astimezone(zone)
        marks = Marks.read(self.paths, spec.name, now=now)
        snapshot = read_snapshot(self.paths.spec_snapshot(spec.name))
        store = MemoryStore(Path(snapshot.memory_dir), anima=spec.name, lock=self.paths.memory_lock(spec.name),
                            holder=f"tick (pid {os.getpid()})")
        agent = Agent(spec=spec, org=org, client=model, store=store, revision=snapshot.revision,
                      policy=Policy(spec.permissions, workspace=self.paths.workspace(spec.name), sandbox=spec.sandbox),
                      recall=services.memory)
        first = marks.tick is None
        first_boot(agent, now=now)
        if not in_active_hours(spec.active_hours, now):
            done.skipped = "resting (outside its active hours)"
        else:
            if marks.cron is not None:  # what fell due since then fires once, however long ago that was
                for fired in CronSchedule(spec.cron, now=marks.cron.astimezone(zone)).due(now):
                    if self.left() <= 0:
                        report.unfinished.append(f"{spec.name}/cron {fired.title}")
                        break
                    done.cron.append(fire(agent, fired))
                else:
                    marks.cron = now
            else:
                marks.cron = now
            due = beat_due(marks.beat, now, spec.heartbeat_interval)
            trigger = "heartbeat" if due else ("message" if _work_waits(agent) else "")
            for _ in range(5 if trigger else 0):  # MAX_CYCLES_PER_WAKE, as the Anima process
                trace = agent.heartbeat(now=self.clock().astimezone(zone), trigger=trigger)
                done.cycles.append(trigger + (f" FAILED: {trace.failed}" if trace.failed else ""))
                if trace.failed or not agent.pending_focus() or self.left() <= 0:
                    break
                trigger = "follow-up"
            if trigger and due:
                marks.beat = now
            if not trigger:
                done.skipped = "not due"
            for task in org.queue(spec.name).ready():
                if task.status != "in_progress":
                    continue
                if self.left() <= 0 or model.spent:
                    report.unfinished.append(f"{spec.name}/{task.id}")
                    continue
                trace = run_task(agent, task.id, now=lambda: self.clock().astimezone(zone))
                done.tasks.append(task.id + (f" FAILED: {trace.failed}" if trace.failed else ""))
        if marks.passes is not None and self.left() > 0:
            due = due_passes(spec.memory.schedule, since=marks.passes.astimezone(zone), until=now)
            if due:  # this tick's episodes go in its own batch (and report), not in the pass's first commit
                self._commit_episodes(report, only={spec.name})
            for kind in due:
                try:
                    for result in services.commits.run_pass(kind, names=[spec.name], push=False):
                        done.passes.append(f"{kind}: " + (result["commit"] or result["skipped"] or "no change"))
                except OrgctlError as e:
                    done.failed.append(f"{kind} pass: {e.message}")
            marks.passes = now
        elif marks.passes is not None:
            pending = due_passes(spec.memory.schedule, since=marks.passes.astimezone(zone), until=now)
            report.unfinished += [f"{spec.name}/{kind} pass" for kind in pending]  # the next tick runs them
        elif first:
            marks.passes = now
        marks.tick = now
        marks.write(self.paths, spec.name)
        self.progress(_line(done))
        return done

    def _drive_workflows(self, org: Any, *, model: Any, services: Any) -> None:
        """After the Animas' work: advance the workflow runs (a phase an Anima of this shard decided hands over
        to the next phase's Anima, which runs it at its shard's next tick), run the standalone agents' phases
        of this shard here while time and budget last (:func:`orgctl.runtime.standalone.run_pending`), and
        commit each finished run's record to its Animas' memory, pushed with this tick's memory commits."""
        from orgctl.runtime.services import LocalCommits
        from orgctl.runtime.standalone import run_pending
        from orgctl.runtime.workflows import Engine

        if org.runs.root.is_dir():
            Engine(org, org.runs).reconcile()
            run_pending(org, client=model, recall=services.memory,
                        mine=lambda name: shard_of(name, self.shard[1]) == self.shard[0],
                        more=lambda: self.left() > 0 and not model.spent)
            LocalCommits(self.paths).record_runs()

    def _commit_episodes(self, report: TickReport, *, only: set[str]) -> None:
        """Commit the episodes ``only`` these Animas wrote so far, unpushed, into ``report.memory_commits``:
        before an Anima's passes, so the pass does not commit them unreported."""
        from orgctl.runtime.services import LocalCommits

        report.memory_commits.update(LocalCommits(self.paths).commit(push=False, only=only).commits)

    def _commit_memory(self, report: TickReport, *, only: set[str]) -> None:
        """One commit per Anima of this shard that wrote memory (the others' folders are not touched here),
        pushed with whatever this tick's passes and retirements committed."""
        from orgctl.runtime.services import LocalCommits

        result = LocalCommits(self.paths).commit(push=True, only=only)
        report.memory_commits.update(result.commits)
        report.memory_pushed = result.pushed
        if result.error:
            report.warnings.append(f"memory was committed but not pushed: {result.error}")


def _retired_upstream(clone: Any, name: str) -> bool:
    """True when the tracked branch's tip (as the clone last fetched it) holds nothing of ``name`` but its
    memory: a runner whose checkout is older than a hire never takes the new Anima for a retired one."""
    from orgctl.gitexec import run_git
    from orgctl.gitops.clones import UPSTREAM_REF

    try:
        entries = run_git("ls-tree", "--name-only", UPSTREAM_REF, f"animas/{name}/", cwd=clone.root).split()
    except OrgctlError:
        return False
    return entries == [f"animas/{name}/memory"]


def _head(git_dir: Path) -> str | None:
    """The commit a workspace's git directory has checked out (detached), read from its ``HEAD`` file."""
    try:
        return (git_dir / "HEAD").read_text().strip() or None
    except OSError:
        return None


def _same_spec(root: Path, a: str, b: str) -> bool:
    """True when commits ``a`` and ``b`` of ``root`` differ in memory paths only (one tree diff, whatever the
    history between them); False when they differ elsewhere or ``a`` is unknown."""
    import subprocess

    done = subprocess.run(["git", "-C", str(root), "diff", "--quiet", a, b, "--", ".",
                           ":(exclude,glob)animas/*/memory/**", ":(exclude,glob)archive/**"],
                          capture_output=True, check=False)
    return done.returncode == 0


def _work_waits(agent: Any) -> bool:
    """Work is waiting for the Anima: an unread message, a task to plan or review, a decided approval."""
    if agent.org.inbox(agent.name).unread() or agent.pending_focus():
        return True
    return any(a.anima == agent.name and a.status != "pending" and not a.handled for a in agent.org.approvals.all())


def _line(done: AnimaTick) -> str:
    parts = [f"{len(done.cycles)} cycle(s)" if done.cycles else done.skipped or "nothing due"]
    parts += [f"{len(done.cron)} cron"] if done.cron else []
    parts += [f"{len(done.tasks)} task(s)"] if done.tasks else []
    parts += [f"passes: {', '.join(done.passes)}"] if done.passes else []
    parts += [f"failed: {'; '.join(done.failed)}"] if done.failed else []
    return f"{done.name}: " + ", ".join(parts)


# ---------------------------------------------------------------- spend, carried


KEEP_USAGE = timedelta(days=62)  # budgets count the day and the month: two months cover any month
_USAGE = "usage/usage.jsonl"  # where the model usage log rides on the state branch


def _usage_in(paths: StatePaths) -> None:
    """The usage log from the state branch to where the gateway's budgets read it, so a day's and a month's
    spend limits hold across ticks and shards."""
    carried_log = paths.work.root / _USAGE
    if carried_log.is_file():
        paths.usage.write_bytes(carried_log.read_bytes())


def _usage_out(paths: StatePaths, *, now: datetime) -> None:
    """The usage log back onto the state branch, without records older than :data:`KEEP_USAGE`."""
    if not paths.usage.is_file():
        return
    cutoff = now - KEEP_USAGE
    lines = paths.usage.read_text(errors="replace").splitlines(keepends=True)
    kept = [line for line in lines if (d := _json(line)) is None or not _older(d.get("at"), cutoff)]
    target = paths.work.root / _USAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(kept))


# ---------------------------------------------------------------- compaction


def compact(paths: StatePaths, *, now: datetime) -> dict[str, int]:
    """Keep the work in flight bounded before it is saved; returns how many items each rule dropped.

    * a task queue drops every line of a task closed (done, failed, cancelled) more than
      :data:`KEEP_CLOSED` ago, unless an open task depends on it, and nothing of an open one; lines are
      dropped, never rewritten, so a racing writer's appends still merge;
    * a read message (``cur/`` of a Maildir) older than :data:`KEEP_CLOSED` is deleted; unread ones stay,
      except in the ``human`` inbox, where what the org sent to people is kept :data:`KEEP_HUMAN`, read or not
      (the reports are also in the tasks and in the committed activity log);
    * the outbox (the rate counters) keeps :data:`KEEP_OUTBOX`.

    The Board is kept whole: readers keep their place in it by line number.
    """
    dropped = {"tasks": 0, "messages": 0, "outbox": 0}
    cutoff = now - KEEP_CLOSED
    for folder in ("new", "cur"):
        box = paths.work.inbox("human") / folder
        for message in sorted(box.iterdir()) if box.is_dir() else []:
            data = _json(message.read_text(errors="replace")) if message.is_file() else None
            if data and _older(data.get("at"), now - KEEP_HUMAN):
                message.unlink()
                dropped["messages"] += 1
    for queue in sorted((paths.work.root / "tasks").glob("*.jsonl")):
        dropped["tasks"] += _compact_queue(queue, cutoff)
    for cur in sorted((paths.work.root / "inboxes").glob("*/cur")):
        for message in sorted(cur.iterdir()):
            data = _json(message.read_text(errors="replace")) if message.is_file() else None
            if data and _older(data.get("at"), cutoff):
                message.unlink()
                dropped["messages"] += 1
    outbox = paths.work.outbox
    if outbox.is_file():
        lines = outbox.read_text(errors="replace").splitlines(keepends=True)
        since = (now - KEEP_OUTBOX).timestamp()
        kept = [line for line in lines if (d := _json(line)) is None or float(d.get("ts", since)) >= since]
        if len(kept) != len(lines):
            dropped["outbox"] = len(lines) - len(kept)
            outbox.write_text("".join(kept))
    return dropped


def _compact_queue(path: Path, cutoff: datetime) -> int:
    from orgctl.work.tasks import FINAL

    lines = path.read_text(errors="replace").splitlines(keepends=True)
    last: dict[str, tuple[str, str]] = {}  # task id: (status, time of its last line)
    needs: dict[str, list[str]] = {}  # task id: the ids it depends on
    for line in lines:
        event = _json(line)
        if not event:
            continue
        if event.get("op") == "create" and isinstance(event.get("task"), dict):
            task = event["task"]
            last[str(task.get("id"))] = (str(task.get("status", "pending")), str(event.get("at", "")))
            needs[str(task.get("id"))] = [str(d) for d in task.get("depends_on") or []]
        elif event.get("op") == "update" and str(event.get("id")) in last:
            status = (event.get("set") or {}).get("status") or last[str(event["id"])][0]
            last[str(event["id"])] = (str(status), str(event.get("at", "")))
    needed = {d for tid, (status, _) in last.items() if status not in FINAL for d in needs.get(tid, [])}
    gone = {tid for tid, (status, at) in last.items() if status in FINAL and _older(at, cutoff) and tid not in needed}
    if not gone:
        return 0
    kept = [line for line in lines if (e := _json(line)) is None or _task_id(e) not in gone]
    path.write_text("".join(kept))
    return len(gone)


def _task_id(event: dict[str, Any]) -> str:
    return str(event["task"].get("id")) if event.get("op") == "create" and isinstance(event.get("task"), dict) \
        else str(event.get("id"))


def _json(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _older(stamp: Any, cutoff: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(stamp))
    except ValueError:
        return False
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) < cutoff


def events_of(paths: StatePaths) -> list[Any]:
    """The events of this tick, oldest first (a tick's state dir is its own: they are all this tick's). They
    stay on the runner, as operational state does; the tick prints the Warning ones."""
    return read_events(paths.work.events)
