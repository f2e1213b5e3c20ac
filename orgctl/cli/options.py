"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orgctl.paths import StatePaths, state_paths

_ORG_PATH = click.Path(file_okay=False, exists=True, path_type=Path)
"""The org repo: a folder that exists (a typo'd path is a usage error, never an empty org read as fine)."""


def org_location(*, positional: bool, must_exist: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Where the org repo is, passed to the command as ``org_dir`` (a Path, default ``.``): ``-C/--org DIR``
    on every command (git's convention), and also an optional ``[DIR]`` argument when ``positional`` (where
    it is the command's only positional, or already was one). Both given and different is a usage error;
    so is a folder that does not exist, unless not ``must_exist`` (``down`` stops an org whose folder is gone:
    its state is found by the path)."""
    kind = _ORG_PATH if must_exist else click.Path(file_okay=False, path_type=Path)

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            given, flag = kwargs.pop("org_dir_argument", None), kwargs.pop("org_dir_flag", None)
            kwargs["org_dir"] = one_of(given, flag) or Path(".")
            return f(*args, **kwargs)

        command = click.option("--org", "-C", "org_dir_flag", default=None, metavar="DIR", type=kind,
                               help="The org repo (default: the current directory).")(command)
        if positional:
            command = click.argument("org_dir_argument", metavar="[DIR]", required=False, default=None,
                                     type=kind)(command)
        return command
    return decorate


def one_of(given: Path | None, flag: Path | None, *, what: str = "the org") -> Path | None:
    """The folder given as an argument or as ``-C``, whichever was; click.UsageError when both were, and differ."""
    if given is not None and flag is not None and given.resolve() != flag.resolve():
        raise click.UsageError(f"{what} is given twice ({given} and -C {flag}): give one")
    return flag or given


org_dir_argument = org_location(positional=True)
"""``[DIR]`` and ``-C DIR``: for commands whose only other arguments come before DIR."""
org_option = org_location(positional=False)
"""``-C DIR`` only: for commands whose positional arguments are something else (``send NAME TEXT``)."""
revision_option = click.option(
    "--revision", "-r", default="HEAD", show_default=True, metavar="REV",
    help="Git revision that is the desired state.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
lock_timeout_option = click.option(
    "--lock-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
    help="How long to wait for the state lock (a running controller holds it briefly during each pass).")


def resolve(org_dir: Path) -> tuple[Path, StatePaths]:
    """The org repo's absolute path and its state paths, the state dir's format checked (migrated when older,
    with a note on stderr; StateError when newer)."""
    from orgctl.state.versions import check_state_format

    root = org_dir.resolve()
    paths = state_paths(root)
    if (note := check_state_format(paths)) is not None:
        click.secho(f"Note: {note}", fg="yellow", err=True)
    return root, paths


def load_desired(root: Path, revision: str | None, *, cache=None):  # type: ignore[no-untyped-def]
    """Load and validate the spec (an OrgSpec): the work tree when ``revision`` is None, else that revision.
    ``cache``: a SpecCache to share (two revisions of one org share most files); default the state dir's.
    Raises SpecError with file:line diagnostics."""
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
    from orgctl.desired.speccache import SpecCache

    source = WorkTreeSource(root) if revision is None else GitRevisionSource(root, revision)
    spec = load_org(source, cache=cache or SpecCache(state_paths(root).spec_cache))
    if spec.schema_version is None:
        click.secho("Note: org.yaml has no schema_version; read as version 1 (`orgctl validate` says what "
                    "version 2 changes; then add `schema_version: 2`).",
                    fg="yellow", err=True)
    return spec
