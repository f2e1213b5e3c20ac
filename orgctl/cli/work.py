"""Commands that hand the organization work and read what it did.

``task add``, ``chat``, ``send``, ``board post``, ``approve``/``deny`` write
work in flight (durable once the command returns) and wake the recipient;
``tasks``, ``inbox``, ``board``, ``events``, ``approvals`` read it, each with
``--json``. ``can-i`` answers a permission question through the runtime's
own policy code.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from orgctl.cli.main import cli
from orgctl.cli.options import json_option, org_dir_argument, org_option, resolve
from orgctl.errors import OrgctlError


def _org(org_dir: Path, *, live: bool = False):  # type: ignore[no-untyped-def]
    """The org's work in flight, for one command. In a tick org (``runtime: tick``) the work lives on the
    ``orgctl/state`` branch: it is restored here and what the command changed is saved back when it ends.
    ``live`` commands wait for an Anima's answer, which a tick org gives only at its next tick: refused."""
    from orgctl.runtime.organization import Organization
    from orgctl.runtime.ticking import is_tick_org, work_in_flight

    root, paths = resolve(org_dir)
    paths.ensure()
    if is_tick_org(root):
        if live:
            raise OrgctlError("this org runs as ticks (runtime: tick): an answer comes at its next tick, not now",
                              hint="`orgctl send` the message, and read the answer with `orgctl inbox` later")
        return click.get_current_context().with_resource(work_in_flight(root, paths))
    return Organization.with_services(paths)


