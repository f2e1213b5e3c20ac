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

Around each call:

* **Budgets** (:class:`~orgctl.llm.budgets.BudgetGuard`): before the call, the
  Anima's and the org's spend today and this month are checked against the
  applied limits (``budgets:`` in ``org.yaml``, ``budget:`` in ``anima.yaml``).
  Over a hard limit the call is refused with :class:`BudgetExceeded`; over a
  soft one it goes ahead and the result says ``budget="soft"``, so the Anima
  slows its heartbeat.
* **Retries** (:mod:`orgctl.llm.retrying`): rate limits, overloads, dropped
  connections and timeouts are retried with capped exponential backoff and
  jitter; bad requests and missing keys fail at once.
* **Usage**: every call's tokens, latency and (for priced provider models,
  from LiteLLM's bundled price map) cost go to ``<state>/usage.jsonl``, the
  one record budgets and ``orgctl usage`` read.

litellm is imported when the gateway is built, never at CLI start-up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from orgctl.desired.models import BudgetLimits
from orgctl.errors import BudgetExceeded, ModelError
from orgctl.llm.budgets import BudgetGuard, BudgetState, LimitsFor, append_usage
from orgctl.llm.requests import LOCAL_PREFIX, CompletionRequest, CompletionResult, Usage
from orgctl.llm.retrying import DEFAULT_POLICY, RetryPolicy, call_with_retries, retry_after_from_headers
from orgctl.llm.servers import LocalModelServer
from orgctl.paths import StatePaths
from orgctl.state.inventories import now_iso
from orgctl.state.snapshots import read_snapshot

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 300.0  # seconds; local calls queue behind each other on 2 cores


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import
    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def applied_limits(paths: StatePaths) -> LimitsFor:
    """``limits_for(anima)`` reading the Anima's applied snapshot (cached by mtime).

    An unlabelled call, or an Anima with no snapshot, gets no per-Anima limit and
    the org limits of any applied Anima (they are the same in every snapshot).
    """
    cache: dict[str, tuple[float, tuple[BudgetLimits, BudgetLimits]]] = {}

    def limits_for(anima: str | None) -> tuple[BudgetLimits, BudgetLimits]:
        candidates = [paths.spec_snapshot(anima)] if anima else []
        candidates += sorted(paths.specs.glob("*.json"))[:1] if paths.specs.is_dir() else []
        for i, path in enumerate(candidates):
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            key = str(path)
            if key not in cache or cache[key][0] != mtime:
                spec = read_snapshot(path).spec
                cache[key] = (mtime, (spec.budget, spec.org_budget))
            own, org = cache[key][1]
            return (own if i == 0 and anima else BudgetLimits()), org
        return BudgetLimits(), BudgetLimits()

    return limits_for


class Gateway:
    """Completes requests for one org. Thread-safe (the supervisor calls it from many threads).

    ``limits_for`` gives the budgets of a call's Anima (default: its applied
    snapshot, :func:`applied_limits`); ``on_budget(anima, state)`` hears when a
    budget level is first reached each day (the supervisor emits an event and
    calls a human); ``retry`` is the backoff for transient failures.
    """

    def __init__(self, *, paths: StatePaths, limits_for: LimitsFor | None = None,
                 on_budget: Callable[[str | None, BudgetState], None] | None = None,
                 retry: RetryPolicy = DEFAULT_POLICY) -> None:
        self.paths = paths
        self._litellm = _import_litellm()
        self.local = LocalModelServer(paths=paths)
        self.budgets = BudgetGuard(paths.usage, limits_for=limits_for or applied_limits(paths), on_change=on_budget)
        self.retry = retry

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

    def _call_once(self, request: CompletionRequest) -> Any:
        local = request.model.startswith(LOCAL_PREFIX)
        base_url = self.local.ensure() if local else None
        try:
            return self._litellm.completion(**self._route(request, base_url=base_url))
        except self._litellm.APIConnectionError:
            if local:
                self.local.stop()  # the shared server went away: the retry starts a fresh one
            raise

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Run one completion.

        Raises :class:`BudgetExceeded` when a hard limit forbids the call (no call is made),
        :class:`ModelError` with the provider's message when it fails after the retries.
        """
        budget = self.budgets.check(request.anima)
        if budget.level == "hard":
            raise BudgetExceeded(f"no model call for {request.anima or 'the org'}: {budget.reason}",
                                 hint="raise the limit in org.yaml (budgets:) or anima.yaml (budget:), "
                                      "or wait for the next day or month")
        started = time.monotonic()

        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            log.warning("model call to %s failed (%s), retry %d in %.1fs", request.model,
                        type(error).__name__, attempt, wait)

        try:
            response = call_with_retries(lambda: self._call_once(request), policy=self.retry,
                                         on_retry=on_retry, retry_after=retry_after_from_headers)
        except Exception as e:  # litellm raises many provider-specific classes
            raise ModelError(f"model call to {request.model} failed: {type(e).__name__}: {e}") from e
        latency = time.monotonic() - started
        content = response.choices[0].message.content or ""
        u = getattr(response, "usage", None)
        usage = Usage(prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
                      completion_tokens=int(getattr(u, "completion_tokens", 0) or 0), calls=1)
        record = {"at": now_iso(), "model": request.model, "anima": request.anima,
                  "purpose": request.purpose, "prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens, "latency_s": round(latency, 3)}
        if (cost := self._cost(response, local=request.model.startswith(LOCAL_PREFIX))) is not None:
            record["cost_usd"] = cost
        append_usage(self.paths.usage, record)
        return CompletionResult(content=content, usage=usage, model=request.model,
                                latency_s=round(latency, 3), budget=budget.level)

    def _cost(self, response: Any, *, local: bool) -> float | None:
        """USD from LiteLLM's bundled price map; None for the embedded model or an unpriced one."""
        if local:
            return None
        try:
            return round(float(self._litellm.completion_cost(completion_response=response)), 8)
        except Exception:  # an unpriced model raises; its calls still count in tokens
            return None

    def server_info(self) -> dict[str, Any] | None:
        return self.local.describe()

    def close(self) -> None:
        """Stop the local model server if this gateway started it."""
        self.local.stop()
