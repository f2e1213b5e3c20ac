"""Status conditions, sync and health: how the controller reports each Anima, in Flux's and Argo CD's shapes.

Per Anima, written by the controller to ``<state>/status.json`` after every pass:

* **conditions** ``Ready``, ``Reconciling`` and ``Stalled``, each
  ``{"type", "status": "True"|"False"|"Unknown", "reason", "message", "lastTransitionTime"}``
  (Kubernetes' ``metav1.Condition``; the transition time moves only when ``status`` changes);
* ``lastAppliedRevision`` and ``lastAttemptedRevision`` (Flux);
* two axes, as Argo CD shows them: **sync** ``Synced``/``OutOfSync`` (is what runs the
  desired spec?) and **health** ``Healthy``/``Progressing``/``Degraded``/``Suspended``/``Missing``
  (does it work?). The org's health is its worst Anima's, in Argo CD's order.

Ready means: the process is up, runs the applied revision (Synced), and its last due heartbeat
succeeded (health ``Healthy``: an Anima resting outside its active hours, or idle, is Healthy).

Plain dicts and the standard library only: ``orgctl status`` reads this without pydantic or git.
"""

from __future__ import annotations

from typing import Any

#: Argo CD's health order, best first: the org's health is the worst of its Animas'.
HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded")
STATUS_FORMAT = 1


def worst_health(healths: list[str]) -> str:
    """The worst of ``healths`` in :data:`HEALTH_ORDER` (``Healthy`` for none)."""
    rank = {h: i for i, h in enumerate(HEALTH_ORDER)}
    return max(healths, key=lambda h: rank.get(h, len(HEALTH_ORDER)), default="Healthy")


def condition(kind: str, status: bool | None, reason: str, message: str = "") -> dict[str, str]:
    """One condition without its transition time (:func:`carry_transitions` sets it)."""
    return {"type": kind, "status": {True: "True", False: "False", None: "Unknown"}[status],
            "reason": reason, "message": message}


def carry_transitions(new: list[dict[str, str]], old: list[dict[str, Any]] | None, now: str) -> list[dict[str, str]]:
    """Set ``lastTransitionTime``: kept from ``old`` when a condition's status did not change, else ``now``."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append({**c, "lastTransitionTime": str(prev["lastTransitionTime"]) if same and prev else now})
    return out


def anima_conditions(*, health: str, health_reason: str, synced: bool, pending: str | None,
                     stalled: str | None, suspended: str | None, resting: bool = False,
                     drifted: str | None = None) -> list[dict[str, str]]:
    """Ready, Reconciling and Stalled for one Anima.

    ``pending``: why a change for it is still queued (``None`` when none is); ``stalled``: the
    permanent error that stops reconciling it until its spec changes; ``suspended``: why it is
    suspended (the controller leaves it as it is); ``resting``: outside its active hours (no beat is due);
    ``drifted``: what was changed outside orgctl and left in place (``--drift warn``).
    """
    if stalled:
        ready = condition("Ready", False, "Stalled", stalled)
    elif suspended:
        ready = condition("Ready", None, "Suspended", suspended)
    elif drifted:
        ready = condition("Ready", False, "Drifted", f"changed outside orgctl: {drifted}")
    elif not synced:
        ready = condition("Ready", False, "OutOfSync", pending or "the running Anima does not match the spec")
    elif health == "Healthy":
        ready = condition("Ready", True, "Succeeded", "running the applied revision; " + (
            "resting outside its active hours (no heartbeat due)" if resting else "last due heartbeat succeeded"))
    else:
        ready = condition("Ready", False, health, health_reason or health.lower())
    reconciling = (condition("Reconciling", True, "Progressing", pending) if pending and not stalled
                   else condition("Reconciling", False, "Succeeded" if synced else "Idle"))
    stall = condition("Stalled", True, "PermanentError", stalled) if stalled else condition("Stalled", False, "")
    return [ready, reconciling, stall]


def ready(entry: dict[str, Any]) -> bool:
    """True when ``entry`` (one Anima's status record) has ``Ready=True``."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in entry.get("conditions") or [])
