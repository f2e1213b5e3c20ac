"""What ``apply`` needs from a runtime backend.

``apply`` lives below the runtime in the layering, so it drives whatever
backend it is given through this protocol; the CLI passes the local
supervisor backend (:class:`orgctl.runtime.local.LocalBackend`). Keeping the
process model behind this seam is what lets later backends (a container
per Anima, a stateless CI tick) slot in.
"""

from __future__ import annotations

from typing import Protocol

from orgctl.state.runtimes import RuntimeStatus


class Backend(Protocol):
    """Runs Animas whose spec snapshots ``apply`` has written. All calls are idempotent."""

    def prepare(self) -> None:
        """Make the backend ready to take commands (e.g. start the supervisor)."""

    def start(self, name: str) -> None:
        """Run ``name`` from its snapshot (no-op when it runs)."""

    def restart(self, name: str) -> None:
        """Stop ``name`` and start it again from its (new) snapshot."""

    def reload(self, name: str) -> None:
        """Make a running ``name`` re-read its snapshot in place."""

    def stop(self, name: str) -> None:
        """Stop ``name`` (no-op when it does not run)."""

    def observe(self) -> RuntimeStatus:
        """What runs now."""

    def shutdown(self) -> list[int]:
        """Stop everything this backend started; returns the pids stopped."""
