"""Inbound webhooks: messages from outside the org into an Anima's inbox, always untrusted.

A CLI command (or the supervisor) runs an :class:`InboundServer` on loopback,
usually behind a tunnel or reverse proxy that terminates TLS. Each accepted
request becomes one call of the ``deliver`` callback, which writes the
message durably into the Anima's inbox and returns its id; everything that
arrives here is untrusted by definition, and the caller marks it so.

It is built on the standard library's ``http.server`` (no new dependency),
one thread per request, HTTP/1.0 (one request per connection). Every sender
must prove itself before anything is delivered: a bearer token for the
generic endpoint, Slack's v0 request signature, or Chatwork's webhook
signature. Bodies are bounded (``max_body``) and read in full before any
answer, names in paths are checked against a strict pattern and never used as
paths here, secrets are compared in constant time and never logged or echoed,
and request logging goes to ``logging.getLogger("orgctl.receiving")``.

Endpoints (all answers are JSON):

* ``POST /v1/inbox/<anima>`` -- ``Authorization: Bearer <token>``, body
  ``{"text": str, "from": str?}`` -> 202 ``{"id": ...}``;
* ``POST /slack/events`` -- Slack Events API, when a signing secret is set;
* ``POST /chatwork`` -- Chatwork webhooks, when a Chatwork token is set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orgctl.errors import RuntimeFailure

log = logging.getLogger("orgctl.receiving")

MAX_TEXT = 4000
"""Characters of an inbound message that are delivered; the rest is cut."""

MAX_SENDER = 200
SLACK_MAX_SKEW = 300
"""Seconds a Slack request timestamp may be away from now before it counts as a replay."""

ANIMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_INBOX_PREFIX = "/v1/inbox/"
_DRAIN_LIMIT = 1024 * 1024
_POLL = 0.1  # seconds: how soon stop() is noticed


@dataclass(frozen=True)
class InboundMessage:
    """One message from outside, for ``deliver``.

    ``text`` is clipped to :data:`MAX_TEXT` characters; ``sender`` is the
    external sender id as given (``"slack:U123"``, ``"chatwork:456"``, or the
    webhook's ``from`` field, default ``"webhook"``); ``source`` is
    ``"webhook"``, ``"slack"`` or ``"chatwork"``. All of it is untrusted.
    """

    anima: str
    text: str
    sender: str
    source: str


class InboundServer:
    """A small HTTP endpoint that turns authenticated requests into ``deliver`` calls.

    ``deliver`` returns the new message's id and raises ``KeyError`` for an
    unknown Anima (answered 404 on the webhook endpoint; ignored with 200 for
    Slack and Chatwork, which would otherwise retry). It runs on a request
    thread, so it must be thread-safe, and quick: Slack retries after 3 s.
    ``token`` is the bearer token of ``/v1/inbox``; ``slack_routes`` maps a
    Slack channel id and ``chatwork_routes`` a Chatwork room id (as a string)
    to an Anima name; ``max_body`` is in bytes. The socket is bound here, so
    :attr:`url` is known at once (``port=0`` picks a free port).

    Raises ValueError for an empty token or a Chatwork token that is not
    base64, and :class:`RuntimeFailure` when the address cannot be bound.
    """

    def __init__(self, *, deliver: Callable[[InboundMessage], str], token: str, host: str = "127.0.0.1",
                 port: int = 0, slack_signing_secret: str | None = None, slack_routes: Mapping[str, str] | None = None,
                 chatwork_token: str | None = None, chatwork_routes: Mapping[str, str] | None = None,
                 max_body: int = 64 * 1024) -> None:
        if not token:
            raise ValueError("the inbound webhook token must not be empty")
        self._deliver = deliver
        self._max_body = max_body
        self._token = token.encode()
        self._slack_secret = slack_signing_secret.encode() if slack_signing_secret else None
        self._slack_routes = dict(slack_routes or {})
        self._chatwork_key: bytes | None = None
        if chatwork_token:
            try:
                self._chatwork_key = base64.b64decode(chatwork_token, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError("the Chatwork webhook token is not base64 (copy it from the webhook settings)") from e
        self._chatwork_routes = {str(k): v for k, v in (chatwork_routes or {}).items()}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        try:
            self._httpd = _HTTPServer((host, port), _Handler)
        except OSError as e:
            raise RuntimeFailure(f"cannot listen on {host}:{port}: {e.strerror or e}",
                                 hint="choose another port, or stop whatever listens there") from e
        self._httpd.inbound = self
        self._thread: threading.Thread | None = None
        self._running = False

    @property
    def url(self) -> str:
        """``http://host:port`` as bound (the real port when ``port=0``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> None:
        """Serve in a daemon thread until :meth:`stop`."""
        if self._running:
            return
        self._running = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": _POLL},
                                        name="orgctl-inbound", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread) or an exception; then close."""
        self._running = True
        try:
            self._httpd.serve_forever(poll_interval=_POLL)
        finally:
            self._running = False
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and close the listening socket. Safe to call more than once."""
        if self._running:
            self._httpd.shutdown()
            self._running = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    # ------------------------------------------------------------ checks, called by the handler

    def _bearer_ok(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def _slack_enabled(self) -> bool:
        return self._slack_secret is not None

    def _slack_signature_ok(self, *, timestamp: str | None, signature: str | None, body: bytes) -> bool:
        """Slack's v0 scheme (https://api.slack.com/authentication/verifying-requests-from-slack)."""
        if self._slack_secret is None or not timestamp or not signature:
            return False
        try:
            sent = int(timestamp)
        except ValueError:
            return False
        if abs(time.time() - sent) > SLACK_MAX_SKEW:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._slack_secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.strip().encode())

    def _chatwork_enabled(self) -> bool:
        return self._chatwork_key is not None

    def _chatwork_signature_ok(self, *, signature: str | None, body: bytes) -> bool:
        """base64(HMAC-SHA256(key=base64decode(token), body)), from the header or the query string."""
        if self._chatwork_key is None or not signature:
            return False
        expected = base64.b64encode(hmac.new(self._chatwork_key, body, hashlib.sha256).digest())
        return hmac.compare_digest(expected, signature.strip().encode())

    def _first_time(self, event_id: str) -> bool:
        """False when ``event_id`` was seen among the last 1024 (Slack re-sends events it thinks were lost)."""
        with self._seen_lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            if len(self._seen) > 1024:
                self._seen.popitem(last=False)
            return True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    inbound: InboundServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("inbound request from %s failed", client_address[0], exc_info=True)