def _parse_due(value: str | None) -> datetime | None:
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) + timedelta(**{unit: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a duration like 30m, 2h, 1d or an ISO time") from None
    return dt if dt.tzinfo else dt.astimezone()


def _parse_since(value: str | None) -> datetime | None:
    """A duration back from now (``7d``, ``12h``) or an ISO time; None for None."""
    ahead = _parse_due(value)
    if ahead is None or not re.fullmatch(r"\d+[smhd]", (value or "").strip()):
        return ahead
    return datetime.now(UTC) - (ahead - datetime.now(UTC))


# ---------------------------------------------------------------- tasks


@cli.group()
def task() -> None:
    """Give an Anima work (human tasks always come first in its queue)."""


@task.command("add")
@click.argument("name")
@click.argument("text")
@click.option("--priority", type=click.Choice(["urgent", "high", "normal", "low"]), default="high", show_default=True)
@click.option("--due", default=None, metavar="WHEN", help="A duration (30m, 2h, 1d) or an ISO time.")
@click.option("--detail", default="", help="More context for the task.")
@click.option("--workflow", "workflow", default=None, metavar="WORKFLOW",
              help="Route the task to a run of this workflow; the task ends with the run's outcome.")
@org_option
@json_option
def task_add(name: str, text: str, priority: str, due: str | None, detail: str, workflow: str | None,
             org_dir: Path, as_json: bool) -> None:
    """Queue TEXT as a task for the Anima NAME (with --workflow, as a workflow run on NAME's behalf)."""
    org = _org(org_dir)
    created = org.add_task(name, text, priority=priority, due=_parse_due(due), detail=detail)  # type: ignore[arg-type]
    if workflow is not None:
        from orgctl.cli.workflows import start_run
        from orgctl.work.runs import RunTask

        run = start_run(org_dir, workflow, subject=f"{text}\n{detail}".strip(), task=RunTask(
            id=created.id, title=text, detail=detail, requester="human", assignee=name))
        created = org.queue(name).update(created.id, by="human", status="delegated",
                                         note=f"routed to workflow {workflow}: run {run.id}")
        if not as_json:
            click.echo(f"Task {created.id} for {name} routed to workflow {workflow}: run {run.id}. "
                       f"Follow it with `orgctl workflow log {run.id}`.")
            return
    if as_json:
        click.echo(created.model_dump_json(indent=2))
    else:
        click.echo(f"Task {created.id} queued for {name} ({priority}). Follow it with `orgctl tasks {name}`.")


@cli.command()
@click.argument("name", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include finished tasks.")
@org_option
@json_option
def tasks(name: str | None, show_all: bool, org_dir: Path, as_json: bool) -> None:
    """Show task queues (one Anima's, or everyone's), with stale and overdue flags."""
    from orgctl.cli.reports import tasks_of, tasks_report

    org = _org(org_dir)
    names = [name] if name else sorted(org.specs)
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps(tasks_report(org, names, show_all=show_all, now=now), indent=2))
        return
    rows = tasks_of(org, names, show_all=show_all)
    if not rows:
        click.echo("No open tasks." if not show_all else "No tasks.")
        return
    for t in rows:
        flags = "".join(f" [{f}]" for f, on in (("overdue", t.overdue(now)), ("stale", t.stale(now))) if on)
        click.echo(f"{t.id}  {t.assignee:<10} {t.status:<16} {t.priority:<6} from {t.requester:<8} "
                   f"{t.title[:60]}{flags}")
        if t.result and t.status in ("done", "blocked", "failed"):
            for line in (t.reason or t.result).splitlines()[:6]:
                click.echo(f"      {line[:110]}")


# ---------------------------------------------------------------- messages


def _transcript(org: Any, name: str, record: dict[str, Any]) -> None:
    from orgctl.state.files import append_jsonl

    append_jsonl(org.work.chats / f"{name}.jsonl", record)


@cli.command()
@click.argument("name")
@click.argument("text")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=1), help="Seconds to wait.")
@org_option
@json_option
def chat(name: str, text: str, timeout: float, org_dir: Path, as_json: bool) -> None:
    """Say TEXT to NAME and wait for its answer (the transcript is kept in the state dir)."""
    from orgctl.work.messages import HUMAN

    org = _org(org_dir, live=True)
    asked = org.human_message(name, text, intent="chat")
    _transcript(org, name, {"at": asked.at, "from": HUMAN, "text": text, "id": asked.id})
    deadline = time.monotonic() + timeout
    human = org.inbox(HUMAN)
    while time.monotonic() < deadline:
        answer = next((m for m in human.unread() if m.in_reply_to == asked.id), None)
        if answer is not None:
            human.mark_read(answer.id)
            _transcript(org, name, {"at": answer.at, "from": name, "text": answer.text, "id": answer.id})
            if as_json:
                click.echo(answer.model_dump_json(indent=2))
            else:
                click.echo(f"{name}: {answer.text}")
            return
        time.sleep(0.2)
    raise OrgctlError(f"{name} did not answer within {timeout:.0f}s (the message {asked.id} stays in its inbox)",
                      hint="is it running? `orgctl status`; read the answer later with `orgctl inbox`")


@cli.command()
@click.argument("sender")
@click.argument("recipient")
@click.argument("text")
@click.option("--intent", type=click.Choice(["report", "question", "delegation", "reply"]), default="question",
              show_default=True)
@org_option
@json_option
def send(sender: str, recipient: str, text: str, intent: str, org_dir: Path, as_json: bool) -> None:
    """Send a DM: from `human` to an Anima, or as an Anima (under the messaging rules)."""
    from orgctl.work.messages import HUMAN

    org = _org(org_dir)
    if sender == HUMAN:
        message = org.human_message(recipient, text, intent=intent)  # type: ignore[arg-type]
    else:
        result = org.send(sender, recipient, intent, text)
        if not result.accepted:
            raise OrgctlError(f"refused: {result.reason}")
        message = result.message
    if as_json:
        click.echo(message.model_dump_json(indent=2))
    else:
        click.echo(f"Sent {message.id}: {sender} -> {recipient} ({intent}).")


