"""The search index of one org: memory files -> items -> vectors in Chroma -> a :class:`Ranker` per Anima.

The files are the truth; everything here is a cache, rebuilt from them
(``orgctl memory reindex``). It lives in one process per org (the
supervisor's, or the CLI's when no supervisor runs), never in each Anima:
the embedding model and Chroma cost ~250 MB, and Chroma's store must have
one writer (AnimaWorks' most reported failure is a Chroma store corrupted by
several writers, and the retry storms after it).

* **Items** (:func:`collect_docs`): each episode section (one agent cycle, or
  one conversation turn), each knowledge note and procedure, each note of the
  org's ``common_knowledge/``, each declared skill (name and description).
  Archived notes are out of the working set and not searched.
* **Vectors**: :mod:`.embedding` (MiniLM int8 on onnxruntime), stored in a Chroma
  ``PersistentClient`` under ``<state>/cache/memory-index/chroma``, one
  collection for the org, keyed by Anima and item id with the text's hash: an unchanged
  item is never embedded twice, a restart loads vectors instead of computing them.
* **Freshness**: :meth:`MemoryIndex.refresh` stats the memory files (about 1 ms
  for a year of them) and re-reads only what changed.
* **Failure**: a Chroma error (a corrupt or vanished store) is reported once as a
  ``MemoryIndexRebuilt`` Warning event, the store is moved aside and rebuilt from
  the files; if that fails too, dense search is off for :data:`RETRY_AFTER`
  seconds (lexical and graph search go on) rather than retried on every query.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orgctl.desired.models import Skill
from orgctl.memory.notes import split_frontmatter
from orgctl.memory.ranking import Doc, Hit, Ranker, embedding_text
from orgctl.memory.stores import NOTE_KINDS, episode_sections

log = logging.getLogger(__name__)

REFRESH_EVERY = 1.0
"""Seconds between two looks at the files from priming (a look costs ~8 ms for a year of memory)."""
COLLECTION = "orgctl-memory"
"""The Chroma collection holding every Anima's vectors."""
RETRY_AFTER = 600.0
"""Seconds dense search stays off after a rebuild of a broken index failed (no retry storm)."""
_HEADER = re.compile(r"^## (?:(\d{4}-\d{2}-\d{2}) )?(\d{2}:\d{2}(?::\d{2})?)\s*(.*)$")
_OBSERVED = re.compile(r"^- (?:Observed|Did|Failed): ")
_SENDER = re.compile(r"^([A-Za-z0-9._-]{1,64}) \((?:chat|question|reply|report|request|delegation|notice|"
                     r"message|intent)\): ")
_COST_LINE = re.compile(r"^- \d+ model calls, \d+ tokens")
_WIKILINK = re.compile(r"\[\[([^\]|#]+)")


# ------------------------------------------------------------------ items


def episode_docs(text: str, *, rel: str, day: str) -> list[Doc]:
    """The items of one episode file (``rel``: ``episodes/<day>.md``): one per ``## HH:MM:SS`` section.

    An item's id is ``<rel>#<HH:MM:SS>`` (``-2``, ``-3`` … for a second cycle in the same second); its
    speaker is the sender of its first quoted message (``bob (report): …``), its text the section's lines
    without the markup and the cost line.
    """
    docs: list[Doc] = []
    seen: dict[str, int] = {}
    for seq, section in enumerate(episode_sections(text)):
        lines = section.splitlines()
        m = _HEADER.match(lines[0])
        if not m:
            continue
        clock = m.group(2) if len(m.group(2)) == 8 else m.group(2) + ":00"
        seen[clock] = seen.get(clock, 0) + 1
        anchor = clock if seen[clock] == 1 else f"{clock}-{seen[clock]}"
        body = [_OBSERVED.sub("", ln).strip() for ln in lines[1:] if ln.strip() and not _COST_LINE.match(ln)]
        speaker = next((s.group(1) for ln in body if (s := _SENDER.match(ln))), "")
        body = [_SENDER.sub("", ln, count=1) if speaker and ln.startswith(speaker) else ln for ln in body]
        try:
            when = datetime.fromisoformat(f"{m.group(1) or day}T{clock}")
        except ValueError:
            when = None
        docs.append(Doc(id=f"{rel}#{anchor}", text=" ".join(body) or m.group(3), kind="episode", when=when,
                        group=rel, seq=seq, speaker=speaker))
    return docs


