"""Cassettes: a recorded run replays the same answers, in order, without calling a model; gaps fail loudly."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from orgctl.errors import ModelError
from orgctl.llm.cassettes import (
    ENV_MODE,
    ENV_PATH,
    RecordingClient,
    ReplayClient,
    cassette_client,
    from_env,
    request_key,
)
from orgctl.llm.requests import CompletionRequest, CompletionResult, Message, Usage


class CountingClient:
    """Stands in for the gateway: the cassette is under test here, not the model."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, request: CompletionRequest) -> CompletionResult:
        with self._lock:
            self.calls += 1
            n = self.calls
        return CompletionResult(content=f"answer {n} to {request.messages[-1].content}", model=request.model,
                                usage=Usage(prompt_tokens=10, completion_tokens=n, calls=1), latency_s=0.5)


def req(user: str = "what next?", *, anima: str | None = "alice", purpose: str = "heartbeat",
        schema: dict | None = None, model: str = "local/smollm2") -> CompletionRequest:
    return CompletionRequest(model=model, messages=[Message(role="system", content="You are alice."),
                                                    Message(role="user", content=user)],
                             schema=schema, anima=anima, purpose=purpose)


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "scenario.jsonl"


def test_replay_returns_recorded_answers_in_order_without_calling_the_model(cassette: Path) -> None:
    inner = CountingClient()
    recorder = RecordingClient(inner, path=cassette)
    recorded = [recorder.complete(req("a")), recorder.complete(req("b")), recorder.complete(req("a"))]
    assert inner.calls == 3 and not any(r.replayed for r in recorded)
    assert len(cassette.read_text().splitlines()) == 3  # parent dirs were created

    replay = ReplayClient(path=cassette)
    replayed = [replay.complete(req("a")), replay.complete(req("a")), replay.complete(req("b"))]
    assert [r.content for r in replayed] == ["answer 1 to a", "answer 3 to a", "answer 2 to b"]
    assert all(r.replayed for r in replayed)
    assert replayed[1].usage == recorded[2].usage and replayed[1].latency_s == 0.5
    assert inner.calls == 3


def test_cassette_lines_hold_key_occurrence_summary_and_result(cassette: Path) -> None:
    recorder = RecordingClient(CountingClient(), path=cassette)
    recorder.complete(req("a"))
    recorder.complete(req("a", purpose="other"))
    first, second = (json.loads(line) for line in cassette.read_text().splitlines())
    assert first["key"] == second["key"] == request_key(req("a"))
    assert (first["occurrence"], second["occurrence"]) == (0, 1)
    assert first["request"] == {"model": "local/smollm2", "purpose": "heartbeat", "anima": "alice"}
    assert first["result"]["content"] == "answer 1 to a"


def test_labels_do_not_change_the_key_but_the_answer_inputs_do() -> None:
    base = request_key(req())
    assert request_key(req(anima="bob", purpose="plan")) == base
    assert request_key(req(anima=None)) == base
    assert request_key(req(schema={"type": "object"})) != base
    assert request_key(req(schema={"type": "object"})) != request_key(req(schema={"type": "array"}))
    assert request_key(req(model="openai/gpt-4o-mini")) != base
    assert request_key(req("what next? ")) != base
    assert request_key(req().model_copy(update={"max_tokens": 512})) != base
    assert request_key(req().model_copy(update={"temperature": 0.0})) != base


def test_replay_ignores_labels(cassette: Path) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req(anima="alice", purpose="plan"))
    assert ReplayClient(path=cassette).complete(req(anima="bob", purpose="review")).content == "answer 1 to what next?"


def test_unrecorded_call_fails_loudly(cassette: Path) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req("a"))
    long = "please summarise the following very long design document about the billing service " * 3
    with pytest.raises(ModelError) as info:
        ReplayClient(path=cassette).complete(req(long, purpose="summarise", model="openai/gpt-4o-mini"))
    message = str(info.value)
    assert message.startswith("unrecorded model call")
    assert "openai/gpt-4o-mini" in message and "'summarise'" in message
    assert " ".join(long.split())[:80] in message and long[:100] not in message
    assert info.value.hint is not None and "re-record the cassette" in info.value.hint


def test_changed_prompt_is_explained(cassette: Path) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req("a"))
    with pytest.raises(ModelError, match="prompt, schema or sampling settings probably changed"):
        ReplayClient(path=cassette).complete(req("a", schema={"type": "object"}))


def test_more_calls_than_recorded_raise_by_default(cassette: Path) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req("beat"))
    replay = ReplayClient(path=cassette)
    replay.complete(req("beat"))
    with pytest.raises(ModelError, match="made 2 times.*recorded it 1 time") as info:
        replay.complete(req("beat"))
    assert info.value.hint is not None and "repeat_last=True" in info.value.hint


