"""The runtime's own copy of the org repo: a bare mirror in the state dir that the controller reads.

DESIGN §2: a person's checkout is never written. The controller fetches the
tracked branch into ``<state>/repo.git`` and reads every revision from there
(:class:`orgctl.desired.sources.GitRevisionSource` works on a bare repo), so a
``git stash``, a branch switch or an uncommitted edit in the checkout changes
nothing it applies.

What is tracked, like a Flux ``GitRepository``:

* when the checkout has a remote for the branch (``branch.<b>.remote``, else
  ``origin``), that remote's branch: what is merged there is the desired state,
  and a commit that is only in the checkout is reported as not yet pushed;
* otherwise the checkout's own branch (a local-only org).

:meth:`OrgMirror.tip` is the cheap check run on every trigger (one
``git rev-parse`` for a local branch, one ``git ls-remote`` for a remote);
:meth:`OrgMirror.fetch` brings the objects over only when the tip moved.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from orgctl.errors import GitError
from orgctl.gitexec import run_git

TRACKED_REF = "refs/orgctl/tracked"


def current_branch(checkout: Path) -> str:
    """The branch checked out in ``checkout``. Raises GitError on a detached HEAD or a non-repo."""
    try:
        return run_git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=checkout)
    except GitError as e:
        raise GitError(f"{checkout}: HEAD is not on a branch ({e.message})",
                       hint="check out the branch the org runs from, or pass --branch") from e


def upstream_url(checkout: Path, branch: str) -> str | None:
    """The URL the checkout's ``branch`` tracks (its remote, else ``origin``), absolute for a local path."""
    names = []
    with contextlib.suppress(GitError):
        names.append(run_git("config", f"branch.{branch}.remote", cwd=checkout))
    names.append("origin")
    for name in names:
        if name == ".":
            continue
        try:
            url = run_git("config", f"remote.{name}.url", cwd=checkout)
        except GitError:
            continue
        if "://" not in url and ":" not in url.split("/")[0]:  # a path, relative to the checkout
            url = str((checkout / url).resolve())
        return url
    return None


@dataclass(frozen=True)
class OrgMirror:
    """The bare mirror at ``path`` of ``branch``, from ``url`` (the remote, or the checkout itself)."""

    checkout: Path
    path: Path
    branch: str
    url: str
    remote: bool
    """True when ``url`` is the checkout's remote, not the checkout."""

    @classmethod
    def for_checkout(cls, checkout: Path, path: Path, *, branch: str | None = None) -> OrgMirror:
        """The mirror that tracks ``checkout``'s ``branch`` (default: the one checked out).

        Raises GitError when ``checkout`` is not a git repository or HEAD is detached.
        """
        checkout = Path(checkout).resolve()
        branch = branch or current_branch(checkout)
        url = upstream_url(checkout, branch)
        return cls(checkout=checkout, path=Path(path), branch=branch, url=url or str(checkout), remote=url is not None)

    @property
    def local(self) -> bool:
        """True when the tracked repository is a path on this machine (cheap to ask, watchable)."""
        return "://" not in self.url and not self.url.split("/")[0].endswith(":") and Path(self.url).exists()

    def describe(self) -> str:
        return f"{self.url} ({self.branch})"

    def tip(self) -> str:
        """The tracked branch's current sha at its source. Raises GitError when it cannot be read."""
        ref = f"refs/heads/{self.branch}"
        if not self.remote:
            return run_git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=self.checkout)
        out = run_git("ls-remote", "--", self.url, ref, timeout=60.0)
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        raise GitError(f"{self.url} has no branch {self.branch!r}", hint="push it, or pass --branch")

    def ensure(self) -> None:
        """Create the bare mirror when it is missing."""
        if not (self.path / "HEAD").is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "--bare", str(self.path))

    def fetch(self) -> str:
        """Fetch the tracked branch into the mirror (at :data:`TRACKED_REF`); returns its sha.

        Raises GitError when the source cannot be reached (a temporary error: retried later).
        """
        self.ensure()
        run_git("fetch", "--quiet", "--no-tags", "--", self.url,
             f"+refs/heads/{self.branch}:{TRACKED_REF}", cwd=self.path)
        return run_git("rev-parse", "--verify", f"{TRACKED_REF}^{{commit}}", cwd=self.path)

    def fetched(self) -> str | None:
        """The sha the mirror last fetched, or None before the first fetch."""
        try:
            return run_git("rev-parse", "--verify", "--quiet", f"{TRACKED_REF}^{{commit}}", cwd=self.path)
        except GitError:
            return None

    def unpushed(self) -> int:
        """How many commits the checkout's branch has that the tracked remote branch has not (0 without one)."""
        if not self.remote:
            return 0
        tracked = self.fetched()
        if tracked is None:
            return 0
        try:
            run_git("cat-file", "-e", f"{tracked}^{{commit}}", cwd=self.checkout)
        except GitError:
            return 0  # the checkout has not fetched that far: nothing to compare
        try:
            return int(run_git("rev-list", "--count", f"{tracked}..refs/heads/{self.branch}", cwd=self.checkout) or 0)
        except (GitError, ValueError):
            return 0

    def watch_dirs(self) -> list[Path]:
        """Folders whose changes may move the tip: the checkout's git dir, and a local remote's."""
        dirs = []
        if not self.remote:
            dirs.append(Path(run_git("rev-parse", "--absolute-git-dir", cwd=self.checkout)))
        elif self.local:
            remote = Path(self.url)
            dirs.append(remote if (remote / "HEAD").is_file() else remote / ".git")
        return [d for d in dirs if d.is_dir()]
