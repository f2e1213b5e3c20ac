"""``call_human``: the top-level Anima tells a human that it needs one.

The runtime calls :func:`notify_human` when the Anima at the top of the org
chart uses its ``call_human`` tool; the channels come from ``notifications:``
in ``org.yaml`` (:class:`HumanChannel`). Three kinds of channel are spoken
with the standard library alone (``urllib.request``), so no new dependency:

* ``webhook`` -- a generic JSON POST that any automation tool can receive;
* ``ntfy`` -- ntfy's publish API, the body is the message and the title, tags
  and click link go in headers (https://docs.ntfy.sh/publish/);
* ``slack`` -- Slack's Web API ``chat.postMessage`` with a bot token
  (https://api.slack.com/methods/chat.postMessage).

It is built to never take the caller down: every channel is tried on its
own, and whatever goes wrong (network, HTTP status, a missing token) becomes
a :class:`Delivery` with ``ok=False`` rather than an exception. Tokens live in
environment variables named by ``token_env``, never in spec files, and never
appear in a Delivery or in a log. Redirects are not followed, so a bearer
token is never replayed to a host nobody configured.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orgctl.desired.models import HumanChannel

MAX_MESSAGE = 2000
"""Characters of a message that are sent; the rest is cut and marked with an ellipsis."""

MAX_TITLE = 200
"""Characters of a title that are sent (titles end up in HTTP headers)."""

SLACK_API = "https://slack.com/api"
USER_AGENT = "orgctl"

_MAX_REPLY = 64 * 1024


@dataclass(frozen=True)
class Notification:
    """What the Anima says to the human.

    ``message`` is clipped to :data:`MAX_MESSAGE` characters when sent;
    ``context_url`` links to the context (a ``file://`` path of the task or
    an http URL), or None.
    """

    anima: str
    message: str
    context_url: str | None
    title: str
    org: str


@dataclass(frozen=True)
class Delivery:
    """The outcome on one channel.

    ``channel`` is :meth:`HumanChannel.describe` (no secrets); ``status`` the
    HTTP status, None when there was no response; ``error`` is '' when ok.
    """

    channel: str
    ok: bool
    status: int | None
    error: str


def notify_human(notification: Notification, *, channels: Sequence[HumanChannel], env: Mapping[str, str],
                 timeout: float = 10.0) -> list[Delivery]:
    """Send ``notification`` on every channel, in order; one :class:`Delivery` per channel.

    ``env`` is where token variables are looked up (``os.environ`` in
    production); a channel whose ``token_env`` is declared but unset or empty
    is not sent to. ``timeout`` is in seconds, per request. Never raises for
    network or HTTP failures: they are reported in the Delivery.
    """
    return [_deliver(notification, channel=channel, env=env, timeout=timeout) for channel in channels]


def call_human_on(channels: Sequence[HumanChannel], *, anima: str, org: str, message: str, title: str = "",
                  context_url: str | None, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """``call_human`` for ``anima``: :func:`notify_human` with the default title, as JSON-ready dicts.

    Returns one ``{"channel", "ok", "status", "error"}`` per channel, for events and the supervisor's
    socket. The one place both the supervisor and an in-process Organization send from.
    """
    note = Notification(anima=anima, message=message, context_url=context_url,
                        title=title or f"{anima} needs a human", org=org)
    return [{"channel": d.channel, "ok": d.ok, "status": d.status, "error": d.error}
            for d in notify_human(note, channels=channels, env=env)]


def _deliver(n: Notification, *, channel: HumanChannel, env: Mapping[str, str], timeout: float) -> Delivery:
    label = channel.describe()
    token = env.get(channel.token_env, "") if channel.token_env else ""
    if channel.token_env and not token:
        # A declared token is needed (slack always declares one): sending without it would only be refused.
        return Delivery(label, False, None, f"not sent: environment variable {channel.token_env} is not set")
    message = _clip(n.message, MAX_MESSAGE)
    title = _clip(_one_line(n.title), MAX_TITLE)
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {_one_line(token)}"
    if channel.type == "webhook":
        url = channel.url or ""
        body = json.dumps({"org": n.org, "anima": n.anima, "title": title, "message": message,
                           "context_url": n.context_url,
                           "sent_at": datetime.now(UTC).isoformat(timespec="seconds")}, ensure_ascii=False)
        headers["Content-Type"] = "application/json"
    elif channel.type == "ntfy":
        url = channel.url or ""
        body = message
        headers.update({"Title": _header_text(title), "Tags": "robot", "Content-Type": "text/plain; charset=utf-8"})
        if n.context_url:
            headers["Click"] = _header_url(n.context_url)
    else:
        url = (channel.url or SLACK_API).rstrip("/") + "/chat.postMessage"
        text = f"*{_slack_escape(title)}*\n{_slack_escape(message)}"
        if n.context_url:
            text += f"\nContext: {_slack_escape(n.context_url)}"
        body = json.dumps({"channel": channel.channel, "text": text}, ensure_ascii=False)
        headers["Content-Type"] = "application/json; charset=utf-8"
    status, reply, error = _post(url, body=body.encode(), headers=headers, timeout=timeout)
    if error:
        return Delivery(label, False, status, error)
    if channel.type == "slack":
        try:
            answer: Any = json.loads(reply)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Delivery(label, False, status, "Slack answered with something that is not JSON")
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            detail = answer.get("error", "unknown error") if isinstance(answer, dict) else "unknown error"
            return Delivery(label, False, status, f"Slack refused the message: {_clip(str(detail), 200)}")
    return Delivery(label, True, status, "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report 3xx as an error instead of following it (and re-sending Authorization elsewhere)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, bytes, str]:
    """POST ``body``; returns ``(status, first 64 KiB of the reply, error)``, error '' on a 2xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(_MAX_REPLY), ""
    except urllib.error.HTTPError as e:
        with e:
            return e.code, b"", f"HTTP {e.code} {_one_line(str(e.reason))}".strip()
    except urllib.error.URLError as e:
        return None, b"", f"could not reach the server: {_one_line(str(e.reason))}"
    except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets, garbled answers
        return None, b"", f"request failed: {_one_line(str(e)) or type(e).__name__}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    """Remove CR, LF and other control characters: header values must not start a new header."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _header_text(text: str) -> str:
    """A header value; non-Latin-1 text as an RFC 2047 encoded-word, which ntfy decodes."""
    text = _one_line(text)
    if text.isascii():
        return text
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode("ascii") + "?="


def _header_url(url: str) -> str:
    return urllib.parse.quote(_one_line(url), safe="!#$%&'()*+,/:;=?@[]~")


def _slack_escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` so an Anima cannot forge mentions such as ``<!channel>``.

    Source: https://api.slack.com/reference/surfaces/formatting#escaping
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
