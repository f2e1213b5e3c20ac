"""The operator's event stream: appended by any writer, folded into series when read, bounded by rotation."""

from __future__ import annotations

from pathlib import Path

from orgctl.state import events


def test_repeats_fold_into_one_series_with_count_and_first_and_last_seen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for _ in range(3):
        events.emit(path, reason="ReconcileFailed", object="anima/bob", type="Warning", message="start bob failed")
    events.emit(path, reason="Reconciled", object="revision/abc", message="applied abc to carol")
    events.emit(path, reason="ReconcileFailed", object="anima/bob", type="Warning", message="start bob failed")
    series = events.aggregate(events.read_events(path))
    assert [(s.event.reason, s.count) for s in series] == [("Reconciled", 1), ("ReconcileFailed", 4)]
    failed = series[-1]
    assert failed.first_seen <= failed.last_seen == failed.event.at
    assert failed.to_json()["count"] == 4 and failed.to_json()["message"] == "start bob failed"


def test_the_stream_is_bounded_by_rotation_and_reads_both_generations(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "events.jsonl"
    monkeypatch.setattr(events, "MAX_BYTES", 2_000)
    for i in range(60):
        events.emit(path, reason="BoardPost", object="board/general", message=f"post {i}")
    rotated = path.with_name("events.1.jsonl")
    assert rotated.exists() and path.stat().st_size <= 2_000 + 400 and rotated.stat().st_size <= 2_000 + 400
    messages = [e.message for e in events.read_events(path)]
    assert messages == sorted(messages, key=lambda m: int(m.split()[1])) and messages[-1] == "post 59"
    assert len(messages) < 60  # older generations are gone: bounded
