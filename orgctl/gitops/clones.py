"""The runtime's own clone of the org repo: where memory is written, committed and pushed from.

DESIGN §2: memory (``animas/*/memory/**``) is written by the runtime only, and
never in a person's checkout. It lives in ``<state>/clone``: a git repository
whose work tree holds nothing but memory files (the Animas append episodes
there) and whose branch is the tracked branch plus the runtime's memory commits.

* :meth:`RuntimeClone.commit` commits one Anima's memory folder as the bot,
  built on a private index (``GIT_INDEX_FILE``) and moved in with a
  compare-and-swap ``update-ref``, all under one file lock, so a consolidation
  run by the CLI and the supervisor's batch commits never step on each other.
  A memory commit carries memory paths only, never a spec file.
* :meth:`RuntimeClone.sync` brings the tracked branch in from its source (the
  org's remote, else the person's checkout, read only), replays the memory
  commits the source does not have yet on top of it (a rebase done with
  plumbing, so the work tree the Animas write is never checked out over), and
  pushes to the remote when there is one. A push rejected because someone else
  pushed first is fetched, replayed and retried (fetch-rebase-retry).
* ``orgctl pull`` (:func:`pull_into`) brings the memory commits into a
  checkout: a fast-forward, or a merge when the person has commits of their
  own; it refuses, naming the files, when the person has edited memory paths.

Replaying works because memory commits and people's commits touch disjoint
paths. A memory file changed on both sides is taken from the runtime (it is the
only writer of memory) and reported in :attr:`SyncResult.overridden`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orgctl.desired.sources import cat_blobs
from orgctl.errors import GitError
from orgctl.gitexec import run_git
from orgctl.gitops.mirrors import current_branch, upstream_url
from orgctl.gitops.pushing import PushRejected, fetch_replay_push, lost_race
from orgctl.gitops.repos import BOT_EMAIL, BOT_NAME, format_trailers, is_memory_path, status_entries
from orgctl.state.files import write_text_atomic

UPSTREAM_REF = "refs/orgctl/upstream"


@dataclass(frozen=True)
class MemoryCommit:
    """One memory commit to make (:meth:`RuntimeClone.commit_each`): its memory ``paths``, message parts,
    ``trailers`` and whether the body lists the changed files."""

    paths: list[str]
    subject: str
    body: str
    trailers: dict[str, str | int]
    list_files: bool = False

PUSH_ATTEMPTS = 5
_BOT_ENV = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}
_ZERO = "0" * 40


@dataclass(frozen=True)
class SyncResult:
    """What one :meth:`RuntimeClone.sync` did. ``upstream``: the source's tip; ``replayed``: memory
    commits rebased onto it; ``pushed``: True when the remote now has them; ``overridden``: memory
    files changed upstream and by the runtime, kept as the runtime wrote them."""

    upstream: str
    tip: str
    replayed: int = 0
    pushed: bool = False
    ahead: int = 0
    overridden: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuntimeClone:
    """The clone at ``root`` of ``branch`` from ``source`` (the org's remote URL, or the checkout's path).

    ``remote`` is True when ``source`` is the remote (memory is pushed there), False for a
    local-only org (memory waits in the clone until ``orgctl pull``).
    """

    root: Path
    branch: str
    source: str
    remote: bool

    # ------------------------------------------------------------ open and create

    @classmethod
    def open(cls, root: Path) -> RuntimeClone | None:
        """The clone at ``root``, or None when there is none yet."""
        root = Path(root)
        if not (root / ".git" / "HEAD").is_file():
            return None
        try:
            config = run_git("config", "--get-regexp", r"^orgctl\.", cwd=root)
        except GitError:
            return None
        values = dict(line.split(" ", 1) for line in config.splitlines() if " " in line)
        if "orgctl.branch" not in values or "orgctl.source" not in values:
            return None
        return cls(root=root, branch=values["orgctl.branch"], source=values["orgctl.source"],
                   remote=values.get("orgctl.remote") == "true")

    @classmethod
    def for_checkout(cls, checkout: Path, root: Path, *, branch: str | None = None) -> RuntimeClone:
        """The clone at ``root`` that tracks ``checkout``'s ``branch`` (default: the one checked out),
        created (with the tracked branch's memory checked out) when missing, re-pointed when the
        checkout now tracks another source. Returns it.

        The first time, memory the checkout holds uncommitted (written there by an orgctl before
        this clone existed) is copied in, so nothing an Anima wrote is lost. Raises GitError when
        the checkout is not a repository, its HEAD is detached, or the source cannot be read.
        """
        checkout = Path(checkout).resolve()
        branch = branch or current_branch(checkout)
        url = upstream_url(checkout, branch)
        wanted = cls(root=Path(root), branch=branch, source=url or str(checkout), remote=url is not None)
        existing = cls.open(root)
        if existing == wanted:
            return existing
        wanted._create(adopt_from=checkout if existing is None else None)
        if existing is not None:  # re-pointed: the hooks are the checkout's
            hooks = run_git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=checkout)
            run_git("config", "core.hooksPath", hooks, cwd=wanted.root)
        return wanted

    def _create(self, *, adopt_from: Path | None) -> None:
        """Initialise (or re-point) the repository and check out the tracked branch's memory."""
        fresh = not (self.root / ".git" / "HEAD").is_file()
        self.root.mkdir(parents=True, exist_ok=True)
        if fresh:
            run_git("init", "--quiet", "--initial-branch", self.branch, str(self.root), cwd=self.root)
        for key, value in (("orgctl.branch", self.branch), ("orgctl.source", self.source),
                           ("orgctl.remote", "true" if self.remote else "false"),
                           ("user.name", BOT_NAME), ("user.email", BOT_EMAIL), ("gc.auto", "256")):
            run_git("config", key, value, cwd=self.root)
        with self._locked():
            upstream = self._fetch()
            if self._tip() is None:
                run_git("update-ref", self._ref, upstream, cwd=self.root)
                run_git("symbolic-ref", "HEAD", self._ref, cwd=self.root)
                self._materialize(self._memory_files(upstream), rev=upstream)
        if adopt_from is not None:
            hooks = run_git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=adopt_from)
            run_git("config", "core.hooksPath", hooks, cwd=self.root)
        if fresh and adopt_from is not None:
            _adopt_uncommitted_memory(adopt_from, self.root)

    # ------------------------------------------------------------ paths

    @property
    def _ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def lock_file(self) -> Path:
        return self.root / ".git" / "orgctl-memory.lock"

    def memory_dir(self, name: str) -> Path:
        """Where Anima ``name``'s memory is written: ``<root>/animas/<name>/memory``."""
        return self.root / "animas" / name / "memory"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the clone's lock: one commit or sync at a time, across processes (flock)."""
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _index(self) -> Iterator[dict[str, str]]:
        """A private, throw-away index: the env that points git at it."""
        fd, name = tempfile.mkstemp(prefix="index-", dir=self.root / ".git")
        os.close(fd)
        os.unlink(name)  # git wants to create it itself
        try:
            yield {"GIT_INDEX_FILE": name}
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def _tip(self) -> str | None:
        try:
            return run_git("rev-parse", "--verify", "--quiet", f"{self._ref}^{{commit}}", cwd=self.root) or None
        except GitError:
            return None

    def tip(self) -> str:
        """The clone's branch tip (the tracked branch plus memory commits). Raises GitError before the first fetch."""
        tip = self._tip()
        if tip is None:
            raise GitError(f"{self.root} has no branch {self.branch!r} yet")
        return tip

    # ------------------------------------------------------------ commit

    def commit(self, paths: list[str], *, subject: str, body: str, trailers: Mapping[str, str | int],
               list_files: bool = False) -> str | None:
        """Commit exactly the memory ``paths`` (e.g. ``animas/bob/memory``) as they are in the work tree,
        as the bot; returns the new sha, or None when they did not change. ``list_files`` adds the
        changed files (``A``/``M``/``D`` and path) to the body.

        Every changed file is scanned for secrets first and redacted in place (detect-secrets, see
        :func:`orgctl.desired.secrets.redact_text`); the trailer ``Orgctl-Redactions`` says how many.
        The caller holds the Anima's memory lock, so no Anima writes the files meanwhile.

        Raises GitError when a path is not a memory path, holds a symbolic link (memory is never
        committed through a link), or git refuses.
        """
        [sha] = self.commit_each([MemoryCommit(paths, subject, body, dict(trailers), list_files)])
        return sha

    def commit_each(self, commits: list[MemoryCommit],
                    guard: Callable[[MemoryCommit], contextlib.AbstractContextManager[object]] | None = None
                    ) -> list[str | None]:
        """:meth:`commit` for each of ``commits``, in order, each its own commit on top of the one before:
        one lock, one index and one ref update for all of them (a batch of 50 Animas costs 5 git processes
        each instead of 13). ``guard(commit)`` (the Anima's memory lock) is entered for every commit, in
        order, before the clone's lock, as :meth:`commit`'s callers do: a memory lock is never awaited while
        the clone's is held. Returns each sha, None where nothing changed. Raises GitError as :meth:`commit`
        does; commits before the failing one are kept (the ref moves to the last good one).
        """
        for c in commits:
            bad = [p for p in c.paths if not is_memory_path(p)]
            if bad:
                raise GitError(f"refusing to commit non-memory paths {bad}: memory commits never touch specs")
        shas: list[str | None] = []
        with contextlib.ExitStack() as guards:
            for c in commits if guard is not None else []:
                guards.enter_context(guard(c))  # type: ignore[misc]
            with self._locked(), self._index() as env:
                start = parent = self.tip()
                run_git("read-tree", parent, cwd=self.root, env=env)
                parent_tree = run_git("rev-parse", f"{parent}^{{tree}}", cwd=self.root)
                hooks = self.hooks_enabled() and self._hooks_present()
                try:
                    for c in commits:
                        made = self._stage_and_commit(c, parent, parent_tree, env, hooks=hooks)
                        shas.append(made[0] if made else None)
                        if made:
                            parent, parent_tree = made
                finally:
                    if parent != start:
                        run_git("update-ref", self._ref, parent, start, cwd=self.root)
        return shas

    def _stage_and_commit(self, c: MemoryCommit, parent: str, parent_tree: str, env: dict[str, str], *,
                          hooks: bool) -> tuple[str, str] | None:
        """Stage ``c``'s paths on the index (which holds ``parent``'s tree), scan and redact, and commit;
        returns ``(sha, tree)``, or None when nothing changed (the index is left as ``parent``'s tree)."""
        for p in c.paths:
            _refuse_links(self.root / p)
        present = [p for p in c.paths if (self.root / p).exists()
                   or run_git("ls-files", "--cached", "--", p, cwd=self.root, env=env)]
        if not present:
            return None
        run_git("add", "--all", "--", *present, cwd=self.root, env=env)
        redactions = self._redact_staged(parent, env)
        if redactions:
            run_git("add", "--all", "--", *present, cwd=self.root, env=env)
        tree = run_git("write-tree", cwd=self.root, env=env)
        if tree == parent_tree:
            return None
        changed = run_git("diff-tree", "-r", "--name-status", "--no-renames", parent_tree, tree, cwd=self.root)
        touched = [line.split("\t", 1)[1] for line in changed.splitlines() if "\t" in line]
        if not all(is_memory_path(p) for p in touched):  # the contract, checked before anything is committed
            run_git("read-tree", parent, cwd=self.root, env=env)
            raise GitError(f"a memory commit would touch non-memory paths: {touched}")
        trailers = {**c.trailers, "Redactions": redactions}
        if c.list_files:
            message = (f"{c.subject}\n\n{c.body.strip()}\n\n"
                       + "\n".join("  " + line.replace("\t", " ") for line in changed.splitlines())
                       + f"\n\n{format_trailers(trailers)}\n")
        else:
            message = f"{c.subject}\n\n{c.body.strip()}\n\n{format_trailers(trailers)}\n"
        if hooks:
            message = self._run_hooks(message, env)
        sha = run_git("commit-tree", tree, "-p", parent, cwd=self.root, env=_BOT_ENV, stdin=message)
        return sha, tree

    def _hooks_present(self) -> bool:
        """True when the hooks folder the clone uses has a ``pre-commit`` or ``commit-msg`` hook to run."""
        try:
            folder = Path(run_git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=self.root))
        except GitError:
            return True  # when in doubt, let git look
        return any(os.access(folder / hook, os.X_OK) for hook in ("pre-commit", "commit-msg"))

    def hooks_enabled(self) -> bool:
        """True unless the org's ``memory.hooks: false`` was applied (:meth:`set_hooks`)."""
        try:
            return run_git("config", "--get", "orgctl.hooks", cwd=self.root) != "false"
        except GitError:
            return True

    def set_hooks(self, enabled: bool) -> None:
        """Run the repo's commit hooks on memory commits, or not (``memory.hooks`` in org.yaml; apply sets it)."""
        run_git("config", "orgctl.hooks", "true" if enabled else "false", cwd=self.root)

    def _run_hooks(self, message: str, env: dict[str, str]) -> str:
        """Run the repo's ``pre-commit`` and ``commit-msg`` hooks (the hooks folder of the checkout the clone
        was made from, ``core.hooksPath`` included) on the staged memory commit, as ``git commit`` would;
        returns the message, as a commit-msg hook may have edited it.

        Raises GitError with the hook's output when a hook refuses: the files stay as they are, uncommitted.
        """
        hint = "fix the hook, or set `memory: {hooks: false}` in org.yaml to commit memory without hooks"
        hook_env = {**env, **_BOT_ENV}
        try:
            run_git("hook", "run", "--ignore-missing", "pre-commit", cwd=self.root, env=hook_env)
        except GitError as e:
            raise GitError(f"the repo's pre-commit hook refused a memory commit: {e.message}", hint=hint) from None
        fd, name = tempfile.mkstemp(prefix="COMMIT_EDITMSG-", dir=self.root / ".git")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(message)
            try:
                run_git("hook", "run", "--ignore-missing", "commit-msg", "--", name, cwd=self.root, env=hook_env)
            except GitError as e:
                raise GitError(f"the repo's commit-msg hook refused a memory commit: {e.message}", hint=hint) from None
            return Path(name).read_text(encoding="utf-8")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def _redact_staged(self, parent: str, env: dict[str, str]) -> int:
        """Scan every staged file that differs from ``parent`` for secrets and redact them in the work tree
        (atomically); returns how many were redacted. No secret ever enters a memory commit."""
        from orgctl.desired.secrets import redact_text  # detect-secrets loads on first use

        changed = run_git("diff-index", "--cached", "--name-only", "--no-renames", "--diff-filter=AM", parent,
                          cwd=self.root, env=env).splitlines()
        count = 0
        for rel in changed:
            path = self.root / rel
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            clean, found = redact_text(text, filename=rel)
            if found:
                write_text_atomic(path, clean)
                count += len(found)
        return count

    # ------------------------------------------------------------ sync

    def _fetch(self) -> str:
        run_git("fetch", "--quiet", "--no-tags", "--", self.source, f"+{self._ref}:{UPSTREAM_REF}", cwd=self.root)
        return run_git("rev-parse", "--verify", f"{UPSTREAM_REF}^{{commit}}", cwd=self.root)

    def fetch_tip(self) -> str:
        """Fetch the tracked branch from the source and return its tip (kept as ``refs/orgctl/upstream``):
        what a proposal is made against. Raises GitError when the source cannot be read."""
        with self._locked():
            return self._fetch()

    def sync(self, *, push: bool = True) -> SyncResult:
        """Fetch the tracked branch, replay the memory commits it lacks on top, push them (when the org
        has a remote and ``push``); retried up to :data:`PUSH_ATTEMPTS` times when the push loses a race.

        Raises GitError when the source cannot be reached, the histories are unrelated, or every
        push attempt was rejected (a temporary error: the commits stay in the clone for the next sync).
        """
        def attempt(n: int) -> SyncResult:
            with self._locked():
                upstream = self._fetch()
                local = self.tip()
                result = self._rebase(local, upstream)
            if not (push and self.remote and result.ahead):
                return result
            try:
                run_git("push", "--quiet", "--", self.source, f"{result.tip}:{self._ref}", cwd=self.root)
            except GitError as e:
                if lost_race(e.message):  # someone pushed first: fetch, replay again, retry
                    raise PushRejected(e.message) from e
                raise
            return SyncResult(upstream=upstream, tip=result.tip, replayed=result.replayed, pushed=True,
                              overridden=result.overridden)

        return fetch_replay_push(attempt, attempts=PUSH_ATTEMPTS, what=f"pushing memory to {self.source}",
                                 hint="the commits stay in the runtime's clone and are pushed on the next sync")

    def _rebase(self, local: str, upstream: str) -> SyncResult:
        """Move the branch to ``upstream`` plus the memory commits only ``local`` has. Caller holds the lock."""
        try:
            base = run_git("merge-base", local, upstream, cwd=self.root)
        except GitError as e:
            raise GitError(f"{self.source} ({self.branch}) shares no history with the runtime's clone",
                           hint=f"if the org's history was rewritten, move {self.root} aside; it is rebuilt "
                                "from the tracked branch on the next apply") from e
        ours = run_git("rev-list", "--reverse", f"{base}..{local}", cwd=self.root).split()
        if base == upstream:  # nothing new upstream
            return SyncResult(upstream=upstream, tip=local, ahead=len(ours))
        touched_by_us: set[str] = set()
        overridden: list[str] = []
        upstream_changed = {path for _, path in self._changes(base, upstream) if is_memory_path(path)}
        new = upstream
        for commit in ours:
            changes = self._changes(f"{commit}^", commit)
            paths = {path for _, path in changes}
            overridden += sorted(paths & upstream_changed - touched_by_us)
            touched_by_us |= paths
            new = self._replay(commit, changes, onto=new)
        run_git("update-ref", self._ref, new, local, cwd=self.root)
        self._materialize(sorted(upstream_changed - touched_by_us), rev=new)
        ahead = int(run_git("rev-list", "--count", f"{upstream}..{new}", cwd=self.root) or 0)
        return SyncResult(upstream=upstream, tip=new, replayed=len(ours), ahead=ahead, overridden=overridden)

    def _changes(self, a: str, b: str) -> list[tuple[str, str]]:
        """``(raw line, path)`` of every file that differs between ``a`` and ``b`` (no rename detection)."""
        out = run_git("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", a, b, cwd=self.root)
        fields = out.split("\0")
        return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2) if fields[i].startswith(":")]

    def _replay(self, commit: str, changes: list[tuple[str, str]], *, onto: str) -> str:
        """``commit``'s changes applied on ``onto`` with its message and author; ``onto`` itself when
        they are already there. Raises GitError for a commit that is not memory only."""
        bad = [path for _, path in changes if not is_memory_path(path)]
        if bad:
            raise GitError(f"commit {commit[:7]} in the runtime's clone touches non-memory paths {bad}")
        lines = []
        for raw, path in changes:
            _, dst_mode, _, dst_sha, status = raw[1:].split(" ")
            lines.append(f"0 {_ZERO}\t{path}" if status == "D" else f"{dst_mode} {dst_sha}\t{path}")
        with self._index() as env:
            run_git("read-tree", onto, cwd=self.root, env=env)
            run_git("update-index", "--index-info", cwd=self.root, env=env, stdin="\n".join(lines) + "\n")
            tree = run_git("write-tree", cwd=self.root, env=env)
        if tree == run_git("rev-parse", f"{onto}^{{tree}}", cwd=self.root):
            return onto
        author = run_git("log", "-1", "--format=%an%x00%ae%x00%aI", commit, cwd=self.root).split("\0")
        message = run_git("log", "-1", "--format=%B", commit, cwd=self.root)
        env = {**_BOT_ENV, "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1], "GIT_AUTHOR_DATE": author[2]}
        return run_git("commit-tree", tree, "-p", onto, cwd=self.root, env=env, stdin=message + "\n")

    # ------------------------------------------------------------ work tree

    def _memory_files(self, rev: str) -> list[str]:
        out = run_git("ls-tree", "-r", "-z", "--name-only", rev, "--", "animas", cwd=self.root)
        return [p for p in out.split("\0") if p and is_memory_path(p)]

    def _materialize(self, paths: list[str], *, rev: str) -> None:
        """Make the work tree's ``paths`` what they are at ``rev`` (written atomically; removed when absent).

        One ``ls-tree`` and one ``cat-file --batch`` for all of them (the first clone of a big org
        checks out thousands of memory files). Only regular files are written: a link or submodule
        in the tree is skipped.
        """
        if not paths:
            return
        wanted = set(paths)
        listing: dict[str, tuple[str, str, str]] = {}
        for record in run_git("ls-tree", "-r", "-z", rev, "--", "animas", cwd=self.root).split("\0"):
            meta, _, path = record.partition("\t")
            if path in wanted:
                mode, kind, sha = meta.split(" ")
                listing[path] = (mode, kind, sha)
        for path in paths:
            target = self.root / path
            if path not in listing and target.is_file() and not target.is_symlink():
                target.unlink()
        files = [(path, sha) for path, (mode, kind, sha) in sorted(listing.items())
                 if kind == "blob" and mode in ("100644", "100755")]
        for (path, _), data in zip(files, cat_blobs(str(self.root / ".git"), [sha for _, sha in files]),
                                   strict=True):
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            linked = [p for p in target.parents if p.is_symlink() and self.root in p.parents]
            if linked:  # os.replace would write through it
                raise GitError(f"{linked[0]} is a symbolic link: memory is never written through a link")
            fd, tmp = tempfile.mkstemp(prefix=".orgctl-", dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)


def _refuse_links(path: Path) -> None:
    """Raises GitError when ``path``, a folder above it inside the clone, or anything under it is a link."""
    for p in (path, *path.parents[:3]):
        if p.is_symlink():
            raise GitError(f"{p} is a symbolic link: memory is never written or committed through a link")
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            for n in (*dirnames, *filenames):
                if os.path.islink(os.path.join(dirpath, n)):
                    raise GitError(f"{os.path.join(dirpath, n)} is a symbolic link: "
                                   "memory is never written or committed through a link")


def _adopt_uncommitted_memory(checkout: Path, root: Path) -> int:
    """Copy memory files that ``checkout`` holds untracked or modified into the clone at ``root``
    (regular files only); returns how many. The checkout is only read."""
    copied = 0
    for xy, rel in status_entries(checkout, "animas"):
        source = checkout / rel
        if "D" in xy or not is_memory_path(rel) or source.is_symlink() or not source.is_file():
            continue
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        copied += 1
    return copied


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull_into` did: ``action`` is ``up-to-date``, ``fast-forward`` or ``merge``;
    ``commits`` how many commits came in, ``files`` the memory files they changed, ``head`` the new HEAD."""

    action: str
    commits: int
    files: list[str]
    head: str


PULL_REF = "refs/orgctl/memory"


def pull_into(checkout: Path, clone: RuntimeClone) -> PullResult:
    """Bring the runtime's memory commits into the person's ``checkout`` (``orgctl pull``).

    A fast-forward when the checkout has no commits of its own, else a merge (memory and spec
    paths are disjoint, so it is clean). Untracked memory files identical to what comes in (left
    by an orgctl that wrote memory into checkouts) are replaced by the tracked ones.

    Raises GitError, changing nothing, when the checkout is on another branch than the clone
    tracks, or when the person has edited (committed, staged, modified or untracked) memory files
    that the incoming commits change: the message names them.
    """
    checkout = Path(checkout).resolve()
    branch = current_branch(checkout)
    if branch != clone.branch:
        raise GitError(f"{checkout} is on branch {branch!r}; memory is committed on {clone.branch!r}",
                       hint=f"git switch {clone.branch}, then orgctl pull")
    run_git("fetch", "--quiet", "--no-tags", "--", str(clone.root), f"+refs/heads/{clone.branch}:{PULL_REF}",
         cwd=checkout)
    incoming = run_git("rev-parse", "--verify", f"{PULL_REF}^{{commit}}", cwd=checkout)
    head = run_git("rev-parse", "--verify", "HEAD^{commit}", cwd=checkout)
    if _is_ancestor(checkout, incoming, head):
        return PullResult(action="up-to-date", commits=0, files=[], head=head)
    base = run_git("merge-base", head, incoming, cwd=checkout)
    coming = run_git("diff", "--name-only", "-z", "--no-renames", base, incoming, cwd=checkout).split("\0")
    coming_memory = {p for p in coming if p and is_memory_path(p)}
    mine = set(run_git("diff", "--name-only", "-z", "--no-renames", base, head, cwd=checkout).split("\0"))
    conflicts = sorted(coming_memory & mine)
    identical_untracked = []
    for xy, rel in status_entries(checkout, "animas"):
        if rel not in coming_memory:
            continue
        if xy == "??" and _same_as(checkout, rel, incoming):
            identical_untracked.append(rel)
        else:
            conflicts.append(rel)
    if conflicts:
        shown = ", ".join(sorted(set(conflicts))[:10]) + (" …" if len(set(conflicts)) > 10 else "")
        raise GitError(f"you have edited memory files the runtime also changed: {shown}",
                       hint="memory is written by the runtime only; commit or move your edits aside "
                            "(git stash -u), then orgctl pull")
    for rel in identical_untracked:
        (checkout / rel).unlink()
    commits = int(run_git("rev-list", "--count", f"{head}..{incoming}", cwd=checkout) or 0)
    try:
        if _is_ancestor(checkout, head, incoming):
            run_git("merge", "--quiet", "--ff-only", PULL_REF, cwd=checkout)
            action = "fast-forward"
        else:
            run_git("merge", "--quiet", "--no-edit", "-m", f"Merge memory from the orgctl runtime ({clone.branch})",
                 PULL_REF, cwd=checkout)
            action = "merge"
    except GitError:
        for rel in identical_untracked:  # put back what we removed: nothing changed
            _materialize_into(checkout, rel, incoming)
        raise
    return PullResult(action=action, commits=commits, files=sorted(coming_memory),
                      head=run_git("rev-parse", "HEAD", cwd=checkout))


def _is_ancestor(repo: Path, a: str, b: str) -> bool:
    try:
        run_git("merge-base", "--is-ancestor", a, b, cwd=repo)
        return True
    except GitError:
        return False


def _same_as(repo: Path, rel: str, rev: str) -> bool:
    """True when the work-tree file ``rel`` has the content it has at ``rev``."""
    try:
        blob = run_git("rev-parse", f"{rev}:{rel}", cwd=repo)
        return run_git("hash-object", "--", rel, cwd=repo) == blob
    except GitError:
        return False


def _materialize_into(repo: Path, rel: str, rev: str) -> None:
    data = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=repo, capture_output=True, check=True).stdout
    (repo / rel).write_bytes(data)