@cli.command()
@click.argument("name", default="human")
@click.option("--unread", is_flag=True, help="Only unread messages.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@org_option
@json_option
def inbox(name: str, unread: bool, limit: int, org_dir: Path, as_json: bool) -> None:
    """Show NAME's inbox (default: `human`, where Animas report to people)."""
    from orgctl.cli.reports import inbox_items, inbox_report

    org = _org(org_dir)
    if as_json:
        click.echo(json.dumps(inbox_report(org, name, unread=unread, limit=limit), indent=2))
        return
    items = inbox_items(org, name, unread=unread, limit=limit)
    if not items:
        click.echo(f"{name}'s inbox is empty.")
    for m, new in items:
        mark = "*" if new else " "
        click.echo(f"{mark} {m.at[11:19]} {m.sender} -> {m.recipient} ({m.intent}, {m.trust}) {m.id}")
        for line in m.text.splitlines()[:8]:
            click.echo(f"    {line[:110]}")


# ---------------------------------------------------------------- board


@cli.group(invoke_without_command=True)
@click.option("--channel", default=None, help="Only this channel.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@org_option
@json_option
@click.pass_context
def board(ctx: click.Context, channel: str | None, limit: int, org_dir: Path, as_json: bool) -> None:
    """Read the Board (or `board post CHANNEL TEXT`)."""
    if ctx.invoked_subcommand is not None:
        return
    from orgctl.cli.reports import board_posts, board_report

    org = _org(org_dir)
    if as_json:
        click.echo(json.dumps(board_report(org, [channel] if channel else None, limit=limit), indent=2))
        return
    posts = board_posts(org, [channel] if channel else None, limit=limit)
    if not posts:
        click.echo("The Board is empty.")
    for p in posts:
        click.echo(f"#{p.channel:<8} {p.at[11:19]} {p.sender}: {p.text[:140]}")


@board.command("post")
@click.argument("channel")
@click.argument("text")
@click.option("--as", "sender", default="human", show_default=True, help="Post as this name.")
@org_option
def board_post(channel: str, text: str, sender: str, org_dir: Path) -> None:
    """Post TEXT to CHANNEL; @mentioned Animas are woken at once."""
    org = _org(org_dir)
    woken = org.post(channel, text, sender=sender, trust="trusted" if sender == "human" else "medium")
    click.echo(f"Posted to #{channel.lstrip('#').lower()}" + (f"; woke {', '.join(woken)}." if woken else "."))


# ---------------------------------------------------------------- events and approvals


@cli.command()
@click.option("--anima", default=None, help="Only events about this Anima.")
@click.option("--reason", default=None, help="Only this reason (e.g. MessageRefused).")
@click.option("--type", "kind", type=click.Choice(["Normal", "Warning"]), default=None, help="Only this type.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="The newest N series.")
@click.option("--watch", "-w", "--follow", "-f", "watch", is_flag=True, help="Keep printing new events as they come.")
@org_dir_argument
@json_option
def events(anima: str | None, reason: str | None, kind: str | None, limit: int, watch: bool, org_dir: Path,
           as_json: bool) -> None:
    """Show what happened (the operator's view, newest last): repeats folded with a count, as kubectl shows them.

    The audit trail is each Anima's committed activity log; this stream is bounded (rotated at 8 MB)."""
    from orgctl.cli.reports import event_series, events_report
    from orgctl.state.events import Event
    from orgctl.state.files import JsonlTail

    _, paths = resolve(org_dir)
    tail = JsonlTail(paths.work.events)
    tail.read_new()  # where --watch starts: everything before is in the listing below
    if as_json and not watch:
        click.echo(json.dumps(events_report(paths, anima=anima, reason=reason, kind=kind, limit=limit), indent=2))
        return
    shown = event_series(paths, anima=anima, reason=reason, kind=kind, limit=limit)
    if not as_json:
        click.echo(f"{'LAST SEEN':<9} {'TYPE':<7} {'REASON':<20} {'OBJECT':<22} {'COUNT':>5}  MESSAGE")
    for s in shown:
        _echo_event(s.event, count=s.count, as_json=as_json, first_seen=s.first_seen)
    while watch:
        time.sleep(0.5)
        _, records = tail.read_new()
        for record in records:
            with contextlib.suppress(ValueError, TypeError):
                e = Event.model_validate(record)
                if (anima is None or e.anima == anima) and (reason is None or e.reason == reason) \
                        and (kind is None or e.type == kind):
                    _echo_event(e, count=1, as_json=as_json, first_seen=e.at)
        sys.stdout.flush()


def _echo_event(e: Any, *, count: int, as_json: bool, first_seen: str) -> None:
    if as_json:
        click.echo(json.dumps(e.model_dump(mode="json") | {"count": count, "first_seen": first_seen,
                                                           "last_seen": e.at}))
        return
    click.secho(f"{e.at[11:19]:<9} {e.type:<7} {e.reason:<20} {e.object[:22]:<22} {count:>5}  {e.message}",
                fg="yellow" if e.type == "Warning" else None)


@cli.command()
@org_dir_argument
@json_option
def approvals(org_dir: Path, as_json: bool) -> None:
    """Actions waiting for a person's decision (commands under an `ask` rule)."""
    from orgctl.cli.reports import approvals_report

    org = _org(org_dir)
    if as_json:
        click.echo(json.dumps(approvals_report(org), indent=2))
        return
    pending = [a for a in org.approvals.all() if a.status == "pending"]
    if not pending:
        click.echo("Nothing waits for approval.")
    for a in pending:
        click.echo(f"{a.id}  {a.anima:<10} {a.kind}: {a.detail}   ({a.rule}; task {a.task_id})")


def _decide(approval_id: str, *, approve: bool, org_dir: Path) -> None:
    org = _org(org_dir)
    decided = org.approvals.decide(approval_id, approve=approve, by="human")
    org.event(reason="ApprovalDecided", object=f"approval/{decided.id}", anima=decided.anima,
              message=f"a person {decided.status} {decided.anima}'s {decided.detail!r}")
    org.wake(decided.anima)
    click.echo(f"{decided.id} {decided.status}; {decided.anima} is told.")


@cli.command()
@click.argument("approval_id")
@org_option
def approve(approval_id: str, org_dir: Path) -> None:
    """Approve a held action; the Anima runs it and is told."""
    _decide(approval_id, approve=True, org_dir=org_dir)


@cli.command()
@click.argument("approval_id")
@org_option
def deny(approval_id: str, org_dir: Path) -> None:
    """Deny a held action; the Anima is told and it does not run."""
    _decide(approval_id, approve=False, org_dir=org_dir)


@cli.command("can-i")
@click.argument("name")
@click.argument("verb", type=click.Choice(["run", "use", "read", "write"]))
@click.argument("what")
@org_option
def can_i(name: str, verb: str, what: str, org_dir: Path) -> None:
    """Would NAME be allowed to run COMMAND, use TOOL, read or write PATH? Exit 0 yes, 1 no.

    Answers from the Anima's permissions.md and org.yaml's sandbox: in the work tree, through the
    runtime's own policy; for a command it may run, prints the sandbox profile it would run under.
    """
    from orgctl.runtime.permissions import policy_for

    root, paths = resolve(org_dir)
    policy = policy_for(root, name, workspace=paths.workspace(name))
    verdict = {"run": policy.can_run, "use": policy.can_use, "read": policy.can_read,
               "write": policy.can_write}[verb](what)
    answer = {"allow": "yes", "ask": "ask (held for a person's approval)", "deny": "no"}[verdict.outcome]
    click.echo(f"{answer}: {verdict.rule}")
    if verb == "run" and not policy.invalid and (verdict.outcome != "deny" or policy.sandbox_profile.refusal):
        for line in policy.sandbox_profile.describe():  # the profile the runtime would start it under
            click.echo(line)
    sys.exit(0 if verdict.allowed else 1)


# ---------------------------------------------------------------- spend


@cli.command()
@click.argument("name", required=False)
@click.option("--since", default=None, metavar="WHEN", help="Only calls since then: a duration (7d, 12h) or a date.")
@org_option
@json_option
def usage(name: str | None, since: str | None, org_dir: Path, as_json: bool) -> None:
    """Model calls, tokens and cost per Anima and model, with each Anima's budget state.

    Read from the usage log the gateway appends to (one line per call); replayed calls
    cost nothing and are not in it.
    """
    from orgctl.cli.reports import usage_report
    from orgctl.runtime.organization import Organization

    _, paths = resolve(org_dir)
    report = usage_report(paths, Organization(paths=paths).specs, name=name, since=_parse_since(since),
                          now=datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = report["usage"]
    if not rows:
        click.echo("No model calls recorded." if name is None else f"No model calls recorded for {name}.")
    else:
        click.echo(f"{'ANIMA':<12} {'MODEL':<28} {'CALLS':>6} {'PROMPT':>9} {'COMPLETION':>10} {'COST':>9}")
        for r in rows:
            cost = f"${r['cost_usd']:.4f}"
            click.echo(f"{r['anima'] or '-':<12} {r['model']:<28} {r['calls']:>6} {r['prompt_tokens']:>9} "
                       f"{r['completion_tokens']:>10} {cost:>9}")
    for n, state in sorted(report["budgets"].items()):
        if state["level"] != "ok":
            click.secho(f"{n}: {state['level']} limit: {state['reason']}",
                        fg="yellow" if state["level"] == "soft" else "red")


# ---------------------------------------------------------------- the outside


def _routes(values: tuple[str, ...], option: str) -> dict[str, str]:
    routes = {}
    for value in values:
        key, sep, anima = value.partition("=")
        if not sep or not key or not anima:
            raise click.BadParameter(f"{value!r}: use ID=ANIMA", param_hint=option)
        routes[key] = anima
    return routes


@cli.command()
@click.option("--listen", default="127.0.0.1:8787", show_default=True, metavar="HOST:PORT",
              help="Where to listen (loopback by default; put a TLS proxy or tunnel in front).")
@click.option("--slack-route", multiple=True, metavar="CHANNEL=ANIMA", help="Deliver this Slack channel's events.")
@click.option("--chatwork-route", multiple=True, metavar="ROOM=ANIMA", help="Deliver this Chatwork room's messages.")
@org_dir_argument
def receive(listen: str, slack_route: tuple[str, ...], chatwork_route: tuple[str, ...], org_dir: Path) -> None:
    """Serve the inbound webhook: outside messages into Animas' inboxes, always untrusted.

    \b
    POST /v1/inbox/NAME   Authorization: Bearer $ORGCTL_INBOUND_TOKEN, body {"text": "...", "from": "..."}
    POST /slack/events    when SLACK_SIGNING_SECRET is set (and --slack-route maps channels)
    POST /chatwork        when CHATWORK_WEBHOOK_TOKEN is set (and --chatwork-route maps rooms)

    Tokens come from the environment or the org's env file (.env, git-ignored), never from arguments
    or spec files.
    """
    import logging
    import os

    from orgctl.runtime.receiving import InboundMessage, InboundServer
    from orgctl.state.envfiles import load_env_file

    env = {**os.environ, **load_env_file(resolve(org_dir)[0])}  # the org's env file; the environment wins
    token = env.get("ORGCTL_INBOUND_TOKEN", "")
    if not token:
        raise OrgctlError("ORGCTL_INBOUND_TOKEN is not set", hint="export a long random token, e.g. "
                          "ORGCTL_INBOUND_TOKEN=$(openssl rand -hex 24), and give it to the sender")
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{listen!r}: use HOST:PORT", param_hint="--listen")
    org = _org(org_dir)

    def deliver(inbound: InboundMessage) -> str:
        if inbound.anima not in org.specs:
            raise KeyError(inbound.anima)
        return org.human_message(inbound.anima, inbound.text, intent="question", source=inbound.source,
                                 sender=f"{inbound.source}:{inbound.sender}"[:120], trust="untrusted").id

    server = InboundServer(deliver=deliver, token=token, host=host or "127.0.0.1", port=int(port),
                           slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
                           slack_routes=_routes(slack_route, "--slack-route"),
                           chatwork_token=env.get("CHATWORK_WEBHOOK_TOKEN") or None,
                           chatwork_routes=_routes(chatwork_route, "--chatwork-route"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    click.echo(f"Receiving on {server.url} (POST /v1/inbox/NAME); Ctrl-C stops.", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
