"""What a command's exit code means, for the tools people ask about, and whether a sentence agrees with it.

A report, a chat answer or a verdict may not claim what its evidence contradicts (issue 23, measured on the
embedded model: ``pytest -q`` exited 5, "no tests ran", and the report's one sentence said "The test suite
passed."). So the framework states the outcome of each command it ran, read through :data:`EXIT_CODES`, and
keeps the model's sentence only where it agrees (:func:`contradiction`).

The table is each tool's own documentation:

========== ==================================================================================================
pytest     0 all tests passed, 1 some failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests
           collected (docs.pytest.org, "Exit codes")
ruff       0 no violations, 1 violations found, 2 abnormal termination (docs.astral.sh/ruff, "Exit codes")
mypy       0 no errors, 1 type errors found, 2 a crash or bad usage (mypy's command-line docs)
unittest   0 all passed (or none ran, Python < 3.12), 1 failures or errors, 5 no tests ran (Python ≥ 3.12)
go test,   0 passed, non-zero failed (or did not build)
cargo test
npm test,  0 passed, non-zero failed
make
git        0 succeeded, 1 differences found (``git diff --exit-code``) or failed, 128 fatal (bad usage or no
           repository)
others     0 succeeded, non-zero failed
========== ==================================================================================================
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from orgctl.work.tasks import StepRecord

_TESTS = "tests"

EXIT_CODES: dict[str, dict[int, tuple[str, bool | None]]] = {
    "pytest": {0: ("all tests passed", True), 1: ("some tests failed", False), 2: ("the run was interrupted", False),
               3: ("pytest hit an internal error", False), 4: ("pytest was called wrongly (usage error)", False),
               5: ("no tests were collected: nothing ran", None)},
    "ruff": {0: ("no problems found", True), 1: ("problems were found", False), 2: ("ruff failed to run", False)},
    "mypy": {0: ("no type errors", True), 1: ("type errors were found", False), 2: ("mypy crashed or was misused",
                                                                                  False)},
    "unittest": {0: ("the tests passed", True), 1: ("some tests failed", False), 5: ("no tests ran", None)},
    "git": {0: ("it succeeded", True), 1: ("differences were found, or it failed", False),
            128: ("git refused it (a fatal error)", False)},
}
"""``{tool: {exit code: (meaning, success)}}``; ``success`` None: neither passed nor failed (nothing ran)."""

ANSWERS: dict[str, frozenset[int]] = {"pytest": frozenset({0, 1, 5}), "unittest": frozenset({0, 1, 5}),
                                     "ruff": frozenset({0, 1}), "mypy": frozenset({0, 1})}
"""Exit codes that answer the question the tool is asked ("do the tests pass?", "is the code clean?"), failures
and "nothing was collected" included; an interruption or a usage error answers nothing."""

_TEST_RUNNERS = {("go", "test"), ("cargo", "test"), ("npm", "test"), ("npm", "run"), ("make", "test"),
                 ("make", "check"), ("tox", ""), ("nox", "")}


@dataclass(frozen=True)
class Outcome:
    """What one command's exit told: the ``command``, its ``exit_code`` (None: it timed out), the ``meaning``
    in words, ``success`` (True, False, or None when nothing was tested or run) and whether it ran tests."""

    command: str
    exit_code: int | None
    meaning: str
    success: bool | None
    tests: bool
    answers: bool = False
    """The exit answers what the tool is run for (:data:`ANSWERS`; any exit of another test runner): the task
    that ran it is answered, failed or not, and no further command is offered for it."""

    def sentence(self) -> str:
        """``$ pytest -q`` exited 5: no tests were collected: nothing ran."""
        how = "timed out" if self.exit_code is None else f"exited {self.exit_code}"
        return f"`{self.command}` {how}: {self.meaning}."


def tool_of(command: str) -> tuple[str, bool]:
    """``(tool, runs tests)`` of a command line: ``pytest`` for ``pytest -q`` and ``python -m pytest``,
    ``unittest`` for ``python -m unittest``, the program's name otherwise."""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    if not argv:
        return "", False
    program = argv[0].rsplit("/", 1)[-1]
    if re.fullmatch(r"python[0-9.]*", program) and argv[1:2] == ["-m"] and len(argv) > 2:
        program = argv[2]
    if program in ("py.test", "pytest"):
        return "pytest", True
    if program == "unittest":
        return "unittest", True
    sub = argv[1] if len(argv) > 1 else ""
    runs_tests = (program, sub) in _TEST_RUNNERS or (program, "") in _TEST_RUNNERS or _TESTS in sub
    return program, runs_tests


