"""Structured steps: ask for an answer that must fit a pydantic model.

The structure comes from the schema, not from the model's cleverness: the
schema is sent with the request (grammar-constrained decoding on llama.cpp)
and the answer is validated here; an invalid answer is retried once, then
raises :class:`~orgctl.errors.ModelError`.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from orgctl.errors import ModelError
from orgctl.llm.requests import CompletionRequest, Message, ModelClient, Usage

A = TypeVar("A", bound=BaseModel)

ATTEMPTS = 2


def ask(client: ModelClient, *, model: str, system: str, user: str, answer: type[A],
        anima: str | None = None, purpose: str = "", max_tokens: int = 256) -> tuple[A, Usage]:
    """Ask ``model`` for an ``answer``-shaped reply; returns the validated answer and usage.

    Raises ModelError when no attempt yields a valid answer.
    """
    request = CompletionRequest(
        model=model,
        messages=[Message(role="system", content=system), Message(role="user", content=user)],
        schema=answer.model_json_schema(),
        schema_name=answer.__name__,
        max_tokens=max_tokens,
        anima=anima,
        purpose=purpose,
    )
    usage = Usage()
    problem = ""
    for _ in range(ATTEMPTS):
        result = client.complete(request)
        usage = usage + result.usage
        try:
            return answer.model_validate_json(result.content), usage
        except ValidationError as e:
            problem = f"{e.error_count()} schema errors, first: {e.errors()[0]['msg']}"
    raise ModelError(f"{model} gave no valid {answer.__name__} in {ATTEMPTS} attempts ({problem})")
