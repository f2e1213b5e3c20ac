"""Transient model-call failures retried with capped exponential backoff and jitter.

The gateway calls providers (and the embedded server) from many Anima threads
at once; rate limits (429), overloaded servers (503/529-style), dropped
connections and timeouts are routine and go away if the caller waits. Bad
requests, missing keys and invalid answers do not, and retrying them only
burns budget, so :func:`is_transient` tells the two apart and
:func:`call_with_retries` retries only the former.

litellm's exception classes are recognised *by name* (``RateLimitError``,
``Timeout``, ``APIConnectionError``, ...) and by their ``status_code``
attribute, so this module never imports litellm: Anima processes use it with
the standard library + pydantic only. Clock, sleep and randomness are
parameters, so tests run instantly and deterministically.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from orgctl.pacing import backoff

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeout, conflict, too early, too many requests, server/gateway errors."""

TRANSIENT_NAMES = ("RateLimit", "Timeout", "APIConnectionError", "ServiceUnavailable", "InternalServerError")
"""Substrings of exception class names (litellm's, openai's, httpx's) that mark a transient failure."""

_CAUSE_DEPTH = 5  # how far along ``__cause__`` a wrapped error is looked for


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``attempts`` is the total number of tries (1 = no retries); delays are in
    seconds. The n-th wait is ``min(max_delay, base_delay * 2**(n-1))`` plus a
    random extra of up to ``jitter`` times that, so clients that failed
    together do not retry together ("full jitter" added on top, after the AWS
    Architecture Blog's "Exponential Backoff And Jitter", 2015). The cap
    applies before the jitter, so waits at the cap still spread out; no wait
    exceeds ``max_delay * (1 + jitter)``.

    Raises ValueError for a policy that cannot work (no attempts, negative
    delays, jitter outside 0..1).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"delays must not be negative, got base {self.base_delay}, max {self.max_delay}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``attempt`` failures (1-based). ``rand`` returns a float in [0, 1)."""
        if attempt < 1:
            raise ValueError(f"attempt is a 1-based count of failures, got {attempt}")
        capped = backoff(attempt, base=self.base_delay, cap=self.max_delay)
        return capped + capped * self.jitter * rand()


DEFAULT_POLICY = RetryPolicy()
"""4 tries, waiting about 0.5 s, 1 s, 2 s (each plus up to 25 %) in between."""


def _status(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        code = getattr(holder, "status_code", None)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        if isinstance(code, str) and code.strip().isdigit():
            return int(code)
    return None


def _transient_here(exc: BaseException) -> bool:
    status = _status(exc)
    if status in TRANSIENT_STATUS:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(part in cls.__name__ for cls in type(exc).__mro__ for part in TRANSIENT_NAMES)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying, False for everything else.

    Transient are: :class:`ConnectionError` and :class:`TimeoutError` (and
    subclasses); any exception whose ``status_code`` (or
    ``response.status_code``) is in :data:`TRANSIENT_STATUS`; any exception
    with a class (or base class) name containing one of
    :data:`TRANSIENT_NAMES`, which covers litellm's ``RateLimitError``,
    ``Timeout``, ``APIConnectionError``, ``ServiceUnavailableError`` and
    ``InternalServerError`` without importing litellm. An error raised
    ``from`` a transient one (the gateway wraps provider errors in
    :class:`~orgctl.errors.ModelError` that way) is transient too.
    """
    seen: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if seen is None:
            return False
        if _transient_here(seen):
            return True
        seen = seen.__cause__
    return False


def _headers(exc: BaseException) -> Mapping[str, Any] | None:
    for candidate in (getattr(getattr(exc, "response", None), "headers", None),
                      getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None)):
        if candidate is not None and hasattr(candidate, "get"):
            return candidate
    return None


def retry_after_from_headers(exc: BaseException, *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, from the error's response headers; None when it did not say.

    Reads ``retry-after-ms`` (OpenAI) or ``Retry-After`` (RFC 9110 §10.2.3:
    delay-seconds or an HTTP-date) from ``exc.response.headers``,
    ``exc.litellm_response_headers`` or ``exc.headers``, following
    ``__cause__`` like :func:`is_transient`. ``now`` (UTC) is for tests.
    Suitable as ``retry_after`` for :func:`call_with_retries`.
    """
    seen: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if seen is None:
            return None
        headers = _headers(seen)
        if headers is not None:
            lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}
            try:
                if "retry-after-ms" in lower:
                    return max(0.0, float(lower["retry-after-ms"]) / 1000)
                if "retry-after" in lower:
                    value = lower["retry-after"].strip()
                    try:
                        return max(0.0, float(value))
                    except ValueError:
                        when = parsedate_to_datetime(value)
                        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
            except (ValueError, TypeError, OverflowError):
                return None  # unparseable or naive date: fall back to the policy's backoff
        seen = seen.__cause__
    return None


def call_with_retries(fn: Callable[[], T], *, policy: RetryPolicy = DEFAULT_POLICY,
                      sleep: Callable[[float], None] = time.sleep,
                      on_retry: Callable[[int, BaseException, float], None] | None = None,
                      retry_after: Callable[[BaseException], float | None] | None = None) -> T:
    """Call ``fn`` until it returns, retrying transient errors (:func:`is_transient`) up to ``policy.attempts`` tries.

    Between tries it sleeps ``policy.delay(n)`` seconds after the n-th
    failure, or the server's wish when ``retry_after`` returns one (capped at
    ``policy.max_delay``, so a server cannot park a caller for an hour).
    ``on_retry(n, error, seconds)`` is called before each sleep, e.g. to log.
    Permanent errors, and the last transient error once tries run out, are
    re-raised unchanged (same object, same traceback). Only :class:`Exception`
    is caught: KeyboardInterrupt and SystemExit pass straight through.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as error:
            attempt += 1
            if attempt >= policy.attempts or not is_transient(error):
                raise
            wait = retry_after(error) if retry_after is not None else None
            wait = policy.delay(attempt) if wait is None else min(max(0.0, wait), policy.max_delay)
            if on_retry is not None:
                on_retry(attempt, error, wait)
            sleep(wait)
