"""orgctl's one client for GitHub's REST API: plan comments, commit statuses, pull requests.

The commands that talk to GitHub (a plan posted on a pull request, a hire proposed as one, a status on
the commit) go through :class:`GitHub`, built on github3.py; nothing else in orgctl speaks HTTP to
GitHub. The token comes from ``GITHUB_TOKEN`` in the environment, never from a spec file
(:meth:`GitHub.from_env`); GitHub Enterprise Server is the same client with its base URL.

Every github3.py exception is wrapped here into :class:`GitHubError`: one sentence naming the repository
and what was attempted, a hint saying how to fix it, and never the token. github3 is imported lazily:
only the commands that talk to GitHub pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from orgctl.errors import OrgctlError

DOTCOM_API = "https://api.github.com"
STATES = ("pending", "success", "failure", "error")
DESCRIPTION_MAX = 140  # GitHub refuses a longer commit status description (422)
TOKEN_HINT = "set GITHUB_TOKEN to a valid token (in GitHub Actions: env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})"
PERMISSIONS_HINT = ("the token needs pull-requests: write (comments, pull requests) and statuses: write (commit "
                    "statuses); in a workflow, grant them under permissions:")


class GitHubError(OrgctlError):
    """A GitHub API call failed: bad credentials, not found, forbidden, rate limited, refused (422),
    or GitHub unreachable. The message names the repository and what was attempted; it never holds the token."""


@dataclass(frozen=True)
class CommentResult:
    """The comment orgctl owns on a pull request: ``id``, its web ``url``; ``created`` is False when an
    existing comment was edited."""

    id: int
    url: str
    created: bool


@dataclass(frozen=True)
class PullResult:
    """A pull request: ``number``, its web ``url``; ``created`` is False when an open pull request for
    that head already existed (and is the one returned)."""

    number: int
    url: str
    created: bool


def enterprise_url(url: str | None) -> str | None:
    """The base URL github3.py wants for GitHub Enterprise Server (``https://HOST``), from either that or
    its API root (``https://HOST/api/v3``, what GitHub Actions sets as ``GITHUB_API_URL``); None for
    github.com (None, ``https://github.com`` or ``https://api.github.com``). Raises GitHubError for a URL
    that is not http(s)://HOST[/path]."""
    if not url or not url.strip():
        return None
    base = url.strip().rstrip("/").removesuffix("/api/v3")
    if base in ("https://github.com", DOTCOM_API):
        return None
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise GitHubError(f"not a GitHub Enterprise URL: {url!r}",
                          hint="give the server's address, e.g. --github-url https://ghe.example.com")
    return base


class GitHub:
    """A client for one GitHub (github.com, or a GitHub Enterprise Server at ``url``) with one token.

    ``url`` None talks to github.com (what ``github3.login(token=...)`` builds); otherwise to GitHub
    Enterprise at ``url``, e.g. ``https://ghe.example.com``, whose API is ``url/api/v3`` (what
    ``github3.enterprise_login(url=..., token=...)`` builds). ``session`` is an optional
    ``github3.session.GitHubSession`` to use. ``repo`` arguments are ``"owner/name"``.
    """

    def __init__(self, token: str, *, url: str | None = None, session: Any = None) -> None:
        import github3

        if not token:
            raise GitHubError("no GitHub token given", hint=TOKEN_HINT)
        self._token = token
        base = enterprise_url(url)
        if base is None:
            self._gh = github3.GitHub(token=token, session=session)
        else:
            self._gh = github3.GitHubEnterprise(base, token=token, session=session)

    @classmethod
    def from_env(cls, *, url: str | None = None) -> GitHub | None:
        """A client with the token in ``GITHUB_TOKEN``, or None when it is unset or empty. Without ``url``,
        ``GITHUB_API_URL`` (set by GitHub Actions) picks GitHub Enterprise when it is not github.com's
        ``https://api.github.com``: ``https://HOST/api/v3`` means the server ``https://HOST``."""
        token = os.environ.get("GITHUB_TOKEN", "").strip()
        if not token:
            return None
        if url is None:
            api = os.environ.get("GITHUB_API_URL", "").strip().rstrip("/")
            url = api if api and api != DOTCOM_API else None
        return cls(token, url=url)

    @property
    def session(self) -> Any:
        """The github3 session (a ``requests.Session``) every call goes through; tests wrap it in betamax."""
        return self._gh.session

    @property
    def api_url(self) -> str:
        """The API root requests go to: ``https://api.github.com`` or ``https://HOST/api/v3``."""
        return str(self._gh.session.base_url)

    def upsert_comment(self, repo: str, number: int, body: str, *, marker: str) -> CommentResult:
        """Create or edit orgctl's one comment on pull request (or issue) ``number`` of ``repo``.

        The comment is found by ``marker``, a hidden HTML comment (``<!-- orgctl:plan acme -->``) that
        ``body`` must open with: every comment on the pull request is listed (all pages), the first one
        opening with the marker that the token may edit is edited (``created`` False; a person's comment that
        copies the marker answers 403 and is passed over), else a new one is made. So a pull request never
        gets a second plan comment, only the latest plan: Atlantis and tfcmt keep one plan comment per pull
        request the same way, and tfcmt (``tfcmt plan -patch``) finds its comment again by the hidden HTML
        metadata it embeds. Raises GitHubError when ``body`` lacks the marker or ``number`` is not positive
        (before any request), or when GitHub refuses.
        """
        owner, name = _split(repo)
        if number <= 0:
            raise GitHubError(f"not a pull request number: {repo}#{number}")
        from github3 import exceptions

        if not (marker.startswith("<!--") and marker.endswith("-->") and body.startswith(marker)):
            raise GitHubError(f"the comment for {repo}#{number} does not start with its marker {marker!r}",
                              hint="the marker must be a hidden HTML comment, <!-- ... -->, opening the body")
        with self._calling(f"comment on {repo}#{number}"):
            issue = self._gh.issue(owner, name, number)
            for comment in issue.comments():
                if not (comment.body or "").startswith(marker):  # a reply quoting the plan starts with "> "
                    continue
                try:
                    comment.edit(body)
                except exceptions.ForbiddenError:  # someone else's comment that copies the marker: not ours
                    continue
                return CommentResult(id=comment.id, url=comment.html_url, created=False)
            created = issue.create_comment(body)
        return CommentResult(id=created.id, url=created.html_url, created=True)

    def set_status(self, repo: str, sha: str, state: str, *, description: str, context: str = "orgctl/plan",
                   target_url: str | None = None) -> None:
        """Set the commit status ``context`` of commit ``sha`` in ``repo``: ``state`` is one of pending,
        success, failure, error; ``description`` is clipped to GitHub's 140 characters; ``target_url``
        (optional) is where the status links to. Raises GitHubError for another state (before any request)
        or when GitHub refuses."""
        owner, name = _split(repo)
        if not sha:
            raise GitHubError(f"no commit given for the {context} status in {repo}")
        if state not in STATES:
            raise GitHubError(f"not a commit status state: {state!r}", hint=f"use one of {', '.join(STATES)}")
        if len(description) > DESCRIPTION_MAX:
            description = description[:DESCRIPTION_MAX - 1] + "…"
        with self._calling(f"set the {context} status of {repo}@{sha[:12]}"):
            self._gh.repository(owner, name).create_status(sha, state, target_url=target_url,
                                                           description=description, context=context)

    def open_pull(self, repo: str, *, head: str, base: str, title: str, body: str) -> PullResult:
        """Open a pull request of branch ``head`` (``branch``, or ``owner:branch`` from a fork) onto
        ``base`` in ``repo``. When GitHub answers that one is already open for that head (422 "A pull
        request already exists for ..."), returns that one with ``created`` False instead. Raises
        GitHubError when GitHub refuses otherwise (e.g. 422 "No commits between ...", said as GitHub says it)."""
        from github3 import exceptions

        owner, name = _split(repo)
        qualified = head if ":" in head else f"{owner}:{head}"
        with self._calling(f"open a pull request {qualified} -> {base} in {repo}"):
            repository = self._gh.repository(owner, name)
            try:
                pull = repository.create_pull(title, base, head, body=body)
                return PullResult(number=pull.number, url=pull.html_url, created=True)
            except exceptions.UnprocessableEntity as exc:
                if not any(m.startswith("A pull request already exists") for m in _messages(exc)):
                    raise
            for pull in repository.pull_requests(state="open", head=qualified):
                return PullResult(number=pull.number, url=pull.html_url, created=False)
        raise GitHubError(f"GitHub says a pull request for {qualified} exists in {repo}, but lists no open one",
                          hint="it may have just been closed; run the command again")

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn any github3 exception raised inside into a GitHubError about ``what``."""
        from github3 import exceptions

        try:
            yield
        except exceptions.GitHubException as exc:
            message, hint = self._explain(exc, what)
            raise GitHubError(self._scrub(message), hint=self._scrub(hint)) from exc

    def _explain(self, exc: Exception, what: str) -> tuple[str, str]:
        """The message ("cannot WHAT: why") and hint for a github3 exception."""
        from github3 import exceptions

        if isinstance(exc, exceptions.TransportError):  # ConnectionError (refused, timed out) or another requests error
            return (f"cannot {what}: GitHub at {self.api_url} cannot be reached ({exc.exception})",
                    "check the network; for GitHub Enterprise, --github-url or GITHUB_API_URL")
        if not isinstance(exc, exceptions.GitHubError) or exc.response is None:  # IncompleteResponse and the like
            return (f"cannot {what}: unexpected answer from GitHub ({exc})",
                    "run again with ORGCTL_DEBUG=1 and report it")
        code, said = exc.code, "; ".join(_messages(exc))
        limited = _rate_limit(exc.response.headers) if code in (403, 429) else None
        if limited:
            return (f"cannot {what}: {limited}",
                    "wait and run again; each token has its own limit (GitHub's rate limits for the REST API)")
        if code == 401:
            return f"cannot {what}: GitHub refused the token ({code} {said})", TOKEN_HINT
        if code == 403:
            return f"cannot {what}: the token is not allowed to ({code} {said})", PERMISSIONS_HINT
        if code == 404:
            return (f"cannot {what}: GitHub answered 404 {said}: the repository or pull request does not exist,"
                    " or the token cannot see it",
                    "check the repository (owner/name) and number, and that the token has access to the repository")
        if code == 422:
            return f"cannot {what}: GitHub refused it (422 {said})", "fix what GitHub names and run again"
        return f"cannot {what}: GitHub answered {code} {said}", "try again later (https://www.githubstatus.com)"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")


def _split(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise GitHubError(f"not a GitHub repository: {repo!r}", hint="give it as owner/name, e.g. acme/org")
    return owner, name


def _messages(exc: Any) -> list[str]:
    """GitHub's own words in a refused request: the ``message`` of each entry in ``errors`` (422), after
    the top-level message ("Validation Failed")."""
    said = [str(exc.msg)] if exc.msg else []
    return said + [str(e.get("message")) for e in exc.errors if isinstance(e, dict) and e.get("message")]


def _rate_limit(headers: Any) -> str | None:
    """How long a 403/429 is a rate limit for: "rate limited until HH:MM:SS UTC" from
    ``X-RateLimit-Reset`` (epoch seconds) when ``X-RateLimit-Remaining`` is 0, "rate limited for N
    seconds" from ``Retry-After`` (a secondary rate limit); None when it is no rate limit."""
    if headers.get("Retry-After", "").isdigit():
        return f"rate limited for {headers['Retry-After']} seconds (a secondary rate limit)"
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = headers.get("X-RateLimit-Reset", "")
        if reset.isdigit():
            return f"rate limited until {datetime.fromtimestamp(int(reset), tz=UTC):%H:%M:%S} UTC"
        return "rate limited (no reset time given)"
    return None
