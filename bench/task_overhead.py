"""Bench (c): the framework's own overhead per task, with a replayed model. Goal: <= 20 ms per task.

Each task is one chain through the real runtime of the real template org (``orgctl init`` into a
temporary directory, applied the way ``apply`` does it: a spec snapshot per Anima and a workspace
cloned by ``prepare_workspace``):

    a person adds a task for alice (the manager)
    -> alice's heartbeat plans it and delegates it to bob (a direct report)
    -> bob's heartbeat starts the subtask; his task runner runs the task cycle: the model picks a
       permitted command, which runs as a real child process in bob's workspace; its output answered
       the task, so ``done`` is the only exit left (no model choice) and the model says one sentence;
       the result goes to alice as a report DM
    -> alice's heartbeat reviews it and reports to the human inbox.

The Animas are the real :class:`~orgctl.runtime.anima.AnimaProcess` objects, each with its own
``Organization`` as each process has, driven by their own ``cycles()`` (heartbeat, follow-ups while a
decision is pending, then the task runner's poll). The bench stands in for what lies outside one
process: the supervisor (``Organization.wake`` queues the Anima for the driver instead of asking the
supervisor over its socket; a finished task pokes its Anima, as in the process; the heartbeat report to
the supervisor is dropped) and the gateway (the model is a replay). The task runner's thread pool runs
inline, so the chain is single-threaded and cProfile sees all of it. The spec copies have no message caps
(they would refuse the 1,000th send, as they should), ``active_hours: always`` and no cron. Not measured:
the supervisor socket and signals, and model-call transport. Tasks run one after another, each to the
end, so state grows as in a long-running org (task logs, outbox, inboxes, events, episodes).

The model is a replay, not the real model: the bench measures framework time, not model time.
``--record`` runs ONE chain on the org's real embedded model (``local/smollm2`` through
:class:`orgctl.llm.gateways.Gateway`, which starts the llama.cpp server and is closed afterwards)
under :class:`orgctl.llm.cassettes.RecordingClient`, then adds each call's *shape* to its line's
``request`` summary and writes bench/cassettes/task_chain.jsonl (still a cassette
:class:`~orgctl.llm.cassettes.ReplayClient` reads; the bench checks that). Exact-key replay cannot
serve 1,000 chains, because their prompts differ: other task ids, another request number, the fresh
repo's commit sha in the command output. So :class:`ChainReplay` answers the n-th call of each task's
chain with the n-th recorded call (the occurrence within the chain), after checking that the call has
the recorded shape: same Anima, model, purpose, schema name, choice list (enum values), max_tokens and
temperature. A call of another shape, a call beyond the recorded chain, or a chain that ends short
fails the run loudly (:class:`ReplayMismatch`, never a ``ModelError``, which a cycle would record as a
failed heartbeat and carry on).

Framework time per task = wall time from ``add_task`` until nothing is left to do, minus the time spent
inside the model client (the replay lookups) and inside ``run_command`` (the child processes). The
goal is on its mean. The run also checks that every task is done with one report per task in the human
inbox (exit 1 otherwise), and compares the mean of the first 100 tasks with the last 100: a per-task
read of something that grows with the number of tasks shows up as a rising mean.

Run:     .venv/bin/python bench/task_overhead.py [--tasks N] [--profile]   (results written for 1,000 only;
         --profile also dumps the raw stats to $ORGCTL_BENCH_PROFILE, default /tmp/task_overhead.prof)
Record:  .venv/bin/python bench/task_overhead.py --record   (a few real model calls, seconds each)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops.bootstrapping import init_org
from orgctl.gitops.repos import prepare_workspace
from orgctl.llm.cassettes import RecordingClient, ReplayClient, request_key
from orgctl.llm.requests import CompletionRequest, CompletionResult, ModelClient
from orgctl.paths import StatePaths, template_dir
from orgctl.runtime import tasking
from orgctl.runtime.anima import AnimaProcess
from orgctl.runtime.organization import Organization
from orgctl.state.inventories import now_iso
from orgctl.state.snapshots import Snapshot, write_snapshot
from orgctl.work.messages import HUMAN

TASKS = 1000
TITLE = "Investigate what changed in the org repo this week (request {n})"
GOAL_MS = 20.0
BENCH = Path(__file__).parent
CASSETTE = BENCH / "cassettes" / "task_chain.jsonl"
RESULTS = BENCH / "results" / "task_overhead.json"
MAX_WAKES = 50  # per task: the chain needs 4; more means the Animas are looping
NO_CAPS = {"per_hour": 10**6, "per_day": 10**6, "pair_depth": 10**6}
SHAPE_FIELDS = ("anima", "model", "purpose", "schema_name", "choices", "max_tokens", "temperature")


class ReplayMismatch(RuntimeError):
    """The run asked the model something the recorded chain does not hold: re-record or fix the bench."""


class Clock:
    """Time spent outside the framework: in the model client and in child processes (seconds)."""

    def __init__(self) -> None:
        self.model_s = 0.0
        self.model_calls = 0
        self.command_s = 0.0
        self.commands = 0

    def model(self, seconds: float) -> None:
        self.model_s += seconds
        self.model_calls += 1

    def command(self, seconds: float) -> None:
        self.command_s += seconds
        self.commands += 1


def shape(request: CompletionRequest) -> dict[str, Any]:
    """What a call must match in the recorded chain: everything but the prompt text."""
    schema = request.schema_
    choices = schema.get("properties", {}).get("choice", {}).get("enum") if schema else None
    return {"anima": request.anima, "model": request.model, "purpose": request.purpose,
            "schema_name": request.schema_name if schema is not None else None, "choices": choices,
            "max_tokens": request.max_tokens, "temperature": request.temperature}


class TimedClient:
    """Wraps a model client, adding the time spent inside it to ``clock``."""

    def __init__(self, inner: ModelClient, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock

    def complete(self, request: CompletionRequest) -> CompletionResult:
        started = time.perf_counter()
        try:
            return self.inner.complete(request)
        finally:
            self.clock.model(time.perf_counter() - started)


class ShapeLog:
    """Recording: passes calls on, and keeps each call's key and shape in call order."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def complete(self, request: CompletionRequest) -> CompletionResult:
        result = self.inner.complete(request)
        self.calls.append((request_key(request), shape(request)))
        return result


