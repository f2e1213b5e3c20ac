"""Consolidation never writes an empty fact: the real answer SmolLM2 gave in a CI run is replayed.

The answer (``facts: [""]``) was recorded from the embedded model during ``make test``; it is replayed
here by a one-answer client so the outcome is deterministic. The repo and the commit are real.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from orgctl.llm.requests import CompletionRequest, CompletionResult, Usage
from orgctl.memory.consolidation import consolidate
from orgctl.memory.stores import MemoryStore

RECORDED = '{"title": "{[19:50]}", "facts": [""], "follow_up": ""}'


class RecordedAnswer:
    def complete(self, request: CompletionRequest) -> CompletionResult:
        return CompletionResult(content=RECORDED, usage=Usage(prompt_tokens=100, completion_tokens=20, calls=1),
                                model=request.model, replayed=True)


def test_an_empty_fact_is_replaced_by_what_was_done(org: Path) -> None:
    day = date(2026, 11, 23)
    store = MemoryStore(org / "animas/alice/memory", anima="alice")
    store.append_episode(day=day, markdown="## 19:50:01 message\n\n- Did: answered the person: we ship on Friday",
                         record={"at": "2026-11-23T19:50:01", "trigger": "message", "observed": ["human (chat)"],
                                 "did": ["answered the person: we ship on Friday"]})
    result = consolidate(repo_dir=org, anima="alice", model="local/smollm2", day=day, client=RecordedAnswer(),
                         source_revision=None)
    assert result.commit is not None and result.note is not None
    body = result.note.read_text().split("\n---\n", 1)[1]
    assert "\n- answered the person: we ship on Friday" in body
    assert "\n-\n" not in body and not body.rstrip().endswith("-")