def note_doc(text: str, *, rel: str, kind: str, seq: int) -> Doc:
    """The item of one note: its title and body; dated by ``updated``/``created``; linked to its ``sources``
    and ``[[wikilinks]]``."""
    meta, body = split_frontmatter(text)
    meta = meta or {}
    title = str(meta.get("title") or "")
    stamp = str(meta.get("updated") or meta.get("created") or "")[:10]
    try:
        when = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        when = None
    sources = meta.get("sources") if isinstance(meta.get("sources"), list) else []
    links = tuple(str(s) for s in sources or []) + tuple(f"{kind}/{w.strip()}.md" for w in _WIKILINK.findall(body))
    words = " ".join(ln.lstrip("-# ").strip() for ln in body.splitlines() if ln.strip())
    return Doc(id=rel, text=f"{title}. {words}" if title and not words.startswith(title) else words, kind=kind,
               when=when, group=kind, seq=seq, links=links)


def collect_docs(memory: Path, *, common: Path | None = None, skills: Iterable[Skill] = ()) -> list[Doc]:
    """Every searchable item of one Anima: its episodes, knowledge and procedures (``memory`` is its memory
    folder), the org's common knowledge (``common``, ids ``common/<file>``) and its declared ``skills``
    (ids ``skills/<file>``). Unreadable files are skipped."""
    docs: list[Doc] = []
    folder = memory / "episodes"
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else ():
        try:
            docs += episode_docs(path.read_text(encoding="utf-8"), rel=f"episodes/{path.name}", day=path.stem)
        except (OSError, UnicodeDecodeError):
            continue
    for kind in NOTE_KINDS:
        for seq, path in enumerate(sorted((memory / kind).glob("*.md"))):
            try:
                docs.append(note_doc(path.read_text(encoding="utf-8"), rel=f"{kind}/{path.name}", kind=kind,
                                     seq=seq))
            except (OSError, UnicodeDecodeError):
                continue
    for seq, (rel, text) in enumerate(_common_texts(common)):
        docs.append(note_doc(text, rel=f"common/{rel}", kind="common", seq=seq))
    for seq, skill in enumerate(skills):
        docs.append(Doc(id=skill.file, text=f"{skill.name}: {skill.description}", kind="skill", when=None,
                        group="skills", seq=seq))
    return docs


def fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """``(path, mtime_ns, size)`` of each existing file: what :meth:`MemoryIndex.refresh` compares."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _memory_files(memory: Path, common: Path | None) -> list[Path]:
    files: list[Path] = []
    for sub in ("episodes", *NOTE_KINDS):
        folder = memory / sub
        if folder.is_dir():
            files += sorted(folder.glob("*.md"))
    return files + _common_files(common)


def _walk_common(common: Path | None, *, read: bool) -> list[tuple[str, Path, str]]:
    """``(relative path, path, text)`` of each ``*.md`` under the workspace's ``common_knowledge/``, sorted;
    ``text`` is '' unless ``read``. An Anima's commands write its workspace and this runs outside the
    sandbox, so nothing is reached through a link: the walk holds each directory open (``os.fwalk``,
    which refuses a directory swapped for a link between its checks) and opens each file relative to it
    with ``O_NOFOLLOW``. A link, an unreadable file or a walk that changes under it is skipped."""
    if common is None or common.is_symlink() or not common.is_dir():
        return []
    found = []
    try:
        for folder, _, files, dir_fd in os.fwalk(common, follow_symlinks=False):
            for name in sorted(f for f in files if f.endswith(".md")):
                rel = os.path.relpath(os.path.join(folder, name), common)
                text = ""
                if read:
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
                        with os.fdopen(fd, encoding="utf-8") as f:
                            text = f.read()
                    except (OSError, UnicodeDecodeError):
                        continue
                found.append((rel, Path(folder) / name, text))
    except OSError:
        return []
    return sorted(found)


def _common_files(common: Path | None) -> list[Path]:
    return [path for _, path, _ in _walk_common(common, read=False)]


def _common_texts(common: Path | None) -> list[tuple[str, str]]:
    return [(rel, text) for rel, _, text in _walk_common(common, read=True)]


# ------------------------------------------------------------------ vectors (Chroma)


class VectorStore:
    """Item vectors in a Chroma ``PersistentClient`` at ``root``: one collection for the org (:data:`COLLECTION`),
    ids ``<anima>/<item id>``, metadata ``anima``, ``kind`` and ``hash`` (of the embedded text). Raises whatever
    Chroma raises (the index handles it)."""

    def __init__(self, root: Path, embed: Callable[[list[str]], Any]) -> None:
        self.root = Path(root)
        self.embed = embed
        self._client: Any = None
        self.lock = threading.RLock()  # Chroma's client is not safe to create or write from several threads

    def client(self) -> Any:
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            self.root.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(self.root),
                                                     settings=Settings(anonymized_telemetry=False,
                                                                       allow_reset=True))
        return self._client

    def vectors(self, anima: str, docs: list[Doc], *, progress: Callable[[int], None] = lambda n: None) -> Any:
        """The vectors of ``docs`` (shape ``(len(docs), 384)``): stored ones read back, the rest embedded and
        stored; items no longer present are deleted. ``progress(n)`` is called as items are done."""
        with self.lock:
            return self._vectors(anima, docs, progress=progress)

    def _vectors(self, anima: str, docs: list[Doc], *, progress: Callable[[int], None]) -> Any:
        import numpy as np

        collection = self.collection()
        texts = [embedding_text(d) for d in docs]
        hashes = [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts]
        stored = collection.get(where={"anima": anima}, include=["metadatas", "embeddings"])
        have = {i: (m or {}).get("hash") for i, m in zip(stored["ids"], stored["metadatas"], strict=True)}
        vectors_by_id = dict(zip(stored["ids"], stored["embeddings"], strict=True)) if len(stored["ids"]) else {}
        keys = [_key(anima, d.id) for d in docs]
        wanted = set(keys)
        stale = [i for i in have if i not in wanted]
        if stale:
            collection.delete(ids=stale)
        out = np.zeros((len(docs), 384), dtype=np.float32)
        missing = []
        for row, (key, h) in enumerate(zip(keys, hashes, strict=True)):
            if have.get(key) == h:
                out[row] = vectors_by_id[key]
            else:
                missing.append(row)
        progress(len(docs) - len(missing))
        for start in range(0, len(missing), 256):
            rows = missing[start:start + 256]
            vectors = self.embed([texts[r] for r in rows])
            out[rows] = vectors
            collection.upsert(ids=[keys[r] for r in rows], embeddings=[v.tolist() for v in vectors],
                              metadatas=[{"anima": anima, "hash": hashes[r], "kind": docs[r].kind} for r in rows])
            progress(len(rows))
        return out

    def collection(self) -> Any:
        """The org's one collection (one per Anima would cost ~2.7 MB each in Chroma: 530 MB at 200)."""
        return self.client().get_or_create_collection(name=COLLECTION, embedding_function=None,
                                                      metadata={"hnsw:space": "cosine"})

    def drop(self, anima: str) -> None:
        """Delete ``anima``'s collection (it is rebuilt on the next refresh)."""

        with self.lock:
            self.collection().delete(where={"anima": anima})

    def reset(self) -> None:
        """Move the store aside (``chroma.broken-<time>``) and start an empty one: for a corrupt store."""
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self._client = None
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # Chroma keeps one system per path: a new client must not reuse it
        if self.root.exists():
            target = self.root.with_name(f"{self.root.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
            shutil.move(str(self.root), str(target))


def _key(anima: str, item: str) -> str:
    """An item's id in the org's collection: ``<anima>/<item id>`` (names hold no ``/``)."""
    return f"{anima}/{item}"


# ------------------------------------------------------------------ one Anima's index


@dataclass
class SearchResult:
    """One item found: its id, kind, date (``YYYY-MM-DD`` or ''), fused score, channel contributions, text."""

    id: str
    kind: str
    date: str
    score: float
    channels: dict[str, float]
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "date": self.date, "score": round(self.score, 4),
                "channels": {k: round(v, 4) for k, v in self.channels.items()}, "text": self.text}


