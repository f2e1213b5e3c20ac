"""The dashboard's ASGI application (Starlette): a static single page, and its read-only JSON API.

Routes (every one answers GET and HEAD only; anything else is 405, the dashboard decides nothing)::

    /                               the page (static/index.html)
    /static/<file>                  its script and style sheet (no CDN, no build step)
    /api/org                        the Org view        (DashboardData.org_view)
    /api/anima/<name>               an Anima's page     (DashboardData.anima_view)
    /api/anima/<name>/memory/<sha>  one memory commit   (DashboardData.memory_commit)
    /api/work?type=&anima=&reason=  the Work view       (DashboardData.work_view)
    /api/plan                       the Plan view       (DashboardData.plan_view)
    /api/plan/<before|after>.svg    the org chart before/after the plan

Security (docs/dashboard.md): with a ``token`` every request must carry it (``Authorization: Bearer``, or
the HttpOnly cookie that ``/?token=…`` sets), compared in constant time; without one, the Host header must
name a loopback address (a page elsewhere cannot reach the dashboard through DNS rebinding). Every
response carries a Content-Security-Policy that allows only this origin's script and no inline code; the
page writes untrusted text with ``textContent`` only. Every JSON body has the org's secret values (its env
file's, the environment's keys) replaced before it leaves (:class:`Redactor`).
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from orgctl.cli.dashboard.data import DashboardData, NotFound

COOKIE = "orgctl_dashboard"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|WEBHOOK)", re.IGNORECASE)
MIN_SECRET = 8  # shorter values are not scrubbed: they would blank ordinary words
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def static_dir() -> Path:
    """The folder of the page's files, inside the installed package."""
    return Path(str(files("orgctl.cli.dashboard") / "static"))


class Redactor:
    """Replaces known secret values in a response body: the org's env file values and the environment's
    variables whose names say key/token/secret/password (at least :data:`MIN_SECRET` characters)."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET}, key=len, reverse=True)
        self._escaped = [json.dumps(v)[1:-1] for v in self.values]

    @classmethod
    def for_org(cls, root: Path, env: Mapping[str, str] = os.environ) -> Redactor:
        """The secrets of the org at ``root``: its env file (when it is readable) and ``env``'s secret-named
        variables."""
        from orgctl.errors import OrgctlError
        from orgctl.state.envfiles import load_env_file

        try:
            from_file = load_env_file(root, env={k: v for k, v in env.items() if k == "ORGCTL_ENV_FILE"})
        except (OrgctlError, OSError):
            from_file = {}
        named = [v for k, v in env.items() if SECRET_NAME.search(k)]
        return cls([*from_file.values(), *named])

    def scrub(self, body: str) -> str:
        """``body`` (JSON text or SVG) with every secret value replaced by ``[redacted]``."""
        for escaped in self._escaped:
            if escaped in body:
                body = body.replace(escaped, "[redacted]")
        return body


def hostname(header: str) -> str:
    """The host of a Host header, lower case, without its port (``[::1]:8788`` -> ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if ":" in header else header


class Guard:
    """ASGI middleware: the read-only, token and Host checks, and the security headers on every response."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: Iterable[str]) -> None:
        self.app, self.token = app, token
        self.allowed_hosts = {f"[{h}]" if ":" in h and not h.startswith("[") else h for h in
                              (h.lower() for h in allowed_hosts)}

    def _refusal(self, scope: Scope) -> Response | None:
        request = Request(scope)
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("the dashboard is read-only: decide with the CLI", status_code=405,
                                     headers={"Allow": "GET, HEAD"})
        if self.token is None:
            if hostname(request.headers.get("host", "")) not in self.allowed_hosts:
                return PlainTextResponse("unknown host: open the dashboard at its loopback address", 421)
            return None
        offered = [request.headers.get("authorization", "").removeprefix("Bearer ").strip(),
                   request.cookies.get(COOKIE, ""), request.query_params.get("token", "")]
        if not any(o and hmac.compare_digest(o.encode(), self.token.encode()) for o in offered):
            return PlainTextResponse("a token is required: open the address `orgctl dashboard` printed, or send "
                                     "Authorization: Bearer <token>", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        if request.query_params.get("token") and request.url.path == "/":  # to the cookie, out of the address bar
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            return response
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                                       if k.lower().encode() not in present]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)


def create_app(data: DashboardData, *, token: str | None = None,
               allowed_hosts: Iterable[str] = LOOPBACK_HOSTS, redactor: Redactor | None = None) -> ASGIApp:
    """The dashboard over ``data``. ``token``: required on every request when given (else the Host must be
    one of ``allowed_hosts``). ``redactor``: the secret values scrubbed from every body (default: the org's)."""
    from starlette.concurrency import run_in_threadpool

    scrub = redactor or Redactor.for_org(data.root)
    if token is not None:  # given with --token it is in no environment variable: never echo it either
        scrub = Redactor([*scrub.values, token])

    def reply(value: Any) -> Response:
        return Response(scrub.scrub(json.dumps(value, separators=(",", ":"), default=str)),
                        media_type="application/json")

    async def view(compute: Any) -> Response:
        try:
            return reply(await run_in_threadpool(compute))
        except NotFound as e:
            return JSONResponse({"error": e.message}, status_code=404)

    async def page(request: Request) -> Response:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    async def org(request: Request) -> Response:
        return await view(data.org_view)

    async def anima(request: Request) -> Response:
        return await view(lambda: data.anima_view(request.path_params["name"]))

    async def memory(request: Request) -> Response:
        return await view(lambda: data.memory_commit(request.path_params["name"],
                                                              request.path_params["sha"]))

    async def work(request: Request) -> Response:
        q = request.query_params
        return await view(lambda: data.work_view(event_type=q.get("type") or None,
                                                          anima=q.get("anima") or None, reason=q.get("reason") or None))

    async def plan(request: Request) -> Response:
        return await view(data.plan_view)

    async def chart(request: Request) -> Response:
        try:
            svg = await run_in_threadpool(data.plan_chart, request.path_params["which"])
        except NotFound as e:
            return JSONResponse({"error": e.message}, status_code=404)
        return Response(scrub.scrub(svg), media_type="image/svg+xml")

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": "no such view"}, status_code=404)

    app = Starlette(routes=[
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/api/org", org, methods=["GET", "HEAD"]),
        Route("/api/anima/{name}", anima, methods=["GET", "HEAD"]),
        Route("/api/anima/{name}/memory/{sha}", memory, methods=["GET", "HEAD"]),
        Route("/api/work", work, methods=["GET", "HEAD"]),
        Route("/api/plan", plan, methods=["GET", "HEAD"]),
        Route("/api/plan/{which}.svg", chart, methods=["GET", "HEAD"]),
        Route("/api/{rest:path}", missing, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=static_dir(), follow_symlink=False), name="static"),
    ])
    return Guard(app, token=token, allowed_hosts=allowed_hosts)
