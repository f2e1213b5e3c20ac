"""The messaging rules an Anima's DM must pass, as AnimaWorks users know them, plus a chain guard.

Checked in this order; the first refusal wins and its reason goes back to the
sender (and into an event), so the Anima learns why:

1. **Intent**: a DM is a report, a question, a delegation or a reply.
   Greetings, thanks and FYIs are not DMs: they go to the Board.
2. **Hierarchy**: delegation only to direct reports, reports only up to the
   supervisor, questions to the supervisor, reports and peers; a reply only
   to the sender of the message it answers. Anything else is a cross-team
   request and goes through the managers.
3. **Acknowledgement loops**: a DM that is only praise/thanks/acknowledgement
   is refused (two polite agents thanking each other forever is the classic
   failure).
4. **Duplicates**: the same text to the same recipient twice in one run.
5. **Chain**: a message carries the senders of its causal chain; sending to
   someone already in it (other than answering the immediate sender) is a
   cycle (A -> B -> C -> A), and a chain longer than ``max_hops`` is cut.
   Pair-only counters miss exactly this.
6. **Rates**: per sender, ``per_hour`` and ``per_day``; per pair,
   ``pair_depth`` DMs within ``pair_window`` seconds.
"""

from __future__ import annotations

import bisect
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from orgctl.desired.models import AnimaSpec
from orgctl.state.files import JsonlTail
from orgctl.work.messages import HUMAN

ANIMA_INTENTS = ("report", "question", "delegation", "reply")
_ACK_WORDS = frozenset(
    "thanks thank you thx ty great awesome nice good well done job excellent perfect appreciate appreciated cheers "
    "got it ok okay sure noted ack acknowledged received welcome hello hi hey glad happy pleasure amazing wonderful "
    "fantastic brilliant kudos bravo congrats congratulations much very so really all the a for your this that it "
    "is was i we you me us our too also again indeed lovely super cool yes yeah yep keep up".split())


def is_acknowledgement(text: str) -> bool:
    """True when ``text`` carries no content beyond thanks, praise, greeting or acknowledgement."""
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and len(words) <= 25 and all(w.strip("'") in _ACK_WORDS for w in words)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


class OutboxView:
    """Accepted DMs of the org in the last 24 h, read incrementally from the outbox log.

    Indexed by sender and by pair, each a sorted list of send times (seconds since the epoch), so a
    rate check is two binary searches, not a scan of the whole day's traffic on every send.
    """

    WINDOW = 86400.0

    def __init__(self, path: Path) -> None:
        self._tail = JsonlTail(path)
        self.by_sender: dict[str, list[float]] = {}
        self.by_pair: dict[frozenset[str], list[float]] = {}

    def refresh(self) -> None:
        reset, records = self._tail.read_new()
        if reset:
            self.by_sender, self.by_pair = {}, {}
        cutoff = time.time() - self.WINDOW
        for rec in records:
            try:
                ts, sender, recipient = float(rec["ts"]), str(rec["sender"]), str(rec["recipient"])
            except (ValueError, KeyError, TypeError):
                continue
            if ts >= cutoff:
                bisect.insort(self.by_sender.setdefault(sender, []), ts)
                bisect.insort(self.by_pair.setdefault(frozenset((sender, recipient)), []), ts)
        for index in (self.by_sender, self.by_pair):
            for times in index.values():
                if times and times[0] < cutoff:
                    del times[:bisect.bisect_left(times, cutoff)]

    def count(self, *, since: float, sender: str | None = None, pair: tuple[str, str] | None = None) -> int:
        """DMs sent at or after ``since`` by ``sender``, or between the two names of ``pair`` (either way)."""
        times = (self.by_sender.get(sender, []) if sender is not None
                 else self.by_pair.get(frozenset(pair or ()), []))
        return len(times) - bisect.bisect_left(times, since)


