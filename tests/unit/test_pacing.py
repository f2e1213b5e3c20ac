"""The one backoff and the one wait-until-ready, on real child processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orgctl.gitops.controlling import WorkQueue
from orgctl.llm.retrying import RetryPolicy
from orgctl.pacing import NotReady, await_ready, backoff
from orgctl.runtime.supervisor import backoff_delay


def test_backoff_doubles_to_its_cap_and_every_retry_uses_it() -> None:
    assert [backoff(n, base=1.0, cap=30.0) for n in range(0, 8)] == [1, 1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000, base=0.5, cap=8.0) == 8.0  # no overflow however many failures
    assert [backoff_delay(n) for n in (1, 2, 6)] == [1, 2, 30]  # the supervisor's restarts
    assert RetryPolicy(jitter=0).delay(3) == backoff(3, base=0.5, cap=8.0)  # model calls, before jitter
    clock = [0.0]
    queue = WorkQueue(base=2.0, cap=300.0, clock=lambda: clock[0])  # the controller's per-Anima retries
    assert [queue.failed("bob", "boom") for _ in range(3)] == [2.0, 4.0, 8.0]


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_await_ready_returns_what_the_check_answers(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    proc = _child(f"import pathlib, time; time.sleep(0.3); pathlib.Path({str(flag)!r}).write_text('up'); "
                  "time.sleep(30)")
    try:
        assert await_ready(proc, lambda: flag.exists() and flag.read_text(), timeout=20) == "up"
        assert proc.poll() is None  # left running
    finally:
        proc.kill()
        proc.wait()


def test_await_ready_reports_an_exit_with_its_code_and_a_timeout_without() -> None:
    proc = _child("raise SystemExit(3)")
    with pytest.raises(NotReady) as exited:
        await_ready(proc, lambda: None, timeout=20)
    assert exited.value.exit_code == 3
    proc = _child("import time; time.sleep(30)")
    try:
        started = time.monotonic()
        with pytest.raises(NotReady) as waited:
            await_ready(proc, lambda: None, timeout=0.5, every=0.05)
        assert waited.value.exit_code is None and time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
