"""``orgctl hire NAME``: a new Anima's files from its role or a character sheet, in the work tree or, with
``--pr``, on a new branch pushed and opened as a pull request (:mod:`orgctl.gitops.hiring`,
:mod:`orgctl.gitops.publishing`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import org_option, resolve
from orgctl.cli.pr import github_url_option
from orgctl.errors import OrgctlError

HIRE_BRANCH_PREFIX = "orgctl/hire/"


@cli.command()
@click.argument("name")
@click.option("--role", default=None, help="Its role (engineer, manager, researcher, writer, ops, general).")
@click.option("--supervisor", default=None, metavar="SUP", help="The Anima it reports to.")
@click.option("--from-md", "sheet", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="SHEET",
              help="A character sheet (Markdown: settings frontmatter, Identity, Role guidelines, Permissions, "
                   "Scheduled tasks); --role and --supervisor override its settings.")
@click.option("--model", default=None, help="Its model (default: the org's).")
@click.option("--pr", "as_pr", is_flag=True,
              help="Commit the files on a new branch (the work tree is not touched), push it and open a pull "
                   "request (GITHUB_TOKEN), or say what to open.")
@click.option("--repo", default=None, metavar="OWNER/NAME",
              help="The GitHub repository of the pull request (default: from the remote's URL).")
@github_url_option
@org_option
def hire(name: str, role: str | None, supervisor: str | None, sheet: Path | None, model: str | None, as_pr: bool,
         repo: str | None, github_url: str | None, org_dir: Path) -> None:
    """Create a new Anima's files from its role or a character sheet; with --pr, as a pull request."""
    from orgctl.desired.loading import check_name
    from orgctl.gitops.hiring import Sheet, hire_files, person_of, read_sheet

    root, _ = resolve(org_dir)
    if problem := check_name(name):
        raise click.UsageError(f"unsafe Anima name {name!r}: {problem}")
    read = read_sheet(sheet) if sheet is not None else Sheet()
    role = role or _setting(read, "role")
    supervisor = supervisor or _setting(read, "supervisor")
    if not role or not supervisor:
        raise click.UsageError("say its --role and --supervisor (or put them in the sheet's frontmatter)")
    who = person_of(root)
    files = hire_files(name, role, supervisor, by=f"hired by {who[0]}", model=model, settings=read.settings,
                       identity=read.identity, injection=read.injection, permissions=read.permissions, cron=read.cron,
                       schema_comment=(root / ".schemas" / "anima.schema.json").is_file())
    title = f"Hire {name} ({role}) reporting to {supervisor}"
    if as_pr:
        _as_pull_request(root, name, files, title=title, author=who, repo=repo, github_url=github_url)
        return
    _into_work_tree(root, name, supervisor, files)
    click.echo(f"Created animas/{name}/ ({', '.join(sorted(Path(p).name for p in files))}): {title}.")
    click.echo(f"Next: review it, commit it, then orgctl plan {org_dir} (or orgctl hire {name} ... --pr for a "
               "pull request)")


def _setting(sheet, key: str) -> str | None:  # type: ignore[no-untyped-def]
    value = sheet.settings.get(key)
    return str(value) if value is not None else None


def _into_work_tree(root: Path, name: str, supervisor: str, files: dict[str, str | None]) -> None:
    """Write ``files`` under ``root``; refused when the folder exists or the supervisor is unknown; removed
    again (SpecError with file:line) when the work tree does not load with it."""
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import WorkTreeSource

    folder = root / "animas" / name
    if folder.exists() or folder.is_symlink():
        raise OrgctlError(f"animas/{name}/ already exists: that would be a change, not a hire",
                          hint=f"edit its files, or choose another name than {name!r}")
    if not (root / "animas" / supervisor / "anima.yaml").is_file():
        raise OrgctlError(f"there is no Anima named {supervisor!r} to report to (animas/{supervisor}/anima.yaml)")
    folder.mkdir(parents=True)
    try:
        for path, text in files.items():
            (root / path).write_text(text or "", encoding="utf-8")
        load_org(WorkTreeSource(root))
    except BaseException:  # refused (SpecError with file:line) or interrupted: nothing of the hire is left
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _as_pull_request(root: Path, name: str, files: dict[str, str | None], *, title: str, author: tuple[str, str],
                     repo: str | None, github_url: str | None) -> None:
    """Commit ``files`` on ``orgctl/hire/NAME`` from HEAD, push it where the checked-out branch tracks, and
    open the pull request (or say what to open)."""
    from orgctl.errors import GitError
    from orgctl.gitexec import run_git
    from orgctl.gitops.github import GitHub
    from orgctl.gitops.mirrors import current_branch, upstream_url
    from orgctl.gitops.proposals import branch_change
    from orgctl.gitops.publishing import publish_branch

    base = current_branch(root)
    if run_git("ls-tree", "--name-only", "HEAD", "--", f"animas/{name}", cwd=root):
        raise OrgctlError(f"animas/{name}/ already exists at HEAD: that would be a change, not a hire",
                          hint=f"edit its files in a pull request of your own, or choose another name than {name!r}")
    github = GitHub.from_env(url=github_url)  # a bad --github-url or token fails here, before any commit
    branch, commit = branch_change(root, files=files, title=title, base="HEAD", author=author,
                                   body=f"{author[0]} hires {name} with `orgctl hire --pr`.",
                                   trailers={"Orgctl-Hire": name}, branch=lambda slug, sha: HIRE_BRANCH_PREFIX + name,
                                   reflog=f"orgctl: hire {name}")
    click.echo(f"Committed {title} on {branch} ({commit[:7]}); the work tree is unchanged.")
    body = (f"{title}.\n\nMade with `orgctl hire {name} --pr`: the files are those of its role"
            " (or its character sheet). This pull request's plan comment shows what merging it would do.")
    try:
        published = publish_branch(root, branch, remote=upstream_url(root, base), base=base, title=title, body=body,
                                   github=github, repo=repo, web=github_url)
    except GitError:  # the push was refused: no branch is left behind, so running it again retries
        run_git("branch", "-D", "--", branch, cwd=root)
        raise
    click.echo(published.describe())
