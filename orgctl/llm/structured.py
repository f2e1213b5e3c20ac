"""Free-text steps: one short, bounded line from the model (:func:`say_line`).

Choices are made elsewhere, by one enum-constrained call
(:mod:`orgctl.runtime.deciding`); here the model only words a sentence, with
no schema, so nothing can be cut off mid-structure.
"""

from __future__ import annotations

from orgctl.llm.requests import CompletionRequest, Message, ModelClient, Usage

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
