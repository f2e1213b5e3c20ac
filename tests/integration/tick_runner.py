"""A tick runner in a process of its own, as a CI job is: ``python -m tests.integration.tick_runner SPEC``.

``SPEC`` is a JSON file: ``checkout`` (the runner's clone of the org), ``state`` (its state dir),
``shard`` ("i/n"), ``ticks`` (how many), ``start`` (ISO time of the first tick), ``step_hours`` (how far
the clock moves between ticks), ``message_to`` (an Anima a person messages before each tick, or null),
``log`` (a JSON-lines file: one report per tick). The model is :class:`Scripted`: real choices of the
offered options, by preference, so the org's own code decides what happens.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from orgctl.llm.requests import CompletionRequest, CompletionResult, Usage
from orgctl.paths import StatePaths

PREFERENCE = ("delegate", "reply", "report", "done", "run ", "note")


class Scripted:
    """Picks the first offered option that starts with a word of :data:`PREFERENCE` (else the first); says
    one fixed sentence when asked for text. Counts 10 tokens a call."""

    def complete(self, request: CompletionRequest) -> CompletionResult:
        if request.schema_:
            enum = request.schema_["properties"]["choice"]["enum"]
            pick = next((k for word in PREFERENCE for k in enum if k.startswith(word)), enum[0])
            content = json.dumps({"choice": pick})
        else:
            content = "Noted; it is in hand."
        return CompletionResult(content=content, model=request.model,
                                usage=Usage(prompt_tokens=8, completion_tokens=2, calls=1))


def main(spec_file: str) -> None:
    from orgctl.runtime.ticking import Tick, parse_shard, work_in_flight

    spec = json.loads(Path(spec_file).read_text())
    root, paths = Path(spec["checkout"]), StatePaths(root=Path(spec["state"]))
    start = datetime.fromisoformat(spec["start"])
    for i in range(int(spec["ticks"])):
        now = start + timedelta(hours=float(spec.get("step_hours", 24)) * i)
        if spec.get("message_to"):
            with work_in_flight(root, paths) as org:
                org.human_message(spec["message_to"], f"Status for day {i}?", intent="question")
        report = Tick(root=root, paths=paths, shard=parse_shard(spec["shard"]), now=lambda now=now: now,
                      client=Scripted(), deadline=float(spec.get("deadline", 600))).run()
        with open(spec["log"], "a") as log:
            log.write(json.dumps(report.as_json()) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
