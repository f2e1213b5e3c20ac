"""Planning: the diff between desired state (a revision) and observed state.

Actions per Anima, with Terraform's symbols:

====== ========= ==========================================================
``+``  hire      in the spec, enabled, and not running
``~``  change    prompt files, org chart or ``enabled`` changed: applied in place
``-/+`` restart  a setting the process starts with changed, or it is not running
``-``  retire    in the inventory but gone from the spec: stop and archive memory
====== ========= ==========================================================

A paused Anima (``orgctl pause``, or a manager's ``pause_anima``) is not started: its spec
changes are applied in place and it stays stopped until it is resumed. A suspended one
(``orgctl suspend``) gets no change at all and is listed in :attr:`Plan.suspended`.

Restarts count as changes in the summary line (Terraform counts a replace
under both add and destroy; an Anima that keeps its memory is not destroyed).
A plan is pure data: computing it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel

from orgctl.desired.models import FILE_FIELDS, AnimaSpec, OrgSpec
from orgctl.state.inventories import Inventory, InventoryEntry, now_iso
from orgctl.state.pauses import PauseRecord
from orgctl.state.runtimes import RuntimeStatus


class Action(StrEnum):
    HIRE = "hire"
    CHANGE = "change"
    RESTART = "restart"
    RETIRE = "retire"

    @property
    def symbol(self) -> str:
        return {"hire": "+", "change": "~", "restart": "-/+", "retire": "-"}[self.value]


class Change(BaseModel):
    """One planned action on one Anima. ``reasons`` are human sentences."""

    name: str
    action: Action
    reasons: list[str]
    spec_hash: str | None = None
    paused: bool = False
    """The Anima is paused (:mod:`orgctl.state.pauses`): apply records its spec and does not start it."""
    drift: list[str] = []
    """What was changed outside orgctl (:mod:`orgctl.gitops.drifting`); the restart converges it back."""


class WorkflowChange(BaseModel):
    """One workflow added, changed or removed (``workflows/<name>.yaml``). A run in flight keeps the workflow it
    started with; the change reaches the runs started after the apply."""

    name: str
    action: Literal["add", "change", "remove"]

    @property
    def symbol(self) -> str:
        return {"add": "+", "change": "~", "remove": "-"}[self.action]


class Plan(BaseModel):
    """Every action needed to converge, in apply order (retire, restart, change, hire)."""

    org: str
    revision: str | None
    changes: list[Change]
    base: str | None = None
    """For a plan between two revisions (:func:`plan_between`, ``plan --base``): the base revision."""
    settings: list[str] = []
    """For a plan between two revisions: org.yaml's own settings that changed (``runtime: controller → tick``),
    which no Anima's action shows."""
    workflows: list[WorkflowChange] = []
    """Workflows to add, change and remove, by name."""
    suspended: dict[str, str] = {}
    """Animas left as they are (``orgctl suspend NAME``), with who suspended them and why: shown, never
    silently skipped. Their spec changes wait until ``orgctl resume``."""

    def count(self, *actions: Action) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.settings or self.workflows)

    @property
    def drifted(self) -> list[Change]:
        """Changes that converge something changed outside orgctl back to the applied spec."""
        return [c for c in self.changes if c.drift]

    def mass_retire(self, inventory: Inventory) -> str | None:
        """Why this plan is a mass retirement (every applied Anima, or more than half), or None.

        ``apply`` refuses such a plan unless ``--allow-mass-retire`` is given: an emptied or
        mis-merged ``animas/`` folder must not stop the whole organization (Argo CD's and Flux's
        prune safeguards answer the same risk).
        """
        applied = sum(1 for e in inventory.animas.values() if e.status not in ("retired", "orphaned"))
        retiring = self.count(Action.RETIRE)
        if retiring and (retiring == applied or retiring * 2 > applied):
            return f"this plan retires {retiring} of {applied} applied Animas"
        return None

    def summary(self) -> str:
        if not self.has_changes:
            if self.base is not None:
                return "No changes. The desired state is the same at both revisions."
            return "No changes. The running organization matches the desired state."
        settings = ", ".join(s.split(":")[0] for s in self.settings)
        flows = ", ".join(f"{n} to {a}" for a in ("add", "change", "remove")
                          if (n := sum(1 for w in self.workflows if w.action == a)))
        return (f"Plan: {self.count(Action.HIRE)} to hire, "
                f"{self.count(Action.CHANGE, Action.RESTART)} to change, "
                f"{self.count(Action.RETIRE)} to retire" + (f"; workflows: {flows}" if flows else "")
                + (f"; org settings: {settings}." if settings else "."))

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": "1",
            "org": self.org,
            "revision": self.revision,
            **({"base": self.base, "settings": list(self.settings)} if self.base is not None else {}),
            "changes": [c.model_dump(mode="json") | {"symbol": c.action.symbol} for c in self.changes],
            "workflows": [w.model_dump(mode="json") | {"symbol": w.symbol} for w in self.workflows],
            "suspended": dict(self.suspended),
            "summary": {"hire": self.count(Action.HIRE),
                        "change": self.count(Action.CHANGE, Action.RESTART),
                        "restart": self.count(Action.RESTART),
                        "retire": self.count(Action.RETIRE)},
        }