class ChainReplay:
    """Answers the n-th call of a task's chain with the n-th recorded call, if the shapes agree."""

    def __init__(self, path: Path) -> None:
        ReplayClient(path=path)  # strict: raises ModelError when the file is not a valid cassette
        self.chain: list[tuple[dict[str, Any], CompletionResult]] = []
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            entry = json.loads(raw)
            recorded = {f: entry["request"].get(f, "?") for f in SHAPE_FIELDS}
            if "?" in recorded.values():
                raise ReplayMismatch(f"{path}:{number} has no call shape; re-record with --record")
            self.chain.append((recorded, CompletionResult.model_validate(entry["result"])
                               .model_copy(update={"replayed": True})))
        self.position = 0
        self.error: ReplayMismatch | None = None

    def begin(self) -> None:
        self.position = 0

    def end(self) -> None:
        if self.error is not None:
            raise self.error
        if self.position != len(self.chain):
            raise ReplayMismatch(f"the chain made {self.position} model calls; the cassette recorded "
                                 f"{len(self.chain)}")

    def complete(self, request: CompletionRequest) -> CompletionResult:
        n = self.position
        self.position += 1
        got = shape(request)
        if n >= len(self.chain):
            problem = f"call {n + 1} of the chain is beyond the {len(self.chain)} recorded: {got}"
        elif got != self.chain[n][0]:
            problem = f"call {n + 1} of the chain has a shape the cassette lacks:\n  asked    {got}\n" \
                      f"  recorded {self.chain[n][0]}"
        else:
            return self.chain[n][1]
        self.error = self.error or ReplayMismatch(problem)
        raise self.error


