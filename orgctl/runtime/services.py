"""The runtime's services: each one interface with two implementations, chosen once, when built.

============== ================================== ====================== =======================
service        interface                          in-process             over the socket
============== ================================== ====================== =======================
model gateway  :class:`ModelClient` ``complete``  :class:`LocalModel`    :class:`SocketModel`
memory         :class:`Memory` search/prime/...   :class:`LocalMemory`   :class:`SocketMemory`
notifier       :class:`Notifier` ``call_human``   :class:`LocalNotifier` :class:`SocketNotifier`
memory commits :class:`MemoryCommits` commit/pass :class:`LocalCommits`  :class:`SocketCommits`
============== ================================== ====================== =======================

:class:`Services` bundles the four with the wake function. The supervisor builds
:meth:`Services.in_process` and serves it over its socket (:mod:`orgctl.runtime.supervisor`); an
Anima process and a CLI run against a running org build :meth:`Services.over_socket`; a tick
(:mod:`orgctl.runtime.ticking`) and a CLI run with no org running build :meth:`Services.in_process`,
with no fork and no socket. :meth:`Services.for_org` makes that choice once, where a caller may be
either; nothing below it asks again.

The in-process implementations hold what must be one per org (the embedding model and index, the
model gateway with its budgets, the memory lock), so a host builds them once. Imports of heavy
libraries (litellm, chromadb) happen on first use, never at construction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orgctl.desired.models import AnimaSpec
from orgctl.errors import BudgetExceeded, ModelError, OrgctlError, RuntimeFailure, StateError
from orgctl.llm.requests import CompletionRequest, CompletionResult, ModelClient
from orgctl.paths import StatePaths
from orgctl.runtime import protocol
from orgctl.state.events import emit
from orgctl.state.snapshots import applied_names, read_snapshot, unknown_anima

log = logging.getLogger("orgctl.services")

Wake = Callable[[str], bool]
"""Wake an Anima now (True when something was woken); work waits in its files either way."""


def no_wake(name: str) -> bool:
    """The wake of a host that wakes nobody: a tick runs every Anima that has work anyway."""
    return False


MAX_SIMILARITY_TEXTS = 50
"""Texts one similarity request ranks at most (an Anima's commands are a handful)."""


# ---------------------------------------------------------------- interfaces


class Memory(Protocol):
    """Search and priming over an Anima's memory, and rebuilding its index."""

    def search(self, name: str, query: str, *, k: int = 10, kinds: list[str] | None = None,
               lexical: bool = False, record: bool = True) -> list[dict[str, Any]]:
        """The ``k`` best items for ``query``, as :meth:`orgctl.memory.ranking.Ranked.as_json` dicts."""
        ...

    def prime(self, name: str, *, trigger: str, sender: str, text: str, model: str) -> str:
        """The primed block for a prompt (:mod:`orgctl.memory.priming`)."""
        ...

    def reindex(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild ``name``'s index from its memory files; returns the number of items."""
        ...

    def similarity(self, name: str, query: str, texts: list[str]) -> list[float]:
        """Cosine similarity of ``query`` to each of ``texts`` (the memory's embedding model), for ``name``."""
        ...


class Notifier(Protocol):
    """Calls a human on the channels of an Anima's applied spec."""

    def call_human(self, name: str, message: str, *, title: str = "", context_url: str | None = None
                   ) -> list[dict[str, Any]]:
        """One ``{"channel", "ok", "status", "error"}`` per channel (``[]`` with none configured)."""
        ...


@dataclass(frozen=True)
class CommitReport:
    """What a memory batch did: ``commits`` ``{anima: sha}``, whether the clone was ``pushed``, the ``error``
    that kept it from syncing (the commits then wait in the clone for the next batch)."""

    commits: dict[str, str] = field(default_factory=dict)
    pushed: bool = False
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"commits": self.commits, "pushed": self.pushed, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommitReport:
        return cls(commits=dict(data.get("commits") or {}), pushed=bool(data.get("pushed")), error=data.get("error"))


class MemoryCommits(Protocol):
    """The one writer of memory commits in the runtime's clone: batches of episodes, and passes."""

    def commit(self, *, push: bool = True) -> CommitReport:
        """Commit each Anima's memory that changed (one commit each), then sync the clone."""
        ...

    def run_pass(self, kind: str, *, names: list[str] | None = None, day: str | None = None,
                 dry_run: bool = False) -> list[dict[str, Any]]:
        """A ``kind`` pass (consolidate, compress, forget) over ``names`` (default: every applied Anima), as
        :func:`orgctl.memory.passes.result_json` dicts. Raises OrgctlError (a busy lock, git)."""
        ...


# ---------------------------------------------------------------- in-process


class LocalModel:
    """The org's model client in this process: the gateway (:class:`orgctl.llm.gateways.Gateway`), or a
    cassette around it (``ORGCTL_CASSETTE``), built on the first call. ``budget`` is the spend level the last
    call reported. A budget level reached for the first time in a day is a Warning event; a hard one also
    calls a human through ``notifier`` on the top-level Animas' channels."""

    def __init__(self, paths: StatePaths, *, notifier: Notifier | None = None) -> None:
        self.paths = paths
        self.notifier = notifier
        self.budget = "ok"
        self._client: ModelClient | None = None
        self._gateway: Any = None
        self._lock = threading.Lock()

    def client(self) -> ModelClient:
        with self._lock:
            if self._client is None:
                from orgctl.llm import cassettes

                if os.environ.get(cassettes.ENV_PATH) and os.environ.get(cassettes.ENV_MODE, "replay") == "replay":
                    self._client = cassettes.from_env(None, os.environ)  # replay needs no gateway at all
                else:
                    from orgctl.llm.gateways import Gateway  # heavy (litellm): only when a model is first needed

                    self._gateway = Gateway(paths=self.paths, on_budget=self._on_budget)
                    self._client = cassettes.from_env(self._gateway, os.environ)
            return self._client

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Raises :class:`ModelError` (:class:`BudgetExceeded` at a hard limit)."""
        try:
            result = self.client().complete(request)
        except BudgetExceeded:
            self.budget = "hard"
            raise
        self.budget = result.budget
        return result

    def _on_budget(self, anima: str | None, state: Any) -> None:
        reason = "BudgetExceeded" if state.level == "hard" else "BudgetSoftLimit"
        emit(self.paths.work.events, reason=reason, object=state.scope, anima=anima, type="Warning",
             message=state.reason + ("; no more model calls" if state.level == "hard" else "; heartbeats slow down"))
        if state.level != "hard" or self.notifier is None:
            return
        for top in top_level(self.paths):
            try:
                self.notifier.call_human(top, f"Spend limit reached: {state.reason}. Model calls have stopped.",
                                         title="orgctl budget exceeded")
            except Exception:  # a notification must never take the gateway down
                log.exception("could not call a human about the budget")

    def server_info(self) -> dict[str, Any] | None:
        return self._gateway.server_info() if self._gateway is not None else None

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()


class LocalMemory:
    """The org's memory service in this process (:class:`orgctl.memory.service.MemoryService`), built and
    claimed on first use: one embedding model and index per org. A failing index is a Warning event."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths
        self._service: Any = None
        self._lock = threading.Lock()

    def service(self) -> Any:
        with self._lock:
            if self._service is None:
                from orgctl.memory.service import MemoryService

                def warn(reason: str, message: str) -> None:
                    emit(self.paths.work.events, reason=reason, object="memory-index", type="Warning", message=message)

                self._service = MemoryService(self.paths, warn=warn).claim()
            return self._service

    def search(self, name: str, query: str, *, k: int = 10, kinds: list[str] | None = None,
               lexical: bool = False, record: bool = True) -> list[dict[str, Any]]:
        return [r.as_json() for r in self.service().search(name, query[:2000], k=max(1, min(k, 50)), kinds=kinds,
                                                           lexical=lexical, record=record)]

    def prime(self, name: str, *, trigger: str, sender: str, text: str, model: str) -> str:
        primed = self.service().prime(name, trigger=trigger, sender=sender[:64], text=text[:2000], model=model)
        return str(primed.block(sender=sender[:64]))

    def reindex(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        return int(self.service().reindex(name, progress=progress or (lambda n: None)))

    def similarity(self, name: str, query: str, texts: list[str]) -> list[float]:
        return self.service().similarity(query[:1000], [t[:500] for t in texts[:MAX_SIMILARITY_TEXTS]])

    def release_idle(self, keep: float) -> bool:
        """Unload the embedding model after ``keep`` seconds unused; True when it was unloaded."""
        service = self._service
        return bool(service is not None and service.release_idle(keep))

    def close(self) -> None:
        if self._service is not None:
            self._service.close()


class LocalNotifier:
    """Notifies on the channels in the Anima's spec (``specs`` when given, else its applied snapshot), with
    tokens from this process's environment: a host holds them, an Anima process never does."""

    def __init__(self, paths: StatePaths, *, specs: Mapping[str, AnimaSpec] | None = None) -> None:
        self.paths = paths
        self.specs = specs

    def call_human(self, name: str, message: str, *, title: str = "", context_url: str | None = None
                   ) -> list[dict[str, Any]]:
        from orgctl.runtime.notifying import call_human_on

        if self.specs is not None and name in self.specs:
            spec, org = self.specs[name], self.paths.root.name
            with contextlib.suppress(OSError, ValueError):
                org = read_snapshot(self.paths.spec_snapshot(name)).org_name
        else:
            snapshot = read_snapshot(self.paths.spec_snapshot(name))
            spec, org = snapshot.spec, snapshot.org_name
        return call_human_on(spec.notifications, anima=name, org=org, message=message, title=title,
                             context_url=context_url, env=os.environ)


class LocalCommits:
    """Memory commits in the runtime's clone, one batch or pass at a time (a lock). A sync failure is
    reported once as a Warning event (``MemorySyncFailed``) and once more when it heals (``MemorySynced``)."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self._error: str | None = None


    def commit(self, *, push: bool = True, only: set[str] | None = None) -> CommitReport:
        """As :meth:`MemoryCommits.commit`; ``only`` these Animas' folders when given (a shard's tick)."""
        from orgctl.gitops.clones import RuntimeClone
        from orgctl.memory.batches import commit_pending

        with self._lock:
            clone = RuntimeClone.open(self.paths.clone)
            if clone is None:
                return CommitReport()
            made: dict[str, str] = {}
            try:
                made = commit_pending(clone, self.paths, only=only)
                synced = clone.sync(push=push)
            except OrgctlError as e:
                if e.message != self._error:
                    emit(self.paths.work.events, reason="MemorySyncFailed", object="memory", type="Warning",
                         message=f"memory commits stay in {clone.root} until the next batch: {e.message}")
                self._error = e.message
                return CommitReport(made, False, e.message)
            if self._error is not None:
                emit(self.paths.work.events, reason="MemorySynced", object="memory",
                     message=f"memory commits reach {clone.source} again")
            self._error = None
            return CommitReport(made, synced.pushed, None)

    def record_runs(self) -> dict[str, str | None]:
        """Commit the record of every finished workflow run not yet recorded, one commit per run
        (:func:`orgctl.memory.runs.record_finished_runs`); pushed with the next batch. ``{run id: sha}``."""
        from orgctl.gitops.clones import RuntimeClone
        from orgctl.memory.runs import record_finished_runs
        from orgctl.work.runs import RunStore

        runs = RunStore(self.paths.work.runs)
        if not runs.root.is_dir():
            return {}
        with self._lock:
            clone = RuntimeClone.open(self.paths.clone)
            return record_finished_runs(clone, runs) if clone is not None else {}

    def run_pass(self, kind: str, *, names: list[str] | None = None, day: str | None = None,
                 dry_run: bool = False, push: bool = True) -> list[dict[str, Any]]:
        """As :meth:`MemoryCommits.run_pass`, for the applied specs (their snapshots); pass commits are synced
        with a batch right after (pushed unless ``push`` is False). Raises StateError (an Anima that is not
        applied, a busy memory lock), GitError."""
        from datetime import date

        from orgctl.gitops.clones import RuntimeClone
        from orgctl.memory.passes import result_json, run_passes

        for name in names or []:
            if problem := unknown_anima(self.paths, name):
                raise StateError(problem, hint="orgctl status lists the Animas that run")
        with self._lock:
            clone = RuntimeClone.open(self.paths.clone)
            if clone is None:
                return []
            snapshots = {n: read_snapshot(self.paths.spec_snapshot(n)) for n in names or applied_names(self.paths)}
            revisions = {s.revision for s in snapshots.values()}
            results = run_passes(kind, clone=clone, paths=self.paths, animas={n: s.spec for n, s in snapshots.items()},
                                 revision=revisions.pop() if len(revisions) == 1 else None,
                                 day=date.fromisoformat(day) if day else None, dry_run=dry_run)
        if any(r.commit for r in results):  # the passed Animas' own episodes only: a shard's tick reports the rest
            self.commit(push=push, only=set(names) if names else None)
        return [result_json(r) for r in results]


# ---------------------------------------------------------------- over the socket


class SocketModel:
    """:class:`ModelClient` answered by the supervisor's gateway; ``budget`` as :class:`LocalModel`'s."""

    def __init__(self, paths: StatePaths) -> None:
        self.socket = paths.socket
        self.budget = "ok"

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Raises :class:`ModelError` (:class:`BudgetExceeded` at a hard limit) as the gateway did, and
        RuntimeFailure when the supervisor does not answer."""
        reply = protocol.request(self.socket, "complete", timeout=600.0,
                                 request=request.model_dump(mode="json", by_alias=True))
        if (error := reply.get("model_error")) is not None:
            self.budget = "hard" if error.get("budget") else self.budget
            raise (BudgetExceeded if error.get("budget") else ModelError)(error["message"], hint=error.get("hint"))
        result = CompletionResult.model_validate(reply["result"])
        self.budget = result.budget
        return result


class SocketMemory:
    """:class:`Memory` answered by the supervisor's memory service. Raises RuntimeFailure."""

    def __init__(self, paths: StatePaths, *, timeout: float = 30.0) -> None:
        self.socket = paths.socket
        self.timeout = timeout

    def search(self, name: str, query: str, *, k: int = 10, kinds: list[str] | None = None,
               lexical: bool = False, record: bool = True) -> list[dict[str, Any]]:
        reply = protocol.request(self.socket, "search_memory", timeout=self.timeout, name=name, query=query, k=k,
                                 kinds=kinds, lexical=lexical, record=record)
        return list(reply.get("results", []))

    def prime(self, name: str, *, trigger: str, sender: str, text: str, model: str) -> str:
        reply = protocol.request(self.socket, "prime", timeout=self.timeout, name=name, trigger=trigger,
                                 sender=sender, text=text, model=model)
        return str(reply.get("block", ""))

    def reindex(self, name: str, *, progress: Callable[[int], None] | None = None) -> int:
        return int(protocol.request(self.socket, "memory_reindex", timeout=1800.0, name=name)["items"])

    def similarity(self, name: str, query: str, texts: list[str]) -> list[float]:
        reply = protocol.request(self.socket, "similarity", timeout=self.timeout, name=name, query=query,
                                 texts=texts[:MAX_SIMILARITY_TEXTS])
        return [float(s) for s in reply.get("scores", [])]


class SocketNotifier:
    """:class:`Notifier` answered by the supervisor, which holds the tokens. Raises RuntimeFailure."""

    def __init__(self, paths: StatePaths) -> None:
        self.socket = paths.socket

    def call_human(self, name: str, message: str, *, title: str = "", context_url: str | None = None
                   ) -> list[dict[str, Any]]:
        return list(protocol.request(self.socket, "call_human", timeout=60.0, name=name, message=message,
                                     title=title, context_url=context_url)["deliveries"])


class SocketCommits:
    """:class:`MemoryCommits` done by the supervisor, the one writer of the clone while the org runs."""

    def __init__(self, paths: StatePaths) -> None:
        self.socket = paths.socket

    def commit(self, *, push: bool = True) -> CommitReport:
        return CommitReport.from_json(protocol.request(self.socket, "commit_memory", timeout=180.0, push=push))

    def run_pass(self, kind: str, *, names: list[str] | None = None, day: str | None = None,
                 dry_run: bool = False) -> list[dict[str, Any]]:
        """Raises OrgctlError with the supervisor's message when it refuses the pass."""
        try:
            reply = protocol.request(self.socket, "memory_pass", timeout=600.0, kind=kind, names=names, day=day,
                                     dry_run=dry_run)
        except RuntimeFailure as e:
            raise OrgctlError(e.message.removeprefix("supervisor refused 'memory_pass': "), hint=e.hint) from e
        return list(reply["results"])


def socket_wake(paths: StatePaths) -> Wake:
    """The wake of an org whose supervisor runs: it signals the Anima's process (False when none answered)."""

    def wake(name: str) -> bool:
        try:
            return bool(protocol.request(paths.socket, "wake", name=name, timeout=2.0).get("woken"))
        except RuntimeFailure:
            return False

    return wake


# ---------------------------------------------------------------- the bundle


@dataclass
class Services:
    """The four services and the wake function of one host (see the module docstring)."""

    model: Any  # LocalModel | SocketModel: a ModelClient with ``budget``
    memory: Memory
    notifier: Notifier
    commits: MemoryCommits
    wake: Wake = no_wake
    in_process: bool = False

    @classmethod
    def local(cls, paths: StatePaths, *, wake: Wake = no_wake) -> Services:
        """Services in this process: what a host (the supervisor, a tick) builds once per org."""
        notifier = LocalNotifier(paths)
        return cls(model=LocalModel(paths, notifier=notifier), memory=LocalMemory(paths), notifier=notifier,
                   commits=LocalCommits(paths), wake=wake, in_process=True)

    @classmethod
    def over_socket(cls, paths: StatePaths) -> Services:
        """Services of the org's running supervisor: what an Anima process and the CLI use while it runs."""
        return cls(model=SocketModel(paths), memory=SocketMemory(paths), notifier=SocketNotifier(paths),
                   commits=SocketCommits(paths), wake=socket_wake(paths))

    @classmethod
    def for_org(cls, paths: StatePaths) -> Services:
        """Over the socket when the org's supervisor answers, else in this process: chosen once, here."""
        return cls.over_socket(paths) if protocol.reachable(paths.socket) else cls.local(paths)

    def close(self) -> None:
        """Give back what the in-process services hold (the embedding model, the model server)."""
        for service in (self.model, self.memory):
            closer = getattr(service, "close", None)
            if closer is not None:
                closer()


def top_level(paths: StatePaths) -> list[str]:
    """Applied Animas with no supervisor (the ones that may call a human)."""
    tops = []
    for name in applied_names(paths):
        try:
            if read_snapshot(paths.spec_snapshot(name)).spec.org.supervisor is None:
                tops.append(name)
        except (OSError, ValueError):
            continue
    return tops
