"""orgctl's GitHub client (orgctl.gitops.github): the requests it makes and how it reads GitHub's answers.

GitHub's API cannot be reached here, so the HTTP is replayed with betamax wrapped around the github3
session, as github3.py's own tests do (its tests/integration/helper.py), in record mode "none": a request
that is not in the cassette fails the test, and every interaction of a cassette must be used. The
requests orgctl sends are captured as they leave the session (method, path, JSON body, Authorization).

Cassettes, in tests/cassettes/github/: ``Repository_create_status.json`` is github3.py's own recording
(copied from its tests/cassettes/ under the same name; its token was already the <AUTH_TOKEN>
placeholder). The others are built from GitHub's documented REST responses (docs.github.com: issue
comments list/create/update, commit statuses create, pulls create/list, the rate-limit and error
answers; the documentation's octocat/Hello-World examples, trimmed), not recorded.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from betamax import Betamax

from orgctl.gitops.github import CommentResult, GitHub, GitHubError, PullResult, enterprise_url

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "github"
TOKEN = "ghp_" + "0rgctlT3stT0ken" * 2 + "abcdef"  # shaped like a real token; the cassettes hold <AUTH_TOKEN>
REPO = "octocat/Hello-World"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
MARKER = "<!-- orgctl:plan acme -->"
PLAN1 = f"{MARKER}\nPlan: 1 to hire, 0 to change, 0 to retire."
PLAN2 = f"{MARKER}\nPlan: 1 to hire, 1 to change, 0 to retire."
DESCRIPTION = "Plan: 1 to hire, 0 to change, 0 to retire."


@dataclass(frozen=True)
class Sent:
    """One request as orgctl sent it."""

    method: str
    url: str
    json: Any
    authorization: str | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


@pytest.fixture(autouse=True)
def _no_github_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GITHUB_TOKEN or GITHUB_API_URL of the machine running the tests (GitHub Actions sets both) plays no part."""
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_API_URL", raising=False)


