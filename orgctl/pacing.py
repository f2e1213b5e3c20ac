"""How long to wait: the one exponential backoff, and the one wait for a started process to answer.

Every retry in orgctl (a crashed Anima's restart, a failed apply of one Anima in the controller's
work queue, a transient model call) waits :func:`backoff` seconds, and every "start a process and poll
until it answers" (the supervisor, the embedded model server, a detached controller) goes through
:func:`await_ready`. Standard library only: the Anima process imports this.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def backoff(failures: int, *, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failures (1-based): ``base * 2**(failures - 1)``, at most ``cap``.

    ``failures`` below 1 counts as 1. The exponent is bounded, so any count is safe (no overflow). The
    formula is the one of Erlang/OTP supervisors and of Kubernetes' crash-loop backoff; callers that run
    in a crowd (model calls) add jitter on top (:class:`orgctl.llm.retrying.RetryPolicy`).
    """
    return min(cap, base * 2.0 ** min(max(0, failures - 1), 62))


class NotReady(Exception):
    """:func:`await_ready` gave up: the process exited (``exit_code`` set) or the timeout passed (None)."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__("exited" if exit_code is not None else "timed out")
        self.exit_code = exit_code


def await_ready(proc: subprocess.Popen[bytes], ready: Callable[[], T | None], *, timeout: float,
                every: float = 0.1) -> T:
    """Poll ``ready()`` every ``every`` seconds until it returns something truthy, and return that.

    ``proc`` is the process that was started to answer: when it exits first, or ``timeout`` seconds pass,
    :class:`NotReady` is raised (with its exit code, or None at the timeout) for the caller to turn into its
    own error with its own log's tail. The process is left as it is either way.
    """
    deadline = time.monotonic() + timeout
    while True:
        if (code := proc.poll()) is not None:
            raise NotReady(code)
        answer = ready()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise NotReady(None)
        time.sleep(every)