class InlineExecutor:
    """The task runner's pool, run inline: single-threaded, so timings and cProfile see the whole chain."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except ReplayMismatch:  # the bench's own failure: stop here (the runner would log it and retry the task)
            raise
        except BaseException as e:  # the runner's done-callback logs it, as with its threads
            future.set_exception(e)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


class Wakes:
    """Animas to wake, in order, each once (a wake during a wait coalesces, like the process's Event)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name != HUMAN and name not in self.names:
            self.names.append(name)


class BenchOrganization(Organization):
    """An Organization whose wake-ups go to the driver instead of to the supervisor's socket."""

    def __init__(self, *, paths: StatePaths, wakes: Wakes) -> None:
        super().__init__(paths=paths)
        self.wakes = wakes

    def wake(self, name: str) -> bool:
        self.wakes.add(name)
        return name != HUMAN


class Org:
    """The template org, applied into a temporary directory, with each Anima's process in this one."""

    def __init__(self, tmp: Path, client: ModelClient) -> None:
        org_dir = tmp / "acme"
        init_org(dest=org_dir, template=template_dir(), name="acme")
        desired = load_org(GitRevisionSource(org_dir, "HEAD"))
        self.paths = StatePaths(tmp / "state").ensure()
        self.wakes = Wakes()
        for name, spec in desired.animas.items():  # what apply's _write_snapshot does, with the bench's spec
            spec = spec.model_copy(update={"messaging": spec.messaging.model_copy(update=NO_CAPS),
                                           "active_hours": "always", "cron": []})
            memory = org_dir / "animas" / name / "memory"
            memory.mkdir(parents=True, exist_ok=True)
            prepare_workspace(org_dir, self.paths.workspace(name), revision=desired.revision)
            write_snapshot(self.paths.spec_snapshot(name), Snapshot(
                spec=spec, revision=desired.revision, org_name=desired.name, memory_dir=str(memory),
                applied_at=now_iso()))
        self.human = BenchOrganization(paths=self.paths, wakes=self.wakes)  # the CLI's handle
        self.procs = {name: self._process(name, client) for name in desired.animas}

    def _process(self, name: str, client: ModelClient) -> AnimaProcess:
        proc = AnimaProcess(name=name, paths=self.paths)
        proc.model = client  # type: ignore[assignment]  # the supervisor's gateway, replayed
        proc.org = BenchOrganization(paths=self.paths, wakes=self.wakes)
        proc.report = lambda **_: None  # type: ignore[method-assign]  # the heartbeat report to the supervisor
        proc._poke = lambda: self.wakes.add(name)  # type: ignore[method-assign]  # a finished task wakes it
        proc.runner._pool = InlineExecutor()  # type: ignore[assignment]
        return proc

    def run_task_chain(self, n: int) -> None:
        """A person's task for alice, then every wake-up it causes, until nothing is left to do."""
        self.human.add_task("alice", TITLE.format(n=n))
        for _ in range(MAX_WAKES):
            if not self.wakes.names:
                return
            self.procs[self.wakes.names.pop(0)].cycles("message")
        raise ReplayMismatch(f"task {n} did not settle in {MAX_WAKES} wake-ups (still to wake: {self.wakes.names})")


def time_commands(clock: Clock) -> None:
    """Count the time inside ``run_command`` (the child process) as not the framework's."""
    real = tasking.run_command

    def run_command(command: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(command, **kwargs)
        finally:
            clock.command(time.perf_counter() - started)

    tasking.run_command = run_command  # type: ignore[assignment]


def record() -> None:
    """One chain on the org's real embedded model, into the cassette."""
    from orgctl.llm.gateways import Gateway

    with tempfile.TemporaryDirectory() as tmp:
        gateway = Gateway(paths=StatePaths(Path(tmp) / "model").ensure())
        raw = Path(tmp) / "raw.jsonl"
        client = ShapeLog(RecordingClient(gateway, path=raw))
        try:
            org = Org(Path(tmp), client)
            with contextlib.redirect_stderr(io.StringIO()) as log:
                org.run_task_chain(0)
        finally:
            gateway.close()
        entries = [json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines()]
        if [e["key"] for e in entries] != [key for key, _ in client.calls]:
            raise SystemExit("the cassette and the calls made disagree")
        for entry, (_key, call) in zip(entries, client.calls, strict=True):
            entry["request"].update(call)
        report = org.human.inbox(HUMAN).unread()
        alice = org.procs["alice"].org.queue("alice").all()
    if not report or alice[0].status != "done":
        raise SystemExit(f"the recorded chain did not complete:\n{log.getvalue()}")
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    CASSETTE.write_text("".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries))
    for e in entries:
        r = e["request"]
        print(f"{r['anima']:6} {r['purpose']:8} {r['schema_name'] or 'text':9} {r['choices'] or ''} "
              f"-> {e['result']['content']!r} ({e['result']['latency_s']} s)")
    print(f"recorded {len(entries)} calls to {CASSETTE}; the human got:\n{report[0].text}")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 2), "p95": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 2),
            "mean": round(statistics.fmean(ordered), 2), "max": round(ordered[-1], 2)}


