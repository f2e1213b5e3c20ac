"""Repo access through gitpython: open the org repo, read revisions, prepare workspaces.

Memory commits follow one contract (docs/concepts.md), carried out by
:mod:`orgctl.gitops.clones` in the runtime's own clone: one commit per pass,
by the bot identity below, touching only ``animas/<name>/memory/`` paths
(:func:`is_memory_path`), with trailers naming the Anima, the pass, the source
revision and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orgctl.errors import GitError
from orgctl.gitexec import run_git

BOT_NAME = "orgctl-bot"
BOT_EMAIL = "orgctl-bot@users.noreply.localhost"
TRAILER_PREFIX = "Orgctl-"


def open_repo(path: Path):  # type: ignore[no-untyped-def]
    """The gitpython ``Repo`` at ``path``. Raises GitError when it is not a git work tree."""
    import git

    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
        raise GitError(f"{path} is not a git repository",
                       hint="create an org with `orgctl init DIR`") from e


def head_revision(path: Path) -> str | None:
    """Full sha of HEAD, or None in a repository without commits."""
    repo = open_repo(path)
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:
        return None


def status_entries(path: Path, *pathspec: str) -> list[tuple[str, str]]:
    """``(XY, path)`` of each changed or untracked file of the work tree at ``path`` under ``pathspec``
    (default: all), as ``git status --porcelain -z`` reports them (a rename: its new path). Optional
    locks are off (:mod:`orgctl.gitexec`), so it never holds the person's index.lock. Raises GitError."""
    out = run_git("status", "--porcelain", "-z", "--untracked-files=all", "--", *(pathspec or (".",)), cwd=path)
    entries, records = [], iter(out.split("\0"))
    for record in records:
        if len(record) < 4:
            continue
        entries.append((record[:2], record[3:]))
        if record[0] in "RC":  # a rename's or copy's source path follows as its own record
            next(records, None)
    return entries


def uncommitted_spec_changes(path: Path) -> list[str]:
    """Changed or untracked files outside ``animas/*/memory/`` (not part of a HEAD plan).

    Plain ``git status`` (``plan`` imports no gitpython), memory folders left out by git itself (7 of
    every 12 files of a big org). Raises GitError when ``path`` is not a git work tree.
    """
    try:
        entries = status_entries(path, ".", ":(exclude,glob)animas/*/memory/**")
    except GitError as e:
        raise GitError(f"{path} is not a git repository ({e.message})",
                       hint="create an org with `orgctl init DIR`") from e
    return [p for _, p in entries if not is_memory_path(p)]


def is_memory_path(p: str) -> bool:
    """True for a path under ``animas/<name>/memory/`` (a bot-owned path: only the runtime writes it)."""
    parts = p.strip('"').split("/")
    return len(parts) >= 3 and parts[0] == "animas" and parts[2] == "memory"


def format_trailers(trailers: Mapping[str, str | int]) -> str:
    """``Orgctl-Key: value`` lines, in the given order (git interpret-trailers format)."""
    return "\n".join(f"{TRAILER_PREFIX}{k}: {v}" for k, v in trailers.items())


def parse_trailers(message: str) -> dict[str, str]:
    """The ``Orgctl-*`` trailers of a commit message, keys without the prefix."""
    out: dict[str, str] = {}
    for line in message.splitlines():
        if line.startswith(TRAILER_PREFIX) and ": " in line:
            key, value = line[len(TRAILER_PREFIX):].split(": ", 1)
            out[key] = value
    return out


WORKSPACE_GIT = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
"""What git runs with in a workspace: an Anima's commands write its work tree (not ``.git``: docs/sandbox.md),
and this git runs outside the sandbox, so no hook and no fsmonitor program of any config is run, and no
system or global config (a filter driver a ``.gitattributes`` there could name) is read."""
WORKSPACE_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def _token_file(workspace: Path) -> Path:
    """Beside the workspace, where no command of its Anima can see it: the token of the ``.git`` orgctl made."""
    return workspace.parent / f".{workspace.name}.git-token"


def _trusted_git_dir(workspace: Path) -> bool:
    """True when ``workspace/.git`` is the directory orgctl cloned (its token matches the one kept beside the
    workspace). A ``.git`` made by a command in the sandbox, where there was none, could name a filter or
    an ``insteadOf`` that this git, outside the sandbox, would honour."""
    git_dir = workspace / ".git"
    try:
        token = _token_file(workspace).read_text().strip()
        mine = (git_dir / "orgctl-token").read_text().strip() if git_dir.is_dir() and not git_dir.is_symlink() \
            else ""
    except OSError:
        return False
    return bool(token) and token == mine


def _clone_git_dir(source: str, workspace: Path) -> None:
    """A fresh ``.git`` for ``workspace`` (cloned beside it, moved in; an untrusted one is removed first)."""
    import secrets
    import shutil

    git_dir = workspace / ".git"
    if git_dir.is_symlink() or git_dir.is_file():
        git_dir.unlink()
    elif git_dir.exists():
        shutil.rmtree(git_dir)  # does not follow the links in it
    workspace.mkdir(parents=True, exist_ok=True)
    scratch = workspace.parent / f".{workspace.name}.clone"
    shutil.rmtree(scratch, ignore_errors=True)
    run_git(*WORKSPACE_GIT, "clone", "--quiet", "--no-checkout", source, str(scratch), env=WORKSPACE_GIT_ENV)
    token = secrets.token_hex(16)
    (scratch / ".git" / "orgctl-token").write_text(token + "\n")
    (scratch / ".git").rename(git_dir)
    shutil.rmtree(scratch)
    _token_file(workspace).write_text(token + "\n")


def prepare_workspace(repo_dir: Path, workspace: Path, *, revision: str | None) -> Path:
    """Make ``workspace`` a clone of the org repo checked out (detached) at ``revision``; returns it.

    The Anima's commands run there: the org repo is readable without touching
    the person's checkout. A local clone shares objects by hard links, so it
    is cheap; an existing clone is fetched and moved to the revision. A
    ``None`` revision (the work tree) checks out HEAD. Git runs with
    :data:`WORKSPACE_GIT` and :data:`WORKSPACE_GIT_ENV`, and only in a ``.git``
    orgctl made (:func:`_trusted_git_dir`; another is replaced). Raises GitError.
    """
    workspace = Path(workspace)
    source = str(Path(repo_dir).resolve())
    try:
        if not _trusted_git_dir(workspace):
            _clone_git_dir(source, workspace)
        # from repo_dir itself (a workspace cloned from the checkout may now be fed by the controller's
        # mirror): its branches, and the mirror's tracked ref when it has one
        run_git(*WORKSPACE_GIT, "fetch", "--quiet", source, "+refs/heads/*:refs/remotes/origin/*",
                "+refs/orgctl/*:refs/remotes/orgctl/*", cwd=workspace, env=WORKSPACE_GIT_ENV)
        target = revision or run_git("rev-parse", "HEAD", cwd=Path(source))
        run_git(*WORKSPACE_GIT, "checkout", "--quiet", "--detach", "--force", target, cwd=workspace,
                env=WORKSPACE_GIT_ENV)
    except GitError as e:
        raise GitError(f"cannot prepare the workspace {workspace}: {e.message}") from e
    return workspace