class _Reply(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "orgctl"
    sys_version = ""
    timeout = 15  # seconds a client may take to send its request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "").split("?", 1)[0]  # the query may carry a signature: keep it out of logs
        log.info("%s %s %s -> %s", self.client_address[0], getattr(self, "command", ""), path[:200], code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request, unknown method), as JSON like every other answer."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def do_POST(self) -> None:  # http.server dispatches on the method name
        path, _, query = self.path.partition("?")
        try:
            if path.startswith(_INBOX_PREFIX):
                self._reply(*self._inbox(urllib.parse.unquote(path[len(_INBOX_PREFIX):])))
            elif path == "/slack/events" and self.server.inbound._slack_enabled():
                self._reply(*self._slack())
            elif path == "/chatwork" and self.server.inbound._chatwork_enabled():
                self._reply(*self._chatwork(query))
            else:
                self._read_body()
                self._reply(404, {"error": "not found"})
        except _Reply as r:
            self._reply(r.status, r.payload)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        inbound = self.server.inbound
        if (path.startswith(_INBOX_PREFIX) or (path == "/slack/events" and inbound._slack_enabled())
                or (path == "/chatwork" and inbound._chatwork_enabled())):
            self._reply(405, {"error": "method not allowed; use POST"}, allow="POST")
        else:
            self._reply(404, {"error": "not found"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    # ------------------------------------------------------------ endpoints: (status, payload)

    def _inbox(self, name: str) -> tuple[int, dict[str, Any]]:
        body = self._read_body()
        inbound = self.server.inbound
        if not inbound._bearer_ok(self.headers.get("Authorization")):
            return 401, {"error": "missing or wrong bearer token"}
        if not ANIMA_NAME.match(name) or ".." in name:
            return 400, {"error": "invalid Anima name in the path"}
        data = _json_object(body)
        text, sender = data.get("text"), data.get("from", "webhook")
        if not isinstance(text, str) or not text.strip():
            return 400, {"error": "`text` must be a non-empty string"}
        if not isinstance(sender, str) or not sender.strip():
            return 400, {"error": "`from` must be a non-empty string"}
        message_id = self._deliver(InboundMessage(anima=name, text=text[:MAX_TEXT], sender=sender[:MAX_SENDER],
                                                  source="webhook"))
        if message_id is None:
            return 404, {"error": "no such Anima"}
        return 202, {"id": message_id}

    def _slack(self) -> tuple[int, dict[str, Any]]:
        body = self._read_body()
        inbound = self.server.inbound
        if not inbound._slack_signature_ok(timestamp=self.headers.get("X-Slack-Request-Timestamp"),
                                          signature=self.headers.get("X-Slack-Signature"), body=body):
            return 401, {"error": "bad or stale Slack signature"}
        data = _json_object(body)
        if data.get("type") == "url_verification":
            return 200, {"challenge": data.get("challenge")}
        event = data.get("event")
        if data.get("type") != "event_callback" or not isinstance(event, dict) or event.get("type") != "message":
            return 200, {"ok": True, "ignored": "not a message event"}
        if event.get("bot_id") or event.get("subtype"):
            return 200, {"ok": True, "ignored": "bot message or subtype"}  # never answer ourselves: no loops
        channel, user, text = event.get("channel"), event.get("user"), event.get("text")
        if not isinstance(text, str) or not text.strip() or not isinstance(user, str):
            return 200, {"ok": True, "ignored": "no text"}
        anima = inbound._slack_routes.get(channel) if isinstance(channel, str) else None
        if anima is None:
            return 200, {"ok": True, "ignored": "channel not routed"}
        event_id = data.get("event_id")
        if isinstance(event_id, str) and not inbound._first_time(event_id):
            return 200, {"ok": True, "ignored": "duplicate event"}
        message_id = self._deliver(InboundMessage(anima=anima, text=text[:MAX_TEXT],
                                                  sender=f"slack:{user}"[:MAX_SENDER], source="slack"))
        if message_id is None:
            return 200, {"ok": True, "ignored": "unknown Anima"}
        return 200, {"ok": True, "id": message_id}

    def _chatwork(self, query: str) -> tuple[int, dict[str, Any]]:
        body = self._read_body()
        inbound = self.server.inbound
        signature = self.headers.get("X-ChatWorkWebhookSignature") or _query_value(query, "chatwork_webhook_signature")
        if not inbound._chatwork_signature_ok(signature=signature, body=body):
            return 401, {"error": "bad Chatwork signature"}
        event = _json_object(body).get("webhook_event")
        if not isinstance(event, dict):
            return 400, {"error": "`webhook_event` must be an object"}
        room, account, text = event.get("room_id"), event.get("account_id"), event.get("body")
        if not isinstance(text, str) or not text.strip() or isinstance(room, bool) or not isinstance(room, int | str):
            return 200, {"ok": True, "ignored": "no text"}
        anima = inbound._chatwork_routes.get(str(room))
        if anima is None:
            return 200, {"ok": True, "ignored": "room not routed"}
        message_id = self._deliver(InboundMessage(anima=anima, text=text[:MAX_TEXT],
                                                  sender=f"chatwork:{account}"[:MAX_SENDER], source="chatwork"))
        if message_id is None:
            return 200, {"ok": True, "ignored": "unknown Anima"}
        return 200, {"ok": True, "id": message_id}

    # ------------------------------------------------------------ plumbing

    def _deliver(self, message: InboundMessage) -> str | None:
        """The id from ``deliver``; None for an unknown Anima. Any other failure is a 500."""
        try:
            return str(self.server.inbound._deliver(message))
        except KeyError:
            log.warning("inbound %s message for unknown Anima %r dropped", message.source, message.anima)
            return None
        except Exception as e:
            log.exception("delivering an inbound %s message to %r failed", message.source, message.anima)
            raise _Reply(500, {"error": "the message could not be stored"}) from e

    def _read_body(self) -> bytes:
        """The whole body, at most ``max_body`` bytes; 411 without Content-Length, 413 when larger."""
        if self.headers.get("Transfer-Encoding"):
            raise _Reply(411, {"error": "send a Content-Length, not a chunked body"})
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            raise _Reply(400, {"error": "bad Content-Length"}) from None
        if length < 0:
            raise _Reply(400, {"error": "bad Content-Length"})
        if length > self.server.inbound._max_body:
            if length <= _DRAIN_LIMIT:  # read it anyway, so closing does not reset the connection under the answer
                self.rfile.read(length)
            raise _Reply(413, {"error": f"body larger than {self.server.inbound._max_body} bytes"})
        return self.rfile.read(length)

    def _reply(self, status: int, payload: dict[str, Any], *, allow: str | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(data)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Reply(400, {"error": "the body is not valid JSON"}) from None
    if not isinstance(data, dict):
        raise _Reply(400, {"error": "the body must be a JSON object"})
    return data


def _query_value(query: str, key: str) -> str | None:
    """A raw query parameter, percent-decoded but with ``+`` kept (base64 contains ``+``)."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == key:
            return urllib.parse.unquote(value)
    return None
