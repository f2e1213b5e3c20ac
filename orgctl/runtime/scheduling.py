"""Cron: ``cron.md`` tasks fired on schedule in the Anima's time zone.

* ``type: llm`` — the body is a prompt that needs judgment: it becomes a task
  in the Anima's own queue (source ``cron``), executed by the task cycle.
* ``type: command`` — a deterministic command run under the same
  permissions (and hard blocks) as any other; its result is recorded for the
  next heartbeat, and non-empty output becomes an LLM follow-up task unless
  ``skip_pattern`` matches it or ``trigger_heartbeat`` is false.

Weekdays are POSIX cron's: 0 or 7 = Sunday, 1 = Monday … 6 = Saturday
(croniter's numbering). A missed fire (the process was down) is not replayed:
the next fire is computed from now, as cron does.
"""

from __future__ import annotations

import re
from datetime import datetime

from orgctl.desired.models import CronTask
from orgctl.runtime.commands import run_command
from orgctl.runtime.cycle import Agent
from orgctl.work.tasks import Task


def next_fire(task: CronTask, after: datetime) -> datetime:
    """The first time strictly after ``after`` (an aware datetime in the Anima's zone) that ``task`` fires."""
    from croniter import croniter

    result: datetime = croniter(task.schedule, after).get_next(datetime)
    return result


class CronSchedule:
    """The next fire time of each cron task of one Anima."""

    def __init__(self, tasks: list[CronTask], *, now: datetime) -> None:
        self.tasks = tasks
        self.next = {t.title: next_fire(t, now) for t in tasks}

    def due(self, now: datetime) -> list[CronTask]:
        """Tasks whose fire time has come; their next time is computed from ``now``."""
        fired = [t for t in self.tasks if self.next[t.title] <= now]
        for t in fired:
            self.next[t.title] = next_fire(t, now)
        return fired

    def seconds_until_next(self, now: datetime) -> float | None:
        if not self.next:
            return None
        return max(0.0, min((at - now).total_seconds() for at in self.next.values()))


def fire(agent: Agent, task: CronTask) -> str:
    """Run one fired cron task; returns a line for the episode."""
    org, name = agent.org, agent.name
    if task.type == "llm":
        created = org.queue(name).create(Task(title=task.title, detail=task.body[:4000], assignee=name,
                                              requester="cron", source="cron", status="in_progress"))
        org.event(reason="CronFired", object=f"anima/{name}", anima=name,
                  message=f"{name}: cron {task.title!r} queued task {created.id}")
        return f"cron {task.title!r} queued task {created.id}"
    command = task.command or ""
    verdict = agent.policy.can_run(command)
    if not verdict.allowed:
        org.event(reason="CommandRefused", object=f"anima/{name}", anima=name, warning=True,
                  message=f"{name}: cron {task.title!r} may not run {command!r}: {verdict.rule}")
        return f"cron {task.title!r}: {command!r} refused ({verdict.rule})"
    result = run_command(command, sandbox=agent.policy.sandbox_profile)
    org.event(reason="CronFired", object=f"anima/{name}", anima=name, exit_code=result.exit_code,
              message=f"{name}: cron {task.title!r} ran {command!r}: exit {result.exit_code}")
    output = result.output.strip()
    follow = bool(output) and task.trigger_heartbeat and not (
        task.skip_pattern and re.search(task.skip_pattern, output))
    if follow:
        org.queue(name).create(Task(title=f"Review the output of cron {task.title!r}", detail=result.summary(lines=30),
                                    assignee=name, requester="cron", source="cron", status="in_progress"))
    return f"cron {task.title!r} ran {command!r}: exit {result.exit_code}" + (", follow-up queued" if follow else "")
