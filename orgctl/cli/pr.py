"""``orgctl pr comment``: the plan of a pull request, posted on it as one comment kept current, and the commit
status ``orgctl/plan``. In a GitHub Actions run on ``pull_request`` everything comes from the run's
environment; elsewhere, say it with ``--repo``, ``--pr``, ``--base``."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from orgctl.cli.main import cli
from orgctl.cli.options import org_dir_argument, resolve
from orgctl.errors import GitError, OrgctlError

github_url_option = click.option(
    "--github-url", default=None, metavar="URL",
    help="GitHub Enterprise: the server's URL (https://ghe.example.com); default github.com, or GITHUB_API_URL.")


@dataclass(frozen=True)
class PullContext:
    """Which pull request: ``repo`` (``owner/name``), ``number``, ``base`` (the revision its plan starts from)
    and ``head_sha`` (the commit the status is set on)."""

    repo: str
    number: int
    base: str
    head_sha: str | None


def _event() -> dict[str, Any]:
    """The GitHub Actions event payload (``GITHUB_EVENT_PATH``), or ``{}`` outside a run or when unreadable."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _event_pull() -> tuple[int | None, str | None, str | None]:
    """``(number, base sha, head sha)`` of the event's ``pull_request``, each None when absent or not of
    its type (a hand-made or foreign event file is read, never trusted to be well formed)."""
    pull = _event().get("pull_request")
    if not isinstance(pull, dict):
        return None, None, None
    number = pull.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
        number = None

    def sha(part: str) -> str | None:
        value = pull.get(part)
        found = value.get("sha") if isinstance(value, dict) else None
        return found if isinstance(found, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", found) else None

    return number, sha("base"), sha("head")


def pull_context(*, repo: str | None, number: int | None, base: str | None, sha: str | None) -> PullContext:
    """The options, else the Actions environment (``GITHUB_REPOSITORY``, the event's ``pull_request``).
    Raises click.UsageError naming what is missing."""
    event_number, event_base, event_head = _event_pull()
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    number = number or event_number
    base = base or event_base
    sha = sha or event_head
    missing = [flag for flag, value in (("--repo OWNER/NAME", repo), ("--pr N", number), ("--base REV", base))
               if not value]
    if missing:
        raise click.UsageError(f"say which pull request: {', '.join(missing)} (in a GitHub Actions run on "
                               "pull_request they come from the run)")
    if not isinstance(repo, str) or repo.count("/") != 1:
        raise click.UsageError(f"--repo must be OWNER/NAME, not {repo!r}")
    return PullContext(repo=repo, number=number, base=str(base), head_sha=sha)  # type: ignore[arg-type]


@cli.group()
def pr() -> None:
    """Pull requests on GitHub: `pr comment` posts the plan of one and keeps it current."""


@pr.command("comment")
@org_dir_argument
@click.option("--repo", default=None, metavar="OWNER/NAME", help="The repository (default: GITHUB_REPOSITORY).")
@click.option("--pr", "number", type=click.IntRange(min=1), default=None, metavar="N",
              help="The pull request (default: the run's pull_request event).")
@click.option("--base", default=None, metavar="REV",
              help="The PR's base (default: the event's base sha); the plan starts at its merge base with --head.")
@click.option("--head", default="HEAD", show_default=True, metavar="REV", help="The PR's head as checked out.")
@click.option("--sha", default=None, metavar="SHA",
              help="The commit the orgctl/plan status is set on (default: the event's head sha, else --head).")
@github_url_option
@click.option("--print", "print_only", is_flag=True, help="Print the comment and post nothing (no token needed).")
def comment(org_dir: Path, repo: str | None, number: int | None, base: str | None, head: str, sha: str | None,
            github_url: str | None, print_only: bool) -> None:
    """Post the plan of a pull request as one comment (updated in place on every push) and set the commit
    status orgctl/plan: success when the change validates, failure when it does not."""
    from orgctl.cli import prview
    from orgctl.gitexec import run_git

    root, _ = resolve(org_dir)
    where = _org_dir_in_repo(root)
    context = None if print_only else pull_context(repo=repo, number=number, base=base, sha=sha)
    base = context.base if context is not None else (base or _event_pull()[1])  # the event file, read once
    if base is None:
        raise click.UsageError("say where the change starts: --base REV")
    try:
        head_sha = run_git("rev-parse", "--verify", "--end-of-options", f"{head}^{{commit}}", cwd=root)
        base_sha = run_git("rev-parse", "--verify", "--end-of-options", f"{base}^{{commit}}", cwd=root)
        base_sha = run_git("merge-base", base_sha, head_sha, cwd=root)
    except GitError as e:
        raise GitError(f"{e.message}", hint="the checkout needs the base revision: actions/checkout with "
                                            "fetch-depth: 0") from None
    from orgctl.cli.commands import InvalidRevision

    failed: OrgctlError | None = None
    try:
        body, verdict = _plan_body(root, base_sha, head_sha, where)
    except InvalidRevision as e:
        if e.which == "base":  # the PR repairs its base: the head is what counts, and it validates
            body, verdict = prview.base_invalid_comment(e, where=where, base=base_sha, head=head_sha)
        else:
            failed = e
            body, verdict = prview.error_comment(e, where=where, head=head_sha)
    if context is None:
        click.echo(body)
        if failed:
            raise failed
        return
    from orgctl.gitops.github import GitHub

    github = GitHub.from_env(url=github_url)
    if github is None:
        raise OrgctlError("GITHUB_TOKEN is not set: nothing was posted",
                          hint="in a workflow: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }} with permissions "
                               "pull-requests: write and statuses: write; or --print to see the comment")
    posted = github.upsert_comment(context.repo, context.number, body, marker=prview.marker(where))
    click.echo(f"{'Posted' if posted.created else 'Updated'} the plan comment on {context.repo}#{context.number}: "
               f"{posted.url}")
    github.set_status(context.repo, context.head_sha or head_sha, verdict.state, description=verdict.description,
                      context=prview.STATUS_CONTEXT, target_url=posted.url)
    click.echo(f"Status {prview.STATUS_CONTEXT}: {verdict.state} ({verdict.description})")
    if failed:
        raise failed


def _plan_body(root: Path, base: str, head: str, where: str):  # type: ignore[no-untyped-def]
    """The comment and verdict for a change that loads at both ends; SpecError when either does not."""
    from orgctl.cli import prview
    from orgctl.cli.commands import plan_base
    from orgctl.memory.review import describe_diffs, memory_diff

    the_plan, desired, inventory = plan_base(root, base, head)
    diffs = memory_diff(root, f"{base}..{head}")
    filed = [d for d in diffs if _memory_kind(d.path) in FILED_MEMORY]
    raw: dict[str, Counter[str]] = {}
    for d in diffs:
        if _memory_kind(d.path) not in FILED_MEMORY:
            raw.setdefault(d.path.split("/")[1], Counter())[_memory_kind(d.path)] += 1
    memory = describe_diffs(filed, f"{base[:7]}..{head[:7]}")
    memory += [f"{'recorded':<9} {name}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
               + " file(s): the raw records of its days, not shown" for name, kinds in sorted(raw.items())]
    return prview.plan_comment(the_plan, desired, inventory, where=where, memory=memory)


FILED_MEMORY = ("knowledge", "procedures", "archive")
"""Memory a person reviews note by note on a pull request: what was learned and forgotten. Episodes, the
activity log, state and short-term memory are raw records of the days; the comment counts them."""


def _memory_kind(path: str) -> str:
    """``knowledge`` for ``animas/bob/memory/knowledge/rota.md``."""
    parts = path.split("/")
    return parts[3] if len(parts) > 4 else "other"


def _org_dir_in_repo(root: Path) -> str:
    """The org's directory inside its git repository (``.`` at the top); GitError when it is no repository."""
    from orgctl.gitexec import run_git

    prefix = run_git("rev-parse", "--show-prefix", cwd=root).strip().rstrip("/")
    return prefix or "."
