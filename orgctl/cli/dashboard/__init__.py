"""``orgctl dashboard [DIR]``: the org in the browser, read-only -- the Org, Anima, Work and Plan views.

The server is Starlette on uvicorn (installed with the model server), bound to loopback by default
(:data:`DEFAULT_LISTEN`); another address needs ``--token`` (or ``ORGCTL_DASHBOARD_TOKEN``). The page polls
its JSON every two seconds, so a task added with ``orgctl task add`` shows without a reload. It reads the
state dir and the runtime's clone (:mod:`.data`), and works with the runtime up, down, or in tick mode (from
the ``orgctl/state`` branch, copied into a private folder removed on exit). docs/dashboard.md.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import org_dir_argument, resolve
from orgctl.errors import OrgctlError

DEFAULT_PORT = 8788  # beside `orgctl receive`'s 8787: both can run on one machine
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
TOKEN_ENV = "ORGCTL_DASHBOARD_TOKEN"
MIN_TOKEN = 16  # characters: a token someone could guess protects nothing


def parse_listen(value: str) -> tuple[str, int]:
    """``--listen`` as ``(host, port)`` (:func:`orgctl.gitops.triggers.parse_address`, as the controller's
    ``--listen``). Raises OrgctlError."""
    from orgctl.gitops.triggers import parse_address

    try:
        return parse_address(value)
    except ValueError:
        raise OrgctlError(f"--listen {value!r}: use HOST:PORT, e.g. {DEFAULT_LISTEN}") from None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``(host, port)``. Raises OrgctlError when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OrgctlError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                          hint=f"choose another port: --listen {host}:0 picks a free one") from None
    sock.listen(64)
    return sock


@cli.command()
@org_dir_argument
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Where to serve. Loopback unless --token is given; port 0 picks a free one.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in the default browser.")
@click.option("--token", default=None, envvar=TOKEN_ENV, show_envvar=True, metavar="TOKEN",
              help=f"Require TOKEN on every request (at least {MIN_TOKEN} characters); needed for a non-loopback "
                   "address.")
def dashboard(org_dir: Path, listen: str, open_browser: bool, token: str | None) -> None:
    """Serve the org's read-only dashboard: the org chart live, each Anima, the work, the plan."""
    import uvicorn

    from orgctl.cli.dashboard.app import LOOPBACK_HOSTS, create_app
    from orgctl.cli.dashboard.data import DashboardData

    host, port = parse_listen(listen)
    if token is not None and len(token) < MIN_TOKEN:
        raise OrgctlError(f"--token is {len(token)} characters: use at least {MIN_TOKEN}",
                          hint="e.g. ORGCTL_DASHBOARD_TOKEN=$(openssl rand -hex 24)")
    if not is_loopback(host) and token is None:
        raise OrgctlError(f"--listen {listen}: only loopback is served without a token",
                          hint=f"reach it through an SSH tunnel (ssh -L {DEFAULT_PORT}:127.0.0.1:{DEFAULT_PORT} HOST), "
                               f"or set --token / {TOKEN_ENV} (docs/dashboard.md)")
    root, paths = resolve(org_dir)
    sock = bind(host, port)
    tick_dir = Path(tempfile.mkdtemp(prefix="orgctl-dashboard-"))
    try:
        data = DashboardData(root, paths, tick_dir=tick_dir)
        app = create_app(data, token=token, allowed_hosts=(*LOOPBACK_HOSTS, host))
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        click.echo(f"Dashboard of {root.name} at {url}" + (" (add ?token=<your token> once)" if token else "")
                   + "  read-only; Ctrl-C stops it.", err=False)
        if open_browser:
            import webbrowser

            threading.Timer(0.5, webbrowser.open, args=(url,)).start()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                               server_header=False, proxy_headers=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
        shutil.rmtree(tick_dir, ignore_errors=True)