@contextmanager
def replay(cassette: str, *, url: str | None = None, gh: GitHub | None = None) -> Iterator[tuple[GitHub, list[Sent]]]:
    """A GitHub client whose session replays ``cassette`` (record mode "none"), and the list of the
    requests it sent. On a clean exit, every interaction in the cassette must have been used."""
    gh = gh or GitHub(TOKEN, url=url)
    sent: list[Sent] = []
    send = gh.session.send

    def recording_send(request: Any, **kwargs: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        sent.append(Sent(request.method, request.url, json.loads(body) if body else None,
                         request.headers.get("Authorization")))
        return send(request, **kwargs)

    gh.session.send = recording_send
    recorder = Betamax(gh.session, cassette_library_dir=str(CASSETTES))
    with recorder.use_cassette(cassette, record="none",
                               placeholders=[{"placeholder": "<AUTH_TOKEN>", "replace": TOKEN}]):
        yield gh, sent
        unused = [i.data["request"]["uri"] for i in recorder.current_cassette.interactions if not i.used]
        assert not unused, f"requests in {cassette} that orgctl did not make: {unused}"


def calls(sent: list[Sent]) -> list[tuple[str, str]]:
    return [(s.method, s.path) for s in sent]


def assert_no_token(err: GitHubError) -> None:
    for text in (err.message, err.hint or "", str(err), repr(err)):
        assert TOKEN not in text and TOKEN[4:20] not in text


# upsert_comment


def test_upsert_comment_creates_once_then_edits_that_comment() -> None:
    """First run: no comment carries the marker, so one is created (POST .../issues/1347/comments with the
    body). Second run: the listing holds it, so it is edited (PATCH .../issues/comments/2), no second POST.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from a cassette built from
    GitHub's documented responses (not recorded)."""
    with replay("comment_create_then_edit") as (gh, sent):
        first = gh.upsert_comment(REPO, 1347, PLAN1, marker=MARKER)
        second = gh.upsert_comment(REPO, 1347, PLAN2, marker=MARKER)

    url = "https://github.com/octocat/Hello-World/pull/1347#issuecomment-2"
    assert first == CommentResult(id=2, url=url, created=True)
    assert second == CommentResult(id=2, url=url, created=False)
    assert calls(sent) == [
        ("GET", "/repos/octocat/Hello-World/issues/1347"),
        ("GET", "/repos/octocat/Hello-World/issues/1347/comments"),
        ("POST", "/repos/octocat/Hello-World/issues/1347/comments"),
        ("GET", "/repos/octocat/Hello-World/issues/1347"),
        ("GET", "/repos/octocat/Hello-World/issues/1347/comments"),
        ("PATCH", "/repos/octocat/Hello-World/issues/comments/2"),
    ]
    assert sent[2].json == {"body": PLAN1} and sent[5].json == {"body": PLAN2}
    assert sent[1].query == {"per_page": ["100"]}
    assert {s.authorization for s in sent} == {f"token {TOKEN}"}  # the token goes in this header, nowhere else


def test_upsert_comment_finds_its_comment_on_the_second_page() -> None:
    """The first page (100 comments) lacks the marker; the Link header's next page has it (comment 102),
    which is edited rather than a new one made. GitHub's API cannot be reached here; the HTTP is replayed
    with betamax from a cassette built from GitHub's documented responses (not recorded)."""
    with replay("comment_on_second_page") as (gh, sent):
        result = gh.upsert_comment(REPO, 1347, PLAN2, marker=MARKER)

    assert result == CommentResult(id=102, url="https://github.com/octocat/Hello-World/pull/1347#issuecomment-102",
                                   created=False)
    assert calls(sent) == [
        ("GET", "/repos/octocat/Hello-World/issues/1347"),
        ("GET", "/repos/octocat/Hello-World/issues/1347/comments"),
        ("GET", "/repositories/1296269/issues/1347/comments"),
        ("PATCH", "/repos/octocat/Hello-World/issues/comments/102"),
    ]
    assert sent[2].query == {"per_page": ["100"], "page": ["2"]}
    assert sent[3].json == {"body": PLAN2}


@pytest.mark.parametrize(("body", "marker"), [
    ("Plan: 1 to hire, 0 to change, 0 to retire.", MARKER),  # the body lacks the marker
    (PLAN1, "orgctl:plan acme"),  # the marker would show: not an HTML comment
])
def test_upsert_comment_refuses_a_body_without_its_hidden_marker(body: str, marker: str) -> None:
    """Without the marker the comment could never be found again, so nothing is sent. GitHub's API cannot
    be reached here; betamax replays an empty cassette, so any request would fail the test."""
    with replay("no_requests") as (gh, sent), pytest.raises(GitHubError, match="marker"):
        gh.upsert_comment(REPO, 1347, body, marker=marker)
    assert sent == []


# set_status


def test_set_status_posts_state_description_context_and_target_url() -> None:
    """POST /repos/o/r/statuses/SHA with state, description, context orgctl/plan and target_url.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from github3.py's own recording
    (Repository_create_status.json, matched on method and URI: it recorded a body of its own)."""
    sha = "24893ec07db2a12073703258f0089f105906d2e4"
    with replay("Repository_create_status") as (gh, sent):
        gh.set_status("github3py/github3.py", sha, "failure", description=DESCRIPTION,
                      target_url="https://ci.example.com/runs/7")

    assert calls(sent) == [("GET", "/repos/github3py/github3.py"),
                           ("POST", f"/repos/github3py/github3.py/statuses/{sha}")]
    assert sent[1].json == {"state": "failure", "description": DESCRIPTION, "context": "orgctl/plan",
                            "target_url": "https://ci.example.com/runs/7"}


def test_set_status_clips_the_description_to_140_characters() -> None:
    """GitHub refuses a description over 140 characters; orgctl sends the first 139 and an ellipsis.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from github3.py's own recording
    (Repository_create_status.json)."""
    long = "Plan: " + "x" * 200
    with replay("Repository_create_status") as (gh, sent):
        gh.set_status("github3py/github3.py", "24893ec07db2a12073703258f0089f105906d2e4", "failure",
                      description=long, context="orgctl/plan acme")
    sent_description = sent[1].json["description"]
    assert len(sent_description) == 140 and sent_description == long[:139] + "…"
    assert sent[1].json["context"] == "orgctl/plan acme" and "target_url" not in sent[1].json


@pytest.mark.parametrize("state", ["ok", "SUCCESS", ""])
def test_set_status_refuses_a_state_github_does_not_know(state: str) -> None:
    """Only pending, success, failure, error exist; anything else fails before a request. GitHub's API
    cannot be reached here; betamax replays an empty cassette, so any request would fail the test."""
    with replay("no_requests") as (gh, sent), pytest.raises(GitHubError, match="not a commit status state"):
        gh.set_status(REPO, SHA, state, description=DESCRIPTION)
    assert sent == []


# open_pull


def test_open_pull_creates_the_pull_request() -> None:
    """POST /repos/o/r/pulls with title, body, base and head; the new pull request's number and web URL.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from a cassette built from
    GitHub's documented responses (not recorded)."""
    with replay("pull_create") as (gh, sent):
        result = gh.open_pull(REPO, head="octocat:new-feature", base="master", title="Amazing new feature",
                              body="Please pull these awesome changes in!")

    assert result == PullResult(number=1347, url="https://github.com/octocat/Hello-World/pull/1347", created=True)
    assert calls(sent) == [("GET", "/repos/octocat/Hello-World"), ("POST", "/repos/octocat/Hello-World/pulls")]
    assert sent[1].json == {"title": "Amazing new feature", "body": "Please pull these awesome changes in!",
                            "base": "master", "head": "octocat:new-feature"}


def test_open_pull_returns_the_open_pull_request_that_already_exists() -> None:
    """GitHub answers 422 "A pull request already exists for octocat:new-feature."; orgctl lists the open
    pull requests for that head (qualified with the owner) and returns that one, created False.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from a cassette built from
    GitHub's documented responses (not recorded)."""
    with replay("pull_already_exists") as (gh, sent):
        result = gh.open_pull(REPO, head="new-feature", base="master", title="Amazing new feature",
                              body="Please pull these awesome changes in!")

    assert result == PullResult(number=1347, url="https://github.com/octocat/Hello-World/pull/1347", created=False)
    assert calls(sent) == [("GET", "/repos/octocat/Hello-World"), ("POST", "/repos/octocat/Hello-World/pulls"),
                           ("GET", "/repos/octocat/Hello-World/pulls")]
    assert sent[1].json["head"] == "new-feature"
    assert sent[2].query["state"] == ["open"] and sent[2].query["head"] == ["octocat:new-feature"]


def test_open_pull_says_githubs_reason_for_another_422() -> None:
    """A 422 that is not the duplicate (no commits between the branches) is an error saying GitHub's words.
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from a cassette built from
    GitHub's documented responses (not recorded)."""
    with replay("pull_no_commits") as (gh, sent), pytest.raises(GitHubError) as caught:
        gh.open_pull(REPO, head="new-feature", base="master", title="Amazing new feature",
                     body="Please pull these awesome changes in!")
    assert "No commits between master and new-feature" in caught.value.message
    assert "octocat/Hello-World" in caught.value.message and "pull request" in caught.value.message
    assert [m for m, _ in calls(sent)] == ["GET", "POST"]  # no listing: it is not the duplicate case
    assert_no_token(caught.value)


# errors


@pytest.mark.parametrize(("cassette", "call", "says", "hint"), [
    ("comment_not_found", lambda gh: gh.upsert_comment(REPO, 4040, PLAN1, marker=MARKER),
     ["octocat/Hello-World#4040", "404", "does not exist, or the token cannot see it"], "access to the repository"),
    ("rate_limited", lambda gh: gh.set_status(REPO, SHA, "success", description=DESCRIPTION),
     ["octocat/Hello-World@6dcb09b5b578", "rate limited until 22:13:20 UTC"], "wait"),  # reset 1700000000
    ("comment_secondary_rate_limit", lambda gh: gh.upsert_comment(REPO, 1347, PLAN1, marker=MARKER),
     ["octocat/Hello-World#1347", "rate limited for 60 seconds"], "wait"),
    ("bad_credentials", lambda gh: gh.upsert_comment(REPO, 1347, PLAN1, marker=MARKER),
     ["octocat/Hello-World#1347", "401 Bad credentials"], "GITHUB_TOKEN"),
    ("status_forbidden", lambda gh: gh.set_status(REPO, SHA, "success", description=DESCRIPTION),
     ["orgctl/plan status of octocat/Hello-World", "403 Resource not accessible by integration"], "statuses: write"),
])
def test_github_refusals_are_errors_naming_the_repo_with_a_hint_and_no_token(
        cassette: str, call: Any, says: list[str], hint: str) -> None:
    """404, 403 rate limits (primary: X-RateLimit-Remaining 0 until X-RateLimit-Reset; secondary:
    Retry-After), 401 and another 403 each become a GitHubError: what was attempted on which repo, why, a
    hint; never the token. GitHub's API cannot be reached here; the HTTP is replayed with betamax from
    cassettes built from GitHub's documented responses (not recorded)."""
    with replay(cassette) as (gh, _), pytest.raises(GitHubError) as caught:
        call(gh)
    for words in says:
        assert words in caught.value.message
    assert hint in (caught.value.hint or "")
    assert_no_token(caught.value)


def test_an_unreachable_github_is_an_error_naming_the_server() -> None:
    """A connection refused (github3's ConnectionError) becomes a GitHubError naming the API URL and the
    attempt. No betamax here: the request goes to a loopback port nothing listens on (GitHub's API cannot be
    reached here either way)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gh = GitHub(TOKEN, url=f"http://127.0.0.1:{port}")
    with pytest.raises(GitHubError) as caught:
        gh.set_status(REPO, SHA, "pending", description="planning")
    assert f"http://127.0.0.1:{port}/api/v3 cannot be reached" in caught.value.message
    assert "octocat/Hello-World" in caught.value.message and "GITHUB_API_URL" in (caught.value.hint or "")
    assert_no_token(caught.value)


@pytest.mark.parametrize("repo", ["Hello-World", "octocat/", "/Hello-World", "octocat/Hello/World"])
def test_a_repo_that_is_not_owner_slash_name_is_refused(repo: str) -> None:
    """GitHub's API cannot be reached here; betamax replays an empty cassette, so any request would fail the test."""
    with replay("no_requests") as (gh, sent), pytest.raises(GitHubError, match="not a GitHub repository") as caught:
        gh.open_pull(repo, head="new-feature", base="master", title="t", body="b")
    assert "owner/name" in (caught.value.hint or "")
    assert sent == []


# GitHub Enterprise and the environment


def test_enterprise_requests_go_to_the_servers_api_v3() -> None:
    """url="https://ghe.example.com" sends every request to https://ghe.example.com/api/v3/....
    GitHub's API cannot be reached here; the HTTP is replayed with betamax from a cassette built from
    GitHub's documented responses (not recorded), with the server's URLs."""
    with replay("status_enterprise", url="https://ghe.example.com") as (gh, sent):
        gh.set_status(REPO, SHA, "success", description=DESCRIPTION, target_url="https://ci.example.com/1000/output")
    assert [s.url.split("/repos/")[0] for s in sent] == ["https://ghe.example.com/api/v3"] * 2
    assert sent[1].path == f"/api/v3/repos/octocat/Hello-World/statuses/{SHA}"
    assert sent[1].json == {"state": "success", "description": DESCRIPTION, "context": "orgctl/plan",
                            "target_url": "https://ci.example.com/1000/output"}


def test_from_env_is_none_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, no client (the caller says GITHUB_TOKEN is missing). No request is made."""
    assert GitHub.from_env() is None
    monkeypatch.setenv("GITHUB_TOKEN", "  ")
    assert GitHub.from_env(url="https://ghe.example.com") is None


def test_from_env_reads_the_token_and_github_actions_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """GITHUB_API_URL=https://HOST/api/v3 (what GitHub Actions sets on GitHub Enterprise) picks the server;
    github.com's own API URL keeps github.com; an explicit url wins. Then the env's token is sent. GitHub's
    API cannot be reached here; the last part is replayed with betamax from a cassette built from GitHub's
    documented responses (not recorded)."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", "https://api.github.com")
    dotcom, explicit = GitHub.from_env(), GitHub.from_env(url="https://other.example.com")
    assert dotcom is not None and dotcom.api_url == "https://api.github.com"
    assert explicit is not None and explicit.api_url == "https://other.example.com/api/v3"
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3")
    gh = GitHub.from_env()
    assert gh is not None and gh.api_url == "https://ghe.example.com/api/v3"
    with replay("status_enterprise", gh=gh) as (_, sent):
        gh.set_status(REPO, SHA, "success", description=DESCRIPTION, target_url="https://ci.example.com/1000/output")
    assert sent[0].url == "https://ghe.example.com/api/v3/repos/octocat/Hello-World"
    assert sent[0].authorization == f"token {TOKEN}"


@pytest.mark.parametrize(("url", "base"), [
    (None, None), ("", None), ("https://github.com", None), ("https://api.github.com/", None),
    ("https://ghe.example.com", "https://ghe.example.com"), ("https://ghe.example.com/", "https://ghe.example.com"),
    ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
    ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
])
def test_enterprise_url_takes_the_server_or_its_api_root(url: str | None, base: str | None) -> None:
    """No request is made."""
    assert enterprise_url(url) == base


@pytest.mark.parametrize("url", ["ghe.example.com", "ftp://ghe.example.com", "https://"])
def test_enterprise_url_refuses_what_is_not_an_http_url(url: str) -> None:
    """No request is made."""
    with pytest.raises(GitHubError, match="not a GitHub Enterprise URL"):
        enterprise_url(url)
