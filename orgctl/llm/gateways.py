"""The model gateway: routes a :class:`CompletionRequest` to a provider through LiteLLM.

* ``local/<name>`` goes to the embedded llama.cpp server on loopback (started
  on first use) as LiteLLM's ``openai/`` provider with ``api_base``: exactly
  how a vLLM or Ollama endpoint would be called in production. The JSON
  schema is sent as ``response_format={"type": "json_object", "schema": ...}``,
  which llama.cpp turns into a grammar, so the tiny model always returns
  valid structure.
* Any other string is a LiteLLM model string (``anthropic/...``,
  ``openai/...``, ``ollama/...``); the schema goes as OpenAI-style
  ``json_schema`` response format. Keys come from the usual env variables.

Every call's token usage is appended to ``<state>/usage.jsonl``.
litellm is imported when the gateway is built, never at CLI start-up.
"""

from __future__ import annotations

import os
import time
from typing import Any

from orgctl.errors import ModelError
from orgctl.llm.requests import LOCAL_PREFIX, CompletionRequest, CompletionResult, Usage
from orgctl.llm.servers import LocalModelServer
from orgctl.paths import StatePaths
from orgctl.state.files import append_jsonl
from orgctl.state.inventories import now_iso

REQUEST_TIMEOUT = 300.0  # seconds; local calls queue behind each other on 2 cores


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import
    import logging

    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class Gateway:
    """Completes requests for one org. Thread-safe (the supervisor calls it from many threads)."""

    def __init__(self, *, paths: StatePaths) -> None:
        self.paths = paths
        self._litellm = _import_litellm()
        self.local = LocalModelServer(paths=paths)

    def _route(self, request: CompletionRequest, *, base_url: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [m.model_dump() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "timeout": REQUEST_TIMEOUT,
        }
        if request.model.startswith(LOCAL_PREFIX):
            kwargs |= {"model": f"openai/{request.model.removeprefix(LOCAL_PREFIX)}",
                       "api_base": f"{base_url}/v1", "api_key": "no-key-needed"}
            if request.schema_ is not None:
                kwargs["response_format"] = {"type": "json_object", "schema": request.schema_}
        else:
            kwargs["model"] = request.model
            if request.schema_ is not None:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": request.schema_name, "schema": request.schema_}}
        return kwargs

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Run one completion. Raises :class:`ModelError` with the provider's message on failure."""
        local = request.model.startswith(LOCAL_PREFIX)
        started = time.monotonic()
        for attempt in (1, 2):
            base_url = self.local.ensure() if local else None
            try:
                response = self._litellm.completion(**self._route(request, base_url=base_url))
                break
            except Exception as e:  # litellm raises many provider-specific classes
                if local and attempt == 1 and isinstance(e, self._litellm.APIConnectionError):
                    self.local.stop()  # the shared server went away: start a fresh one
                    continue
                raise ModelError(f"model call to {request.model} failed: {type(e).__name__}: {e}") from e
        latency = time.monotonic() - started
        content = response.choices[0].message.content or ""
        u = getattr(response, "usage", None)
        usage = Usage(prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
                      completion_tokens=int(getattr(u, "completion_tokens", 0) or 0), calls=1)
        append_jsonl(self.paths.usage, {
            "at": now_iso(), "model": request.model, "anima": request.anima,
            "purpose": request.purpose, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "latency_s": round(latency, 3)})
        return CompletionResult(content=content, usage=usage, model=request.model,
                                latency_s=round(latency, 3))

    def server_info(self) -> dict[str, Any] | None:
        return self.local.describe()

    def close(self) -> None:
        """Stop the local model server if this gateway started it."""
        self.local.stop()
