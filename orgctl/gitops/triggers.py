"""What wakes the controller besides its own clock: git refs moving, work-tree edits, webhooks.

* :class:`RefWatcher` -- watchdog (inotify) on the git directory whose refs carry the tracked
  branch: the checkout's for a local-only org, a bare remote's when it is on this machine. A commit
  is seen within milliseconds; the controller then checks the tip (one ``git rev-parse``).
* :class:`WorkTreeWatcher` -- watchdog on the checkout: an uncommitted edit to a spec file is
  *reported* (an ``UncommittedChange`` event), never applied: desired state is git, only git.
* :class:`WebhookReceiver` -- an HTTP endpoint for a forge's push events (``--listen ADDR``). Every
  request must carry GitHub's ``X-Hub-Signature-256`` (HMAC-SHA256 of the body with the shared
  secret), checked in constant time, as Flux's notification-controller ``Receiver`` of type
  ``github`` does; anything else is answered 401 and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("orgctl.controller")

MAX_BODY = 5 * 1024 * 1024  # bytes: GitHub caps webhook payloads at 25 MB; a push event is far smaller
DEBOUNCE = 1.0  # seconds of quiet before work-tree edits are reported


def _observer() -> Any:
    from watchdog.observers import Observer

    observer = Observer()
    observer.daemon = True
    return observer


class RefWatcher:
    """Calls ``on_change()`` whenever something under the git directories ``dirs`` changes (refs, packs)."""

    def __init__(self, dirs: list[Path], on_change: Callable[[], None]) -> None:
        from watchdog.events import FileSystemEventHandler

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if not str(event.src_path).endswith(".lock"):
                    on_change()

        self._observer = _observer()
        for d in dirs:
            self._observer.schedule(_Handler(), str(d), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def _is_spec_path(rel: str) -> bool:
    """Whether a path (relative to the checkout) is one a person edits as spec: not git's, not memory."""
    parts = rel.split("/")
    if parts[0] == ".git":
        return False
    return not (len(parts) >= 3 and parts[0] == "animas" and parts[2] == "memory")


class WorkTreeWatcher:
    """Reports uncommitted spec edits in ``checkout`` with ``report(files)`` after :data:`DEBOUNCE` s of quiet.

    ``list_changes()`` returns the uncommitted spec files (``git status``); a report is made when that
    list changes and is not empty, so an editor's save storm gives one event.
    """

    def __init__(self, checkout: Path, *, list_changes: Callable[[], list[str]],
                 report: Callable[[list[str]], None]) -> None:
        from watchdog.events import FileSystemEventHandler

        self.checkout = Path(checkout)
        self._list, self._report = list_changes, report
        self._due: float | None = None
        self._last: list[str] = []
        self._lock = threading.Lock()
        root = str(self.checkout)
        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                path = str(event.src_path)
                if path.startswith(root) and _is_spec_path(path[len(root):].lstrip("/")):
                    with watcher._lock:
                        watcher._due = time.monotonic() + DEBOUNCE

        self._observer = _observer()
        self._observer.schedule(_Handler(), root, recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def check(self) -> None:
        """Report now if edits have settled (called from the controller's loop, at least once a second)."""
        with self._lock:
            if self._due is None or time.monotonic() < self._due:
                return
            self._due = None
        try:
            changed = sorted(self._list())
        except Exception:  # a git status that failed (mid-rebase, a lock): try again on the next edit
            log.debug("listing uncommitted changes failed", exc_info=True)
            return
        if changed and changed != self._last:
            self._report(changed)
        self._last = changed


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is ``sha256=<hex HMAC-SHA256 of body with secret>`` (GitHub's scheme)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip())


class WebhookReceiver:
    """Receives push events on ``(host, port)``; a signed push to ``refs/heads/<branch>`` calls ``on_push()``.

    Answers: 202 for a push it acted on or an event it ignores, 200 for ``ping``, 401 for a missing
    or wrong signature, 413 for a body over :data:`MAX_BODY`, 400 for a body that is not JSON.
    ``port`` 0 picks a free port (see :attr:`address`). Raises OSError when the address is taken.
    """

    def __init__(self, host: str, port: int, *, secret: bytes, branch: str, on_push: Callable[[str], None]) -> None:
        if not secret:
            raise ValueError("a webhook receiver needs a secret")
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "orgctl-receiver"

            def log_message(self, format: str, *args: Any) -> None:
                log.info("webhook %s: " + format, self.client_address[0], *args)

            def _answer(self, code: int, text: str) -> None:
                body = json.dumps({"message": text}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    self._answer(413, "payload too large")
                    return
                body = self.rfile.read(size)
                if not signature_ok(secret, body, self.headers.get("X-Hub-Signature-256")):
                    self._answer(401, "signature missing or wrong")
                    return
                kind = self.headers.get("X-GitHub-Event", "push")
                if kind == "ping":
                    self._answer(200, "pong")
                    return
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    self._answer(400, "body is not JSON")
                    return
                ref = payload.get("ref") if isinstance(payload, dict) else None
                if kind == "push" and ref == f"refs/heads/{receiver.branch}":
                    on_push(str(payload.get("after") or "")[:40])
                    self._answer(202, f"reconciling {ref}")
                else:
                    self._answer(202, f"ignored: {kind} {ref or ''}".strip())

            def do_GET(self) -> None:  # noqa: N802
                self._answer(405, "POST push events here")

        self.branch = branch
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT`` for loopback; ``[::1]:PORT`` for IPv6) as a pair, the port 0-65535.
    Raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return (host.strip("[]") or "127.0.0.1"), int(port)