def outcome_of(command: str, exit_code: int | None) -> Outcome:
    """The :class:`Outcome` of ``command`` ending with ``exit_code`` (None: it timed out), from
    :data:`EXIT_CODES` where the tool is listed, else 0 succeeded and anything else failed."""
    tool, tests = tool_of(command)
    if exit_code is None:
        return Outcome(command, None, "it was stopped at its time limit", False, tests)
    answers = exit_code in ANSWERS[tool] if tool in ANSWERS else tests
    known = EXIT_CODES.get(tool, {}).get(exit_code)
    if known is not None:
        return Outcome(command, exit_code, known[0], known[1], tests, answers)
    if exit_code == 0:
        return Outcome(command, 0, "the tests passed" if tests else "it succeeded", True, tests, answers)
    return Outcome(command, exit_code, "the tests failed" if tests else "it failed", False, tests, answers)


def outcome_of_step(step: StepRecord) -> Outcome:
    """The :class:`Outcome` of a ``ran`` step (:func:`outcome_of` its command and exit code; timed out: None)."""
    return outcome_of(step.command, None if step.timed_out else step.exit_code)


_CLAIMS_SUCCESS = re.compile(r"\b(pass(ed|es|ing)?|succeed(ed|s)?|success(ful(ly)?)?|green|all good|no (errors|"
                             r"failures|problems)|works?|worked|fine|ok(ay)?)\b", re.IGNORECASE)
_CLAIMS_FAILURE = re.compile(r"\b(fail(ed|s|ing|ure)?|broken|errors?|crash(ed)?|red)\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(not|never|no|didn't|did not|doesn't|does not|isn't|is not|wasn't|was not|nothing)\b"
                      r"\W+(\w+\W+){0,2}?(pass|succeed|work|fail|run)", re.IGNORECASE)


def contradiction(sentence: str, outcomes: list[Outcome]) -> str | None:
    """Why ``sentence`` contradicts the evidence, or None when it does not (or claims nothing either way).

    It contradicts when it claims success while a command failed or ran nothing (pytest's exit 5), or claims
    failure while every command succeeded. Words close to a negation ("did not pass", "no failures") are read
    as that negation's side. Deliberately simple: a sentence is dropped when in doubt, and the framework's
    own statement of the outcome stays either way."""
    if not outcomes or not sentence.strip():
        return None
    negated = _NEGATED.search(sentence)
    no_failures = re.search(r"\bno (errors|failures|problems)\b", sentence, re.IGNORECASE)
    claims_success = bool(_CLAIMS_SUCCESS.search(sentence)) and (not negated or bool(no_failures))
    claims_failure = (bool(_CLAIMS_FAILURE.search(sentence)) and not no_failures) or (
        bool(negated) and not no_failures)
    bad = [o for o in outcomes if o.success is not True]
    if claims_success and bad:
        return f"it claims success, but {bad[0].sentence()}"
    if claims_failure and not bad:
        return f"it claims a failure, but {' '.join(o.sentence() for o in outcomes[:2])}"
    return None


_CLAIMS_A_RESULT = re.compile(r"\b(pass(ed|es|ing)?|fail(ed|s|ing|ure)?|succeed(ed|s)?|green|broken)\b", re.IGNORECASE)


def unobserved_claim(sentence: str) -> str | None:
    """Why ``sentence`` claims a result (passed, failed, succeeded) when no command ran at all, or None: with
    nothing observed, such a claim can only be invented (the embedded model's triage said "report it's passed"
    before anything ran)."""
    if match := _CLAIMS_A_RESULT.search(sentence):
        return f"it claims a result ({match.group(0)!r}), but no command has run"
    return None


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?:%|(?=(?:s|ms|kb|mb|gb|x)?\b))")
"""A number, in a sentence or the evidence: a whole token (with a unit at most), not the digits that open a hash
(``2abc``), so "2 insertions" is not grounded by a commit ``2f0c1e7`` or a task id."""
_QUOTED = re.compile(r"[\"“]([^\"”]{2,80})[\"”]|`([^`]{2,80})`")  # "a name", “a name” or `a_name`


def ungrounded(sentence: str, evidence: str) -> str | None:
    """What ``sentence`` states that no observation holds, or None: a number (``1.5%``, ``42``) or a quoted
    or backticked name that does not occur in ``evidence`` (the commands, their output and the task's own words). The
    embedded model invents such details when the facts are thin ("a 1.5% increase in the number of users"
    after a `git log` of two commits); a sentence that carries one is left out, as a contradicted one is."""
    haystack = evidence.lower()
    # whole numbers only: "2 insertions" is not grounded by the 2 in "2026" or in a commit hash
    observed = {n.rstrip("%").replace(",", ".") for n in _NUMBER.findall(haystack)}
    for number in _NUMBER.findall(sentence):
        if number.rstrip("%").replace(",", ".") not in observed:
            return f"it names {number}, which nothing observed shows"
    for quoted in (a or b for a, b in _QUOTED.findall(sentence)):
        if quoted.strip().lower() not in haystack:
            return f"it quotes {quoted.strip()!r}, which nothing observed shows"
    return None
