"""A content-addressed cache of the costly, pure steps of loading a spec: the secret scan and YAML parsing.

Loading a big org spent most of its time on two things that depend only on a file's text: scanning
it for secrets (:func:`orgctl.desired.secrets.scan_text`, detect-secrets' plugins: about 0.8 s of
``orgctl plan`` at 1,000 Animas) and parsing its YAML with a line for every key (about 0.45 s,
bench/spec_loading.py). Both results are kept by ``sha256`` of what they depend on and
:data:`CACHE_VERSION` (bump it when the detectors or the parser change), as Argo CD's repo-server
keeps generated manifests by commit sha, so a plan after a one-Anima commit scans and parses only
that Anima's changed files.

The file lives in the state dir (``cache/spec.json``), is written atomically, holds line numbers,
redacted kinds and the parsed data of spec files (never a secret value: a file with a finding is
refused, and its parse is not kept), and is a cache: delete it and it is rebuilt; an unreadable one
is ignored. A parse is kept only when its data survives JSON unchanged (no dates, no non-string
keys), so a cached parse is exactly a fresh one. Errors are never cached: they are computed again,
with the file name of the moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from orgctl.desired.documents import Located, parse_yaml
from orgctl.desired.secrets import SecretFinding, scan_text
from orgctl.errors import Diagnostic

CACHE_VERSION = 2  # 2: YAML aliases are refused (documents.first_alias); a cached parse from 1 may hold one
"""Part of every key: bump it when the detectors, their filters or the YAML parsing change."""
MAX_ENTRIES = 50_000
"""Entries kept per kind on save: the ones this run used first, then the most recent others."""


def _digest(*parts: str) -> str:
    h = hashlib.sha256(str(CACHE_VERSION).encode())
    for part in parts:
        h.update(b"\0" + part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _encode(located: Located) -> list[Any] | None:
    """``located`` as JSON-ready lists, or None when its data would not come back the same."""
    try:
        if json.loads(json.dumps(located.data)) != located.data:
            return None
    except (TypeError, ValueError):
        return None
    return [located.data, [[list(k), v] for k, v in located.lines.items()],
            [[list(k), v] for k, v in located.key_lines.items()], located.base_line]


def _decode(entry: list[Any]) -> Located:
    data, lines, key_lines, base_line = entry
    return Located(data=data, lines={tuple(k): v for k, v in lines},
                   key_lines={tuple(k): v for k, v in key_lines}, base_line=base_line)


class SpecCache:
    """Scan and parse results by content: :meth:`scan` is :func:`scan_text`, :meth:`parse_yaml` is
    :func:`orgctl.desired.documents.parse_yaml`, each with memory.

    ``path``: the JSON file (None: remember within this process only). Not thread-safe; one loader
    uses one cache. Concurrent processes may each save: the last one wins, and what it lacks is
    computed again next time.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {"scan": {}, "yaml": {}}
        self._used: dict[str, dict[str, Any]] = {"scan": {}, "yaml": {}}
        self.hits = self.misses = 0
        self._secret_seen = False  # once a scan finds something, no parse of this run is kept (it could hold it)
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
                    for kind in self._entries:
                        if isinstance(data.get(kind), dict):
                            self._entries[kind] = data[kind]
            except (OSError, ValueError):
                pass  # missing or corrupt: start empty

    def _get(self, kind: str, key: str) -> Any:
        found = self._entries[kind].get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
            self._used[kind][key] = found
        return found

    def _put(self, kind: str, key: str, value: Any) -> None:
        self._entries[kind][key] = self._used[kind][key] = value

    def scan(self, text: str, *, filename: str) -> list[SecretFinding]:
        """The findings of ``scan_text(text, filename=filename)``, reported for ``filename``. The key is
        the text and the file's suffix (which picks the comment style of the allowlist pragma)."""
        key = _digest(os.path.splitext(filename)[1], text)
        found = self._get("scan", key)
        if found is None:
            found = [[f.line, f.kind, f.hint] for f in scan_text(text, filename=filename)]
            self._put("scan", key, found)
        self._secret_seen = self._secret_seen or bool(found)
        return [SecretFinding(filename=filename, line=line, kind=kind, hint=hint) for line, kind, hint in found]

    def parse_yaml(self, text: str, *, file: str, first_line: int = 1) -> tuple[Located | None, list[Diagnostic]]:
        """``documents.parse_yaml(text, file=file, first_line=first_line)``; a fresh Located each call."""
        key = _digest(str(first_line), text)
        entry = self._get("yaml", key)
        if entry is not None:
            return _decode(entry), []
        located, diags = parse_yaml(text, file=file, first_line=first_line)
        if located is not None and not self._secret_seen and (encoded := _encode(located)) is not None:
            self._put("yaml", key, encoded)
        return located, diags

    def save(self) -> None:
        """Write the cache when something new was computed (atomically), into ``cache/`` of a state dir
        that exists. Errors writing it are ignored: it is only a cache."""
        if self.path is None or not self.misses:
            return
        if not self.path.parent.parent.is_dir():
            return  # no state dir yet: a cache never creates one (`apply` does, and stamps its format)
        out: dict[str, Any] = {"version": CACHE_VERSION}
        for kind, entries in self._entries.items():
            kept = dict(self._used[kind])
            for key, value in reversed(list(entries.items())):
                if len(kept) >= MAX_ENTRIES:
                    break
                kept.setdefault(key, value)
            out[kind] = kept
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".spec-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(out, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError:
            pass
