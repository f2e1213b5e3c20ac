"""The org's env file: where model keys and notification tokens live, outside git.

Keys never go in spec files (``orgctl validate`` refuses them). They come from
the environment, or from an env file that is never committed:

* ``$ORGCTL_ENV_FILE`` when it is set (it must exist), else
* ``<org repo>/.env`` when it exists (the template's ``.gitignore`` ignores
  ``.env`` and ``*.env``), else nothing.

The file is read with python-dotenv's ``dotenv_values`` in its plain form:
``KEY=value`` lines, ``export KEY=value``, ``#`` comments, single or double
quotes (escapes like ``\\n`` only inside double quotes). Variable expansion is
**off**: ``${OTHER}`` and ``$`` stay as written, so a password with a ``$``
in it is read as it is, and nothing from the environment leaks into a value.
A bare ``KEY`` line (no ``=``) sets nothing.

A variable already set in the environment wins over the file, as with
docker compose and python-dotenv's own ``load_dotenv``: ``OPENAI_API_KEY=…
orgctl apply`` overrides the file for one run.

The file is refused, with an error naming it, when it is tracked by git
(committed or staged: it would be pushed), a symlink (the file checked is not
the file read), not a regular file, or readable or writable by group or
others (like ssh refuses a private key: ``chmod 600 .env``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from orgctl.errors import OrgctlError

ENV_FILE_ENV = "ORGCTL_ENV_FILE"
DEFAULT_ENV_FILE = ".env"


def env_file_path(org_dir: Path, env: Mapping[str, str] = os.environ) -> Path | None:
    """The env file that applies to ``org_dir``, or None when there is none.

    Raises :class:`OrgctlError` when ``$ORGCTL_ENV_FILE`` names a file that does not exist.
    """
    named = env.get(ENV_FILE_ENV)
    if named:
        path = Path(named).expanduser().absolute()
        if not path.exists() and not path.is_symlink():
            raise OrgctlError(f"env file {path} (from ${ENV_FILE_ENV}) does not exist",
                              hint=f"create it, or unset {ENV_FILE_ENV} to use the org's {DEFAULT_ENV_FILE}")
        return path
    path = Path(org_dir).absolute() / DEFAULT_ENV_FILE
    return path if path.exists() or path.is_symlink() else None


def check_env_file(path: Path) -> None:
    """Refuse an env file that is a symlink, not a regular file, open to others, or tracked by git."""
    if path.is_symlink():
        raise OrgctlError(f"env file {path} is a symlink; refusing to read it",
                          hint="make it a regular file (mode 600) outside git")
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise OrgctlError(f"env file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise OrgctlError(f"env file {path} is accessible by others (mode {stat.S_IMODE(info.st_mode):03o}); "
                          "it holds keys, so it must be private", hint=f"chmod 600 {path}")
    if _tracked_by_git(path):
        raise OrgctlError(f"env file {path} is tracked by git; keys in it would be pushed with the repo",
                          hint=f"git rm --cached {path.name} (and rotate every key it held if it was ever pushed); "
                               f"keep {DEFAULT_ENV_FILE} in .gitignore")


def _tracked_by_git(path: Path) -> bool:
    import git  # gitpython, imported here so the CLI starts fast

    try:
        repo = git.Repo(path.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    try:
        with repo:
            repo.git.ls_files("--error-unmatch", "--", str(path))
    except git.GitCommandError:
        return False  # not tracked (or outside this work tree)
    return True


def load_env_file(org_dir: Path, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables of the org's env file, each with the environment's value when that is set.

    Returns ``{}`` when there is no env file. Merge the result into
    ``os.environ`` to make the keys visible to model libraries; variables
    already in ``env`` keep their value. Raises :class:`OrgctlError` for a
    refused file (see the module docstring) or one that cannot be read.
    """
    path = env_file_path(org_dir, env)
    if path is None:
        return {}
    check_env_file(path)
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OrgctlError(f"cannot read env file {path}: {e}") from e
    return {key: env.get(key, value) for key, value in values.items() if value is not None}
