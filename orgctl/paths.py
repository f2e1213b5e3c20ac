"""The one place that resolves every path orgctl uses.

* The **org repo** is the git work tree given on the command line (default:
  the current directory).
* The **state directory** holds observed state (inventory, runtime status,
  locks, sockets, logs, archives). It defaults to ``<org>/.orgctl``, which the
  org template's ``.gitignore`` keeps out of git; ``ORGCTL_STATE_DIR``
  overrides it (tests point it at a temporary directory).

Nothing here touches the disk except :meth:`StatePaths.ensure`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV = "ORGCTL_STATE_DIR"
STATE_DIR_NAME = ".orgctl"


@dataclass(frozen=True)
class StatePaths:
    """Paths inside the state directory of one org. All are absolute."""

    root: Path

    @property
    def inventory(self) -> Path:
        """JSON inventory of what ``apply`` started (written only by apply, under the lock)."""
        return self.root / "inventory.json"

    @property
    def runtime(self) -> Path:
        """JSON runtime status (written only by the supervisor)."""
        return self.root / "runtime.json"

    @property
    def lock(self) -> Path:
        return self.root / "state.lock"

    @property
    def specs(self) -> Path:
        """Applied spec snapshots, one JSON file per Anima, read by the Anima processes."""
        return self.root / "specs"

    def spec_snapshot(self, name: str) -> Path:
        return self.specs / f"{name}.json"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def socket(self) -> Path:
        """The supervisor's Unix socket.

        Unix socket paths are limited to ~107 bytes, so a deep state directory
        gets a short path under the system temp dir, derived from its own path.
        """
        preferred = self.run / "supervisor.sock"
        if len(os.fsencode(preferred)) < 100:
            return preferred
        digest = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"orgctl-{digest}.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.run / "supervisor.json"

    @property
    def model_server(self) -> Path:
        """Where the embedded model server records its pid and port."""
        return self.run / "model-server.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def usage(self) -> Path:
        """Token usage of every model call, JSON lines."""
        return self.root / "usage.jsonl"

    @property
    def archive(self) -> Path:
        """Memory of retired Animas, copied here when they are retired."""
        return self.root / "archive"

    def ensure(self) -> StatePaths:
        for d in (self.root, self.specs, self.run, self.logs, self.archive):
            d.mkdir(parents=True, exist_ok=True)
        return self


def state_paths(org_dir: Path) -> StatePaths:
    """Return the state paths for the org repo at ``org_dir`` (env override first)."""
    override = os.environ.get(STATE_DIR_ENV)
    root = Path(override) if override else Path(org_dir) / STATE_DIR_NAME
    return StatePaths(root=root.resolve())


def template_dir() -> Path:
    """The ``org-template/`` that ``orgctl init`` copies.

    Found next to the package in a source checkout (editable install), or as
    package data in ``orgctl/_org_template`` in a built wheel.

    Raises FileNotFoundError when neither exists (a broken install).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "org-template", here / "_org_template"):
        if (candidate / "org.yaml").is_file():
            return candidate
    raise FileNotFoundError("org-template not found next to the orgctl package")
