"""Retries: transient errors are retried with growing, capped, jittered delays; permanent ones are not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orgctl.errors import ModelError
from orgctl.llm.retrying import RetryPolicy, call_with_retries, is_transient, retry_after_from_headers


# Stand-ins named like litellm's exception classes, which is_transient matches by name.
class RateLimitError(Exception):
    status_code = 429


class Timeout(Exception):
    pass


class APIConnectionError(Exception):
    pass


class ServiceUnavailableError(Exception):
    pass


class InternalServerError(Exception):
    pass


class BadRequestError(Exception):
    status_code = 400


class HTTPError(Exception):
    def __init__(self, status: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.response = type("Response", (), {"headers": headers or {}, "status_code": status})()


class Flaky:
    """Raises the given errors in turn, then returns 'done'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_delays_grow_exponentially_and_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=8.0, jitter=0.25)
    assert [policy.delay(n, rand=lambda: 0.0) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.delay(1, rand=lambda: 0.5) == pytest.approx(0.5625)
    assert policy.delay(7, rand=lambda: 0.999) == pytest.approx(8.0 * (1 + 0.25 * 0.999))
    assert policy.delay(10_000, rand=lambda: 0.0) == 8.0


def test_default_jitter_stays_in_range() -> None:
    policy = RetryPolicy()
    assert all(1.0 <= policy.delay(2) < 1.25 for _ in range(200))


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay": -1}, {"max_delay": -1}, {"jitter": 1.5}])
def test_impossible_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().delay(0)


@pytest.mark.parametrize("error", [
    ConnectionResetError("reset"), ConnectionRefusedError("refused"), TimeoutError("slow"),
    RateLimitError("429"), Timeout("read timeout"), APIConnectionError("down"), ServiceUnavailableError("busy"),
    InternalServerError("oops"), *(HTTPError(s) for s in (408, 409, 425, 429, 500, 502, 503, 504)),
    HTTPError("503"), ModelError("model call failed"),
])
def test_transient_errors(error: BaseException) -> None:
    if isinstance(error, ModelError):  # the gateway wraps provider errors: `raise ModelError(...) from e`
        error.__cause__ = RateLimitError("slow down")
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    ValueError("bad"), KeyError("k"), BadRequestError("context window exceeded"), ModelError("invalid answer"),
    *(HTTPError(s) for s in (400, 401, 403, 404, 422)), HTTPError(True), KeyboardInterrupt(),
])
def test_permanent_errors(error: BaseException) -> None:
    assert not is_transient(error)


def test_subclasses_of_transient_classes_are_transient() -> None:
    class AnthropicRateLimitError(RateLimitError):
        pass

    class Overloaded(ServiceUnavailableError):
        pass

    assert is_transient(AnthropicRateLimitError()) and is_transient(Overloaded())


def test_retries_transient_errors_with_policy_delays() -> None:
    sleeps: list[float] = []
    retries: list[tuple[int, str, float]] = []
    fn = Flaky(RateLimitError("a"), Timeout("b"), APIConnectionError("c"))
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=3.0, jitter=0.0)
    result = call_with_retries(fn, policy=policy, sleep=sleeps.append,
                               on_retry=lambda n, e, s: retries.append((n, str(e), s)))
    assert result == "done" and fn.calls == 4
    assert sleeps == [1.0, 2.0, 3.0]
    assert retries == [(1, "a", 1.0), (2, "b", 2.0), (3, "c", 3.0)]


def test_permanent_error_is_raised_at_once_unchanged() -> None:
    sleeps: list[float] = []
    error = BadRequestError("bad schema")
    fn = Flaky(error)
    with pytest.raises(BadRequestError) as info:
        call_with_retries(fn, sleep=sleeps.append)
    assert info.value is error and fn.calls == 1 and sleeps == []


def test_permanent_error_after_transient_ones_stops_retrying() -> None:
    sleeps: list[float] = []
    fn = Flaky(RateLimitError("a"), ValueError("bad"), RateLimitError("b"))
    with pytest.raises(ValueError):
        call_with_retries(fn, policy=RetryPolicy(jitter=0.0), sleep=sleeps.append)
    assert fn.calls == 2 and sleeps == [0.5]


def test_last_transient_error_is_reraised_when_attempts_run_out() -> None:
    sleeps: list[float] = []
    errors = [RateLimitError(str(i)) for i in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(RateLimitError) as info:
        call_with_retries(fn, policy=RetryPolicy(attempts=3, jitter=0.0), sleep=sleeps.append)
    assert info.value is errors[2] and fn.calls == 3 and sleeps == [0.5, 1.0]


def test_single_attempt_never_sleeps() -> None:
    sleeps: list[float] = []
    with pytest.raises(RateLimitError):
        call_with_retries(Flaky(RateLimitError()), policy=RetryPolicy(attempts=1), sleep=sleeps.append)
    assert sleeps == []


def test_retry_after_is_honoured_and_capped() -> None:
    sleeps: list[float] = []
    waits = iter([2.5, None, 60.0, -3.0])
    fn = Flaky(*(RateLimitError(str(i)) for i in range(4)))
    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=8.0, jitter=0.0)
    assert call_with_retries(fn, policy=policy, sleep=sleeps.append, retry_after=lambda e: next(waits)) == "done"
    assert sleeps == [2.5, 1.0, 8.0, 0.0]


def test_retry_after_from_headers() -> None:
    now = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
    assert retry_after_from_headers(HTTPError(429, {"Retry-After": "7"})) == 7.0
    assert retry_after_from_headers(HTTPError(429, {"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    dated = HTTPError(503, {"Retry-After": "Fri, 31 Jan 2025 12:00:30 GMT"})
    assert retry_after_from_headers(dated, now=now) == 30.0
    assert retry_after_from_headers(HTTPError(429, {"Retry-After": "soon"})) is None
    assert retry_after_from_headers(HTTPError(429)) is None
    assert retry_after_from_headers(ValueError()) is None
    wrapped = ModelError("model call failed")
    wrapped.__cause__ = HTTPError(429, {"Retry-After": "4"})
    assert retry_after_from_headers(wrapped) == 4.0


def test_server_retry_after_drives_the_wait_end_to_end() -> None:
    sleeps: list[float] = []
    fn = Flaky(HTTPError(429, {"Retry-After": "3"}), HTTPError(503))
    assert call_with_retries(fn, policy=RetryPolicy(jitter=0.0), sleep=sleeps.append,
                             retry_after=retry_after_from_headers) == "done"
    assert sleeps == [3.0, 1.0]
