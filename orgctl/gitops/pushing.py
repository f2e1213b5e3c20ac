"""The one bounded fetch-replay-push loop: memory onto the tracked branch, work in flight onto ``orgctl/state``.

Both writers share a remote with others (a person's pushes, other runtimes, the shards of a matrix), so a
push can lose a race. The loop is the same for both: fetch the tip, replay this writer's changes on it,
push naming what was replayed on; when the remote refuses (someone pushed first), wait a little (a random
wait that grows with the attempt, so racers spread out) and go again, at most ``attempts`` times.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from orgctl.errors import GitError

T = TypeVar("T")


class PushRejected(GitError):
    """The remote refused the push because its tip moved (a lost race): fetch, replay and try again."""


def lost_race(message: str) -> bool:
    """Whether a failed push lost a race (the tip moved: not a fast-forward, a stale lease) rather than being
    refused for good (authentication, a hook, a protected branch), which no retry would change."""
    return any(sign in message for sign in (
        "[rejected]",  # not a fast-forward, or a stale --force-with-lease ("stale info", "fetch first")
        "stale info", "fetch first",
        "cannot lock ref",  # the remote's own compare-and-swap lost to a push that landed a moment before
    ))


def fetch_replay_push(attempt: Callable[[int], T], *, attempts: int, what: str, hint: str,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """``attempt(n)`` (1-based) fetches, replays and pushes, and returns its result; it raises
    :class:`PushRejected` when the push lost a race, and is then called again after
    ``uniform(0.05, 0.2) * n`` seconds. Raises GitError naming ``what`` and its last refusal (with ``hint``)
    when all ``attempts`` lost; any other GitError from ``attempt`` at once."""
    last: PushRejected | None = None
    for n in range(1, attempts + 1):
        try:
            return attempt(n)
        except PushRejected as e:
            last = e
            sleep(random.uniform(0.05, 0.2) * n)
    raise GitError(f"{what} failed {attempts} times: {last.message if last else ''}", hint=hint)
