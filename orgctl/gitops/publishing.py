"""A change on a branch, published: pushed to the org's remote and, with a token, opened as a pull request.

The one way a branch leaves orgctl for review, whoever made it: a person's ``orgctl hire --pr`` and an
Anima's proposal (a hire, a model change, a skill) both end here. Without a token the branch is pushed and
what to open is said (GitHub's compare page for a GitHub remote); with ``GITHUB_TOKEN`` the pull request is
opened, or the open one for that branch is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from orgctl.errors import GitError, OrgctlError
from orgctl.gitexec import run_git

if TYPE_CHECKING:
    from orgctl.gitops.github import GitHub, PullResult

_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")  # git@github.com:owner/name.git


def github_repo(url: str | None, *, hosts: tuple[str, ...] = ("github.com",)) -> tuple[str, str] | None:
    """``(web root, "owner/name")`` of a remote URL on one of ``hosts`` (https, ssh or scp-like
    ``git@host:owner/name.git``); None for a local path or another host."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("https", "http", "ssh", "git") and parts.hostname:
        host, path = parts.hostname, parts.path
    elif (m := _SCP.match(url)) and "/" not in m["host"]:
        host, path = m["host"], m["path"]
    else:
        return None
    owner_name = path.strip("/").removesuffix(".git")
    if host not in hosts or owner_name.count("/") != 1:
        return None
    return f"https://{host}", owner_name


def shown(url: str | None) -> str | None:
    """``url`` as it may be printed or told to an Anima: without the credentials a URL can carry
    (``https://x-access-token:TOKEN@github.com/...``), as git itself hides them."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    return url


@dataclass(frozen=True)
class Published:
    """Where a branch went: ``branch``, the ``remote`` it was pushed to (None: no remote, it stays local),
    the ``pull`` request opened (or found open), else the ``compare_url`` where a person opens one."""

    branch: str
    base: str
    remote: str | None
    pull: PullResult | None = None
    compare_url: str | None = None

    def describe(self) -> str:
        """One or two sentences for a person (or an Anima's tool result)."""
        if self.pull is not None:
            return (f"{'Opened' if self.pull.created else 'Already open:'} pull request #{self.pull.number}: "
                    f"{self.pull.url}")
        if self.remote is None:
            return f"Branch {self.branch} is in the repository (no remote to push to): merge it into {self.base}."
        where = f" at {self.compare_url}" if self.compare_url else ""
        return (f"Pushed {self.branch} to {shown(self.remote)}; open a pull request from it into {self.base}{where} "
                "(with GITHUB_TOKEN set, orgctl opens it).")


def publish_branch(repo_dir: Path, branch: str, *, remote: str | None, base: str, title: str, body: str,
                   github: GitHub | None = None, repo: str | None = None, web: str | None = None) -> Published:
    """Push ``branch`` of the repository at ``repo_dir`` to ``remote`` (a URL or path; None: leave it local)
    and, when ``github`` is given and the GitHub repository is known (``repo`` ``owner/name``, else parsed
    from ``remote``), open a pull request onto ``base`` with ``title`` and ``body``.

    Raises GitError when the push is refused (the branch exists there with other commits, no access),
    GitHubError when GitHub refuses the pull request (the branch is pushed by then: the error says so).
    """
    if remote is None:
        return Published(branch=branch, base=base, remote=None)
    try:
        run_git("push", "--quiet", "--", remote, f"refs/heads/{branch}:refs/heads/{branch}", cwd=repo_dir)
    except GitError as e:
        raise GitError(f"pushing {branch} to {shown(remote)} failed: {e.message}",
                       hint="fix access (or the remote's branch of that name) and run it again") from e
    hosts = ("github.com", *((urlsplit(web).hostname or "",) if web else ()))
    parsed = github_repo(remote, hosts=hosts)
    repo = repo or (parsed[1] if parsed else None)
    web = web or (parsed[0] if parsed else "https://github.com")
    if github is not None and repo is not None:
        try:
            pull = github.open_pull(repo, head=branch, base=base, title=title, body=body)
        except OrgctlError as e:
            raise type(e)(f"pushed {branch} to {shown(remote)}, but opening its pull request failed: {e.message}",
                          hint=e.hint) from e
        return Published(branch=branch, base=base, remote=remote, pull=pull)
    compare = f"{web}/{repo}/compare/{quote(base)}...{quote(branch)}?expand=1" if repo else None
    return Published(branch=branch, base=base, remote=remote, compare_url=compare)
