"""``call_human`` delivery against real HTTP servers on loopback.

Every test starts real ``http.server.ThreadingHTTPServer`` instances on
127.0.0.1 (port 0) that record the requests they get, so what is checked is
what actually went over the wire: method, path, headers and body.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from orgctl.runtime.notifying import MAX_MESSAGE, HumanChannel, Notification, notify_human


@dataclass
class Seen:
    method: str
    path: str
    headers: Message
    body: bytes


@dataclass
class Recorder:
    """A loopback HTTP server that records each request and answers ``status`` with ``reply``."""

    status: int = 200
    reply: bytes = b'{"ok": true}'
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.requests.append(Seen(self.command, self.path, self.headers, body))
                self.send_response(recorder.status)
                for k, v in recorder.extra_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.reply)))
                self.end_headers()
                self.wfile.write(recorder.reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.thread.join()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Recorder]]:
    started: list[Recorder] = []

    def start(**kwargs: object) -> Recorder:
        started.append(Recorder(**kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for r in started:
        r.close()


@pytest.fixture
def note() -> Notification:
    return Notification(anima="alice", message="The deploy is blocked on a credential.",
                        context_url="https://example.com/tasks/42", title="orgctl: alice needs a human", org="acme")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_posts_json_with_bearer_token(serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve()
    channel = HumanChannel(type="webhook", url=f"{server.url}/hooks/secret-path", token_env="HOOK_TOKEN")
    [delivery] = notify_human(note, channels=[channel], env={"HOOK_TOKEN": "t0ken"})

    assert delivery.ok and delivery.status == 200 and delivery.error == ""
    assert "secret-path" not in delivery.channel and delivery.channel == f"webhook {server.url}"
    [seen] = server.requests
    assert (seen.method, seen.path) == ("POST", "/hooks/secret-path")
    assert seen.headers["Authorization"] == "Bearer t0ken"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "orgctl"
    body = json.loads(seen.body)
    assert set(body) == {"org", "anima", "title", "message", "context_url", "sent_at"}
    assert body["org"] == "acme" and body["anima"] == "alice" and body["title"] == "orgctl: alice needs a human"
    assert body["message"] == note.message and body["context_url"] == "https://example.com/tasks/42"
    assert body["sent_at"].endswith("+00:00")


def test_webhook_without_token_env_sends_no_authorization_and_clips_the_message(
        serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve()
    long = Notification(anima="alice", message="x" * 5000, context_url=None, title="t", org="acme")
    [delivery] = notify_human(long, channels=[HumanChannel(type="webhook", url=server.url)], env={})
    assert delivery.ok
    [seen] = server.requests
    assert "Authorization" not in seen.headers
    body = json.loads(seen.body)
    assert len(body["message"]) == MAX_MESSAGE and body["context_url"] is None


def test_ntfy_body_is_the_message_with_title_click_and_tags_headers(serve: Callable[..., Recorder],
                                                                     note: Notification) -> None:
    server = serve()
    channel = HumanChannel(type="ntfy", url=f"{server.url}/acme-alerts")
    [delivery] = notify_human(note, channels=[channel], env={})

    assert delivery.ok and delivery.channel == f"ntfy {server.url}/acme-alerts"
    [seen] = server.requests
    assert seen.path == "/acme-alerts"
    assert seen.body.decode() == note.message
    assert seen.headers["Title"] == "orgctl: alice needs a human"
    assert seen.headers["Click"] == "https://example.com/tasks/42"
    assert seen.headers["Tags"] == "robot"
    assert "Authorization" not in seen.headers


def test_ntfy_headers_cannot_be_injected_and_unicode_titles_survive(serve: Callable[..., Recorder]) -> None:
    server = serve()
    evil = Notification(anima="alice", message="m", context_url="https://x.example/a\r\nX-Evil: 1",
                        title="hello\r\nX-Injected: yes", org="acme")
    unicode = Notification(anima="alice", message="m", context_url=None, title="Müller braucht Hilfe ✋", org="acme")
    channel = HumanChannel(type="ntfy", url=f"{server.url}/t", token_env="NTFY_TOKEN")
    deliveries = notify_human(evil, channels=[channel], env={"NTFY_TOKEN": "tk\nX-Also: no"})
    deliveries += notify_human(unicode, channels=[channel], env={"NTFY_TOKEN": "tk"})

    assert all(d.ok for d in deliveries)
    first, second = server.requests
    assert "X-Injected" not in first.headers and "X-Evil" not in first.headers and "X-Also" not in first.headers
    assert first.headers["Title"] == "hello X-Injected: yes"
    assert "\n" not in first.headers["Click"] and "\n" not in first.headers["Authorization"]
    [(raw, charset)] = decode_header(second.headers["Title"])
    assert isinstance(raw, bytes) and raw.decode(charset or "ascii") == "Müller braucht Hilfe ✋"


def test_slack_posts_chat_postmessage_with_bot_token(serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve()
    channel = HumanChannel(type="slack", url=f"{server.url}/api/", channel="C0123", token_env="SLACK_BOT_TOKEN")
    [delivery] = notify_human(note, channels=[channel], env={"SLACK_BOT_TOKEN": "xoxb-1-2"})

    assert delivery.ok and delivery.status == 200 and delivery.channel == "slack C0123"
    [seen] = server.requests
    assert seen.path == "/api/chat.postMessage"
    assert seen.headers["Authorization"] == "Bearer xoxb-1-2"
    assert seen.headers["Content-Type"].startswith("application/json")
    body = json.loads(seen.body)
    assert body["channel"] == "C0123"
    assert note.message in body["text"] and "orgctl: alice needs a human" in body["text"]
    assert "https://example.com/tasks/42" in body["text"]


def test_slack_ok_false_is_a_failure_with_slacks_error(serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve(reply=b'{"ok": false, "error": "channel_not_found"}')
    channel = HumanChannel(type="slack", url=server.url, channel="#nope", token_env="SLACK_BOT_TOKEN")
    [delivery] = notify_human(note, channels=[channel], env={"SLACK_BOT_TOKEN": "xoxb-1-2"})
    assert not delivery.ok and delivery.status == 200
    assert "channel_not_found" in delivery.error
    assert "xoxb" not in delivery.error


def test_slack_text_cannot_forge_mentions(serve: Callable[..., Recorder]) -> None:
    server = serve()
    n = Notification(anima="alice", message="<!channel> wake up & <@U1>", context_url=None, title="t", org="acme")
    channel = HumanChannel(type="slack", url=server.url, channel="C1", token_env="SLACK_BOT_TOKEN")
    notify_human(n, channels=[channel], env={"SLACK_BOT_TOKEN": "xoxb"})
    text = json.loads(server.requests[0].body)["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; wake up &amp; &lt;@U1&gt;" in text


def test_http_500_is_a_failure_with_its_status(serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve(status=500, reply=b'{"error": "boom"}')
    [delivery] = notify_human(note, channels=[HumanChannel(type="webhook", url=server.url)], env={})
    assert not delivery.ok and delivery.status == 500 and "500" in delivery.error


def test_redirects_are_not_followed(serve: Callable[..., Recorder], note: Notification) -> None:
    elsewhere = serve()
    server = serve(status=307, extra_headers={"Location": f"{elsewhere.url}/steal"})
    channel = HumanChannel(type="webhook", url=server.url, token_env="HOOK_TOKEN")
    [delivery] = notify_human(note, channels=[channel], env={"HOOK_TOKEN": "t0ken"})
    assert not delivery.ok and delivery.status == 307
    assert elsewhere.requests == []


def test_unreachable_server_is_a_failure_not_an_exception(note: Notification) -> None:
    channel = HumanChannel(type="ntfy", url=f"http://127.0.0.1:{free_port()}/topic")
    [delivery] = notify_human(note, channels=[channel], env={}, timeout=2.0)
    assert not delivery.ok and delivery.status is None and delivery.error


def test_a_server_that_does_not_speak_http_is_a_failure_not_an_exception(note: Notification) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer_garbage() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"this is not HTTP\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        channel = HumanChannel(type="webhook", url=f"http://127.0.0.1:{listener.getsockname()[1]}/")
        [delivery] = notify_human(note, channels=[channel], env={}, timeout=5.0)
        thread.join(timeout=5)
    assert not delivery.ok and delivery.status is None and delivery.error


def test_missing_token_env_makes_no_request(serve: Callable[..., Recorder], note: Notification) -> None:
    server = serve()
    channels = [HumanChannel(type="slack", url=server.url, channel="C1", token_env="SLACK_BOT_TOKEN"),
                HumanChannel(type="webhook", url=server.url, token_env="HOOK_TOKEN")]
    deliveries = notify_human(note, channels=channels, env={"HOOK_TOKEN": ""})
    assert [d.ok for d in deliveries] == [False, False]
    assert "SLACK_BOT_TOKEN is not set" in deliveries[0].error and "HOOK_TOKEN is not set" in deliveries[1].error
    assert all(d.status is None for d in deliveries)
    assert server.requests == []


def test_one_failing_channel_does_not_stop_the_next(serve: Callable[..., Recorder], note: Notification) -> None:
    broken, good = serve(status=503), serve()
    channels = [HumanChannel(type="webhook", url=f"http://127.0.0.1:{free_port()}/"),
                HumanChannel(type="ntfy", url=f"{broken.url}/t"),
                HumanChannel(type="slack", url=good.url, channel="C1", token_env="MISSING"),
                HumanChannel(type="ntfy", url=f"{good.url}/t")]
    deliveries = notify_human(note, channels=channels, env={}, timeout=2.0)
    assert [d.ok for d in deliveries] == [False, False, False, True]
    assert deliveries[1].status == 503
    assert [r.path for r in good.requests] == ["/t"]


@pytest.mark.parametrize(("fields", "needle"), [
    ({"type": "webhook"}, "needs `url`"),
    ({"type": "ntfy"}, "needs `url`"),
    ({"type": "ntfy", "url": "ftp://ntfy.example/t"}, "http:// or https://"),
    ({"type": "webhook", "url": "not a url"}, "http:// or https://"),
    ({"type": "webhook", "url": "https://x.example:99999/"}, "http:// or https://"),
    ({"type": "slack", "token_env": "SLACK_BOT_TOKEN"}, "needs `channel`"),
    ({"type": "slack", "channel": "C1"}, "needs `token_env`"),
    ({"type": "slack", "channel": "C1", "token_env": "xoxb-123-secret"}, "NAME of an environment variable"),
    ({"type": "email", "url": "https://x.example"}, "type"),
    ({"type": "webhook", "url": "https://x.example", "token": "inline"}, "token"),
])
def test_human_channel_validation(fields: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle) as excinfo:
        HumanChannel(**fields)  # type: ignore[arg-type]
    assert "xoxb-123-secret" not in str(excinfo.value)


def test_human_channel_is_frozen() -> None:
    channel = HumanChannel(type="ntfy", url="https://ntfy.sh/acme-alerts")
    with pytest.raises(ValidationError):
        channel.url = "https://evil.example/"


def test_channel_labels_carry_no_secrets() -> None:
    hook = HumanChannel(type="webhook", url="https://user:pw@hooks.example.com:8443/T000/B000/XXXX?key=k")
    ntfy = HumanChannel(type="ntfy", url="https://user:pw@ntfy.example/acme-alerts?auth=k")
    assert hook.describe() == "webhook https://hooks.example.com:8443"
    assert ntfy.describe() == "ntfy https://ntfy.example/acme-alerts"
