"""The data that crosses the model boundary: requests, results, token usage.

These are plain pydantic models so an Anima process can build a request and
send it (as JSON) to the supervisor's gateway without importing litellm.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

LOCAL_PREFIX = "local/"
"""Model strings starting with this name the embedded model server (``local/smollm2``)."""


class Message(BaseModel):
    role: str
    content: str


class CompletionRequest(BaseModel):
    """One chat completion.

    ``schema_`` is a JSON Schema the answer must follow (grammar-constrained
    on the local model, ``response_format`` on providers that support it).
    ``anima`` and ``purpose`` only label the call in the usage log.
    """

    model: str
    messages: list[Message]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_name: str = "answer"
    max_tokens: int = 256
    temperature: float = 0.2
    anima: str | None = None
    purpose: str = ""

    model_config = {"populate_by_name": True}


class Usage(BaseModel):
    """Tokens one or more calls consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens,
                     calls=self.calls + other.calls)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CompletionResult(BaseModel):
    """The model's text answer, what it cost, and how long it took (seconds)."""

    content: str
    usage: Usage
    model: str
    latency_s: float = 0.0
    replayed: bool = False
    budget: str = Field(default="ok", description="ok, or soft when a soft spend limit was reached")


class ModelClient(Protocol):
    """Anything that completes a request: the in-process gateway or the supervisor's."""

    def complete(self, request: CompletionRequest) -> CompletionResult:
        """Run one completion. Raises :class:`orgctl.errors.ModelError` on failure."""
