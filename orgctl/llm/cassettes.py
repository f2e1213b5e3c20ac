"""Recorded-transcript mode: record real model calls to a cassette, replay them deterministically.

Multi-Anima scenarios make dozens of model calls; on the embedded model each
takes seconds, on a provider each costs money and answers differently every
time. Tests (and demos) therefore record one real run into a *cassette* and
replay it afterwards, like betamax and vcrpy do for HTTP. Both clients wrap a
:class:`~orgctl.llm.requests.ModelClient`, so whatever builds the client (the
supervisor's gateway, an Anima process, a test) can switch modes with
:func:`cassette_client` or the environment (:func:`from_env`).

A cassette is a JSON-lines file, one line per completed call::

    {"key": "<sha256>", "occurrence": 0, "request": {"model", "purpose", "anima"}, "result": {...}}

``key`` (:func:`request_key`) covers only what determines the answer, so
relabelling a call does not invalidate a cassette; ``occurrence`` counts how
many times that key was answered before, so an Anima that asks the same
question twice gets its two recorded answers in order. Lines are appended with
one ``O_APPEND`` write each (:func:`~orgctl.state.files.append_jsonl`), so
several recorders may share a file. Failed calls are not recorded, and replayed
calls are not written to ``usage.jsonl`` (nothing was spent).

Replay is strict: a call that was never recorded raises
:class:`~orgctl.errors.ModelError` instead of quietly reaching a real model,
because a test that silently goes online is slow, flaky and expensive.
Standard library + pydantic only: Anima processes import this module.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orgctl.errors import ModelError
from orgctl.llm.requests import CompletionRequest, CompletionResult, ModelClient
from orgctl.state.files import append_jsonl

ENV_MODE = "ORGCTL_CASSETTE_MODE"
"""Environment variable naming the cassette mode: ``record``, ``replay`` (the default) or ``off``."""

ENV_PATH = "ORGCTL_CASSETTE"
"""Environment variable holding the cassette file's path; cassettes are off when it is unset or empty."""

MODES = ("record", "replay", "off")

_EXCERPT = 80  # characters of the last user message quoted in errors


def request_key(request: CompletionRequest) -> str:
    """sha256 hex digest of the canonical JSON of what determines the answer.

    That is model, messages (role and content, in order), JSON schema,
    ``max_tokens`` and ``temperature``. The ``anima`` and ``purpose`` labels
    (and ``schema_name``) are left out: they only name the call.
    """
    canonical = {
        "model": request.model,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.schema_,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _excerpt(request: CompletionRequest) -> str:
    user = [m.content for m in request.messages if m.role == "user"]
    text = " ".join(user[-1].split()) if user else ""
    return text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else "")


def _describe(request: CompletionRequest) -> str:
    return f"to {request.model} (purpose {request.purpose!r}, anima {request.anima!r}): {_excerpt(request)!r}"


def _rerecord_hint(path: Path) -> str:
    return f"re-record the cassette: delete {path} and run again with {ENV_MODE}=record {ENV_PATH}={path}"