class MemoryIndex:
    """The searchable memory of one Anima: items, their vectors and a :class:`Ranker`, kept fresh by
    :meth:`refresh`. ``vectors`` is the org's :class:`VectorStore` (None: lexical and graph only);
    ``warn(reason, message)`` reports a Warning event."""

    def __init__(self, anima: str, memory: Path, *, vectors: VectorStore | None, common: Path | None = None,
                 skills: Iterable[Skill] = (), warn: Callable[[str, str], None] = lambda r, m: None,
                 embed_query: Callable[[list[str]], Any] | None = None) -> None:
        self.anima = anima
        self.memory = Path(memory)
        self.common = common
        self.skills = list(skills)
        self.store = vectors
        self.warn = warn
        self.embed_query = embed_query
        self._view: tuple[Ranker | None, dict[str, Doc]] = (None, {})  # swapped whole: readers never mix builds
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._dense_off_until = 0.0
        self._lock = threading.RLock()
        self._refreshing: threading.Thread | None = None
        self._checked = float("-inf")

    @property
    def ranker(self) -> Ranker | None:
        return self._view[0]

    @property
    def docs(self) -> dict[str, Doc]:
        """The indexed items by id."""
        return self._view[1]

    def refresh(self, *, force: bool = False, progress: Callable[[int], None] = lambda n: None) -> bool:
        """Re-read the files when any changed (or ``force``); returns True when the index was rebuilt."""
        with self._lock:
            seen = fingerprint(_memory_files(self.memory, self.common))
            if not force and seen == self._seen and self.ranker is not None:
                return False
            docs = collect_docs(self.memory, common=self.common, skills=self.skills)
            vectors = self._vectors(docs, progress=progress)
            embed = self.embed_query if vectors is not None else None
            self._view = (Ranker(docs, vectors, embed), {d.id: d for d in docs})
            self._seen = seen
            return True

    def _vectors(self, docs: list[Doc], *, progress: Callable[[int], None]) -> Any:
        if self.store is None or time.monotonic() < self._dense_off_until:
            progress(len(docs))
            return None
        from orgctl.memory.embedding import EmbeddingCancelled

        try:
            return self.store.vectors(self.anima, docs, progress=progress)
        except EmbeddingCancelled:
            raise  # the service is closing: the store is fine, the next build finishes it
        except Exception as first:  # noqa: BLE001 - Chroma raises many types for a broken store
            log.warning("memory index of %s failed: %s; rebuilding it", self.anima, first)
            self.warn("MemoryIndexRebuilt", f"the memory index of {self.anima} failed ({type(first).__name__}: "
                                            f"{str(first)[:200]}); it was moved aside and is rebuilt from the files")
            try:
                self.store.reset()
                return self.store.vectors(self.anima, docs, progress=progress)
            except Exception as second:  # noqa: BLE001
                self._dense_off_until = time.monotonic() + RETRY_AFTER
                self.warn("MemoryIndexFailed", f"rebuilding the memory index of {self.anima} failed too "
                                               f"({type(second).__name__}: {str(second)[:200]}); searching without "
                                               f"embeddings for {RETRY_AFTER / 60:.0f} minutes")
                return None

    def refresh_in_background(self) -> None:
        """Start :meth:`refresh` on a thread unless one runs: priming never waits for new items to be embedded
        (the index catches up in a second or two; a first build of a big memory takes longer)."""
        with self._lock:
            if (self._refreshing is not None and self._refreshing.is_alive()) \
                    or time.monotonic() - self._checked < REFRESH_EVERY:
                return
            self._checked = time.monotonic()
            self._refreshing = threading.Thread(target=self._refresh_quietly, name=f"index-{self.anima}",
                                                daemon=True)
            self._refreshing.start()

    def wait_for_refresh(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a background refresh (:meth:`refresh_in_background`) to end."""
        thread = self._refreshing
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _refresh_quietly(self) -> None:
        from orgctl.memory.embedding import EmbeddingCancelled

        try:
            self.refresh()
        except EmbeddingCancelled:
            return
        except Exception:  # noqa: BLE001 - a background refresh reports through warn, never crashes the process
            log.exception("refreshing the memory index of %s failed", self.anima)

    def search(self, query: str, *, k: int = 10, kinds: Iterable[str] | None = None,
               lexical: bool = False, wait: bool = True) -> list[SearchResult]:
        """The ``k`` best items for ``query`` (of ``kinds`` only, when given); ``lexical`` is BM25 alone.
        Refreshes first when files changed; with ``wait=False`` it searches what is indexed now and refreshes
        in the background (nothing, before the first build)."""
        if wait:
            self.refresh()
        else:
            self.refresh_in_background()
        ranker, docs = self._view
        if ranker is None or not query.strip():
            return []
        # The view is swapped whole by a refresh: this search reads one build, with no lock.
        wanted = set(kinds) if kinds is not None else None
        depth = k if wanted is None else max(4 * k, 50)
        hits: list[Hit] = ranker.lexical(query, depth) if lexical else ranker.search(query, depth)
        out = []
        for hit in hits:
            doc = docs.get(hit.id)
            if doc is None or (wanted is not None and doc.kind not in wanted):
                continue
            out.append(SearchResult(id=hit.id, kind=doc.kind, date=doc.when.date().isoformat() if doc.when else "",
                                    score=hit.score, channels=dict(hit.channels), text=doc.text))
            if len(out) == k:
                break
        return out
