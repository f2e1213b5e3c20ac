"""Free-text steps: one short, bounded line from the model (:func:`say_line`).

Choices are made elsewhere, by one enum-constrained call
(:mod:`orgctl.runtime.deciding`); here the model only words a sentence, with
no schema, so nothing can be cut off mid-structure.
"""

from __future__ import annotations

import re

from orgctl.llm.requests import CompletionRequest, Message, ModelClient, Usage

TEXT_CHARS = 240
ECHO_RUN = 5  # words in a row that, found in the request, count as copied
ECHO_SHARE = 0.6  # of the answer's words copied from its request: an echo, not an answer
ECHO_MIN_WORDS = 4  # shorter answers are never taken for echoes ("Tests pass." may well quote a log)
_WORD = re.compile(r"[\w$][\w'`$-]*")


def echoes(answer: str, *sources: str) -> bool:
    """True when ``answer`` is mostly copied from ``sources`` (the request's system and user text): at least
    :data:`ECHO_SHARE` of its words lie in runs of :data:`ECHO_RUN` words (the whole answer when shorter) that
    occur in a source, case and punctuation aside. The embedded model does this when it has nothing to say
    (measured in the demo: "In one sentence, say what you found." as a report; a verdict reason that was its
    prompt's first lines) -- a person would read it as the Anima's answer."""
    words = [w.lower() for w in _WORD.findall(answer)]
    if len(words) < ECHO_MIN_WORDS:
        return False
    n = min(ECHO_RUN, len(words))
    grams = set()
    for source in sources:
        have = [w.lower() for w in _WORD.findall(source)]
        grams.update(tuple(have[i:i + n]) for i in range(len(have) - n + 1))
    copied: set[int] = set()
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in grams:
            copied.update(range(i, i + n))
    return len(copied) >= ECHO_SHARE * len(words)


def say_line(client: ModelClient, *, model: str, system: str, prompt: str, anima: str | None, purpose: str,
             max_tokens: int) -> tuple[str, Usage]:
    """One short plain-text line: no schema, so nothing to cut off; whitespace folded, quotes stripped,
    clipped to :data:`TEXT_CHARS` at a word boundary. Returns ``("", usage)`` for an empty answer, and for one
    that only copies its own request back (:func:`echoes`): every caller has its own words for "nothing said".

    Free text is bounded by its own small ``max_tokens``, never inside a JSON answer, where running
    into the limit leaves an unterminated string (measured: 3 of 7 heartbeats failed that way).
    """
    result = client.complete(CompletionRequest(
        model=model, messages=[Message(role="system", content=system), Message(role="user", content=prompt)],
        max_tokens=max_tokens, temperature=0.3, anima=anima, purpose=purpose))
    text = " ".join(result.content.replace("\r", " ").split()).strip().strip('"').strip()
    if echoes(text, system, prompt):
        return "", result.usage
    if len(text) > TEXT_CHARS:
        cut = text[:TEXT_CHARS]
        text = cut[: cut.rfind(" ")] + " …" if " " in cut else cut
    return text, result.usage