class RecordingClient:
    """Passes every call to ``inner`` and appends its result to the cassette at ``path``.

    Thread-safe; ``inner`` is called outside the lock, so calls still run
    concurrently, and concurrent calls with the same key are numbered in the
    order they finish. Occurrence numbers continue from what ``path`` already
    holds, so a cassette recorded in several sessions replays in recording
    order; delete the file to record afresh. Errors from ``inner`` propagate
    unchanged and are not recorded.
    """

    def __init__(self, inner: ModelClient, *, path: Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        for _line, entry in _read_cassette(self.path, strict=False):
            self._seen[entry["key"]] += 1

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Run ``request`` on the inner client, record the result, and return it unchanged."""
        result = self.inner.complete(request)  # outside the lock: calls may run concurrently
        key = request_key(request)
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
            append_jsonl(self.path, {
                "key": key,
                "occurrence": occurrence,
                "request": {"model": request.model, "purpose": request.purpose, "anima": request.anima},
                "result": result.model_dump(mode="json"),
            })
        return result


class ReplayClient:
    """Answers calls from the cassette at ``path``; never calls a model.

    The n-th call (0-based) with a given :func:`request_key` returns the
    recording with occurrence n, marked ``replayed=True``. Calling a key more
    often than it was recorded raises, unless ``repeat_last`` is set: then the
    last recording for that key is returned again (heartbeats that repeat the
    same prompt). Thread-safe.

    Raises :class:`ModelError` when the cassette is missing or a line is
    corrupt (naming ``file:line``), and from :meth:`complete` for calls that
    were not recorded.
    """

    def __init__(self, *, path: Path, repeat_last: bool = False) -> None:
        self.path = Path(path)
        self.repeat_last = repeat_last
        if not self.path.is_file():
            raise ModelError(f"cassette {self.path} does not exist",
                             hint=f"record it first: run with {ENV_MODE}=record {ENV_PATH}={self.path}")
        found: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
        self._labels: Counter[tuple[str, str]] = Counter()
        for line, entry in _read_cassette(self.path, strict=True):
            found[entry["key"]].append((entry["occurrence"], line, entry["result"]))
            summary = entry.get("request") or {}
            self._labels[(str(summary.get("model")), str(summary.get("purpose")))] += 1
        self._results: dict[str, list[CompletionResult]] = {}
        for key, entries in found.items():
            self._results[key] = [CompletionResult.model_validate(r).model_copy(update={"replayed": True})
                                  for _occ, _line, r in sorted(entries, key=lambda e: (e[0], e[1]))]
        self._asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """The recorded result for this call. Raises :class:`ModelError` when there is none."""
        key = request_key(request)
        with self._lock:
            n = self._asked[key]
            self._asked[key] += 1
        recorded = self._results.get(key)
        if not recorded:
            similar = self._labels[(request.model, request.purpose)]
            why = (f"; {similar} call(s) with this model and purpose were recorded, so its prompt, schema or "
                   "sampling settings probably changed since recording" if similar else "")
            raise ModelError(f"unrecorded model call {_describe(request)} is not in cassette {self.path}{why}",
                             hint=_rerecord_hint(self.path))
        if n < len(recorded):
            return recorded[n]
        if self.repeat_last:
            return recorded[-1]
        raise ModelError(f"model call {_describe(request)} was made {n + 1} times, but cassette {self.path} "
                         f"recorded it {len(recorded)} time(s)",
                         hint=_rerecord_hint(self.path) + ", or replay with repeat_last=True if repeats are expected")


def _read_cassette(path: Path, *, strict: bool) -> list[tuple[int, dict[str, Any]]]:
    """``(1-based line, entry)`` for each valid line; ``strict`` raises ModelError on the first bad one."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            if not isinstance(entry.get("key"), str) or not isinstance(entry.get("occurrence"), int):
                raise ValueError("missing 'key' or 'occurrence'")
            if not isinstance(entry.get("request", {}), dict):
                raise ValueError("'request' is not an object")
            CompletionResult.model_validate(entry.get("result"))
        except (ValueError, ValidationError) as e:  # JSONDecodeError is a ValueError
            if strict:
                reason = f"{e.error_count()} invalid result field(s)" if isinstance(e, ValidationError) else str(e)
                raise ModelError(f"{path}:{number}: corrupt cassette line: {reason}",
                                 hint=_rerecord_hint(path)) from e
            continue
        entries.append((number, entry))
    return entries


def cassette_client(*, mode: str, path: Path, inner: ModelClient | None) -> ModelClient:
    """A client for ``mode``: ``record`` wraps ``inner`` in a :class:`RecordingClient`,
    ``replay`` returns a :class:`ReplayClient` (``inner`` is ignored), ``off`` returns ``inner``.

    Raises ValueError for any other mode, or when ``record``/``off`` has no ``inner``;
    :class:`ModelError` when a replay cassette is missing or corrupt.
    """
    if mode not in MODES:
        raise ValueError(f"unknown cassette mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "replay":
        return ReplayClient(path=path)
    if inner is None:
        raise ValueError(f"cassette mode {mode!r} needs an inner client to pass calls to")
    return RecordingClient(inner, path=path) if mode == "record" else inner


def from_env(inner: ModelClient | None, env: Mapping[str, str]) -> ModelClient | None:
    """``inner`` wrapped per :data:`ENV_PATH`/:data:`ENV_MODE` in ``env``; ``inner`` itself when no cassette is set.

    The mode defaults to ``replay``. A relative path is taken relative to the
    current directory. Raises :class:`ModelError` for an unknown mode or for
    ``record`` without an ``inner`` client (both are the user's settings).
    """
    raw_path = env.get(ENV_PATH, "").strip()
    if not raw_path:
        return inner
    mode = env.get(ENV_MODE, "").strip().lower() or "replay"
    if mode == "off":
        return inner
    if mode not in MODES:
        raise ModelError(f"{ENV_MODE}={env.get(ENV_MODE)!r} is not a cassette mode",
                         hint=f"use one of {', '.join(MODES)}, or unset {ENV_PATH}")
    if mode == "record" and inner is None:
        raise ModelError(f"{ENV_MODE}=record needs a real model client, and this process has none",
                         hint=f"record in the process that owns the model gateway, or unset {ENV_PATH}")
    return cassette_client(mode=mode, path=Path(raw_path), inner=inner)