def test_repeat_last_returns_the_last_recording_again(cassette: Path) -> None:
    recorder = RecordingClient(CountingClient(), path=cassette)
    recorder.complete(req("beat"))
    recorder.complete(req("beat"))
    replay = ReplayClient(path=cassette, repeat_last=True)
    assert [replay.complete(req("beat")).content for _ in range(4)] == [
        "answer 1 to beat", "answer 2 to beat", "answer 2 to beat", "answer 2 to beat"]


def test_missing_cassette_is_a_model_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist") as info:
        ReplayClient(path=tmp_path / "nope.jsonl")
    assert info.value.hint is not None and f"{ENV_MODE}=record" in info.value.hint


@pytest.mark.parametrize("bad", ['{"key": "abc", "occurrence": 0, "result": {"con', '[1, 2]',
                                 '{"key": "abc", "occurrence": 0, "result": {"content": "x"}}'])
def test_corrupt_line_names_file_and_line(cassette: Path, bad: str) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req("a"))
    with cassette.open("a") as f:
        f.write("\n" + bad + "\n")  # line 2 is blank and skipped, line 3 is corrupt
    with pytest.raises(ModelError, match=f"{cassette}:3: corrupt cassette line") as info:
        ReplayClient(path=cassette)
    assert info.value.hint is not None and "re-record" in info.value.hint


def test_recording_continues_occurrences_of_an_existing_cassette(cassette: Path) -> None:
    RecordingClient(CountingClient(), path=cassette).complete(req("a"))
    RecordingClient(CountingClient(), path=cassette).complete(req("a"))
    assert [json.loads(line)["occurrence"] for line in cassette.read_text().splitlines()] == [0, 1]
    replay = ReplayClient(path=cassette)
    assert [replay.complete(req("a")).content for _ in range(2)] == ["answer 1 to a", "answer 1 to a"]
    with pytest.raises(ModelError):
        replay.complete(req("a"))


def test_errors_from_the_inner_client_propagate_and_are_not_recorded(cassette: Path) -> None:
    class Failing:
        def complete(self, request: CompletionRequest) -> CompletionResult:
            raise ModelError("provider down")

    with pytest.raises(ModelError, match="provider down"):
        RecordingClient(Failing(), path=cassette).complete(req())
    assert not cassette.exists()


def test_concurrent_recording_writes_one_valid_line_per_call(cassette: Path) -> None:
    inner = CountingClient()
    recorder = RecordingClient(inner, path=cassette)
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        recorder.complete(req(f"question {i % 4}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(lines) == 8 and inner.calls == 8
    assert sorted((e["key"], e["occurrence"]) for e in lines) == sorted(
        (request_key(req(f"question {i}")), n) for i in range(4) for n in range(2))

    replay = ReplayClient(path=cassette)
    answers: list[str] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        content = replay.complete(req(f"question {i % 4}")).content
        with lock:
            answers.append(content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == sorted(e["result"]["content"] for e in lines)


def test_cassette_client_modes(cassette: Path) -> None:
    inner = CountingClient()
    assert cassette_client(mode="off", path=cassette, inner=inner) is inner
    recorder = cassette_client(mode="record", path=cassette, inner=inner)
    assert isinstance(recorder, RecordingClient)
    recorder.complete(req())
    assert isinstance(cassette_client(mode="replay", path=cassette, inner=None), ReplayClient)
    with pytest.raises(ValueError, match="unknown cassette mode"):
        cassette_client(mode="rewind", path=cassette, inner=inner)
    with pytest.raises(ValueError, match="needs an inner client"):
        cassette_client(mode="record", path=cassette, inner=None)


def test_from_env(cassette: Path) -> None:
    inner = CountingClient()
    assert from_env(inner, {}) is inner
    assert from_env(None, {ENV_MODE: "record"}) is None
    assert isinstance(from_env(inner, {ENV_PATH: str(cassette), ENV_MODE: "record"}), RecordingClient)
    assert from_env(inner, {ENV_PATH: str(cassette), ENV_MODE: "off"}) is inner
    with pytest.raises(ModelError, match="does not exist"):
        from_env(inner, {ENV_PATH: str(cassette)})  # replay is the default mode
    RecordingClient(inner, path=cassette).complete(req())
    assert isinstance(from_env(None, {ENV_PATH: str(cassette)}), ReplayClient)
    with pytest.raises(ModelError, match="not a cassette mode"):
        from_env(inner, {ENV_PATH: str(cassette), ENV_MODE: "rewind"})
    with pytest.raises(ModelError, match="needs a real model client"):
        from_env(None, {ENV_PATH: str(cassette), ENV_MODE: "record"})
