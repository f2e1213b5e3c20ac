"""Overdue delegated tasks go back to whoever delegated them, then up the chain.

Run by the supervisor every 30 s. A task another Anima delegated that is
still open past its ``due`` time, with no update since, produces a framework
notice to the delegator (escalation 1). If it is still ignored one deadline
period later, the notice goes to the delegator's supervisor too
(escalation 2, and so on up the chain), so no task sits unread. Past the
top of the chain the next step is a person: the top-level Anima's
``call_human`` (when its permissions grant it), once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orgctl.paths import StatePaths
from orgctl.runtime.organization import DELEGATION_DEADLINE, Organization
from orgctl.work.messages import Message


def escalate_overdue(paths: StatePaths, *, now: datetime | None = None) -> list[str]:
    """One sweep over every queue; returns the names that were notified (to be woken)."""
    now = now or datetime.now(UTC)
    org = Organization(paths=paths)
    notified: list[str] = []
    for name in org.specs:
        for task in org.queue(name).open():
            if task.requester not in org.specs or not task.overdue(now):
                continue
            due = datetime.fromisoformat(task.due or "")
            level = task.escalations + 1
            if now < due + timedelta(seconds=DELEGATION_DEADLINE * task.escalations):
                continue  # this level was already raised; wait one more period
            chain = [task.requester, *org.specs[task.requester].org.chain]
            if level > len(chain):  # everyone up to the top was told: the human is next, once
                if level == len(chain) + 1:
                    _call_human(org, top=chain[-1], task_id=task.id,
                                text=f"Task {task.id} \"{task.title}\" delegated to {name} is still overdue "
                                     f"(due {task.due}); {', '.join(chain)} were told and nothing moved.")
                org.queue(name).update(task.id, by="orgctl", escalations=level, note="overdue: a human was called")
                continue
            targets = chain[:level]
            text = (f"Task {task.id} \"{task.title}\" delegated to {name} is overdue (due {task.due}, "
                    f"last update {task.updated_at}).")
            for target in targets[-1:]:
                org.inbox(target).deliver(Message(sender="orgctl", recipient=target, intent="notice", text=text,
                                                  trust="trusted", chain=[name], task_id=task.parent,
                                                  source="framework"))
                notified.append(target)
            org.queue(name).update(task.id, by="orgctl", escalations=level, note=f"overdue: escalated to {targets[-1]}")
            org.event(reason="TaskOverdue", object=f"task/{task.id}", anima=name, warning=True,
                      message=f"{task.id} of {name} is overdue; told {targets[-1]} (escalation {level})")
    return notified


def _call_human(org: Organization, *, top: str, task_id: str, text: str) -> None:
    """The framework's own call_human at the top of the chain, when the top Anima is permitted one."""
    from orgctl.runtime.permissions import Policy

    if not Policy(org.specs[top].permissions, workspace=org.workspace(top)).can_use("call_human").allowed:
        return
    org.call_human(top, text, title="overdue task", task_id=task_id)