RETIRE_REASONS = {
    "archive": "stop it and archive its memory",
    "delete": "stop it and delete its memory from the work tree (deletion_policy: delete; git history keeps "
              "what was committed)",
    "orphan": "stop managing it; its process and memory are left as they are (deletion_policy: orphan)",
}


def _short(value: Any) -> str:
    return "null" if value is None else str(value)


def inventory_entry(spec: AnimaSpec, *, revision: str | None, status: str) -> InventoryEntry:
    """The inventory record of ``spec`` applied at ``revision`` with ``status``."""
    return InventoryEntry(name=spec.name, status=status,  # type: ignore[arg-type]
                          revision=revision, spec_hash=spec.spec_hash(), config=spec.config(),
                          files=dict(spec.files), org=spec.org.model_dump(mode="json"),
                          applied_at=now_iso(), deletion_policy=spec.deletion_policy).sealed()


def _is_running(name: str, runtime: RuntimeStatus) -> tuple[bool, str]:
    """Whether the supervisor runs ``name`` now; if not, why (for the reason line)."""
    if not runtime.supervisor_alive():
        return False, "not running (the supervisor is not running)"
    proc = runtime.animas.get(name)
    if proc is None or proc.state == "stopped":
        return False, "not running (the supervisor has no process for it)"
    return True, ""


def _diff(want: AnimaSpec, have: InventoryEntry) -> tuple[list[str], list[str]]:
    """(restart reasons, in-place reasons) between a desired spec and what was applied."""
    restart = [f"{f}: {_short(have.config.get(f))} → {_short(v)}"
               for f, v in want.config().items() if have.config.get(f) != v]
    in_place = [f"{f} changed" for f in FILE_FIELDS if want.files.get(f) != have.files.get(f)]
    org = want.org.model_dump(mode="json")
    for key in ("supervisor", "reports", "peers", "chain"):
        if org[key] == have.org.get(key):
            continue
        if key in ("reports", "peers"):  # sets of names: what joined and left, not two long lists
            in_place.append(f"org chart: {key} {_set_change(have.org.get(key) or [], org[key] or [])}")
        else:
            in_place.append(f"org chart: {key} {_short(have.org.get(key))} → {_short(org[key])}")
    return restart, in_place


def _set_change(old: list[str], new: list[str], *, shown: int = 5) -> str:
    """``+dave +erin -carol``: the names ``new`` adds to ``old`` and drops from it, at most ``shown`` of each
    (then ``… and N more``); ``reordered`` when the set is the same."""
    def names(sign: str, items: list[str]) -> list[str]:
        out = [f"{sign}{n}" for n in items[:shown]]
        return out + ([f"… and {len(items) - shown} more"] if len(items) > shown else [])

    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return " ".join(names("+", added) + names("-", removed)) or "reordered"


