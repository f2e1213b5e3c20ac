"""Running memory passes over several Animas with one in-process model gateway.

Used by ``orgctl consolidate`` (and later by the stateless ``orgctl tick``):
no supervisor is needed; the embedded model server is reused if one runs
for this org, else started for the pass and stopped after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from orgctl.desired.models import OrgSpec
from orgctl.gitops.clones import RuntimeClone
from orgctl.memory.consolidation import PassResult, consolidate
from orgctl.paths import StatePaths


def run_consolidation(*, clone: RuntimeClone, paths: StatePaths, spec: OrgSpec, names: list[str],
                      day: date | None = None,
                      progress: Callable[[str], None] = lambda name: None) -> list[PassResult]:
    """One consolidation pass (and at most one commit) per Anima in ``names``, in order.

    The passes commit in the runtime's ``clone``; the caller syncs it (:meth:`RuntimeClone.sync`).
    ``day`` defaults to today in each Anima's time zone. Raises ModelError or
    GitError from the first pass that fails; earlier passes stay committed.
    """
    from orgctl.llm.gateways import Gateway

    gateway: Gateway | None = None
    results = []
    try:
        for name in names:
            anima = spec.animas[name]
            the_day = day or datetime.now(ZoneInfo(anima.timezone)).date()
            progress(name)
            if gateway is None:
                gateway = Gateway(paths=paths.ensure())
            results.append(consolidate(clone=clone, anima=name, model=anima.model, day=the_day,
                                       client=gateway, source_revision=spec.revision))
    finally:
        if gateway is not None:
            gateway.close()
    return results
