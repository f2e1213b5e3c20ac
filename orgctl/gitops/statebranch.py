"""The orphan branch ``orgctl/state``: work in flight carried between tick runners (DESIGN §2).

A runner keeps nothing between runs. A tick restores the work in flight (inboxes, task queues, the
Board, approvals, rate counters, cursors, last beats) from this branch of the org's remote into its
state dir, works, and saves it back: one commit, pushed. The branch shares no history with the
tracked branch and holds no spec and no memory; it is written by ticks (and by people's work commands
in tick mode) only.

**Racing writers.** Shards of a workflow matrix tick at once. Each save is a three-way merge, file by
file, of the tree it restored (the base), the branch's tip now (theirs) and its own files (ours):

* a file only one side changed is taken from that side (a deletion too: a message read, a task log
  compacted);
* a JSON-lines log (``*.jsonl``: task queues, Board channels, the outbox) both sides changed gets their
  lines, less those ours dropped (compaction), then the lines ours added, in our order: every line of
  these logs is unique (a time and an id), so lines merge as a set and no append is lost;
* any other file both sides changed keeps ours and is reported (:attr:`Saved.conflicts`). Those are
  each Anima's own (its cursors, its last beat) or one approval's, written by one shard only, so this
  does not happen between shards.

The result is committed on top of the tip and pushed with ``--force-with-lease`` naming that tip, so
a push that lost a race is refused by the remote, fetched, merged again and retried, at most
:data:`PUSH_ATTEMPTS` times: the one bounded fetch-replay-push loop
(:func:`orgctl.gitops.pushing.fetch_replay_push`) that memory commits use too. A runner killed
mid-push leaves the remote at the old tip or the new one, never between: a ref update is atomic.

**Bounded.** Every :data:`SQUASH_AFTER` commits the save is a root commit (no parent) holding the
merged tree: the history is squashed, the open work is all in that tree, and the lease still refuses a
racing writer's tip being overwritten. What the tree holds is kept small by the tick's compaction
(:mod:`orgctl.runtime.ticking`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orgctl.errors import GitError
from orgctl.gitexec import run_git
from orgctl.gitops.pushing import PushRejected, fetch_replay_push, lost_race
from orgctl.gitops.repos import BOT_EMAIL, BOT_NAME, format_trailers

STATE_BRANCH = "orgctl/state"
STATE_REF = f"refs/heads/{STATE_BRANCH}"
TIP_REF = "refs/orgctl/state-tip"  # the branch's tip as last fetched
BASE_REF = "refs/orgctl/state-base"  # the commit the local files were last restored from or merged into
LOCAL_REF = "refs/orgctl/state-local"  # the tree of the local files as they were then (a save keeps ours)
MAX_FILE = 16 * 1024 * 1024  # bytes: a file of the work in flight bigger than this is not restored
MAX_TOTAL = 512 * 1024 * 1024  # bytes: nor anything past this much in all
PUSH_ATTEMPTS = 8
SQUASH_AFTER = 100  # commits on the branch before a save squashes them into one root commit
_BOT_ENV = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}


@dataclass(frozen=True)
class Saved:
    """What :meth:`StateBranch.save` did: the ``commit`` pushed (None: nothing changed), how many
    ``attempts`` the push took, whether it ``squashed`` the history, and the ``conflicts`` it kept ours in."""

    commit: str | None
    attempts: int = 0
    squashed: bool = False
    conflicts: list[str] = field(default_factory=list)


class StateBranch:
    """``orgctl/state`` of the repository at ``source`` (a URL or a path), read and written through the bare
    git directory ``git_dir`` (in the state dir; created when missing). ``roots`` maps a folder of the
    branch's tree to the local folder it is restored into and saved from (``{"work": <state>/work}``);
    ``carried(rel)`` says which files of a root go on the branch (default: all); the others (events, locks)
    are left alone locally and never saved. Symbolic links are never carried."""

    def __init__(self, *, source: str, git_dir: Path, roots: Mapping[str, Path],
                 carried: Callable[[str], bool] = lambda rel: True) -> None:
        self.source = source
        self.git_dir = Path(git_dir)
        self.roots = {prefix: Path(path) for prefix, path in roots.items()}
        self.carried = carried
        self.base: str | None = None  # the commit restored from (None: the branch did not exist)
        self.skipped: list[str] = []  # files of the branch a restore did not write, with the reason
        self.warnings: list[str] = []
        self._no_squash = False
        if not (self.git_dir / "HEAD").is_file():
            self.git_dir.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "--bare", str(self.git_dir))

    @classmethod
    def for_checkout(cls, checkout: Path, *, git_dir: Path, roots: Mapping[str, Path],
                     carried: Callable[[str], bool] = lambda rel: True) -> StateBranch:
        """The state branch of the org whose checkout is ``checkout``: on the remote its branch tracks (as
        memory is pushed), else in the checkout itself. Raises GitError (not a repository, a detached HEAD)."""
        from orgctl.gitops.mirrors import current_branch, upstream_url

        checkout = Path(checkout).resolve()
        source = upstream_url(checkout, current_branch(checkout)) or str(checkout)
        return cls(source=source, git_dir=git_dir, roots=roots, carried=carried)

    def _git(self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None,
             strip: bool = True) -> str:
        return run_git(f"--git-dir={self.git_dir}", *args, env=env, stdin=stdin, strip=strip)

    @contextmanager
    def _index(self) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="orgctl-state-index-") as tmp:
            yield {"GIT_INDEX_FILE": os.path.join(tmp, "index")}

    # ------------------------------------------------------------ reading

    def fetch(self) -> str | None:
        """The branch's tip at the source now (fetched into :data:`TIP_REF`), or None when it has none yet.
        Raises GitError when the source cannot be read."""
        try:
            heads = self._git("ls-remote", "--", self.source, STATE_REF)
            if not heads.strip():
                return None
            self._git("fetch", "--quiet", "--no-tags", "--", self.source, f"+{STATE_REF}:{TIP_REF}")
        except GitError as e:
            raise GitError(f"cannot read {STATE_BRANCH} from {self.source}: {e.message.split(': ', 1)[-1]}",
                           hint="the work in flight of a tick org lives there: check the remote and its "
                                "credentials; nothing was changed") from e
        return self._git("rev-parse", TIP_REF)

    def restore(self, *, save_unpushed: bool = True) -> str | None:
        """Replace each local root's carried files with the branch's (none when there is no branch yet);
        returns the commit restored from, also kept as :attr:`base`.

        ``save_unpushed=False`` is for a reader's private copy (the dashboard's): local files are replaced
        and nothing is ever saved or pushed to the source.

        Local files that differ from what was last restored or saved here (work written while the remote
        could not be reached, or before the org switched to ticks) are saved first, merged as any save is:
        a restore never throws away work that was not pushed. A file of the branch that is not carried, is
        too big (:data:`MAX_FILE`), has an unsafe name or cannot be written is skipped and named in
        :attr:`skipped`. Raises GitError when the branch cannot be read or the local work cannot be saved.
        """
        if save_unpushed:
            self._save_unpushed()
        tip = self.fetch()
        self.base = tip
        files = self._files(tip) if tip else {}
        for local in self.roots.values():  # what was carried goes; what is not (events, locks) stays
            local.mkdir(parents=True, exist_ok=True)
            for _, path in self._walk(local):
                path.unlink()
        sizes = self._sizes([sha for _, sha in files.values()])
        wanted, total = [], 0
        for path, (_mode, sha) in sorted(files.items()):
            prefix, _, rel = path.partition("/")
            if prefix not in self.roots or not rel or not self.carried(rel) or not _safe_name(rel):
                self.skipped.append(f"{path}: not carried here")
                continue
            if sizes.get(sha, 0) > MAX_FILE or total + sizes.get(sha, 0) > MAX_TOTAL:
                self.skipped.append(f"{path}: {sizes.get(sha, 0)} bytes, over the limit")
                continue
            total += sizes.get(sha, 0)
            wanted.append((prefix, rel, sha))
        contents = self._blobs([sha for _, _, sha in wanted])
        for prefix, rel, sha in wanted:
            target = self.roots[prefix] / rel
            if not _inside(self.roots[prefix], target):
                self.skipped.append(f"{prefix}/{rel}: outside its root")
                continue  # a hostile tree: never written outside its root
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(contents[sha])
                os.chmod(target, 0o600)
            except OSError as e:  # a file where a folder is (or the other way round): a tree orgctl never writes
                self.skipped.append(f"{prefix}/{rel}: {e.strerror or e}")
        self._remember(tip, self._local_files())
        return tip

    def _remember(self, commit: str | None, local: dict[str, tuple[str, str]]) -> None:
        """Record that the local roots hold ``local`` (:data:`LOCAL_REF`, a tree) and that it is merged into
        ``commit`` on the remote (:data:`BASE_REF`)."""
        self._git("update-ref", LOCAL_REF, self._tree(local))
        if commit is not None:
            self._git("update-ref", BASE_REF, commit)

    def _recorded(self, ref: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", ref) or None
        except GitError:
            return None

    def _save_unpushed(self) -> None:
        """Save the local carried files when they differ from what was last restored or saved (work written
        while the remote refused it), or exist with no record at all (an org that switched to ticks)."""
        local = self._local_files()
        recorded = self._recorded(LOCAL_REF)
        if local == self._files(recorded) or (recorded is None and not local):
            return
        self.base = self._recorded(BASE_REF)
        self.save(message="work in flight not pushed before, saved before a restore", trailers={"Pass": "work"})

    def _files(self, commit: str | None) -> dict[str, tuple[str, str]]:
        """``{path: (mode, blob sha)}`` of every regular file of ``commit`` (``{}`` for None); names that are
        not UTF-8 are left out (orgctl never writes one)."""
        if commit is None:
            return {}
        import subprocess

        out = subprocess.run(["git", f"--git-dir={self.git_dir}", "ls-tree", "-r", "-z", "--full-tree", commit],
                             check=True, capture_output=True).stdout
        files = {}
        for entry in filter(None, out.split(b"\0")):
            meta, raw = entry.split(b"\t", 1)
            mode, kind, sha = meta.decode().split(" ")
            try:
                path = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.skipped.append(f"{raw!r}: a name that is not UTF-8")
                continue
            if kind == "blob" and mode in ("100644", "100755"):
                files[path] = (mode, sha)
        return files

    def _sizes(self, shas: list[str]) -> dict[str, int]:
        """The size of each blob, without reading it (``cat-file --batch-check``)."""
        import subprocess

        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch-check"], check=True,
                             input="\n".join(wanted).encode() + b"\n", capture_output=True).stdout.decode()
        return {line.split()[0]: int(line.split()[2]) for line in out.splitlines() if len(line.split()) == 3}

    def _blobs(self, shas: list[str]) -> dict[str, bytes]:
        """The contents of ``shas`` by sha, read in one ``cat-file --batch``."""
        import subprocess

        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        done = subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"], check=True,
                              input="\n".join(wanted).encode() + b"\n", capture_output=True)
        out, pos, blobs = done.stdout, 0, {}
        for sha in wanted:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split()[2])
            blobs[sha] = out[header_end + 1:header_end + 1 + size]
            pos = header_end + 1 + size + 1
        return blobs

    # ------------------------------------------------------------ writing

    def _walk(self, local: Path) -> list[tuple[str, Path]]:
        """``(relative path, path)`` of every regular file under ``local`` that is carried (no link followed)."""
        found = []
        for top, dirs, names in os.walk(local):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(top, d)))
            for name in sorted(names):
                path = Path(top) / name
                rel = path.relative_to(local).as_posix()
                if path.is_file() and not path.is_symlink() and self.carried(rel) and _safe_name(rel):
                    found.append((rel, path))
        return found

    def _local_files(self) -> dict[str, tuple[str, str]]:
        """``{path: (mode, blob sha)}`` of the local roots as they are now, written as objects."""
        files: dict[str, tuple[str, str]] = {}
        for prefix, local in sorted(self.roots.items()):
            found = self._walk(local) if local.is_dir() else []
            if not found:
                continue
            shas = self._git("hash-object", "-w", "--stdin-paths", stdin="\n".join(str(p) for _, p in found) + "\n")
            for (rel, _), sha in zip(found, shas.split(), strict=True):
                files[f"{prefix}/{rel}"] = ("100644", sha)
        return files

    def save(self, *, message: str, trailers: Mapping[str, str | int] | None = None,
             squash_after: int = SQUASH_AFTER) -> Saved:
        """Commit the local roots, merged with whatever was pushed since :meth:`restore`, and push.

        Returns :class:`Saved`; ``commit`` is None when nothing differs from the tip. Raises GitError when
        every one of :data:`PUSH_ATTEMPTS` pushes lost its race or the source cannot be written (the local
        files are unchanged then, and the next tick saves them).
        """
        base_files = self._files(self.base)
        ours = self._local_files()

        def attempt(n: int) -> Saved:
            tip = self.fetch()  # another writer may have pushed since the restore
            theirs = self._files(tip)
            merged, conflicts = self._merge(base_files, theirs, ours)
            if merged == theirs:
                self._remember(tip, ours)
                return Saved(None, n, False, conflicts)
            tree = self._tree(merged)
            squash = (tip is not None and not self._no_squash
                      and int(self._git("rev-list", "--count", tip)) >= squash_after)
            body = message + ("\n\n" + format_trailers(trailers) if trailers else "")
            parents = [] if squash or tip is None else ["-p", tip]
            commit = self._git("commit-tree", tree, *parents, "-m", body, env=_BOT_ENV)
            try:
                self._git("push", "--quiet", f"--force-with-lease={STATE_REF}:{tip or ''}", "--",
                          self.source, f"{commit}:{STATE_REF}")
            except GitError as e:
                if squash and not lost_race(e.message):  # the remote refuses rewrites (a protected branch)
                    self._no_squash = True
                    self.warnings.append(f"{self.source} refuses to rewrite {STATE_BRANCH}, so its history is not "
                                         f"squashed: {e.message[:200]}")
                    raise PushRejected(e.message) from e
                if lost_race(e.message):  # someone pushed first: fetch, merge again, retry
                    raise PushRejected(e.message) from e
                raise
            self._git("update-ref", TIP_REF, commit)
            self.base = commit
            self._remember(commit, ours)
            return Saved(commit, n, squash, conflicts)

        return fetch_replay_push(attempt, attempts=PUSH_ATTEMPTS, what=f"saving the work in flight to {STATE_BRANCH}",
                                 hint="it is saved by the next tick")

    def _merge(self, base: dict[str, tuple[str, str]], theirs: dict[str, tuple[str, str]],
               ours: dict[str, tuple[str, str]]) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """The three-way merge of the module docstring; returns the files and the paths kept as ours."""
        merged: dict[str, tuple[str, str]] = {}
        both: list[str] = []
        for path in sorted(set(base) | set(theirs) | set(ours)):
            b, t, o = base.get(path), theirs.get(path), ours.get(path)
            if o == b:
                result = t
            elif t in (b, o):
                result = o
            else:
                both.append(path)
                continue
            if result is not None:
                merged[path] = result
        conflicts = []
        if both:
            blobs = self._blobs([f[1] for path in both for f in (base.get(path), theirs.get(path), ours.get(path))
                                 if f is not None])
            for path in both:
                b, t, o = (blobs[f[1]] if f else None for f in (base.get(path), theirs.get(path), ours.get(path)))
                text = _merge_lines(path, b, t, o)
                if text is None:
                    conflicts.append(path)
                    if ours.get(path) is not None:
                        merged[path] = ours[path]  # type: ignore[assignment]
                    continue
                merged[path] = ("100644", self._hash(text))
        return merged, conflicts

    def _hash(self, data: bytes) -> str:
        """Write ``data`` as a blob; its sha."""
        import subprocess

        return subprocess.run(["git", f"--git-dir={self.git_dir}", "hash-object", "-w", "--stdin"], check=True,
                              input=data, capture_output=True).stdout.decode().strip()

    def _tree(self, files: dict[str, tuple[str, str]]) -> str:
        with self._index() as env:
            lines = "".join(f"{mode} {sha}\t{path}\n" for path, (mode, sha) in sorted(files.items()))
            if lines:
                self._git("update-index", "--add", "--index-info", env=env, stdin=lines)
            return self._git("write-tree", env=env)

    def commits(self) -> int:
        """How many commits the branch has at the last fetched tip (0 when none)."""
        try:
            return int(self._git("rev-list", "--count", TIP_REF))
        except GitError:
            return 0


def _merge_lines(path: str, base: bytes | None, theirs: bytes | None, ours: bytes | None) -> bytes | None:
    """The merge of a JSON-lines log (``*.jsonl``) both sides changed: their lines, less the ones ours dropped
    (compaction), then the lines ours added that theirs lacks, in our order. Every line of these logs is unique
    (a time and an id), so a line stands for itself. None for any other file, or a deletion against a change."""
    if not path.endswith(".jsonl") or theirs is None or ours is None:
        return None
    base_lines = (base or b"").splitlines()
    our_lines, their_lines = ours.splitlines(), theirs.splitlines()
    base_set, our_set, their_set = set(base_lines), set(our_lines), set(their_lines)
    dropped = base_set - our_set
    added = [line for line in our_lines if line not in base_set and line not in their_set]
    kept = [line for line in their_lines if line not in dropped]
    return b"".join(line + b"\n" for line in kept + added)


def _safe_name(rel: str) -> bool:
    """A relative path orgctl could have written: no control character, no empty, ``.`` or ``..`` part."""
    return (all(ch >= " " and ch != "\x7f" for ch in rel)
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _inside(root: Path, target: Path) -> bool:
    root_real = os.path.realpath(root)
    return os.path.realpath(target).startswith(root_real + os.sep)
