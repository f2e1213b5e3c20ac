"""A content-addressed cache of secret-scan results, so an unchanged spec file is scanned once.

Scanning every spec file for secrets (:func:`orgctl.desired.secrets.scan_text`, detect-secrets'
plugins) was the largest part of loading a big org: about 1 s of ``orgctl plan`` at 1,000 Animas
(bench/spec_loading.py). The scan is a pure function of the text and the file's suffix (which picks
the pragma comment style), so its result is kept by ``sha256(suffix, text)`` and
:data:`SCANNER_VERSION` (bump it when the detectors change), as Argo CD's repo-server keeps generated
manifests by commit sha. The file lives in the state dir (``cache/secret-scan.json``), is written
atomically, holds only line numbers and redacted kinds (never a value), and is a cache: delete it
and it is rebuilt; an unreadable one is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from orgctl.desired.secrets import SecretFinding, scan_text

SCANNER_VERSION = 1
"""Part of every key: bump it when the detectors or their filters change, and every file is scanned again."""
MAX_ENTRIES = 50_000
"""Entries kept on save: the ones this run used first, then the most recent others."""


class ScanCache:
    """Secret-scan results by content; :meth:`scan` is :func:`scan_text` with memory.

    ``path``: the JSON file (None: remember within this process only). Not thread-safe; one loader
    uses one cache. Concurrent processes may each save: the last one wins, and what it lacks is
    scanned again next time.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list[list[Any]]] = {}
        self._used: dict[str, list[list[Any]]] = {}
        self.hits = self.misses = 0
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == SCANNER_VERSION:
                    self._entries = data.get("entries") or {}
            except (OSError, ValueError):
                pass  # missing or corrupt: start empty

    @staticmethod
    def _key(text: str, filename: str) -> str:
        suffix = os.path.splitext(filename)[1]
        return hashlib.sha256(f"{SCANNER_VERSION}\0{suffix}\0".encode() + text.encode("utf-8", "surrogatepass")
                              ).hexdigest()

    def scan(self, text: str, *, filename: str) -> list[SecretFinding]:
        """The findings of ``scan_text(text, filename=filename)``, reported for ``filename``."""
        key = self._key(text, filename)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            found = [[f.line, f.kind, f.hint] for f in scan_text(text, filename=filename)]
            self._entries[key] = found
        else:
            self.hits += 1
        self._used[key] = found
        return [SecretFinding(filename=filename, line=line, kind=kind, hint=hint) for line, kind, hint in found]

    def save(self) -> None:
        """Write the cache when something new was scanned (atomically), into ``cache/`` of a state dir
        that exists. Errors writing it are ignored: it is only a cache."""
        if self.path is None or not self.misses:
            return
        entries = dict(self._used)
        for key, value in reversed(list(self._entries.items())):
            if len(entries) >= MAX_ENTRIES:
                break
            entries.setdefault(key, value)
        if not self.path.parent.parent.is_dir():
            return  # no state dir yet: a cache never creates one (`apply` does, and stamps its format)
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".scan-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": SCANNER_VERSION, "entries": entries}, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError:
            pass
