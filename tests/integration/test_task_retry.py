"""A task whose model call fails is tried again with backoff, on a real running org (supervisor and Anima
processes), with a real replay cassette that holds no call: every model call fails, as with a provider down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orgctl.paths import StatePaths
from orgctl.runtime.tasking import RETRY_BASE, RETRY_MAX, TaskRunner
from orgctl.state.events import read_events
from tests.conftest import run_cli, wait_for


def test_the_retry_delay_doubles_up_to_its_cap() -> None:
    assert [TaskRunner.retry_delay(n) for n in (1, 2, 3)] == [RETRY_BASE, 2 * RETRY_BASE, 4 * RETRY_BASE]
    assert TaskRunner.retry_delay(40) == RETRY_MAX


def test_a_failing_task_cycle_waits_before_it_runs_again(running: Path, state: StatePaths, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cassette = tmp_path / "empty-cassette.jsonl"
    cassette.write_text("")
    monkeypatch.setenv("ORGCTL_CASSETTE", str(cassette))  # the supervisor and its Animas inherit it
    assert run_cli("apply", str(running), "--auto-approve").exit_code == 0
    assert run_cli("task", "add", "bob", "Check the build", "-C", str(running)).exit_code == 0

    def failures() -> int:
        return sum(e.reason == "TaskCycleFailed" for e in read_events(state.work.events))

    wait_for(lambda: failures() >= 1, timeout=30, what="bob's first task cycle fails")
    time.sleep(RETRY_BASE / 2)
    assert failures() == 1  # before this fix: hundreds in these five seconds, one core busy
    wait_for(lambda: failures() >= 2, timeout=RETRY_BASE + 10, what="the task tried again after its backoff")
