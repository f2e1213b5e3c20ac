"""Budgets: usage windows per UTC day and month, soft and hard limits per Anima and org-wide, usage summaries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orgctl.llm.budgets import (
    BudgetLimits,
    Budgets,
    BudgetState,
    Spend,
    UsageRow,
    evaluate,
    read_usage,
    spend,
    summarize,
)
from orgctl.state.files import append_jsonl

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)


def rec(*, anima: str | None = "alice", at: datetime = NOW, prompt: int = 0, completion: int = 0,
        model: str = "local/smollm2", cost: float | None = None) -> dict[str, Any]:
    """A usage record shaped like the gateway writes it."""
    record: dict[str, Any] = {"at": at.isoformat(timespec="seconds"), "model": model, "anima": anima,
                              "purpose": "heartbeat", "prompt_tokens": prompt, "completion_tokens": completion,
                              "latency_s": 1.0}
    if cost is not None:
        record["cost_usd"] = cost
    return record


def tokens_budget(**per_anima: Any) -> Budgets:
    return Budgets(per_anima=BudgetLimits(**per_anima))


def test_spend_totals_tokens_cost_and_calls() -> None:
    records = [rec(prompt=100, completion=20, cost=0.5), rec(prompt=1, completion=2), rec(anima="bob", prompt=7)]
    assert spend(records) == Spend(tokens=130, cost_usd=0.5, calls=3)
    assert spend(records, anima="alice") == Spend(tokens=123, cost_usd=0.5, calls=2)
    assert spend(records, anima="carol") == Spend(tokens=0, cost_usd=0.0, calls=0)


def test_spend_window_is_half_open() -> None:
    day = NOW.replace(hour=0)
    records = [rec(at=day - timedelta(seconds=1), prompt=1), rec(at=day, prompt=10),
               rec(at=day + timedelta(days=1), prompt=100)]
    assert spend(records, since=day, until=day + timedelta(days=1)).tokens == 10
    assert spend(records, since=day).tokens == 110
    assert spend(records, until=day).tokens == 1


def test_spend_tolerates_bad_fields() -> None:
    records = [{"anima": "alice", "prompt_tokens": "lots", "completion_tokens": None, "cost_usd": "free"},
               {"anima": "alice", "at": "yesterday-ish", "prompt_tokens": 5}]
    assert spend(records) == Spend(tokens=5, cost_usd=0.0, calls=2)
    assert spend(records, since=NOW - timedelta(days=365)).calls == 0  # cannot place them in a window


def test_yesterdays_usage_does_not_count_today() -> None:
    yesterday = NOW - timedelta(days=1)
    records = [rec(at=yesterday, prompt=1000)]
    assert evaluate(records, budgets=tokens_budget(tokens_per_day=1000), anima="alice", now=NOW).level == "ok"
    assert evaluate(records, budgets=tokens_budget(tokens_per_day=1000), anima="alice", now=yesterday).level == "hard"


def test_last_months_usage_does_not_count_this_month() -> None:
    last_month = datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC)
    records = [rec(at=last_month, prompt=5000), rec(at=NOW, prompt=100)]
    budgets = tokens_budget(tokens_per_month=5000)
    assert evaluate(records, budgets=budgets, anima="alice", now=NOW).level == "ok"
    assert evaluate(records, budgets=budgets, anima="alice", now=last_month).level == "hard"


def test_day_is_the_utc_calendar_day() -> None:
    tokyo = timezone(timedelta(hours=9))
    now = datetime(2025, 3, 15, 10, 0, tzinfo=tokyo)  # 01:00 UTC
    same_tokyo_day = datetime(2025, 3, 15, 8, 30, tzinfo=tokyo)  # 23:30 UTC the day before
    state = evaluate([rec(at=same_tokyo_day, prompt=1000)], budgets=tokens_budget(tokens_per_day=1000),
                     anima="alice", now=now)
    assert state.level == "ok"
    state = evaluate([rec(at=same_tokyo_day, prompt=1000)], budgets=tokens_budget(tokens_per_day=1000),
                     anima="alice", now=datetime(2025, 3, 14, 23, 59, tzinfo=UTC))
    assert state.level == "hard"


def test_soft_limit_at_80_percent() -> None:
    budgets = tokens_budget(tokens_per_day=100_000)
    assert evaluate([rec(prompt=79_999)], budgets=budgets, anima="alice", now=NOW) == BudgetState("ok", "", "")
    state = evaluate([rec(prompt=80_000, completion=1_234)], budgets=budgets, anima="alice", now=NOW)
    assert state == BudgetState(level="soft", scope="anima:alice",
                                reason="alice used 81,234 of 100,000 tokens today (soft limit 80%)")


def test_hard_limit_at_100_percent() -> None:
    budgets = tokens_budget(tokens_per_day=100_000)
    state = evaluate([rec(prompt=60_000), rec(completion=40_000)], budgets=budgets, anima="alice", now=NOW)
    assert state == BudgetState(level="hard", scope="anima:alice",
                                reason="alice used 100,000 of 100,000 tokens today (hard limit)")


def test_custom_soft_fraction() -> None:
    budgets = tokens_budget(tokens_per_month=1000, soft_fraction=0.5)
    state = evaluate([rec(prompt=500)], budgets=budgets, anima="alice", now=NOW)
    assert state.level == "soft" and state.reason == "alice used 500 of 1,000 tokens this month (soft limit 50%)"


def test_other_animas_usage_does_not_count_against_per_anima_limits() -> None:
    budgets = tokens_budget(tokens_per_day=100)
    assert evaluate([rec(anima="bob", prompt=500)], budgets=budgets, anima="alice", now=NOW).level == "ok"


def test_org_limit_trips_from_several_animas() -> None:
    budgets = Budgets(org=BudgetLimits(tokens_per_day=1000), per_anima=BudgetLimits(tokens_per_day=600))
    records = [rec(anima="alice", prompt=300), rec(anima="bob", prompt=400), rec(anima="carol", prompt=300)]
    state = evaluate(records, budgets=budgets, anima="alice", now=NOW)
    assert state == BudgetState(level="hard", scope="org",
                                reason="the org used 1,000 of 1,000 tokens today (hard limit)")


def test_worst_level_wins() -> None:
    budgets = Budgets(org=BudgetLimits(tokens_per_month=10_000), per_anima=BudgetLimits(tokens_per_day=1000))
    records = [rec(prompt=850), rec(anima="bob", at=NOW - timedelta(days=3), prompt=9_500)]
    state = evaluate(records, budgets=budgets, anima="alice", now=NOW)  # alice soft (85 %), org hard
    assert (state.level, state.scope) == ("hard", "org")
    assert state.reason == "the org used 10,350 of 10,000 tokens this month (hard limit)"
    state = evaluate(records, budgets=budgets, anima="bob", now=NOW)  # bob ok today, org still hard
    assert (state.level, state.scope) == ("hard", "org")


def test_among_equal_levels_the_most_used_limit_is_named() -> None:
    budgets = Budgets(org=BudgetLimits(tokens_per_day=1000), per_anima=BudgetLimits(tokens_per_day=1000))
    records = [rec(prompt=810), rec(anima="bob", prompt=150)]
    state = evaluate(records, budgets=budgets, anima="alice", now=NOW)
    assert (state.level, state.scope) == ("soft", "org") and "960 of 1,000" in state.reason


def test_cost_limits() -> None:
    budgets = Budgets(org=BudgetLimits(cost_per_month_usd=10.0), per_anima=BudgetLimits(cost_per_day_usd=1.0))
    state = evaluate([rec(cost=0.85)], budgets=budgets, anima="alice", now=NOW)
    assert state == BudgetState(level="soft", scope="anima:alice",
                                reason="alice spent $0.85 of $1.00 today (soft limit 80%)")
    records = [rec(cost=0.5), rec(anima="bob", at=NOW - timedelta(days=10), cost=9.75)]
    state = evaluate(records, budgets=budgets, anima="alice", now=NOW)
    assert state == BudgetState(level="hard", scope="org",
                                reason="the org spent $10.25 of $10.00 this month (hard limit)")


def test_anima_override_replaces_per_anima_limits() -> None:
    budgets = tokens_budget(tokens_per_day=100)
    records = [rec(prompt=150)]
    assert evaluate(records, budgets=budgets, anima="alice", now=NOW).level == "hard"
    relaxed = BudgetLimits(tokens_per_day=1000)
    assert evaluate(records, budgets=budgets, anima="alice", now=NOW, anima_limits=relaxed).level == "ok"


def test_zero_limit_forbids_calls() -> None:
    assert evaluate([], budgets=tokens_budget(tokens_per_day=0), anima="alice", now=NOW).level == "hard"


def test_no_limits_is_always_ok() -> None:
    assert evaluate([rec(prompt=10**9, cost=10**6)], budgets=Budgets(), anima="alice", now=NOW).level == "ok"


def test_limits_are_validated() -> None:
    for bad in ({"soft_fraction": 0}, {"soft_fraction": 1.5}, {"tokens_per_day": -1}, {"tokens_per_week": 5}):
        with pytest.raises(ValidationError):
            BudgetLimits(**bad)
    with pytest.raises(ValidationError):
        Budgets.model_validate({"org": {}, "per_team": {}})
    parsed = Budgets.model_validate({"org": {"cost_per_month_usd": 50}, "per_anima": {"tokens_per_day": 20000}})
    assert parsed.org.cost_per_month_usd == 50.0 and parsed.per_anima.tokens_per_day == 20_000


def test_read_usage_skips_corrupt_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    append_jsonl(path, rec(prompt=1))
    with path.open("a", encoding="utf-8") as f:
        f.write("not json\n[1, 2]\n\n")
    append_jsonl(path, rec(prompt=2))
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec(prompt=3))[:25])  # a writer mid-append
    assert [r["prompt_tokens"] for r in read_usage(path)] == [1, 2]


def test_read_usage_missing_file_and_since(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    assert read_usage(path) == []
    append_jsonl(path, rec(at=NOW - timedelta(days=2), prompt=1))
    append_jsonl(path, rec(at=NOW, prompt=2))
    append_jsonl(path, {"model": "x", "prompt_tokens": 4})  # no timestamp
    assert [r["prompt_tokens"] for r in read_usage(path, since=NOW - timedelta(days=1))] == [2]
    assert [r["prompt_tokens"] for r in read_usage(path, since=datetime(2025, 3, 14, 12, 0))] == [2]  # naive = UTC
    assert len(read_usage(path)) == 3


def test_summarize_groups_by_anima_and_model() -> None:
    records = [
        rec(anima="bob", model="openai/gpt-4o-mini", prompt=10, completion=5, cost=0.01),
        rec(anima="alice", prompt=100, completion=10),
        rec(anima="bob", model="openai/gpt-4o-mini", prompt=20, completion=5, cost=0.02),
        rec(anima="alice", prompt=50, completion=5),
        rec(anima="bob", prompt=1, completion=1),
        rec(anima=None, prompt=3, completion=0),
        rec(anima="alice", at=NOW - timedelta(days=40), prompt=999),
    ]
    rows = summarize(records, since=NOW - timedelta(days=30))
    assert rows == [
        UsageRow(anima="", model="local/smollm2", calls=1, prompt_tokens=3, completion_tokens=0, cost_usd=0.0),
        UsageRow(anima="alice", model="local/smollm2", calls=2, prompt_tokens=150, completion_tokens=15,
                 cost_usd=0.0),
        UsageRow(anima="bob", model="local/smollm2", calls=1, prompt_tokens=1, completion_tokens=1, cost_usd=0.0),
        UsageRow(anima="bob", model="openai/gpt-4o-mini", calls=2, prompt_tokens=30, completion_tokens=10,
                 cost_usd=pytest.approx(0.03)),
    ]
    assert [r.model for r in summarize(records, anima="bob")] == ["local/smollm2", "openai/gpt-4o-mini"]
    assert summarize(records, anima="alice")[0].calls == 3


def test_the_usage_log_moves_to_a_monthly_file_when_the_month_turns_and_keeps_twelve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Bounded without losing what budgets count: the current month is always whole in usage.jsonl."""
    import os
    from datetime import UTC, datetime

    from orgctl.llm.budgets import USAGE_MONTHS_KEPT, append_usage, read_usage, usage_files

    log = tmp_path / "usage.jsonl"
    for month in range(1, 15):  # 14 old months, each file last written in its own month
        append_usage(log, {"at": f"2025-{month:02d}-10T00:00:00+00:00" if month <= 12 else
                           f"2026-{month - 12:02d}-10T00:00:00+00:00", "prompt_tokens": month},
                     now=datetime(2025 + (month - 1) // 12, (month - 1) % 12 + 1, 10, tzinfo=UTC))
        stamp = datetime(2025 + (month - 1) // 12, (month - 1) % 12 + 1, 10, tzinfo=UTC).timestamp()
        os.utime(log, (stamp, stamp))
    append_usage(log, {"at": "2026-11-24T00:00:00+00:00", "prompt_tokens": 99}, now=datetime(2026, 11, 24, tzinfo=UTC))
    assert [r["prompt_tokens"] for r in read_usage(log)] == [99]  # this month, whole and alone
    archives = sorted(p.name for p in tmp_path.glob("usage-*.jsonl"))
    assert len(archives) == USAGE_MONTHS_KEPT and archives[-1] == "usage-2026-02.jsonl"
    assert archives[0] == "usage-2025-03.jsonl"  # the two oldest months were deleted
    since = datetime(2026, 1, 15, tzinfo=UTC)
    assert [p.name for p in usage_files(log, since=since)] == ["usage-2026-01.jsonl", "usage-2026-02.jsonl",
                                                               "usage.jsonl"]
