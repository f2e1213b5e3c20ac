"""Episodes and activity written between passes, committed in batches (DESIGN §2).

The supervisor calls :func:`commit_batch` every :func:`batch_interval` seconds,
when ``orgctl pull`` asks for it, and once more when it stops: at most one
commit per Anima per batch, by the bot, in the runtime's clone, listing the
files it changed. A consolidation or forgetting pass is its own commit. Each
Anima's folder is committed while holding its memory lock, so the secret scan
that runs before the commit never races the Anima's own writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from orgctl.errors import OrgctlError
from orgctl.gitops.clones import MemoryCommit, RuntimeClone
from orgctl.memory.stores import MemoryStore
from orgctl.paths import StatePaths
from orgctl.state.snapshots import read_snapshot

BATCH_INTERVAL = 300.0
"""Seconds between batch commits of what the Animas wrote (``ORGCTL_MEMORY_BATCH_INTERVAL`` overrides)."""


def batch_interval() -> float:
    """The batch interval in seconds: ``ORGCTL_MEMORY_BATCH_INTERVAL`` when it is a positive number,
    else :data:`BATCH_INTERVAL`."""
    try:
        value = float(os.environ.get("ORGCTL_MEMORY_BATCH_INTERVAL", BATCH_INTERVAL))
    except ValueError:
        return BATCH_INTERVAL
    return value if value > 0 else BATCH_INTERVAL


def commit_batch(clone: RuntimeClone, animas: Mapping[str, str | None], *,
                 paths: StatePaths | None = None) -> dict[str, str]:
    """Commit each Anima's memory folder that changed; ``animas`` maps a name to the revision it runs.
    With ``paths``, each folder is committed under that Anima's memory lock.

    Returns ``{name: sha}`` of the commits made. Raises GitError from the first commit git refuses
    (the Animas before it stay committed), StateError when a lock stays busy.
    """
    names = sorted(animas)
    commits = [MemoryCommit([f"animas/{name}/memory"], subject=f"memory({name}): record episodes",
                            body=f"What {name} wrote since the last memory commit:", list_files=True,
                            trailers={"Anima": name, "Pass": "episodes",
                                      "Source-Revision": animas[name] or "work-tree"})
               for name in names]

    def locked(commit: MemoryCommit) -> Any:
        name = commit.trailers["Anima"]
        store = MemoryStore(clone.memory_dir(str(name)), anima=str(name), holder="batch commit",
                            lock=paths.memory_lock(str(name)) if paths is not None else None)
        return store.writing(operation="batch commit")

    shas = clone.commit_each(commits, guard=locked)  # one lock, one index, one ref update for the batch
    return {name: sha for name, sha in zip(names, shas, strict=True) if sha}


def commit_pending(clone: RuntimeClone, paths: StatePaths, *, only: set[str] | None = None) -> dict[str, str]:
    """:func:`commit_batch` for every Anima with a memory folder in the clone (or those of ``only``: a shard's
    tick, whose other Animas wrote nothing here), each with the revision of its applied snapshot
    (``work-tree`` without one). Returns ``{name: sha}``; raises GitError."""
    animas: dict[str, str | None] = {}
    folder = clone.root / "animas"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if (only is not None and entry.name not in only) or not (entry / "memory").is_dir() or entry.is_symlink():
            continue
        snapshot = paths.spec_snapshot(entry.name)
        try:  # a disabled or never applied Anima has none: its folder is still committed if it changed
            animas[entry.name] = read_snapshot(snapshot).revision if snapshot.is_file() else None
        except (OrgctlError, OSError):
            animas[entry.name] = None
    return commit_batch(clone, animas, paths=paths)
