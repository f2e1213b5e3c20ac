"""OBSERVED state: what orgctl runs now. Never committed; rebuildable.

* :mod:`~orgctl.state.inventories` — what ``apply`` started, at which revision
  and spec hash (one writer: apply, under the lock).
* :mod:`~orgctl.state.runtimes` — live status of processes (one writer: the
  supervisor).
* :mod:`~orgctl.state.locking` — the state lock every mutating command takes.
* :mod:`~orgctl.state.observing` — the merged view that ``plan`` and ``status`` read.
* :mod:`~orgctl.state.envfiles` — the org's env file (keys, outside git), checked and read.
"""