def _paused_change(name: str, spec_hash: str, pause: PauseRecord, reasons: list[str]) -> Change:
    note = f"{pause.describe()}: spec recorded, not started until `orgctl resume`"
    return Change(name=name, action=Action.CHANGE, spec_hash=spec_hash, reasons=[*reasons, note], paused=True)


def _with_drift(changes: list[Change], desired: OrgSpec, drift: Mapping[str, list[str]]) -> list[Change]:
    """``changes`` with every drifted Anima (still in the spec, enabled) restarted, its drift recorded."""
    by_name = {c.name: c for c in changes}
    for name, reasons in drift.items():
        want = desired.animas.get(name)
        change = by_name.get(name)
        if want is None or not want.enabled or (change is not None and change.action in (Action.RETIRE, Action.HIRE)):
            continue
        if change is not None and change.paused:
            continue
        base = change.reasons if change is not None else []
        by_name[name] = Change(name=name, action=Action.RESTART, spec_hash=want.spec_hash(),
                               reasons=[*(f"changed outside orgctl: {r}" for r in reasons), *base], drift=list(reasons))
    return list(by_name.values())


def compute_plan(desired: OrgSpec, inventory: Inventory, runtime: RuntimeStatus | None,
                 paused: Mapping[str, PauseRecord] | None = None,
                 drift: Mapping[str, list[str]] | None = None) -> Plan:
    """Compare ``desired`` with what the inventory says was applied and the runtime shows running.

    ``paused``: pause records by name (:func:`orgctl.state.pauses.read_pauses`). A paused Anima that
    no process runs is not started: a spec change is recorded in place (``paused=True``), and with no
    change there is nothing to do. A record whose Anima runs anyway is stale and ignored.
    ``drift``: reasons by name (:func:`orgctl.gitops.drifting.detect_drift`); a drifted Anima that
    stays in the spec is restarted from a freshly written snapshot, whatever else its change was.
    ``runtime`` None: every applied Anima is taken as running (a plan between revisions has no processes).
    """
    holds = paused or {}
    suspended = {n: r.describe() for n, r in holds.items() if r.mode == "suspend"
                 and (n in desired.animas or n in inventory.animas)}
    paused = {n: r for n, r in holds.items() if r.mode == "pause"}
    drift = {n: r for n, r in (drift or {}).items() if n not in suspended}
    changes: list[Change] = []
    for name in sorted(set(desired.animas) | set(inventory.animas)):
        if name in suspended:
            continue
        want = desired.animas.get(name)
        have = inventory.animas.get(name)
        if want is None:
            if have is not None and have.status not in ("retired", "orphaned"):
                changes.append(Change(name=name, action=Action.RETIRE,
                                      reasons=[f"removed from the repo: {RETIRE_REASONS[have.deletion_policy]}"]))
            continue
        h = want.spec_hash()
        if have is not None and have.status == "stopped" and want.enabled and name in paused:
            changes.append(_paused_change(name, h, paused[name], ["stopped by `orgctl down`"]))
            continue
        if have is None or have.status in ("retired", "stopped", "orphaned"):
            if want.enabled:
                why = {None: "new in the repo", "retired": "back in the repo after being retired",
                       "orphaned": "back in the repo after being orphaned: managed again",
                       "stopped": "not running (stopped by `orgctl down`)"}[have.status if have else None]
                changes.append(Change(name=name, action=Action.HIRE, reasons=[why], spec_hash=h))
            continue
        if not want.enabled:
            if have.status != "disabled":
                changes.append(Change(name=name, action=Action.CHANGE, spec_hash=h,
                                      reasons=["enabled: true → false: stop it; its memory stays in place"]))
            elif have.spec_hash != h:
                changes.append(Change(name=name, action=Action.CHANGE, spec_hash=h,
                                      reasons=["spec changed while disabled: record it"]))
            continue
        if have.status == "disabled":
            changes.append(Change(name=name, action=Action.CHANGE, spec_hash=h,
                                  reasons=["enabled: false → true: start it"]))
            continue
        restart, in_place = _diff(want, have)
        running, why_not = _is_running(name, runtime) if runtime is not None else (True, "")
        if not running and name in paused:
            if restart or in_place or have.spec_hash != h:
                changes.append(_paused_change(name, h, paused[name], restart + in_place or ["spec changed"]))
            continue
        if restart or not running:
            changes.append(Change(name=name, action=Action.RESTART, spec_hash=h,
                                  reasons=(restart or [why_not]) + in_place))
        elif in_place or have.spec_hash != h:
            changes.append(Change(name=name, action=Action.CHANGE, spec_hash=h,
                                  reasons=in_place or ["spec changed"]))
    changes = _with_drift(changes, desired, drift)
    order = {Action.RETIRE: 0, Action.RESTART: 1, Action.CHANGE: 2, Action.HIRE: 3}
    changes.sort(key=lambda c: (order[c.action], c.name))
    return Plan(org=desired.name, revision=desired.revision, changes=changes, suspended=suspended,
                workflows=workflow_changes(desired, inventory))


