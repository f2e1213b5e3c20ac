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
from orgctl.paths import workspace_git_dir

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
    """True for a path under ``animas/<name>/memory/``, live, or archived under ``archive/`` (where a tick
    moves a retired Anima's memory): a bot-owned path, only the runtime writes it."""
    parts = p.strip('"').split("/")
    if parts[:1] == ["archive"]:
        parts = parts[1:]
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


def prepare_workspace(repo_dir: Path, workspace: Path, *, revision: str | None) -> Path:
    """Make ``workspace`` a checkout of the org repo (detached) at ``revision``; returns it.

    The Anima's commands run there: the org repo is readable without touching
    the person's checkout. Its git directory lives outside it
    (:func:`orgctl.paths.workspace_git_dir`), so this git, which runs outside
    the sandbox, never reads what a command wrote in the workspace; it also
    runs with :data:`WORKSPACE_GIT` and :data:`WORKSPACE_GIT_ENV`. ``.git`` in
    the workspace is an empty directory, where the sandbox mounts the git
    directory read-only. A ``None`` revision (the work tree) checks out HEAD.
    Raises GitError.
    """
    workspace = Path(workspace)
    source = str(Path(repo_dir).resolve())
    git_dir = workspace_git_dir(workspace)
    tree = ("--git-dir", str(git_dir), "--work-tree", str(workspace))
    try:
        workspace.mkdir(parents=True, exist_ok=True)
        _set_aside_old_git_dir(workspace, git_dir)
        if not (git_dir / "HEAD").is_file():
            git_dir.parent.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "--bare", str(git_dir), env=WORKSPACE_GIT_ENV)
            run_git("--git-dir", str(git_dir), "config", "core.bare", "false", env=WORKSPACE_GIT_ENV)
        # from repo_dir itself (a workspace cloned from the checkout may now be fed by the controller's
        # mirror): its branches, and the mirror's tracked ref when it has one
        run_git(*WORKSPACE_GIT, *tree, "fetch", "--quiet", source, "+refs/heads/*:refs/remotes/origin/*",
                "+refs/orgctl/*:refs/remotes/orgctl/*", env=WORKSPACE_GIT_ENV)
        target = revision or run_git("rev-parse", "HEAD", cwd=Path(source))
        run_git(*WORKSPACE_GIT, *tree, "checkout", "--quiet", "--detach", "--force", target, env=WORKSPACE_GIT_ENV)
    except (GitError, OSError) as e:
        raise GitError(f"cannot prepare the workspace {workspace}: {getattr(e, 'message', e)}") from e
    return workspace


def _set_aside_old_git_dir(workspace: Path, git_dir: Path) -> None:
    """Leave ``workspace/.git`` an empty directory (the sandbox's mount point): a ``.git`` an earlier orgctl
    cloned there is kept, never read, as ``gitdirs/<name>.before-sandbox``; a link or a file made by a
    command is removed."""
    import shutil

    dot_git = workspace / ".git"
    if dot_git.is_symlink() or (dot_git.exists() and not dot_git.is_dir()):
        dot_git.unlink()
    elif dot_git.is_dir() and any(dot_git.iterdir()):
        kept = git_dir.with_name(f"{git_dir.name}.before-sandbox")
        kept.parent.mkdir(parents=True, exist_ok=True)
        if kept.exists():
            shutil.rmtree(dot_git)  # kept once already; what is there now was written since, by commands
        else:
            dot_git.rename(kept)
    dot_git.mkdir(exist_ok=True)
