"""Structured steps: ask for an answer that must fit a pydantic model.

The structure comes from the schema, not from the model's cleverness: the
schema is sent with the request (grammar-constrained decoding on llama.cpp)
and the answer is validated here; an invalid answer is retried once, then
raises :class:`~orgctl.errors.ModelError`.

String length bounds are *not* sent to the model: llama.cpp expands
``maxLength: 160`` into 160 nested optional grammar rules, and sampling
against such grammars was measured here at minutes per answer. Lengths are
bounded by ``max_tokens`` instead, and over-long strings and lists are
clipped to the schema's ``maxLength``/``maxItems`` before validation.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orgctl.errors import ModelError
from orgctl.llm.requests import CompletionRequest, Message, ModelClient, Usage

A = TypeVar("A", bound=BaseModel)

ATTEMPTS = 2
_LENGTH_KEYS = ("maxLength", "minLength")


def grammar_schema(schema: Any) -> Any:
    """``schema`` without string length bounds (see the module docstring)."""
    if isinstance(schema, dict):
        return {k: grammar_schema(v) for k, v in schema.items() if k not in _LENGTH_KEYS}
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    return schema


def fit_to_schema(data: Any, schema: dict[str, Any]) -> Any:
    """Clip strings to ``maxLength`` (at a word boundary) and lists to ``maxItems``, recursively."""
    kind = schema.get("type")
    if kind == "string" and isinstance(data, str):
        limit = schema.get("maxLength")
        data = data.strip()
        if limit is not None and len(data) > limit:
            cut = data[:limit]
            data = (cut[: cut.rfind(" ")] if " " in cut[limit // 2:] else cut).rstrip(" ,;:")
        return data
    if kind == "array" and isinstance(data, list):
        items = schema.get("items", {})
        data = [fit_to_schema(x, items) for x in data[: schema.get("maxItems", len(data))]]
        return data
    if kind == "object" and isinstance(data, dict):
        props = schema.get("properties", {})
        return {k: fit_to_schema(v, props.get(k, {})) for k, v in data.items()}
    return data


def ask(client: ModelClient, *, model: str, system: str, user: str, answer: type[A],
        anima: str | None = None, purpose: str = "", max_tokens: int = 256) -> tuple[A, Usage]:
    """Ask ``model`` for an ``answer``-shaped reply; returns the validated answer and usage.

    Raises ModelError when no attempt yields a valid answer.
    """
    full_schema = answer.model_json_schema()
    request = CompletionRequest(
        model=model,
        messages=[Message(role="system", content=system), Message(role="user", content=user)],
        schema=grammar_schema(full_schema),
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
            # strict=False: a raw newline inside a string is not worth a retry
            data = json.loads(result.content, strict=False)
            return answer.model_validate(fit_to_schema(data, full_schema)), usage
        except json.JSONDecodeError as e:
            problem = f"invalid JSON: {e}"
        except ValidationError as e:
            problem = f"{e.error_count()} schema errors, first: {e.errors()[0]['msg']}"
    raise ModelError(f"{model} gave no valid {answer.__name__} in {ATTEMPTS} attempts ({problem})")


TEXT_CHARS = 240


def say_line(client: ModelClient, *, model: str, system: str, prompt: str, anima: str | None, purpose: str,
             max_tokens: int) -> tuple[str, Usage]:
    """One short plain-text line: no schema, so nothing to cut off; whitespace folded, quotes stripped,
    clipped to :data:`TEXT_CHARS` at a word boundary. Returns ``("", usage)`` for an empty answer.

    Free text is bounded by its own small ``max_tokens``, never inside a JSON answer, where running
    into the limit leaves an unterminated string (measured: 3 of 7 heartbeats failed that way).
    """
    result = client.complete(CompletionRequest(
        model=model, messages=[Message(role="system", content=system), Message(role="user", content=prompt)],
        max_tokens=max_tokens, temperature=0.3, anima=anima, purpose=purpose))
    text = " ".join(result.content.replace("\r", " ").split()).strip().strip('"').strip()
    if len(text) > TEXT_CHARS:
        cut = text[:TEXT_CHARS]
        text = cut[: cut.rfind(" ")] + " …" if " " in cut else cut
    return text, result.usage
