"""The secret-scan cache: the same findings as a fresh scan, kept by content, never a secret value."""

from __future__ import annotations

import json
from pathlib import Path

from orgctl.desired.scancache import ScanCache
from orgctl.desired.secrets import scan_text

LEAK = "model: x\napi_key: sk-ant-api03-" + "A" * 90 + "\n"  # pragma: allowlist secret


def test_cached_findings_equal_a_fresh_scan_and_are_reported_for_the_file_asked(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    path = tmp_path / "cache" / "secret-scan.json"
    first = ScanCache(path)
    found = first.scan(LEAK, filename="animas/bob/anima.yaml")
    assert [(f.line, f.kind) for f in found] == [(f.line, f.kind) for f in scan_text(LEAK, filename="x.yaml")]
    assert found and first.misses == 1
    first.save()
    assert "AAAAAAAA" not in path.read_text()  # line numbers and redacted kinds only

    second = ScanCache(path)
    again = second.scan(LEAK, filename="animas/carol/anima.yaml")  # same content, another file
    assert second.hits == 1 and second.misses == 0
    assert [(f.filename, f.line, f.kind) for f in again] == [("animas/carol/anima.yaml", f.line, f.kind) for f in found]
    assert second.scan("model: x\n", filename="animas/bob/anima.yaml") == [] and second.misses == 1


def test_a_corrupt_or_foreign_cache_is_ignored_and_no_state_dir_is_created(tmp_path: Path) -> None:
    (tmp_path / "state" / "cache").mkdir(parents=True)
    path = tmp_path / "state" / "cache" / "secret-scan.json"
    path.write_text("{not json")
    cache = ScanCache(path)
    assert cache.scan(LEAK, filename="a.yaml") and cache.misses == 1
    cache.save()
    assert json.loads(path.read_text())["version"] == 1

    nowhere = ScanCache(tmp_path / "absent" / "cache" / "secret-scan.json")
    nowhere.scan(LEAK, filename="a.yaml")
    nowhere.save()
    assert not (tmp_path / "absent").exists()  # a cache never creates a state dir
