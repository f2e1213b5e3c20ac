"""Read-only views of an org repo's files: the work tree, or a git revision.

Loading the spec through a source (instead of the file system directly) is
what lets ``plan --revision REV`` and ``apply`` read exactly what a commit
holds, untouched by uncommitted edits in the work tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from orgctl.errors import GitError


class Source(Protocol):
    """Files of one version of the org repo. Paths are POSIX, relative to the repo root."""

    #: Full commit sha, or None for the work tree.
    revision: str | None

    def read_text(self, path: str) -> str | None:
        """The file's text (UTF-8), or None when it does not exist or is not a file."""

    def list_dirs(self, path: str) -> list[str]:
        """Names of the directories directly under ``path`` (empty if it is missing)."""

    def list_files(self, path: str) -> list[str]:
        """Names of the files directly under ``path`` (empty if it is missing)."""

    def describe(self) -> str:
        """A short human name: ``work tree`` or ``revision abc1234``."""

    def symlinks(self, paths: list[str]) -> dict[str, str]:
        """Symbolic links at or under each of ``paths``, as ``{path: target}`` (no link is followed)."""


class WorkTreeSource:
    """The files as they are on disk under ``root`` (``orgctl validate`` reads these)."""

    revision: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _inside(self, path: str) -> Path | None:
        """``root/path`` when no component of it is a symbolic link, else None (never read through one)."""
        p = self.root / path
        return p if os.path.realpath(p) == os.path.join(os.path.realpath(self.root), path) else None

    def read_text(self, path: str) -> str | None:
        p = self._inside(path)
        if p is None or not p.is_file():
            return None
        return p.read_bytes().decode("utf-8", errors="replace")

    def list_dirs(self, path: str) -> list[str]:
        p = self._inside(path)
        if p is None or not p.is_dir():
            return []
        return sorted(c.name for c in p.iterdir() if c.is_dir() and not c.is_symlink())

    def list_files(self, path: str) -> list[str]:
        p = self._inside(path)
        if p is None or not p.is_dir():
            return []
        return sorted(c.name for c in p.iterdir() if c.is_file() and not c.is_symlink())

    def describe(self) -> str:
        return "work tree"

    def symlinks(self, paths: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for path in paths:
            top = self.root / path
            if top.is_symlink():
                found[path] = os.readlink(top)
                continue
            for folder, dirs, files in os.walk(top):  # os.walk does not follow links into folders
                for name in dirs + files:
                    full = os.path.join(folder, name)
                    if os.path.islink(full):
                        found[os.path.relpath(full, self.root).replace(os.sep, "/")] = os.readlink(full)
        return found


class GitRevisionSource:
    """The files of one commit, read from git objects (never from the work tree).

    Raises :class:`GitError` when ``root`` is not a git repository or ``rev``
    does not name a commit.
    """

    def __init__(self, root: Path, rev: str = "HEAD") -> None:
        import git  # gitpython: imported here so the CLI starts fast

        try:
            self._repo = git.Repo(root)
            commit = self._repo.commit(rev)
        except git.InvalidGitRepositoryError as e:
            raise GitError(f"{root} is not a git repository",
                           hint="create one with `orgctl init DIR`") from e
        except git.NoSuchPathError as e:
            raise GitError(f"{root} does not exist") from e
        except (git.BadName, ValueError) as e:
            raise GitError(f"unknown revision {rev!r}",
                           hint="check the name with `git log --oneline`; a new repository needs a first commit") from e
        self.revision = commit.hexsha
        self._tree = commit.tree
        self._dirs: dict[str, dict[str, Any]] = {}

    def _children(self, path: str) -> dict[str, Any]:
        """The entries of the folder ``path`` by name, each folder's listing parsed once.

        (``tree / "a/b/c"`` re-parses every folder on the way on each call: with
        1,000 Animas, every file read re-read the 1,000 entries of ``animas/``.)
        """
        if path not in self._dirs:
            tree: Any
            if not path:
                tree = self._tree
            else:
                parent, _, name = path.rpartition("/")
                tree = self._children(parent).get(name)
            self._dirs[path] = {o.name: o for o in tree} if tree is not None and tree.type == "tree" else {}
        return self._dirs[path]

    def _entry(self, path: str) -> Any:
        if not path:
            return self._tree
        parent, _, name = path.strip("/").rpartition("/")
        return self._children(parent).get(name)

    def read_text(self, path: str) -> str | None:
        entry = self._entry(path)
        if entry is None or entry.type != "blob":
            return None
        data: bytes = entry.data_stream.read()
        return data.decode("utf-8", errors="replace")

    def list_dirs(self, path: str) -> list[str]:
        entry = self._entry(path)
        if entry is None or entry.type != "tree":
            return []
        return sorted(t.name for t in entry.trees)

    def list_files(self, path: str) -> list[str]:
        entry = self._entry(path)
        if entry is None or entry.type != "tree":
            return []
        return sorted(b.name for b in entry.blobs)

    def describe(self) -> str:
        return f"revision {self.revision[:7] if self.revision else '?'}"

    def symlinks(self, paths: list[str]) -> dict[str, str]:
        """Entries of mode 120000 (git's symbolic links): one ``git ls-tree -r`` for all ``paths``."""
        out = self._repo.git.ls_tree("-r", "-z", self.revision, "--", *paths)
        found: dict[str, str] = {}
        for record in filter(None, out.split("\0")):
            meta, _, path = record.partition("\t")
            mode, _, rest = meta.partition(" ")
            if mode == "120000":
                sha = rest.split(" ")[-1]
                found[path] = self._repo.odb.stream(bytes.fromhex(sha)).read().decode("utf-8", errors="replace")
        return found
