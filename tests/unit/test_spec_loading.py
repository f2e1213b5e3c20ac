"""Spec loading: defaults, org chart placement, work tree vs revision sources."""

from __future__ import annotations

from pathlib import Path

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
from tests.conftest import commit_all, edit


def test_template_loads_with_defaults_and_org_chart(org: Path) -> None:
    spec = load_org(WorkTreeSource(org))
    assert spec.name == "acme"
    assert sorted(spec.animas) == ["alice", "bob", "carol"]
    alice, bob, carol = (spec.animas[n] for n in ("alice", "bob", "carol"))
    assert alice.org.supervisor is None and alice.org.reports == ["bob", "carol"]
    assert bob.org.supervisor == "alice" and bob.org.peers == ["carol"] and bob.org.chain == ["alice"]
    assert bob.model == "local/smollm2"  # org default
    assert bob.heartbeat_interval == 1800  # "30m"
    assert carol.active_hours == "09:00-17:00"  # own override beats the org default
    assert bob.active_hours == "08:00-20:00"
    assert "delegate_task" in alice.permissions.tools and "call_human" in alice.permissions.tools
    assert [r.command for r in bob.permissions.commands][0] == "git log --oneline --since=1.week"
    assert [t.title for t in alice.cron] == ["Weekly priorities"]
    assert bob.cron[0].type == "command" and bob.cron[0].command == "git status --short"


def test_revision_source_ignores_uncommitted_edits(org: Path) -> None:
    head = load_org(GitRevisionSource(org, "HEAD"))
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nmodel: openai/gpt-4o-mini")
    assert load_org(WorkTreeSource(org)).animas["bob"].model == "openai/gpt-4o-mini"
    assert load_org(GitRevisionSource(org, "HEAD")).animas["bob"].model == "local/smollm2"
    new = commit_all(org, "bob uses gpt-4o-mini")
    assert load_org(GitRevisionSource(org, "HEAD")).revision == new
    assert load_org(GitRevisionSource(org, head.revision or "")).animas["bob"].model == "local/smollm2"


def test_spec_hash_ignores_yaml_comments_but_not_values(org: Path) -> None:
    before = load_org(WorkTreeSource(org)).animas["bob"].spec_hash()
    edit(org / "animas/bob/anima.yaml", "role: engineer", "role: engineer   # a comment")
    assert load_org(WorkTreeSource(org)).animas["bob"].spec_hash() == before
    edit(org / "animas/bob/anima.yaml", "enabled: true", "enabled: true\nheartbeat_interval: 10s")
    assert load_org(WorkTreeSource(org)).animas["bob"].spec_hash() != before


def test_durations_and_hours_parse(org: Path) -> None:
    from orgctl.desired.models import parse_active_hours, parse_duration

    assert parse_duration("1h30m") == 5400
    assert parse_duration(45) == 45
    assert parse_active_hours("22:00-06:00") == "22:00-06:00"
    assert parse_active_hours("9:00-24:00") == "09:00-24:00"


def test_pid_reused_by_a_stranger_is_not_a_live_supervisor() -> None:
    import subprocess

    from orgctl.state.runtimes import RuntimeStatus

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        assert not RuntimeStatus(supervisor_pid=stranger.pid).supervisor_alive()
    finally:
        stranger.kill()
        stranger.wait()


def test_fields_added_after_a_release_leave_the_hash_alone_at_their_defaults() -> None:
    """Upgrading must not restart every Anima: ``skills``, ``memory``, ``sandbox`` and ``permissions.network``
    enter the hash only when set."""
    from orgctl.desired.hashing import LATER_DEFAULTS, LATER_FIELD_DEFAULTS
    from orgctl.desired.models import MemoryConfig, SandboxConfig
    from orgctl.desired.permissions import PermissionsFrontmatter

    assert {"skills": [], "memory": MemoryConfig().model_dump(mode="json"),
            "sandbox": SandboxConfig().model_dump(mode="json")} == LATER_DEFAULTS
    assert {"permissions": {"network": PermissionsFrontmatter().network}} == LATER_FIELD_DEFAULTS