def hierarchy_refusal(spec: AnimaSpec, recipient: str, intent: str, *, reply_to_sender: str | None) -> str | None:
    """Why ``spec`` may not send ``intent`` to ``recipient`` along the org chart, or None."""
    org = spec.org
    if intent == "reply":
        if reply_to_sender is None:
            return "a reply must answer a message (in_reply_to)"
        if recipient != reply_to_sender:
            return f"a reply goes to the sender of the message it answers ({reply_to_sender})"
        return None
    if recipient == HUMAN:
        if org.supervisor is None and intent in ("report", "question"):
            return None
        return "only the top of the org reports to people; report to your supervisor" + (
            f" ({org.supervisor})" if org.supervisor else "")
    if intent == "delegation":
        return None if recipient in org.reports else (
            f"delegation goes to direct reports only ({', '.join(org.reports) or 'you have none'})")
    if intent == "report":
        return None if recipient == org.supervisor else (
            f"reports go up to your supervisor ({org.supervisor or 'none: you report to people'})")
    if intent == "question":
        if recipient == org.supervisor or recipient in org.reports or recipient in org.peers:
            return None
        return (f"{recipient} is outside your team: cross-team requests go through managers"
                f" (ask {org.supervisor or 'a person'})")
    return f"unknown intent {intent!r}; DMs are report, question, delegation or reply"


@dataclass
class MessageRules:
    """Stateful checks for one org: the outbox view and the duplicate memory of the current run."""

    outbox: OutboxView
    _run_sent: set[tuple[str, str, str]] = field(default_factory=set)

    def check(self, *, spec: AnimaSpec, recipient: str, intent: str, text: str, chain: list[str],
              reply_to_sender: str | None, known: set[str], now: float | None = None) -> str | None:
        """The reason this DM is refused, or None when it may be sent. ``chain`` ends with the sender."""
        if intent not in ANIMA_INTENTS:
            return f"a DM needs an intent ({', '.join(ANIMA_INTENTS)}); greetings, thanks and FYIs go to the Board"
        if recipient not in known and recipient != HUMAN:
            return f"there is no Anima named {recipient!r}"
        if recipient == spec.name:
            return "an Anima does not message itself"
        if problem := hierarchy_refusal(spec, recipient, intent, reply_to_sender=reply_to_sender):
            return problem
        if is_acknowledgement(text):
            return "thanks, praise and acknowledgements go to the Board (#general), not DMs"
        key = (spec.name, recipient, _norm(text))
        if key in self._run_sent:
            return f"the same message was already sent to {recipient} in this run"
        earlier = chain[:-1]
        immediate = earlier[-1] if earlier else None
        if recipient in earlier and recipient != immediate:
            return f"{recipient} is already in this chain ({' -> '.join(chain)} -> {recipient}): loop cut"
        if len(chain) > spec.messaging.max_hops:
            return f"the chain {' -> '.join(chain)} is longer than {spec.messaging.max_hops} hops: cut"
        return self._rate_refusal(spec, recipient, now or time.time())

    def _rate_refusal(self, spec: AnimaSpec, recipient: str, now: float) -> str | None:
        self.outbox.refresh()
        limits = spec.messaging
        if self.outbox.count(since=now - 3600, sender=spec.name) >= limits.per_hour:
            return f"hourly limit reached ({limits.per_hour} DMs per hour)"
        if self.outbox.count(since=now - 86400, sender=spec.name) >= limits.per_day:
            return f"daily limit reached ({limits.per_day} DMs per day)"
        if self.outbox.count(since=now - limits.pair_window, pair=(spec.name, recipient)) >= limits.pair_depth:
            return (f"conversation depth limit with {recipient} reached ({limits.pair_depth} DMs in "
                    f"{limits.pair_window // 60} min)")
        return None

    def accepted(self, *, sender: str, recipient: str, text: str) -> None:
        """Remember an accepted DM for the duplicate check of this run."""
        self._run_sent.add((sender, recipient, _norm(text)))
