"""``orgctl pause``, ``suspend`` and ``resume``: holding Animas, or the whole org, out of reconciliation.

``pause NAME`` stops an Anima and keeps it stopped; ``suspend NAME`` leaves it exactly as it is and
stops reconciling it (Flux's ``suspend``); ``suspend --all`` stops the reconciliation of the whole
org (incidents, rollbacks). ``resume`` undoes any of them. See :mod:`orgctl.state.pauses`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import click

from orgctl.cli.main import cli
from orgctl.cli.options import lock_timeout_option, org_dir_argument, resolve
from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths

reason_option = click.option("--reason", default="", help="Why, kept in the record and the event (one line).")


def _one_line(reason: str) -> str:
    return " ".join(reason.split())[:200]


def _target(name: str | None, whole_org: bool, org_dir: Path) -> tuple[str | None, Path]:
    """``(NAME, DIR)``: with ``--all`` the one positional given is the org's DIR (``suspend --all DIR``)."""
    if whole_org and name is not None and org_dir == Path("."):
        return None, Path(name)
    if bool(name) == whole_org:
        raise click.UsageError("give either NAME or --all")
    return name, org_dir


def _applied(paths: StatePaths, name: str, *, active: bool) -> None:
    """Raises OrgctlError unless ``name`` is applied (and, with ``active``, meant to run)."""
    from orgctl.state.inventories import load_inventory

    entry = load_inventory(paths.inventory).animas.get(name)
    if entry is None or entry.status in ("retired", "orphaned"):
        raise OrgctlError(f"no applied Anima named {name!r}", hint="see `orgctl status`")
    if active and entry.status != "active":
        raise OrgctlError(f"{name} is {entry.status}", hint="only an Anima that is meant to run can be paused")


def _hold(paths: StatePaths, name: str, *, mode: Literal["pause", "suspend"], reason: str,
          before: Callable[[], None] | None = None) -> bool:
    """Record a person's pause or suspension of ``name`` (after ``before``, e.g. stopping it) with its event;
    False, with a message, when it is already held."""
    from orgctl.state import events
    from orgctl.state.inventories import now_iso
    from orgctl.state.pauses import PauseRecord, read_pauses, write_pause

    if (current := read_pauses(paths).get(name)) is not None:
        click.echo(f"{name} is already {current.describe()}.")
        return False
    if before is not None:
        before()
    why = _one_line(reason)
    write_pause(paths, PauseRecord(name=name, by="human", at=now_iso(), reason=why, mode=mode))
    done = "paused" if mode == "pause" else "suspended"
    events.emit(paths.work.events, reason=f"Anima{done.capitalize()}", object=f"anima/{name}", anima=name,
                message=f"a person {done} {name}" + (f": {why}" if why else ""))
    return True


@cli.command()
@click.argument("name")
@org_dir_argument
@reason_option
@lock_timeout_option
def pause(name: str, org_dir: Path, reason: str, lock_timeout: float) -> None:
    """Stop NAME and keep it stopped (apply records its spec changes, starts it only after resume)."""
    from orgctl.runtime.local import LocalBackend
    from orgctl.state.locking import state_lock

    root, paths = resolve(org_dir)
    with state_lock(paths.lock, operation="pause", timeout=lock_timeout):
        _applied(paths, name, active=True)
        if not _hold(paths, name, mode="pause", reason=reason,
                     before=lambda: LocalBackend(paths=paths, org_dir=root).stop(name)):
            return
    click.echo(f"Paused {name}. It stays stopped until `orgctl resume {name}`.")


@cli.command()
@click.argument("name", required=False)
@click.option("--all", "whole_org", is_flag=True, help="Suspend the reconciliation of the whole org.")
@org_dir_argument
@reason_option
@lock_timeout_option
def suspend(name: str | None, whole_org: bool, org_dir: Path, reason: str, lock_timeout: float) -> None:
    """Stop reconciling NAME (or, with --all, the whole org) and leave it exactly as it is.

    For incidents and rollbacks: suspend, then revert in git or fix by hand; `orgctl resume` lets it
    converge again. Suspended Animas are listed by `plan` and `status`, never silently skipped."""
    from orgctl.state import events
    from orgctl.state.inventories import now_iso
    from orgctl.state.locking import state_lock
    from orgctl.state.pauses import PauseRecord, org_suspension, suspend_org

    name, org_dir = _target(name, whole_org, org_dir)
    _, paths = resolve(org_dir)
    paths.ensure()
    why = _one_line(reason)
    with state_lock(paths.lock, operation="suspend", timeout=lock_timeout):
        if whole_org:
            if (current := org_suspension(paths)) is not None:
                click.echo(f"The org is already {current.describe()}.")
                return
            suspend_org(paths, PauseRecord(name="*", by="human", at=now_iso(), reason=why, mode="suspend"))
            events.emit(paths.work.events, reason="ReconciliationSuspended", object="org", type="Warning",
                        message="a person suspended the reconciliation of the whole org" + (f": {why}" if why else ""))
            click.echo("Suspended the reconciliation of the whole org: the controller applies nothing until "
                       "`orgctl resume --all`; `orgctl apply` still works.")
            return
        assert name is not None
        _applied(paths, name, active=False)
        if not _hold(paths, name, mode="suspend", reason=reason):
            return
    click.echo(f"Suspended {name}: left as it is, not reconciled until `orgctl resume {name}`.")


@cli.command()
@click.argument("name", required=False)
@click.option("--all", "whole_org", is_flag=True, help="Resume the reconciliation of the whole org.")
@org_dir_argument
@lock_timeout_option
def resume(name: str | None, whole_org: bool, org_dir: Path, lock_timeout: float) -> None:
    """Undo `pause NAME` (start it again, with the spec applied meanwhile), `suspend NAME` or `suspend --all`."""
    from orgctl.runtime.local import LocalBackend
    from orgctl.state import events
    from orgctl.state.locking import state_lock
    from orgctl.state.pauses import clear_pause, read_pauses, resume_org

    name, org_dir = _target(name, whole_org, org_dir)
    root, paths = resolve(org_dir)
    with state_lock(paths.lock, operation="resume", timeout=lock_timeout):
        if whole_org:
            if not resume_org(paths):
                click.echo("The org's reconciliation is not suspended; nothing to do.")
                return
            events.emit(paths.work.events, reason="ReconciliationResumed", object="org",
                        message="a person resumed the reconciliation of the whole org")
            click.echo("Resumed the reconciliation of the whole org.")
            return
        assert name is not None
        _applied(paths, name, active=False)
        current = read_pauses(paths).get(name)
        if current is None:
            click.echo(f"{name} is neither paused nor suspended; nothing to do.")
            return
        clear_pause(paths, name)
        backend = LocalBackend(paths=paths, org_dir=root)
        started = current.mode == "pause" and backend.supervisor_alive()
        if started:
            backend.start(name)
        events.emit(paths.work.events, reason="AnimaResumed", object=f"anima/{name}", anima=name,
                    message=f"a person resumed {name} ({current.describe()})")
    if current.mode == "suspend":
        click.echo(f"Resumed {name}: the next pass (or `orgctl apply`) converges it.")
    else:
        click.echo(f"Resumed {name}." if started else
                   f"Resumed {name}: the supervisor is not running; `orgctl apply` starts it.")
