"""The model gateway's spend controls and retries, against a real OpenAI-compatible HTTP server on loopback.

The server is the standard library's ``http.server`` speaking the chat-completions
wire format (what vLLM, Ollama and llama.cpp's server speak); LiteLLM reaches it
through ``OPENAI_API_BASE`` exactly as it would reach a provider. Each test scripts
the server's answers (a 429, a 400, a normal completion) and asserts what the
gateway did: how many requests reached the server, what it raised, what it
recorded in the usage log, and what the budget hook heard.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orgctl.desired.models import BudgetLimits
from orgctl.errors import BudgetExceeded, ModelError
from orgctl.llm.budgets import BudgetState, read_usage
from orgctl.llm.requests import CompletionRequest, Message
from orgctl.llm.retrying import RetryPolicy
from orgctl.paths import StatePaths

MODEL = "openai/test-model"


class _Script:
    """What the fake provider answers, in order; the last answer repeats."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict]] = []  # type: ignore[type-arg]
        self.requests: list[dict] = []  # type: ignore[type-arg]


def _completion(text: str, prompt_tokens: int = 40, completion_tokens: int = 10) -> dict:  # type: ignore[type-arg]
    return {"id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Script]:
    script = _Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            script.requests.append(json.loads(body))
            status, payload = script.answers[min(len(script.requests), len(script.answers)) - 1]
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    yield script
    server.shutdown()
    server.server_close()


def _request(anima: str = "alice") -> CompletionRequest:
    return CompletionRequest(model=MODEL, messages=[Message(role="user", content="hello")], anima=anima,
                             purpose="test", max_tokens=16)


NO_LIMITS = BudgetLimits()


def _gateway(state: StatePaths, *, own: BudgetLimits = NO_LIMITS, org: BudgetLimits = NO_LIMITS,
             heard: list[tuple[str | None, BudgetState]] | None = None):  # type: ignore[no-untyped-def]
    from orgctl.llm.gateways import Gateway

    return Gateway(paths=state.ensure(), limits_for=lambda anima: (own, org),
                   on_budget=(lambda a, s: heard.append((a, s))) if heard is not None else None,
                   retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, jitter=0.0))


def test_transient_failure_is_retried_then_succeeds(provider: _Script, state: StatePaths) -> None:
    provider.answers = [(429, {"error": {"message": "slow down", "type": "rate_limit"}}),
                        (503, {"error": {"message": "overloaded"}}), (200, _completion("fine"))]
    result = _gateway(state).complete(_request())
    assert result.content == "fine" and result.budget == "ok"
    assert len(provider.requests) == 3
    [record] = read_usage(state.usage)
    assert record["anima"] == "alice" and record["prompt_tokens"] == 40 and record["completion_tokens"] == 10


def test_bad_request_is_not_retried(provider: _Script, state: StatePaths) -> None:
    provider.answers = [(400, {"error": {"message": "bad schema", "type": "invalid_request_error"}})]
    with pytest.raises(ModelError, match="bad schema"):
        _gateway(state).complete(_request())
    assert len(provider.requests) == 1
    assert read_usage(state.usage) == []  # a failed call spent nothing we know of


def test_hard_limit_refuses_without_calling_and_soft_limit_is_reported(provider: _Script, state: StatePaths) -> None:
    provider.answers = [(200, _completion("ok", prompt_tokens=70, completion_tokens=15))]
    heard: list[tuple[str | None, BudgetState]] = []
    gateway = _gateway(state, own=BudgetLimits(tokens_per_day=100, soft_fraction=0.8), heard=heard)
    assert gateway.complete(_request()).budget == "ok"  # 0 used before the call
    assert gateway.complete(_request()).budget == "soft"  # 85 of 100 used: soft, still called
    assert len(provider.requests) == 2
    with pytest.raises(BudgetExceeded, match="alice used 170 of 100 tokens today"):
        gateway.complete(_request())
    assert len(provider.requests) == 2  # refused before any request
    with pytest.raises(BudgetExceeded):
        gateway.complete(_request())
    assert [(a, s.level) for a, s in heard] == [("alice", "soft"), ("alice", "hard")]  # once per level per day
    assert gateway.complete(_request(anima="bob")).budget == "ok"  # bob has his own budget


def test_org_limit_counts_every_anima_and_another_process_writes(provider: _Script, state: StatePaths) -> None:
    provider.answers = [(200, _completion("ok", prompt_tokens=50, completion_tokens=0))]
    gateway = _gateway(state, org=BudgetLimits(tokens_per_day=120))
    gateway.complete(_request(anima="alice"))
    gateway.complete(_request(anima="bob"))
    # A consolidation pass in another process appends to the same log; the guard reads it incrementally.
    with open(state.usage, "a") as f:
        f.write(json.dumps({"at": read_usage(state.usage)[-1]["at"], "model": MODEL, "anima": "carol",
                            "prompt_tokens": 30, "completion_tokens": 0}) + "\n")
    with pytest.raises(BudgetExceeded, match="the org used 130 of 120 tokens today"):
        gateway.complete(_request(anima="alice"))


def test_usage_command_prints_rows_and_budget_state(provider: _Script, state: StatePaths, org: Path) -> None:
    from tests.conftest import run_cli

    provider.answers = [(200, _completion("ok", prompt_tokens=90, completion_tokens=0))]
    _gateway(state).complete(_request(anima="alice"))
    result = run_cli("usage", "-C", str(org), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["usage"] == [{"anima": "alice", "model": MODEL, "calls": 1, "prompt_tokens": 90,
                              "completion_tokens": 0, "cost_usd": 0.0}]
    text = run_cli("usage", "alice", "-C", str(org)).output
    assert "alice" in text and MODEL in text and "90" in text
