"""The one place that resolves every path orgctl uses.

* The **org repo** is the git work tree given on the command line (default:
  the current directory). It belongs to a person: orgctl only reads it
  (``orgctl pull`` is the one command that brings memory commits into it).
* The **state directory** holds everything the runtime writes that is not
  memory (DESIGN §2), outside every checkout, so ``git clean -fdx``, a stash
  or a branch switch in the person's checkout cannot break a running org:

  - operational state: inventory, runtime status, pids, sockets, locks,
    logs, token usage, spec snapshots, archives;
  - work in flight, under ``work/``: inboxes, task queues, the Board,
    approvals, chat transcripts, cron results, the event stream;
  - each Anima's workspace under ``workspaces/<name>/`` (a clone of the org
    repo at the applied revision, where its commands run);
  - the runtime's own clone of the org repo under ``clone/``, whose work tree
    holds the memory the Animas write (:mod:`orgctl.gitops.clones`).

  It defaults to ``$XDG_STATE_HOME/orgctl/<org id>/`` (``~/.local/state`` when
  ``XDG_STATE_HOME`` is unset), where the org id is the repo folder's name
  plus a hash of its absolute path, so two orgs never share a state dir.
  ``ORGCTL_STATE_DIR`` overrides it (tests point it at a temporary directory).

Nothing here touches the disk except :meth:`StatePaths.ensure`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

STATE_DIR_ENV = "ORGCTL_STATE_DIR"
STATE_FORMAT = 1
"""The state dir format this orgctl writes (migrations: :mod:`orgctl.state.versions`)."""
XDG_STATE_ENV = "XDG_STATE_HOME"


class _Rooted:
    """An immutable value holding one folder, ``root``: what ``@dataclass(frozen=True)`` would make, without
    importing dataclasses (and inspect), which ``orgctl status`` cannot afford at start-up."""

    __slots__ = ("root",)
    root: Path

    def __init__(self, root: Path) -> None:
        object.__setattr__(self, "root", root)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.root == self.root  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.root))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={self.root!r})"

    def __reduce__(self) -> tuple[type, tuple[Path]]:  # pickle and copy through __init__
        return type(self), (self.root,)


class WorkPaths(_Rooted):
    """Work in flight (DESIGN §2): durable files the runtime carries between runs. All absolute."""

    root: Path

    def inbox(self, name: str) -> Path:
        """Maildir of one recipient (an Anima, or ``human``): ``tmp/``, ``new/``, ``cur/``."""
        return self.root / "inboxes" / name

    def tasks(self, name: str) -> Path:
        """Append-only task log (JSON lines of events) of one Anima."""
        return self.root / "tasks" / f"{name}.jsonl"

    @property
    def board(self) -> Path:
        """One JSON-lines file per Board channel."""
        return self.root / "board"

    @property
    def outbox(self) -> Path:
        """Every accepted message, one JSON line each: what rate limits and loop guards count."""
        return self.root / "outbox.jsonl"

    @property
    def approvals(self) -> Path:
        return self.root / "approvals"

    @property
    def chats(self) -> Path:
        return self.root / "chats"

    @property
    def cursors(self) -> Path:
        """Per-Anima read positions (Board, cron results) between beats."""
        return self.root / "cursors"

    @property
    def events(self) -> Path:
        """The operator's event stream (``orgctl events``), JSON lines, bounded by rotation."""
        return self.root / "events.jsonl"

    @property
    def proposals(self) -> Path:
        return self.root / "proposals.jsonl"

    @property
    def runs(self) -> Path:
        """Workflow runs, one JSON-lines log each (:mod:`orgctl.work.runs`)."""
        return self.root / "runs"


def workspace_git_dir(workspace: Path) -> Path:
    """The git directory of the workspace ``<state>/workspaces/<name>``: ``<state>/gitdirs/<name>``, outside it.

    The Anima's commands write its workspace; orgctl's own git (``apply``, outside the sandbox) runs with
    ``--git-dir`` pointing here, so nothing a command writes in the workspace -- a ``.git`` with a filter
    or a hook -- is ever read by it. Inside the sandbox this directory is mounted read-only at
    ``<workspace>/.git``, so the Anima's git commands work there.
    """
    return workspace.parent.parent / "gitdirs" / workspace.name


