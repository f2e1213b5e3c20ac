"""``orgctl status`` rendered without click: the front door (:mod:`orgctl.cli.fast`) runs it with the
standard library and plain JSON reads only, so the command people run in a loop starts fast
(bench/startup.py). Output matches click's: colour only on a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_COLOURS = {"red": 31, "yellow": 33}


def _echo(text: str = "", *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")


def _secho(text: str, *, fg: str, err: bool = False) -> None:
    """``click.secho(text, fg=fg)``: ANSI colour when the stream is a terminal, plain text otherwise."""
    stream = sys.stderr if err else sys.stdout
    _echo(f"\x1b[{_COLOURS[fg]}m{text}\x1b[0m" if stream.isatty() else text, err=err)


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
    _echo(f"Applied revision: {_short(report['revision'])} at {report['applied_at'] or '-'}")
    _echo(f"Controller:       {_controller_line(report)}")
    _echo(f"Supervisor:       {sup}")
    _echo("Model server:     " + (f"{server['model']} at {server['url']} (pid {server['pid']})" if server
                                       else "not running (starts on the first model call)"))
    rows = report["animas"]
    if not rows:
        _echo("\nNo Animas applied yet. Run `orgctl plan` and `orgctl apply`.")
        return
    _echo(f"Org:              health {org.get('health')}, sync {org.get('sync') or 'unknown (no controller)'}")
    if org.get("sandbox") == "off":
        _secho("Sandbox:          OFF (org.yaml sandbox: off): Animas' commands run with your rights, unconfined",
               fg="yellow")
    elif org.get("sandbox") == "on":
        _echo("Sandbox:          on: every command confined by the kernel (`orgctl can-i NAME run CMD` shows how)")
    if org.get("suspended"):
        _secho(f"Reconciliation:   {org['suspended']}: nothing is applied until `orgctl resume --all`",
                    fg="yellow")
    headers = ["NAME", "ROLE", "STATE", "SYNC", "HEALTH", "READY", "REVISION", "LAST HEARTBEAT", "BEATS", "RESTARTS"]
    table = [[r["name"], r["role"] or "-", _state(r), r["sync"] or "-", r["health"], _ready(r), _short(r["revision"]),
              r["last_heartbeat"] or "-", str(r["heartbeats"]), str(r["restarts"])] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    _echo("")
    _echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for t in table:
        _echo("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip())
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
        _echo("")
        for text, color in problems:
            _secho(text, fg=color)


def run_status(org_dir: str, *, as_json: bool) -> bool:
    """Print the status of the org at ``org_dir`` (as ``orgctl status [--json]``); returns False, having
    printed nothing, on any orgctl error, so the caller can run the click command to report it."""
    from orgctl.errors import OrgctlError
    from orgctl.paths import state_paths
    from orgctl.state.observing import observe_status
    from orgctl.state.versions import check_state_format

    try:
        paths = state_paths(Path(org_dir).resolve())
        note = check_state_format(paths)
        report = observe_status(paths)
    except OrgctlError:
        return False
    if note is not None:
        _secho(f"Note: {note}", fg="yellow", err=True)
    print_status(report, as_json=as_json)
    return True


def print_status(report: dict[str, Any], *, as_json: bool) -> None:
    """The report as JSON (``--json``) or as :func:`echo_status`'s table."""
    if as_json:
        _echo(json.dumps(report, indent=2))
    else:
        echo_status(report)
