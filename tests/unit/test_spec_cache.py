"""The spec cache: the same findings and parses as fresh ones, kept by content, never a secret value."""

from __future__ import annotations

import json
from pathlib import Path

from orgctl.desired.documents import parse_yaml
from orgctl.desired.secrets import scan_text
from orgctl.desired.speccache import CACHE_VERSION, SpecCache

LEAK = "model: x\napi_key: sk-ant-api03-" + "A" * 90 + "\n"  # pragma: allowlist secret
SPEC = "role: engineer\nsupervisor: alice\nbudget:\n  monthly_usd: 5\ntags: [a, b]\n"


def _cache(tmp_path: Path) -> SpecCache:
    (tmp_path / "state" / "cache").mkdir(parents=True, exist_ok=True)
    return SpecCache(tmp_path / "state" / "cache" / "spec.json")


def test_cached_findings_equal_a_fresh_scan_and_are_reported_for_the_file_asked(tmp_path: Path) -> None:
    first = _cache(tmp_path)
    found = first.scan(LEAK, filename="animas/bob/anima.yaml")
    assert [(f.line, f.kind) for f in found] == [(f.line, f.kind) for f in scan_text(LEAK, filename="x.yaml")]
    assert found and first.misses == 1
    first.save()
    assert first.path is not None
    assert "AAAAAAAA" not in first.path.read_text()  # line numbers and redacted kinds only

    second = _cache(tmp_path)
    again = second.scan(LEAK, filename="animas/carol/anima.yaml")  # same content, another file
    assert second.hits == 1 and second.misses == 0
    assert [(f.filename, f.line, f.kind) for f in again] == [("animas/carol/anima.yaml", f.line, f.kind) for f in found]
    assert second.scan("model: x\n", filename="animas/bob/anima.yaml") == [] and second.misses == 1


def test_a_cached_parse_is_exactly_a_fresh_one(tmp_path: Path) -> None:
    first = _cache(tmp_path)
    fresh, _ = parse_yaml(SPEC, file="a.yaml", first_line=2)
    parsed, diags = first.parse_yaml(SPEC, file="a.yaml", first_line=2)
    first.save()
    cached, diags = _cache(tmp_path).parse_yaml(SPEC, file="b.yaml", first_line=2)
    assert not diags and fresh is not None and cached is not None
    assert (cached.data, cached.lines, cached.key_lines, cached.base_line) == \
        (fresh.data, fresh.lines, fresh.key_lines, fresh.base_line)
    assert cached.line_of(("budget", "monthly_usd")) == 5
    # data JSON cannot carry (a date) is parsed every time; errors are never kept
    dated = _cache(tmp_path)
    located, _ = dated.parse_yaml("since: 2026-01-01\n", file="c.yaml")
    assert located is not None and str(located.data["since"]) == "2026-01-01"
    dated.save()
    assert _cache(tmp_path).parse_yaml("since: 2026-01-01\n", file="c.yaml")[0].data == located.data  # type: ignore[union-attr]
    broken = _cache(tmp_path)
    assert broken.parse_yaml("a: [1,\n", file="d.yaml")[0] is None
    assert broken.parse_yaml("a: [1,\n", file="e.yaml")[1][0].file == "e.yaml"


def test_no_parse_is_kept_once_a_secret_was_seen(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.scan(LEAK, filename="animas/bob/anima.yaml")
    cache.parse_yaml(LEAK, file="animas/bob/anima.yaml")
    cache.save()
    saved = json.loads(cache.path.read_text())  # type: ignore[union-attr]
    assert saved["yaml"] == {} and "sk-ant" not in json.dumps(saved)


def test_a_corrupt_cache_is_ignored_and_no_state_dir_is_created(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.path.write_text("{not json")  # type: ignore[union-attr]
    cache = _cache(tmp_path)
    assert cache.scan(LEAK, filename="a.yaml") and cache.misses == 1
    cache.save()
    assert json.loads(cache.path.read_text())["version"] == CACHE_VERSION  # type: ignore[union-attr]

    nowhere = SpecCache(tmp_path / "absent" / "cache" / "spec.json")
    nowhere.scan(LEAK, filename="a.yaml")
    nowhere.save()
    assert not (tmp_path / "absent").exists()  # a cache never creates a state dir
