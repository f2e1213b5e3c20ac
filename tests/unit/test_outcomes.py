"""Exit codes read through each tool's documented table, and a report sentence checked against them (the
issue-23 case: `pytest -q` exited 5, no tests ran, and the sentence said "The test suite passed.")."""

from __future__ import annotations

import pytest

from orgctl.runtime.outcomes import contradiction, outcome_of, tool_of


@pytest.mark.parametrize(("command", "code", "success", "words"), [
    ("pytest -q", 0, True, "all tests passed"),
    ("pytest -q", 1, False, "some tests failed"),
    ("pytest -q", 5, None, "no tests were collected"),
    ("python3 -m pytest tests/unit", 5, None, "no tests were collected"),
    ("python -m unittest", 5, None, "no tests ran"),
    ("ruff check .", 1, False, "problems were found"),
    ("mypy orgctl", 0, True, "no type errors"),
    ("git diff --exit-code", 1, False, "differences were found"),
    ("go test ./...", 2, False, "the tests failed"),
    ("ls -la", 0, True, "it succeeded"),
    ("ls /nope", 2, False, "it failed"),
    ("pytest -q", None, False, "time limit"),
])
def test_exit_codes_mean_what_each_tool_documents(command: str, code: int | None, success: bool | None,
                                                  words: str) -> None:
    outcome = outcome_of(command, code)
    assert outcome.success is success and words in outcome.meaning


def test_which_commands_run_tests() -> None:
    assert tool_of("pytest -q") == ("pytest", True) and tool_of("npm test") == ("npm", True)
    assert tool_of("git log --oneline") == ("git", False) and tool_of("'unterminated") == ("'unterminated", False)


@pytest.mark.parametrize(("sentence", "code", "contradicts"), [
    ("Note: The test suite passed.", 5, True),  # the measured case: nothing ran
    ("The test suite passed.", 1, True),
    ("All tests passed.", 0, False),
    ("No tests were collected, so nothing ran.", 5, False),
    ("The tests did not pass.", 1, False),
    ("The suite failed with 3 errors.", 0, True),
    ("There were no failures.", 0, False),
    ("There were no failures.", 1, True),
    ("I looked at the repository.", 1, False),  # claims nothing either way
])
def test_a_sentence_that_contradicts_its_evidence_is_caught(sentence: str, code: int, contradicts: bool) -> None:
    why = contradiction(sentence, [outcome_of("pytest -q", code)])
    assert (why is not None) is contradicts, why
    if why:
        assert "pytest -q" in why


@pytest.mark.parametrize(("command", "code", "answers"), [
    ("pytest -q", 1, True), ("pytest -q", 5, True), ("pytest -q", 4, False), ("ruff check .", 1, True),
    ("go test ./...", 2, True), ("git log --oneline", 128, False), ("ls", 0, False),
])
def test_which_exits_answer_what_the_tool_is_run_for(command: str, code: int, answers: bool) -> None:
    """An answered task is ended with that answer, not followed by an unrelated command."""
    assert outcome_of(command, code).answers is answers


@pytest.mark.parametrize(("sentence", "kept"), [
    ("This week, I found that the org repo ran a 1.5% increase in the number of users.", False),  # measured
    ("Two commits this week: the template and 'awake all day'.", True),
    ("The log shows 2 commits, the newest 88005a2.", True),
    ('It added a feature called "Dashboard".', False),
    ('The newest commit is "Demo: awake all day".', True),
    ("I compared two libraries: `queue_libs` and `que", False),  # measured: a report of a task that ran nothing
    ("The command `git log --oneline --since=1.week` listed both.", True),
])
def test_a_sentence_that_names_what_nothing_observed_is_left_out(sentence: str, kept: bool) -> None:
    from orgctl.runtime.outcomes import ungrounded

    evidence = ("Find out what changed this week\ngit log --oneline --since=1.week\n"
                "88005a2 Demo: awake all day\nf3b6e38 Create org acme from the orgctl template\n2 lines")
    assert (ungrounded(sentence, evidence) is None) is kept
