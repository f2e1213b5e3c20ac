"""``orgctl init``: a new org repo from the org template (``org-template/``, :func:`orgctl.paths.template_dir`)
with one initial commit. The template carries the JSON Schemas of its YAML files in ``.schemas/``
(:mod:`orgctl.desired.schemas`), so the new repo names them to editors without any network."""

from __future__ import annotations

import shutil
from pathlib import Path

from orgctl.desired.loading import check_name
from orgctl.errors import OrgctlError
from orgctl.gitops import repos

INIT_AUTHOR = ("orgctl init", "orgctl-init@users.noreply.localhost")


def init_org(*, dest: Path, template: Path, name: str | None = None) -> str:
    """Copy ``template`` to ``dest``, set the org name, ``git init`` and commit; returns the sha.

    The commit uses the user's git identity when one is configured, else
    ``orgctl init``. Raises OrgctlError when ``dest`` exists and is not empty,
    or ``name`` is not a safe name; nothing is created then.
    """
    import git

    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise OrgctlError(f"{dest} exists and is not a directory", hint="choose a new directory")
    if dest.exists() and any(dest.iterdir()):
        raise OrgctlError(f"{dest} exists and is not empty", hint="choose a new directory")
    org_name = name or dest.resolve().name
    if problem := check_name(org_name):
        raise OrgctlError(f"invalid org name {org_name!r}: {problem}", hint="pass --name NAME")
    shutil.copytree(template, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".orgctl"))
    org_yaml = dest / "org.yaml"
    org_yaml.write_text(org_yaml.read_text().replace("name: example-org", f"name: {org_name}", 1))
    repo = git.Repo.init(dest, initial_branch="main")
    repo.git.add("--all")
    reader = repo.config_reader()
    has_identity = reader.has_option("user", "name") and reader.has_option("user", "email")
    env = {} if has_identity else {
        "GIT_AUTHOR_NAME": INIT_AUTHOR[0], "GIT_AUTHOR_EMAIL": INIT_AUTHOR[1],
        "GIT_COMMITTER_NAME": INIT_AUTHOR[0], "GIT_COMMITTER_EMAIL": INIT_AUTHOR[1]}
    with repo.git.custom_environment(**env):
        repo.git.commit("--no-verify", "-m", f"Create org {org_name} from the orgctl template")
    return repos.head_revision(dest) or ""
