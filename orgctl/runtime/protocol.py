"""The supervisor's wire protocol: one JSON object per line over a Unix stream socket.

Every request is ``{"op": str, ...}`` and gets exactly one reply,
``{"ok": true, ...}`` or ``{"ok": false, "error": str}``. An Anima also keeps
one ``hello`` connection open for its whole life: when it reads EOF there,
its supervisor is gone and it exits (so no Anima outlives its supervisor).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from orgctl.errors import RuntimeFailure

MAX_LINE = 16 * 1024 * 1024


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, ensure_ascii=False).encode() + b"\n")


def recv(reader: Any) -> dict[str, Any] | None:
    """Read one message from a binary file-like ``reader``; None at EOF."""
    line = reader.readline(MAX_LINE)
    if not line:
        return None
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("protocol message must be a JSON object")
    return data


def request(socket_path: Path, op: str, *, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
    """Send one request and return the reply's fields.

    ``timeout`` is in seconds, for connecting and for the reply.
    Raises :class:`RuntimeFailure` when the supervisor is unreachable, times
    out, or answers ``ok: false``.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            send(sock, {"op": op, **fields})
            with sock.makefile("rb") as reader:
                reply = recv(reader)
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"supervisor at {socket_path} did not answer {op!r}: {e}") from e
    if reply is None:
        raise RuntimeFailure(f"supervisor closed the connection during {op!r}")
    if not reply.get("ok"):
        raise RuntimeFailure(f"supervisor refused {op!r}: {reply.get('error', 'unknown error')}",
                             hint=reply.get("hint"))
    return reply


def reachable(socket_path: Path) -> bool:
    """True when a supervisor answers ``ping`` on ``socket_path`` within 2 s."""
    try:
        request(socket_path, "ping", timeout=2.0)
    except RuntimeFailure:
        return False
    return True
