"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from orgctl.paths import StatePaths, state_paths

org_dir_argument = click.argument(
    "org_dir", metavar="[DIR]", default=".", type=click.Path(file_okay=False, path_type=Path))
revision_option = click.option(
    "--revision", "-r", default="HEAD", show_default=True, metavar="REV",
    help="Git revision that is the desired state.")
org_option = click.option("--org", "-C", "org_dir", default=".", show_default=True,
                          type=click.Path(file_okay=False, path_type=Path), help="The org repo.")
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


def load_desired(root: Path, revision: str | None):  # type: ignore[no-untyped-def]
    """Load and validate the spec (an OrgSpec): the work tree when ``revision`` is None, else that revision.
    Raises SpecError with file:line diagnostics."""
    from orgctl.desired.loading import load_org
    from orgctl.desired.sources import GitRevisionSource, WorkTreeSource
    from orgctl.desired.speccache import SpecCache

    source = WorkTreeSource(root) if revision is None else GitRevisionSource(root, revision)
    spec = load_org(source, cache=SpecCache(state_paths(root).spec_cache))
    if spec.schema_version is None:
        click.secho("Note: org.yaml has no schema_version; read as version 1 (`orgctl validate` says what "
                    "version 2 changes; then add `schema_version: 2`).",
                    fg="yellow", err=True)
    return spec
