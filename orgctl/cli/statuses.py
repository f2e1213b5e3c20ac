"""``orgctl status``: light on imports (click and the standard library), so it starts fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orgctl.cli.main import cli
from orgctl.cli.options import org_dir_argument, resolve


def _short(rev: str | None) -> str:
    return rev[:7] if rev else "-"


def _ready(row: dict[str, Any]) -> str:
    ready = next((c for c in row.get("conditions") or [] if c.get("type") == "Ready"), None)
    return str(ready.get("status")) if ready else "-"


def _state(row: dict[str, Any]) -> str:
    """The process state, marked when the Anima is suspended (left as it is, not reconciled)."""
    suspended = (row.get("suspended") or "").startswith("suspended")
    return f"{row['state']} (suspended)" if suspended else str(row["state"])


def _controller_line(report: dict[str, Any]) -> str:
    ctl = report.get("controller")
    if not ctl:
        return "not running (apply by hand, or `orgctl controller --detach`)"
    last = ctl.get("last_pass") or {}
    return (f"running (pid {ctl.get('pid')}), tracking {ctl.get('source')}; last pass {last.get('at', '-')} "
            f"({last.get('trigger', '-')}): {last.get('summary', '-')}")


def echo_status(report: dict[str, Any]) -> None:
    """Print the report of :func:`orgctl.state.observing.observe_status`: header, one row per Anima, problems."""
    sup = f"running (pid {report['supervisor_pid']})" if report["supervisor_running"] else "not running"
    server = report.get("model_server")
    org = report.get("org") or {}
    click.echo(f"Applied revision: {_short(report['revision'])} at {report['applied_at'] or '-'}")
    click.echo(f"Controller:       {_controller_line(report)}")
    click.echo(f"Supervisor:       {sup}")
    click.echo("Model server:     " + (f"{server['model']} at {server['url']} (pid {server['pid']})" if server
                                       else "not running (starts on the first model call)"))
    rows = report["animas"]
    if not rows:
        click.echo("\nNo Animas applied yet. Run `orgctl plan` and `orgctl apply`.")
        return
    click.echo(f"Org:              health {org.get('health')}, sync {org.get('sync') or 'unknown (no controller)'}")
    if org.get("suspended"):
        click.secho(f"Reconciliation:   {org['suspended']}: nothing is applied until `orgctl resume --all`",
                    fg="yellow")
    headers = ["NAME", "ROLE", "STATE", "SYNC", "HEALTH", "READY", "REVISION", "LAST HEARTBEAT", "BEATS", "RESTARTS"]
    table = [[r["name"], r["role"] or "-", _state(r), r["sync"] or "-", r["health"], _ready(r), _short(r["revision"]),
              r["last_heartbeat"] or "-", str(r["heartbeats"]), str(r["restarts"])] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    click.echo("")
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for t in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip())
    problems = []
    for r in rows:
        if r["health"] == "Degraded":
            problems.append((f"{r['name']}: Degraded: {r['reason']}", "red"))
        for c in r.get("conditions") or []:
            if c.get("type") == "Stalled" and c.get("status") == "True":
                since = c.get("lastTransitionTime")
                problems.append((f"{r['name']}: Stalled since {since}: {c.get('message')}", "red"))
            if c.get("type") == "Reconciling" and c.get("status") == "True":
                problems.append((f"{r['name']}: Reconciling: {c.get('message')}", "yellow"))
        if r.get("suspended"):
            problems.append((f"{r['name']}: {r['suspended']}", "yellow"))
        elif r["health"] == "Suspended":
            problems.append((f"{r['name']}: Suspended: {r['reason']}", "yellow"))
    if problems:
        click.echo("")
        for text, color in problems:
            click.secho(text, fg=color)


@cli.command()
@org_dir_argument
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
def status(org_dir: Path, as_json: bool) -> None:
    """Show each Anima's state, sync, health and Ready condition, its revision, last heartbeat and restarts.

    Reads only files in the state dir (no git, no process is contacted): what the supervisor and the
    controller recorded."""
    from orgctl.state.observing import observe_status

    _, paths = resolve(org_dir)
    report = observe_status(paths)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    echo_status(report)
