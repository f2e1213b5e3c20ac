"""The inbound webhook server, exercised with real HTTP requests on loopback.

Each test runs a real :class:`InboundServer` on 127.0.0.1 (port 0) and talks
to it with ``urllib.request`` over TCP; the ``deliver`` callback records what
reached the (fake) inboxes and raises ``KeyError`` for unknown Animas, as the
runtime's does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orgctl.runtime.receiving import MAX_TEXT, InboundMessage, InboundServer

TOKEN = "inbound-test-token"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHATWORK_TOKEN = base64.b64encode(b"chatwork webhook key \x00\xff").decode()
KNOWN = {"alice", "bob"}

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Inboxes:
    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []

    def deliver(self, message: InboundMessage) -> str:
        if message.anima not in KNOWN:
            raise KeyError(message.anima)
        self.messages.append(message)
        return f"msg-{len(self.messages)}"


@pytest.fixture
def inboxes() -> Inboxes:
    return Inboxes()


@pytest.fixture
def start(inboxes: Inboxes) -> Iterator[Callable[..., InboundServer]]:
    servers: list[InboundServer] = []

    def start(**kwargs: Any) -> InboundServer:
        server = InboundServer(**{"deliver": inboxes.deliver, "token": TOKEN, **kwargs})
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def server(start: Callable[..., InboundServer]) -> InboundServer:
    return start(slack_signing_secret=SLACK_SECRET, slack_routes={"C-ALICE": "alice", "C-GHOST": "ghost"},
                 chatwork_token=CHATWORK_TOKEN, chatwork_routes={"1234": "bob"})


def request(url: str, body: bytes | None = None, *, headers: dict[str, str] | None = None,
            method: str = "POST") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"{}")


def inbox(server: InboundServer, name: str, payload: Any, *, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(f"{server.url}/v1/inbox/{name}", body, headers=headers)


def slack_headers(body: bytes, *, secret: str = SLACK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def chatwork_signature(body: bytes, token: str = CHATWORK_TOKEN) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(token), body, hashlib.sha256).digest()).decode()


def slack_message(text: str, *, channel: str = "C-ALICE", event_id: str = "Ev1", **extra: Any) -> bytes:
    event = {"type": "message", "channel": channel, "user": "U123", "text": text, "ts": "1.2", **extra}
    return json.dumps({"type": "event_callback", "event_id": event_id, "event": event}).encode()


# ---------------------------------------------------------------- generic webhook


def test_good_token_delivers_to_the_named_anima(server: InboundServer, inboxes: Inboxes) -> None:
    assert inbox(server, "alice", {"text": "hello from outside"}) == (202, {"id": "msg-1"})
    assert inbox(server, "bob", {"text": "ping", "from": "ci:nightly"}) == (202, {"id": "msg-2"})
    assert inboxes.messages == [
        InboundMessage(anima="alice", text="hello from outside", sender="webhook", source="webhook"),
        InboundMessage(anima="bob", text="ping", sender="ci:nightly", source="webhook"),
    ]


def test_text_is_clipped(server: InboundServer, inboxes: Inboxes) -> None:
    assert inbox(server, "alice", {"text": "y" * (MAX_TEXT + 500)})[0] == 202
    assert len(inboxes.messages[0].text) == MAX_TEXT


@pytest.mark.parametrize("token", [None, "wrong", "", TOKEN + "x"])
def test_missing_or_wrong_token_is_401_and_delivers_nothing(server: InboundServer, inboxes: Inboxes,
                                                           token: str | None) -> None:
    status, body = inbox(server, "alice", {"text": "let me in"}, token=token)
    assert status == 401 and TOKEN not in json.dumps(body)
    assert inboxes.messages == []


def test_unknown_anima_is_404(server: InboundServer, inboxes: Inboxes) -> None:
    assert inbox(server, "mallory", {"text": "hi"})[0] == 404
    assert inboxes.messages == []


def test_oversized_body_is_413(start: Callable[..., InboundServer], inboxes: Inboxes) -> None:
    small = start(max_body=1024)
    assert inbox(small, "alice", {"text": "z" * 2000})[0] == 413
    assert inbox(small, "alice", {"text": "fits"})[0] == 202
    assert [m.text for m in inboxes.messages] == ["fits"]


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'{"from": "x"}', b'{"text": 42}', b'{"text": " "}',
                                     b'{"text": "hi", "from": 7}', b"\xff\xfe"])
def test_bad_bodies_are_400(server: InboundServer, inboxes: Inboxes, payload: bytes) -> None:
    assert inbox(server, "alice", payload)[0] == 400
    assert inboxes.messages == []


@pytest.mark.parametrize("name", ["..%2F..%2Fetc", "a..b", "..", "../alice", "alice%2F..%2Fbob", ".hidden",
                                  "a" * 65, "al%00ice", "al ice"])
def test_suspicious_anima_names_are_400(server: InboundServer, inboxes: Inboxes, name: str) -> None:
    assert inbox(server, urllib.parse.quote(name, safe="%./"), {"text": "hi"})[0] == 400
    assert inboxes.messages == []


def test_other_paths_and_methods(server: InboundServer) -> None:
    assert request(f"{server.url}/v1/inbox/alice", method="GET")[0] == 405
    assert request(f"{server.url}/nope", b"{}")[0] == 404
    assert request(f"{server.url}/", method="GET")[0] == 404


def test_deliver_failure_is_500(start: Callable[..., InboundServer]) -> None:
    def broken(message: InboundMessage) -> str:
        raise OSError("disk full")

    status, body = inbox(start(deliver=broken), "alice", {"text": "hi"})
    assert status == 500 and "disk full" not in json.dumps(body)


def test_serve_forever_in_the_foreground_until_stop(inboxes: Inboxes) -> None:
    server = InboundServer(deliver=inboxes.deliver, token=TOKEN)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert inbox(server, "alice", {"text": "hi"})[0] == 202
    finally:
        server.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        inbox(server, "alice", {"text": "after stop"})
    assert len(inboxes.messages) == 1


def test_constructor_refuses_bad_secrets(inboxes: Inboxes) -> None:
    with pytest.raises(ValueError, match="token"):
        InboundServer(deliver=inboxes.deliver, token="")
    with pytest.raises(ValueError, match="base64"):
        InboundServer(deliver=inboxes.deliver, token=TOKEN, chatwork_token="not base64!")


# ---------------------------------------------------------------- Slack


def test_slack_url_verification_answers_the_challenge(server: InboundServer) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "token": "legacy"}).encode()
    status, answer = request(f"{server.url}/slack/events", body, headers=slack_headers(body))
    assert (status, answer) == (200, {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})


def test_slack_signed_message_reaches_the_routed_anima_once(server: InboundServer, inboxes: Inboxes) -> None:
    body = slack_message("deploy when ready")
    assert request(f"{server.url}/slack/events", body, headers=slack_headers(body))[0] == 200
    assert request(f"{server.url}/slack/events", body, headers=slack_headers(body))[0] == 200  # Slack's retry
    assert inboxes.messages == [InboundMessage(anima="alice", text="deploy when ready", sender="slack:U123",
                                               source="slack")]


@pytest.mark.parametrize("body", [
    slack_message("from a bot", bot_id="B1", event_id="Ev2"),
    slack_message("edited", subtype="message_changed", event_id="Ev3"),
    slack_message("nobody routes this", channel="C-OTHER", event_id="Ev4"),
    slack_message("routed to an Anima that is gone", channel="C-GHOST", event_id="Ev5"),
    json.dumps({"type": "event_callback", "event": {"type": "reaction_added"}}).encode(),
], ids=["bot", "subtype", "unrouted-channel", "unknown-anima", "not-a-message"])
def test_slack_events_that_are_ignored_still_get_200(server: InboundServer, inboxes: Inboxes, body: bytes) -> None:
    status, answer = request(f"{server.url}/slack/events", body, headers=slack_headers(body))
    assert status == 200 and "ignored" in answer
    assert inboxes.messages == []


def test_slack_bad_signature_and_stale_timestamp_are_401(server: InboundServer, inboxes: Inboxes) -> None:
    body = slack_message("forged")
    url = f"{server.url}/slack/events"
    assert request(url, body, headers=slack_headers(body, secret="wrong-secret"))[0] == 401
    assert request(url, body, headers=slack_headers(body, timestamp=int(time.time()) - 301 - 5))[0] == 401
    assert request(url, body, headers=slack_headers(body, timestamp=int(time.time()) + 600))[0] == 401
    tampered = slack_headers(body)
    assert request(url, body.replace(b"forged", b"FORGED"), headers=tampered)[0] == 401
    assert request(url, body, headers={"Content-Type": "application/json"})[0] == 401
    assert inboxes.messages == []


def test_slack_endpoint_is_off_without_a_signing_secret(start: Callable[..., InboundServer]) -> None:
    plain = start()
    body = slack_message("hi")
    assert request(f"{plain.url}/slack/events", body, headers=slack_headers(body))[0] == 404
    assert request(f"{plain.url}/chatwork", b"{}")[0] == 404


# ---------------------------------------------------------------- Chatwork


def chatwork_event(text: str, *, room: int = 1234) -> bytes:
    return json.dumps({"webhook_setting_id": "12345", "webhook_event_type": "message_created",
                       "webhook_event_time": int(time.time()),
                       "webhook_event": {"message_id": "789", "room_id": room, "account_id": 456, "body": text,
                                         "send_time": int(time.time()), "update_time": 0}}).encode()


def test_chatwork_signed_event_reaches_the_routed_anima(server: InboundServer, inboxes: Inboxes) -> None:
    body = chatwork_event("[To:1]bob please review")
    headers = {"Content-Type": "application/json", "X-ChatWorkWebhookSignature": chatwork_signature(body)}
    status, answer = request(f"{server.url}/chatwork", body, headers=headers)
    assert status == 200 and answer["id"] == "msg-1"
    assert inboxes.messages == [InboundMessage(anima="bob", text="[To:1]bob please review", sender="chatwork:456",
                                               source="chatwork")]


def test_chatwork_signature_in_the_query_string(server: InboundServer, inboxes: Inboxes) -> None:
    body = chatwork_event("via query")
    query = urllib.parse.urlencode({"chatwork_webhook_signature": chatwork_signature(body)})
    assert request(f"{server.url}/chatwork?{query}", body)[0] == 200
    assert [m.text for m in inboxes.messages] == ["via query"]


def test_chatwork_bad_signature_is_401(server: InboundServer, inboxes: Inboxes) -> None:
    body = chatwork_event("forged")
    wrong = chatwork_signature(body, token=base64.b64encode(b"another key").decode())
    assert request(f"{server.url}/chatwork", body, headers={"X-ChatWorkWebhookSignature": wrong})[0] == 401
    assert request(f"{server.url}/chatwork", body)[0] == 401
    unrouted = chatwork_event("elsewhere", room=999)
    headers = {"X-ChatWorkWebhookSignature": chatwork_signature(unrouted)}
    assert request(f"{server.url}/chatwork", unrouted, headers=headers)[0] == 200
    assert inboxes.messages == []
