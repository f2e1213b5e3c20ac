"""``orgctl controller [DIR]``, ``orgctl controller stop``, ``orgctl reconcile``: the GitOps loop's commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from click_default_group import DefaultGroup

from orgctl.cli.main import cli
from orgctl.cli.options import org_dir_argument, resolve
from orgctl.errors import OrgctlError

WEBHOOK_SECRET_ENV = "ORGCTL_WEBHOOK_SECRET"


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, int] | None:
    from orgctl.gitops.triggers import parse_address

    if value is None:
        return None
    try:
        return parse_address(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def _alert_sender(checkout: Path) -> Any:
    """Sends a Warning event to the org's notification channels (org.yaml ``notifications:``)."""
    import logging

    from orgctl.runtime.notifying import call_human_on
    from orgctl.state.envfiles import load_env_file

    env = {**load_env_file(checkout), **os.environ}
    log = logging.getLogger("orgctl.controller")

    def send(event: dict[str, Any], desired: Any) -> None:
        channels = list(getattr(desired, "notifications", None) or [])
        if not channels:
            return
        for d in call_human_on(channels, anima="orgctl-controller", org=desired.name, context_url=None, env=env,
                               message=f"{event.get('reason')}: {event.get('message')}",
                               title=f"orgctl {desired.name}: {event.get('reason')}"):
            if not d["ok"]:
                log.warning("alert on %s failed: %s", d["channel"], d["error"])

    return send


@cli.group(cls=DefaultGroup, default="run", default_if_no_args=True)
def controller() -> None:
    """The GitOps controller: keep the running org converged on the tracked branch (`controller [DIR]`)."""


@controller.command("run")
@org_dir_argument
@click.option("--once", is_flag=True, help="Run one reconcile pass and exit (0 converged, 1 not).")
@click.option("--detach", is_flag=True, help="Run in the background (log in the state dir's logs/controller.log).")
@click.option("--branch", default=None, help="Branch to track (default: the one checked out in DIR).")
@click.option("--drift", type=click.Choice(["heal", "warn"]), default="heal", show_default=True,
              help="Converge what was changed outside orgctl back to git, or only report it.")
@click.option("--listen", default=None, metavar="HOST:PORT", callback=_address,
              help=f"Receive signed push webhooks here (secret: ${WEBHOOK_SECRET_ENV} or --webhook-secret-file).")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="File holding the webhook's shared secret.")
@click.option("--metrics-addr", default=None, metavar="HOST:PORT", callback=_address,
              help="Serve Prometheus metrics at http://HOST:PORT/metrics.")
@click.option("--resync-interval", default=30.0, show_default=True, type=click.FloatRange(min=1), metavar="SECONDS",
              help="A full pass at least this often.")
@click.option("--poll-interval", default=60.0, show_default=True, type=click.FloatRange(min=1), metavar="SECONDS",
              help="How often a network remote is asked for its tip (±10% jitter). Local repos are watched.")
@click.option("--rate", default=2.0, show_default=True, type=click.FloatRange(min=0.01), metavar="PER_SECOND",
              help="Actions (start, restart, stop) per second after a burst of --burst.")
@click.option("--burst", default=200, show_default=True, type=click.IntRange(min=1))
def controller_run(org_dir: Path, once: bool, detach: bool, branch: str | None, drift: str,
                   listen: tuple[str, int] | None, webhook_secret_file: Path | None,
                   metrics_addr: tuple[str, int] | None, resync_interval: float, poll_interval: float,
                   rate: float, burst: int) -> None:
    """Reconcile DIR's org continuously: on commits, webhooks, `orgctl reconcile`, and every --resync-interval."""
    from orgctl.gitops.controlling import ControllerOptions
    from orgctl.gitops.serving import reconcile_once, serve, start_detached
    from orgctl.runtime.local import LocalBackend
    from orgctl.runtime.ticking import is_tick_org

    root, paths = resolve(org_dir)
    if is_tick_org(root):
        raise OrgctlError("this org runs as ticks (org.yaml: runtime: tick), so a controller would run its "
                          "heartbeats a second time", hint="run `orgctl tick` (on a schedule: GitHub Actions), or "
                                                           "set `runtime: controller` in org.yaml")
    secret = _webhook_secret(webhook_secret_file) if listen else None
    if detach:
        argv = ["controller", "run", str(root), "--drift", drift, "--resync-interval", str(resync_interval),
                "--poll-interval", str(poll_interval), "--rate", str(rate), "--burst", str(burst)]
        for flag, value in (("--branch", branch), ("--webhook-secret-file", webhook_secret_file),
                            ("--listen", listen and f"{listen[0]}:{listen[1]}"),
                            ("--metrics-addr", metrics_addr and f"{metrics_addr[0]}:{metrics_addr[1]}")):
            if value:
                argv += [flag, str(value)]
        info = start_detached(argv, paths=paths)
        click.echo(f"Controller started (pid {info['pid']}), tracking {info['source']}.\n"
                   f"Log: {paths.logs / 'controller.log'}   Stop: orgctl controller stop {org_dir}")
        return
    options = ControllerOptions(resync_interval=resync_interval, remote_poll_interval=poll_interval,
                                drift=drift, rate_per_second=rate, burst=burst)  # type: ignore[arg-type]
    backend = LocalBackend(paths=paths, org_dir=root)
    if once:
        report = reconcile_once(checkout=root, paths=paths, backend=backend, options=options, branch=branch)
        click.echo(report.summary())
        for name, why in sorted(report.pending.items()):
            click.echo(f"  {name}: {why}")
        sys.exit(0 if report.converged else 1)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    serve(checkout=root, paths=paths, backend=backend, options=options, branch=branch, listen=listen,
          webhook_secret=secret, metrics_addr=metrics_addr, alert=_alert_sender(root))


def _webhook_secret(path: Path | None) -> bytes:
    secret = path.read_bytes().strip() if path else os.environ.get(WEBHOOK_SECRET_ENV, "").encode()
    if not secret:
        raise OrgctlError("--listen needs the webhook's shared secret",
                          hint=f"set ${WEBHOOK_SECRET_ENV} or pass --webhook-secret-file FILE "
                               "(the same secret as in the forge's webhook settings)")
    return secret


@controller.command("stop")
@org_dir_argument
def controller_stop(org_dir: Path) -> None:
    """Stop the org's controller (the Animas keep running; `orgctl down` stops them)."""
    from orgctl.gitops.serving import stop_controller

    _, paths = resolve(org_dir)
    pid = stop_controller(paths)
    click.echo(f"Stopped the controller (pid {pid}). The Animas keep running." if pid else
               "No controller runs for this org.")


@cli.command()
@org_dir_argument
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(min=1), metavar="SECONDS",
              help="How long to wait for the pass.")
def reconcile(org_dir: Path, timeout: float) -> None:
    """Ask the running controller for a pass now, and show when and how it was handled."""
    from orgctl.gitops.serving import request_reconcile

    _, paths = resolve(org_dir)
    answer = request_reconcile(paths, timeout=timeout)
    click.echo(f"Handled at {answer.get('handled_at')}: {answer.get('summary')}")
    if not answer.get("converged"):
        sys.exit(1)
