"""The org's memory service: search and priming for every Anima, in one process.

The supervisor holds one :class:`MemoryService` and answers the Animas'
``search_memory`` and ``prime`` requests over its socket; the CLI holds one
when no supervisor runs (``orgctl memory search``/``reindex``). Exactly one
process of an org holds it at a time (:meth:`MemoryService.claim`, a flock in
the index folder): Chroma's store must have one writer.

Each Anima's index is built from its applied snapshot: its memory folder in
the runtime's clone, the org's ``common_knowledge/`` in its workspace (the
checkout at the revision it runs), its declared skills.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import Any

from orgctl.errors import StateError
from orgctl.memory.access import AccessStats
from orgctl.memory.index import MemoryIndex, SearchResult, VectorStore
from orgctl.memory.priming import Primed, prime
from orgctl.paths import StatePaths
from orgctl.state.snapshots import read_snapshot

MAX_INDEXES = 64
"""Indexes kept in memory (least recently used out): an evicted one is rebuilt from the files and the vectors
in Chroma (no embedding) when its Anima next asks."""
RECALLED_KINDS = ("knowledge", "procedures")
"""Item kinds whose recalls are counted (forgetting reads the counts); episodes age by date."""


class MemoryService:
    """Search indexes of every Anima of the org at ``paths``; the embedding model is loaded on first use.

    ``warn(reason, message)`` reports a Warning event (the supervisor passes its event emitter).
    """

    def __init__(self, paths: StatePaths, *, warn: Any = None, dense: bool = True) -> None:
        self.paths = paths
        self.dense = dense
        self.warn = warn or (lambda reason, message: None)
        self._embedder: Any = None
        self._vectors: VectorStore | None = None
        self._indexes: OrderedDict[str, tuple[str, MemoryIndex]] = OrderedDict()
        self._lock = threading.Lock()
        self._claim: int | None = None
        self._queries: dict[str, Any] = {}

    # ------------------------------------------------------------ one holder per org

    def claim(self) -> MemoryService:
        """Take the org's index lock (held until :meth:`close`). Raises StateError when another process holds it."""
        self.paths.memory_index.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.memory_index / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError("the memory index of this org is held by another process (the supervisor, or another "
                             "orgctl memory command)", hint="while the org runs, memory commands go through the "
                                                             "supervisor; wait for the other command") from None
        self._claim = fd
        return self

    def close(self, *, wait: float = 30.0) -> None:
        """Let go of the org's index: background refreshes still embedding are stopped at their next batch and
        waited for (up to ``wait`` seconds in all), the embedding model is unloaded and the lock released.
        A process that exited with a refresh mid-embedding had onnxruntime's threads torn down under it:
        ``terminate called without an active exception``, exit 134 (a tick's process, in bench/tick.py)."""
        if self._embedder is not None:
            self._embedder.cancel()  # a background build stops at its next batch, not at its last
        deadline = time.monotonic() + wait
        for _, index in list(self._indexes.values()):
            index.wait_for_refresh(max(0.0, deadline - time.monotonic()))
        if self._embedder is not None:
            self._embedder.release(0)
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    # ------------------------------------------------------------ indexes

    def embed(self, texts: list[str]) -> Any:
        """Embed ``texts`` with the org's one embedding model (loaded on first use). A single text (a query)
        is cached: priming searches two channels with the same query."""
        with self._lock:
            if self._embedder is None:
                from orgctl.memory.embedding import Embedder

                self._embedder = Embedder()
            if len(texts) == 1 and texts[0] in self._queries:
                return self._queries[texts[0]]
        vectors = self._embedder.embed(texts)
        if len(texts) == 1:
            with self._lock:
                if len(self._queries) >= 256:
                    self._queries.clear()
                self._queries[texts[0]] = vectors
        return vectors

    def similarity(self, query: str, texts: list[str]) -> list[float]:
        """Cosine similarity (-1..1) of ``query`` to each of ``texts``, with the memory's embedding model: how
        the task cycle ranks an Anima's commands by what a task asks (:func:`orgctl.runtime.tasking.rank_commands`)."""
        if not texts:
            return []
        vectors = self.embed([query, *texts])
        return [float(v) for v in vectors[1:] @ vectors[0]]

    def release_idle(self, idle: float) -> bool:
        """Unload the embedding model if no text was embedded for ``idle`` seconds (see
        :meth:`~orgctl.memory.embedding.Embedder.release`); the indexes stay. Returns whether it was unloaded."""
        embedder = self._embedder
        if embedder is None or not embedder.release(idle):
            return False
        with self._lock:
            self._queries.clear()
        return True

    def _store(self) -> VectorStore | None:
        if not self.dense:
            return None
        if self._vectors is None:
            self._vectors = VectorStore(self.paths.memory_index / "chroma", embed=self.embed)
        return self._vectors

    def index(self, name: str) -> MemoryIndex:
        """``name``'s index, built from its applied snapshot (rebuilt when the snapshot changed).

        Raises StateError when ``name`` has no applied snapshot.
        """
        path = self.paths.spec_snapshot(name)
        if not path.is_file():
            raise StateError(f"{name} has no applied spec: its memory is not indexed",
                             hint="orgctl apply hires it; orgctl status lists who runs")
        stamp = f"{path.stat().st_mtime_ns}"
        with self._lock:
            known = self._indexes.get(name)
            if known is not None and known[0] == stamp:
                self._indexes.move_to_end(name)
                return known[1]
        snapshot = read_snapshot(path)
        common = self.paths.workspace(name) / "common_knowledge"
        index = MemoryIndex(name, Path(snapshot.memory_dir), vectors=self._store(), common=common,
                            skills=snapshot.spec.skills, embed_query=self.embed if self.dense else None,
                            warn=self.warn)
        with self._lock:
            self._indexes[name] = (stamp, index)
            while len(self._indexes) > MAX_INDEXES:  # the least recently used; rebuilt from Chroma when asked
                self._indexes.popitem(last=False)
        return index

    def reindex(self, name: str, *, progress: Any = lambda n: None) -> int:
        """Drop ``name``'s stored vectors and rebuild its index from the files; returns the item count."""
        store = self._store()
        if store is not None:
            store.drop(name)
        index = self.index(name)
        index.refresh(force=True, progress=progress)
        return len(index.docs)

    # ------------------------------------------------------------ search

    def search(self, name: str, query: str, *, k: int = 10, kinds: list[str] | None = None,
               lexical: bool = False, record: bool = True) -> list[SearchResult]:
        """``search_memory``: the ``k`` best items of ``name``'s memory for ``query``, best first. Recalled
        notes are counted (``record``) in the state dir, never in the notes themselves."""
        results = self.index(name).search(query, k=k, kinds=kinds, lexical=lexical)
        if record:
            recalled = [r.id for r in results if r.kind in RECALLED_KINDS]
            AccessStats(self.paths.memory_state(name) / "access.json").record(recalled, on=date.today())
        return results

    def prime(self, name: str, *, trigger: str, sender: str = "", text: str = "", model: str = "") -> Primed:
        """The six priming channels for one trigger of ``name`` (:func:`orgctl.memory.priming.prime`);
        recalled notes are counted."""
        stats = AccessStats(self.paths.memory_state(name) / "access.json")
        return prime(self.index(name), trigger=trigger, sender=sender, text=text, model=model,
                     record=lambda ids: stats.record(ids, on=date.today()))
