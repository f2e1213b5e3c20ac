"""Decide: one schema-constrained choice among options the framework built from real names.

The framework lists what is possible right now (delegate this task to bob,
run ``git log …``, complete the task …), each with one line that explains
it; narrows the list by a lexical match against the work at hand; and asks
the model for exactly one enum value. Measured here (ROADMAP): an enum-only
call on the embedded model is valid every time and takes under a second
when the static prompt prefix is cached, and the 135M model picks the right
command far more often when each choice carries a description.

Free text is never inside that call: when an action needs words (a reply,
a question), :func:`say` makes a second, plain-text call whose own
``max_tokens`` bounds it, so it cannot break JSON.

One option means no choice: no model call. An answer that fails validation
is retried once with the error, then raises :class:`~orgctl.errors.ModelError`
(the caller records a failed heartbeat, never an invented one).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from orgctl.errors import ModelError
from orgctl.llm.requests import CompletionRequest, Message, ModelClient, Usage
from orgctl.llm.structured import say_line

TEXT_TOKENS = 48  # max_tokens of a free-text line
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the and or of to in on for with is are be this that it its what which who how do does did please can "
    "could would should will your you my me we our from by at as".split())


@dataclass(frozen=True)
class Option:
    """One possible action. ``key`` is the enum value the model answers with (real names in it)."""

    key: str
    description: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=4096)
def terms(text: str) -> frozenset[str]:
    """Lower-cased, crudely stemmed content words of ``text`` (cached: option texts repeat every beat)."""
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP)


def relevance(query: str, text: str) -> float:
    """Share of the query's terms found in ``text`` (0..1); prefixes of 4+ letters count as a match."""
    q, t = terms(query), terms(text)
    if not q:
        return 0.0
    prefixes = {x[:4] for x in t if len(x) >= 4}
    hits = sum(1 for w in q if w in t or (len(w) >= 4 and w[:4] in prefixes))
    return hits / len(q)


def narrow(options: list[Option], query: str, *, keep: int = 3, always: tuple[str, ...] = ()) -> list[Option]:
    """The ``keep`` options most relevant to ``query`` (ties keep their order), plus actions in ``always``.

    Options with no relevance at all are dropped when some option has some.
    """
    fixed = [o for o in options if o.action in always]
    ranked = sorted((o for o in options if o.action not in always),
                    key=lambda o: -relevance(query, f"{o.key} {o.description}"))
    if ranked and relevance(query, f"{ranked[0].key} {ranked[0].description}") > 0:
        ranked = [o for o in ranked if relevance(query, f"{o.key} {o.description}") > 0]
    return ranked[:keep] + fixed


def choice_schema(options: list[Option]) -> dict[str, Any]:
    return {"type": "object", "properties": {"choice": {"type": "string", "enum": [o.key for o in options]}},
            "required": ["choice"], "additionalProperties": False}


def choose(client: ModelClient, *, model: str, system: str, situation: str, options: list[Option],
           anima: str, purpose: str) -> tuple[Option, Usage]:
    """Ask for one of ``options`` (no call when there is one). Raises ModelError after two invalid answers."""
    if not options:
        raise ValueError("choose needs at least one option")
    if len(options) == 1:
        return options[0], Usage()
    listing = "\n".join(f"- {o.key}: {o.description}" for o in options)
    user = f"{situation}\n\nChoices:\n{listing}\n\nPick the one choice that fits best. Answer JSON {{\"choice\": ...}}."
    by_key = {o.key: o for o in options}
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    usage = Usage()
    problem = ""
    for _ in range(2):
        result = client.complete(CompletionRequest(model=model, messages=messages, schema=choice_schema(options),
                                                   schema_name="Decision", max_tokens=40, temperature=0.0,
                                                   anima=anima, purpose=purpose))
        usage = usage + result.usage
        try:
            picked = json.loads(result.content, strict=False)["choice"]
            return by_key[picked], usage
        except (ValueError, KeyError, TypeError) as e:
            problem = f"{type(e).__name__}: {e}"
            messages = [*messages, Message(role="assistant", content=result.content[:200]),
                        Message(role="user", content=f"That was not valid ({problem}). Answer with one of: "
                                                     f"{', '.join(by_key)}.")]
    raise ModelError(f"{model} gave no valid choice in 2 attempts ({problem})")


def say(client: ModelClient, *, model: str, system: str, prompt: str, anima: str, purpose: str,
        max_tokens: int = TEXT_TOKENS) -> tuple[str, Usage]:
    """One short plain-text line (at most ``max_tokens`` tokens, clipped to 240 characters); '' if empty.

    See :func:`orgctl.llm.structured.say_line`.
    """
    return say_line(client, model=model, system=system, prompt=prompt, anima=anima, purpose=purpose,
                    max_tokens=max_tokens)