class StatePaths(_Rooted):
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
    def history(self) -> Path:
        """One JSON line per apply that changed something or failed (``orgctl history``)."""
        return self.root / "history.jsonl"

    @property
    def paused(self) -> Path:
        """Pause records, one ``<name>.json`` per paused Anima (:mod:`orgctl.state.pauses`)."""
        return self.root / "paused"

    def pause_file(self, name: str) -> Path:
        return self.paused / f"{name}.json"

    @property
    def suspended(self) -> Path:
        """Present while the reconciliation of the whole org is suspended (``orgctl suspend --all``)."""
        return self.root / "suspended.json"

    @property
    def status(self) -> Path:
        """Conditions, sync and health per Anima, written by the controller after every pass (``orgctl status``)."""
        return self.root / "status.json"

    @property
    def mirror(self) -> Path:
        """The runtime's own bare copy of the org repo, which the controller fetches the tracked branch into."""
        return self.root / "repo.git"

    @property
    def spec_cache(self) -> Path:
        """Secret-scan and YAML parse results of spec files by content (:mod:`orgctl.desired.speccache`)."""
        return self.root / "cache" / "spec.json"

    @property
    def clone(self) -> Path:
        """The runtime's own clone of the org repo: memory is written and committed there (DESIGN §2)."""
        return self.root / "clone"

    def memory(self, name: str) -> Path:
        """Where Anima ``name``'s memory is written: ``clone/animas/<name>/memory``."""
        return self.clone / "animas" / name / "memory"

    def memory_lock(self, name: str) -> Path:
        """Held by whoever writes Anima ``name``'s memory: its process for a write, a pass for the pass."""
        return self.run / "memory" / f"{name}.lock"

    def memory_state(self, name: str) -> Path:
        """Operational memory data of Anima ``name`` (access statistics): never in git."""
        return self.root / "memory" / name

    @property
    def memory_index(self) -> Path:
        """The org's search index (Chroma) and its manifest: a cache, rebuilt from the memory files."""
        return self.root / "cache" / "memory-index"

    @property
    def controller(self) -> Path:
        """The running controller's pid, start time, source and options (its pid file)."""
        return self.run / "controller.json"

    @property
    def controller_lock(self) -> Path:
        """Held by the one controller of this org for as long as it runs."""
        return self.run / "controller.lock"

    @property
    def reconcile_request(self) -> Path:
        """``orgctl reconcile`` asks for a pass here; the controller answers in :attr:`reconcile_handled`."""
        return self.run / "reconcile-request.json"

    @property
    def reconcile_handled(self) -> Path:
        return self.run / "reconcile-handled.json"

    @property
    def run(self) -> Path:
        """Pids and the socket: a private directory (mode 0700)."""
        return self.root / "run"

    @property
    def socket(self) -> Path:
        """The supervisor's Unix socket.

        Unix socket paths are limited to ~107 bytes, so a deep state directory
        gets a short path in ``<tmp>/orgctl-<uid>/``, derived from its own path; the
        supervisor makes that folder private (:func:`private_dir`) before it binds.
        """
        preferred = self.run / "supervisor.sock"
        if len(os.fsencode(preferred)) < 100:
            return preferred
        import tempfile  # only for this rare fallback: the CLI starts faster without it

        digest = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"orgctl-{os.getuid()}" / f"{digest}.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.run / "supervisor.json"

    @property
    def model_server(self) -> Path:
        """Where the embedded model server records its pid and port."""
        return self.run / "model-server.json"

    @property
    def model_server_lock(self) -> Path:
        """Held while a model server is found or started: one server per org, whoever asks."""
        return self.run / "model-server.lock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def usage(self) -> Path:
        """Token usage of every model call, JSON lines."""
        return self.root / "usage.jsonl"

    @property
    def state_git(self) -> Path:
        """A bare git directory for the ``orgctl/state`` branch of a tick org (its objects, fetched tip)."""
        return self.root / "state.git"

    @property
    def archive(self) -> Path:
        """Memory of retired Animas, copied here when they are retired."""
        return self.root / "archive"

    @property
    def work(self) -> WorkPaths:
        return WorkPaths(root=self.root / "work")

    def workspace(self, name: str) -> Path:
        """The Anima's own folder: commands run here; it holds a checkout of the org repo, whose git
        directory is :func:`workspace_git_dir`."""
        return self.root / "workspaces" / name

    @property
    def format_file(self) -> Path:
        """The state dir's format version (:mod:`orgctl.state.versions`)."""
        return self.root / "format.json"

    def ensure(self) -> StatePaths:
        """Create the folders; a new state dir is stamped with the current :data:`STATE_FORMAT`."""
        fresh = not self.root.is_dir() or not any(os.scandir(self.root))
        for d in (self.root, self.specs, self.logs, self.archive, self.work.root):
            d.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.run, 0o700)
        if fresh and not self.format_file.exists():
            self.format_file.write_text(f'{{"format_version": {STATE_FORMAT}}}\n', encoding="utf-8")
        return self


def private_dir(path: Path) -> Path:
    """Make sure ``path`` is a folder only this user can enter: created 0700, or an existing one
    that is not a symbolic link, is owned by this user and is tightened to 0700.

    Raises StateError when it is a link or another user's (a folder planted in a shared /tmp).
    """
    from orgctl.errors import StateError

    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise StateError(f"{path} is not a private folder of this user (a link, or owned by uid {info.st_uid})",
                         hint="remove it, or set ORGCTL_STATE_DIR to a shorter path of your own")
    os.chmod(path, 0o700)
    return path


def org_id(org_dir: Path) -> str:
    """A stable id for the org repo at ``org_dir``: ``<folder name>-<12 hex of sha256(absolute path)>``."""
    resolved = Path(org_dir).resolve()
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name)[:40] or "org"
    return f"{slug}-{hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]}"


def state_paths(org_dir: Path) -> StatePaths:
    """Return the state paths for the org repo at ``org_dir`` (``ORGCTL_STATE_DIR`` first)."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return StatePaths(root=Path(override).resolve())
    base = os.environ.get(XDG_STATE_ENV) or str(Path.home() / ".local" / "state")
    return StatePaths(root=(Path(base) / "orgctl" / org_id(org_dir)).resolve())


def template_dir() -> Path:
    """The org template ``orgctl init`` copies: ``org-template/`` at the project's top level in a source
    checkout (an editable install), ``orgctl/org_template/`` in a wheel (setup.py copies it there).

    Raises FileNotFoundError when it is missing (a broken install).
    """
    package = Path(__file__).resolve().parent
    for template in (package / "org_template", package.parent / "org-template"):
        if (template / "org.yaml").is_file():
            return template
    raise FileNotFoundError(f"the org template is missing from this install ({package / 'org_template'})")