def workflow_changes(desired: OrgSpec, inventory: Inventory) -> list[WorkflowChange]:
    """The workflows ``desired`` adds, changes (another digest) and removes against ``inventory``, by name."""
    want = {name: w.digest for name, w in desired.workflows.items()}
    have = inventory.workflows
    return [WorkflowChange(name=name, action="add" if name not in have else "remove" if name not in want
                           else "change")
            for name in sorted(set(want) | set(have)) if want.get(name) != have.get(name)]


def plan_between(base: OrgSpec, head: OrgSpec, *, applied: Inventory | None = None) -> Plan:
    """The change of desired state from ``base`` to ``head`` (``plan --base``): what applying ``head`` would do
    to an organization that runs ``base`` exactly. A CI runner has no observed state, so a pull request's plan
    is this one: the base's every Anima as applied (``disabled`` when it is not enabled) and running, no
    pause, no drift. Same actions, symbols and summary as :func:`compute_plan`; ``Plan.base`` is set.
    ``applied``: :func:`applied_as` of ``base`` when the caller has it already."""
    plan = compute_plan(head, applied or applied_as(base), None)
    return plan.model_copy(update={"base": base.revision, "settings": org_settings_diff(base, head)})


ORG_SETTINGS = ("name", "runtime", "shards", "sandbox", "memory", "notifications", "board_channels")
"""org.yaml's own settings (its ``defaults`` reach the Animas, whose actions show them)."""


def org_settings_diff(base: OrgSpec, head: OrgSpec) -> list[str]:
    """``["runtime: controller → tick", "sandbox changed", ...]``: the settings of :data:`ORG_SETTINGS` that
    differ, a scalar with its two values, a structure by name."""
    out = []
    for key in ORG_SETTINGS:
        old, new = getattr(base, key), getattr(head, key)
        if old == new:
            continue
        scalar = all(isinstance(v, str | int) for v in (old, new))
        out.append(f"{key}: {old} → {new}" if scalar else f"{key}: changed")
    return out


def applied_as(spec: OrgSpec) -> Inventory:
    """The inventory an organization would have after applying ``spec`` exactly: every Anima ``active``
    (``disabled`` when it is not enabled), at ``spec.revision``."""
    return Inventory(revision=spec.revision, animas={
        name: inventory_entry(anima, revision=spec.revision, status="active" if anima.enabled else "disabled")
        for name, anima in spec.animas.items()}, workflows={name: w.digest for name, w in spec.workflows.items()})
