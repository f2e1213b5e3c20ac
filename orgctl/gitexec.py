"""Running ``git`` as a child process: the one helper every module that shells out to git uses.

Plain ``git`` rather than gitpython where speed or a bare repository matters (``plan`` imports no
gitpython). The environment is the caller's plus three settings: no password prompt
(``GIT_TERMINAL_PROMPT=0``: a fetch never waits on a terminal), no optional locks
(``GIT_OPTIONAL_LOCKS=0``: a ``git status`` in a person's checkout never holds its index.lock while
they commit), and C messages (``LC_ALL=C``), so errors read the same everywhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from orgctl.errors import GitError

GIT_TIMEOUT = 120.0
"""Seconds one git command may take (a fetch over a slow network) before GitError."""


def run_git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, stdin: str | None = None,
            timeout: float = GIT_TIMEOUT, strip: bool = True) -> str:
    """``git ARGS`` in ``cwd``; returns stdout without its trailing newlines (``-z`` output keeps its NULs;
    ``strip=False`` keeps them all, for file contents).

    ``env`` adds to (and overrides) the environment described above. Raises GitError with git's own
    message when git exits non-zero, and when it runs longer than ``timeout`` seconds.
    """
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", **(env or {})}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=full_env, input=stdin, check=False)
    except subprocess.TimeoutExpired as e:
        raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from e
    except OSError as e:  # no such folder to run in (or no git at all)
        raise GitError(f"git {args[0]} cannot run in {cwd or '.'}: {e.strerror or e}") from e
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.rstrip("\n") if strip else done.stdout
