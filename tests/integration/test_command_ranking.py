"""Commands ranked by meaning before the model chooses (orgctl/runtime/tasking.py: rank_commands), with the real
memory service and its real embedding model (all-MiniLM-L6-v2 on onnxruntime) in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.errors import StateError
from orgctl.paths import StatePaths
from orgctl.runtime.deciding import Option
from orgctl.runtime.services import LocalMemory
from orgctl.runtime.tasking import rank_commands


@pytest.fixture
def memory(state: StatePaths) -> Iterator[LocalMemory]:
    service = LocalMemory(state.ensure())
    yield service
    service.close()


def bobs_commands(org: Path) -> list[Option]:
    bob = load_org(GitRevisionSource(org, "HEAD")).animas["bob"]
    return [Option(f"run {r.command}", r.description, "run", {"command": r.command}) for r in bob.permissions.commands]


def agent(recall: object, model: str = "local/smollm2") -> SimpleNamespace:
    return SimpleNamespace(name="bob", recall=recall, spec=SimpleNamespace(model=model))


@pytest.mark.parametrize(("task", "command"), [
    ("Is the working tree clean?", "git status --short"),
    ("Did somebody leave modified files without committing them?", "git status --short"),
    ("Show me the latest commits", "git log --oneline --since=1.week"),
    ("Do the tests pass?", "pytest -q"),
    ("What did the last commit modify?", "git diff --stat HEAD~1"),
])
def test_the_command_a_task_means_is_offered_alone(org: Path, memory: LocalMemory, task: str, command: str) -> None:
    assert [o.args["command"] for o in rank_commands(agent(memory), task, bobs_commands(org))] == [command]


def test_a_bigger_model_gets_the_two_best_when_they_are_close(org: Path, memory: LocalMemory) -> None:
    commands = bobs_commands(org)
    query = "which files changed"  # as close to the diff of the last commit as to the status
    scores = memory.similarity("bob", query, [f"{o.args['command']}: {o.description}" for o in commands])
    ranked = sorted(scores, reverse=True)
    assert ranked[0] - ranked[1] < 0.05, scores  # the case this test is about
    offered = rank_commands(agent(memory, model="anthropic/claude-sonnet-4-5"), query, commands)
    assert len(offered) == 2 and len(rank_commands(agent(memory), query, commands)) == 1


def test_without_a_memory_service_the_lexical_match_keeps_three(org: Path) -> None:
    class Down:
        def similarity(self, name: str, query: str, texts: list[str]) -> list[float]:
            raise StateError("the supervisor is not running")

    offered = rank_commands(agent(Down()), "run the test suite and report whether the tests pass", bobs_commands(org))
    assert offered[0].args["command"] == "pytest -q" and len(offered) <= 3