def replay(tasks: int, *, profile: bool) -> int:
    clock = Clock()
    chain = ChainReplay(CASSETTE)
    time_commands(clock)
    totals: list[float] = []
    framework: list[float] = []
    profiler = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory() as tmp:
        org = Org(Path(tmp), TimedClient(chain, clock))
        log = org.paths.logs / "animas.log"  # where the supervisor sends the processes' stderr
        with open(log, "w", encoding="utf-8") as err, contextlib.redirect_stderr(err):
            for n in range(tasks):
                chain.begin()
                model_before, command_before = clock.model_s, clock.command_s
                if profiler:
                    profiler.enable()
                try:
                    started = time.perf_counter()
                    org.run_task_chain(n)
                    wall = time.perf_counter() - started
                    chain.end()
                except ReplayMismatch as e:
                    err.flush()
                    raise SystemExit(f"task {n}: {e}\nthe Animas' log ends:\n{log.read_text()[-1500:]}") from e
                if profiler:
                    profiler.disable()
                totals.append(wall * 1000)
                framework.append((wall - (clock.model_s - model_before) - (clock.command_s - command_before)) * 1000)
        completed, reports, done_subtasks = check(org)
    if profiler:
        profiler.dump_stats(os.environ.get("ORGCTL_BENCH_PROFILE", "/tmp/task_overhead.prof"))
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
    recorded_model_s = sum(result.latency_s for _, result in chain.chain)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "tasks": tasks,
        "completed": completed,
        "human_reports": reports,
        "subtasks_done": done_subtasks,
        "model": f"replayed from bench/cassettes/{CASSETTE.name} ({len(chain.chain)} calls per chain, recorded on "
                 f"{chain.chain[0][0]['model']}: {recorded_model_s:.1f} s of real model time per chain)",
        "total_ms": summary(totals),
        "framework_ms": summary(framework),
        "framework_first_100_mean_ms": round(statistics.fmean(framework[:100]), 2),
        "framework_last_100_mean_ms": round(statistics.fmean(framework[-100:]), 2),
        "model_calls_per_task": round(clock.model_calls / tasks, 2),
        "commands_per_task": round(clock.commands / tasks, 2),
        "command_ms_per_task": round(clock.command_s * 1000 / tasks, 2),
        "model_client_ms_per_task": round(clock.model_s * 1000 / tasks, 3),
        "goal_framework_mean_ms": GOAL_MS,
        "meets_goal": statistics.fmean(framework) <= GOAL_MS,
    }
    print(json.dumps(result, indent=2))
    print(f"completed: {completed}/{tasks} tasks done with a report in the human inbox")
    if not profile and tasks == TASKS:  # the recorded figures are the full run's
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if completed == tasks and reports == tasks and done_subtasks == tasks else 1


def check(org: Org) -> tuple[int, int, int]:
    """(alice's tasks done and reported to the human, reports in the human inbox, bob's subtasks done)."""
    reports = [m for m in org.human.inbox(HUMAN).unread() if m.sender == "alice" and m.intent == "report"]
    reported = {m.task_id for m in reports}
    done = [t for t in org.procs["alice"].org.queue("alice").all() if t.status == "done"]
    subtasks = [t for t in org.procs["bob"].org.queue("bob").all() if t.status == "done"]
    return sum(1 for t in done if t.id in reported), len(reports), len(subtasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record one chain on the real model into the cassette")
    parser.add_argument("--tasks", type=int, default=TASKS, help=f"results are written only for {TASKS}")
    parser.add_argument("--profile", action="store_true", help="cProfile the replay (results are not written)")
    args = parser.parse_args()
    if args.record:
        record()
        return
    sys.exit(replay(args.tasks, profile=args.profile))


if __name__ == "__main__":
    main()
