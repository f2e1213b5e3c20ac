"""When the memory passes run on their own (org.yaml ``memory.schedule``), and a bad schedule is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orgctl.desired.loading import load_org
from orgctl.desired.models import MemorySchedule
from orgctl.desired.sources import WorkTreeSource
from orgctl.errors import SpecError
from orgctl.memory.passes import due_passes

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_nightly_weekly_and_monthly_passes_fall_due_in_the_anima_s_time_zone() -> None:
    schedule = MemorySchedule()
    sunday_first = datetime(2026, 11, 1, 1, 59, tzinfo=BERLIN)  # a Sunday, and the 1st
    assert due_passes(schedule, since=sunday_first, until=sunday_first.replace(hour=1, minute=59, second=30)) == []
    assert due_passes(schedule, since=sunday_first, until=sunday_first.replace(hour=2, minute=0)) == ["consolidate"]
    assert due_passes(schedule, since=sunday_first, until=sunday_first.replace(hour=4, minute=1)) == [
        "consolidate", "compress", "forget"]
    monday = datetime(2026, 11, 2, 1, 0, tzinfo=BERLIN)
    assert due_passes(schedule, since=monday, until=monday.replace(hour=5)) == ["consolidate"]
    custom = MemorySchedule(consolidate="30 23 * * *")
    evening = datetime(2026, 11, 2, 23, 29, tzinfo=BERLIN)
    assert due_passes(custom, since=evening, until=evening.replace(minute=31)) == ["consolidate"]


def test_a_memory_setting_out_of_range_or_a_bad_cron_is_a_spec_error_with_its_line(org: Path) -> None:
    with (org / "org.yaml").open("a") as f:
        f.write("memory:\n  schedule:\n    consolidate: \"every night\"\n  forgetting:\n    min_uses: -1\n")
    with pytest.raises(SpecError) as info:
        load_org(WorkTreeSource(org))
    lines = (org / "org.yaml").read_text().splitlines()
    cron_line = lines.index('    consolidate: "every night"') + 1
    uses_line = lines.index("    min_uses: -1") + 1
    assert sorted(str(d) for d in info.value.diagnostics) == [
        f"org.yaml:{cron_line}: memory.schedule.consolidate: not a 5-field cron expression: 'every night'",
        f"org.yaml:{uses_line}: memory.forgetting.min_uses: Input should be greater than or equal to 0"]
