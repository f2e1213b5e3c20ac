"""The one fetch-replay-push loop: a lost race is retried after a growing random wait, and the attempts are
bounded. (Its git side is tested on real bare remotes: test_memory_commits, test_tick.)"""

from __future__ import annotations

import pytest

from orgctl.errors import GitError
from orgctl.gitops.pushing import PushRejected, fetch_replay_push


def test_a_lost_race_is_fetched_replayed_and_pushed_again() -> None:
    waits: list[float] = []
    seen: list[int] = []

    def attempt(n: int) -> str:
        seen.append(n)
        if n < 3:
            raise PushRejected("! [rejected] (stale info)")
        return "pushed"

    assert fetch_replay_push(attempt, attempts=5, what="pushing", hint="h", sleep=waits.append) == "pushed"
    assert seen == [1, 2, 3] and len(waits) == 2 and 0.05 <= waits[0] <= 0.2 and 0.1 <= waits[1] <= 0.4


def test_the_attempts_are_bounded_and_other_errors_are_not_retried() -> None:
    def lose(n: int) -> None:
        raise PushRejected(f"rejected {n}")

    with pytest.raises(GitError, match="pushing memory failed 4 times: rejected 4") as e:
        fetch_replay_push(lose, attempts=4, what="pushing memory", hint="they wait", sleep=lambda s: None)
    assert e.value.hint == "they wait"
    calls: list[int] = []

    def broken(n: int) -> None:
        calls.append(n)
        raise GitError("remote unreachable")

    with pytest.raises(GitError, match="unreachable"):
        fetch_replay_push(broken, attempts=4, what="x", hint="", sleep=lambda s: None)
    assert calls == [1]
