"""Proposals: a change an Anima wants in the spec becomes one commit on its own branch.

An Anima never changes a spec file live (DESIGN §2). It *proposes*: orgctl
writes one commit on a new branch ``orgctl/proposals/<anima>/<slug>-<id>``
of the org repo, authored by the Anima, and people review, merge, ``plan``
and ``apply`` it like any other change (``orgctl proposals`` lists them).

The commit is built with git plumbing only: blobs go into the object store,
the tree is assembled in a *temporary* index (``GIT_INDEX_FILE``), then
``write-tree``, ``commit-tree`` and ``update-ref``. No work tree, no
checked-out branch and no real index is touched, so a person's checkout is
exactly as it was (``git status`` stays clean, HEAD stays on its branch).

A proposal is refused, and no ref is left behind, when:

* a path is not a spec path: only ``org.yaml``, ``animas/<name>/{anima.yaml,
  identity.md, injection.md, permissions.md, cron.md}`` and
  ``animas/<name>/skills/<skill>.md`` (relative, no ``..``, not absolute,
  never ``memory/``, which only the runtime writes);
* the proposer is not an Anima of the org at the base revision;
* it changes nothing;
* the resulting tree does not load as a valid org
  (:func:`orgctl.desired.loading.load_org`); the refusal carries the
  loader's diagnostics.

The commit's author is the Anima (``bob (orgctl Anima)
<bob@animas.orgctl.invalid>``), its committer the orgctl bot, and its
message ends with the trailers ``Proposed-by: <anima>`` and
``Orgctl-Base: <base sha>``.
"""

from __future__ import annotations

import io
import re
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from orgctl.desired import schemas
from orgctl.desired.loading import ANIMA_FILE, ANIMAS_DIR, ORG_FILE, check_name, load_org
from orgctl.desired.models import FILE_FIELDS
from orgctl.desired.sources import GitRevisionSource
from orgctl.errors import Diagnostic, GitError, OrgctlError, SpecError
from orgctl.gitops import repos
from orgctl.gitops.hiring import hire_files, yaml_scalar

BRANCH_PREFIX = "orgctl/proposals/"
REF_PREFIX = f"refs/heads/{BRANCH_PREFIX}"
PROPOSED_BY = "Proposed-by"
BASE_TRAILER = "Orgctl-Base"
AUTHOR_DOMAIN = "animas.orgctl.invalid"
SKILLS_DIR = "skills"
SPEC_FILES = (ANIMA_FILE, *FILE_FIELDS)
"""The files of an Anima's folder that are spec (``anima.yaml`` and the Markdown files)."""

MAX_FILES = 50
MAX_FILE_BYTES = 256 * 1024
MAX_TITLE = 100
_ZERO = "0" * 40
_SKILL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ProposalRefused(OrgctlError):
    """A proposal that was not made: nothing was written, no ref exists.

    ``reason`` is one sentence; ``diagnostics`` are the loader's findings
    (file, line, reason) when the proposed spec does not load.
    """

    def __init__(self, reason: str, *, diagnostics: list[Diagnostic] | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.diagnostics = sorted(set(diagnostics or []))
        shown = "; ".join(str(d) for d in self.diagnostics[:5])
        more = f" (and {len(self.diagnostics) - 5} more)" if len(self.diagnostics) > 5 else ""
        super().__init__(f"proposal refused: {reason}" + (f": {shown}{more}" if shown else ""), hint=hint)


class Proposal(BaseModel):
    """One proposal branch.

    ``branch``: ``orgctl/proposals/<anima>/<slug>-<id>`` (no ``refs/heads/``);
    ``commit``: the branch tip (full sha); ``base``: the commit it was
    proposed against (the proposal commit's parent); ``created``: ISO 8601
    UTC author time of the proposal commit; ``files``: paths changed between
    ``base`` and ``commit``, sorted; ``merged``: the tracked branch holds
    every change (merged, squashed or cherry-picked); ``tracked``: the
    branch ``merged`` was checked against (None when there is none).
    """

    branch: str
    anima: str
    title: str
    commit: str
    base: str
    created: str
    files: list[str]
    merged: bool = False
    tracked: str | None = None


# ---------------------------------------------------------------- paths


def check_spec_path(path: object) -> str | None:
    """None when ``path`` may be changed by a proposal, else the reason it may not.

    Allowed: ``org.yaml``; ``animas/<name>/<spec file>`` (``anima.yaml``,
    ``identity.md``, ``injection.md``, ``permissions.md``, ``cron.md``);
    ``animas/<name>/skills/<skill>.md``. The path must be relative, POSIX,
    with no empty, ``.`` or ``..`` part, no backslash or control character.
    """
    if not isinstance(path, str) or not path:
        return "a path must be a non-empty string"
    if any(unicodedata.category(c) == "Cc" for c in path):
        return "the path contains a control character"
    if "\\" in path:
        return "the path contains a backslash (use / between parts)"
    if path.startswith("/"):
        return "the path is absolute (paths are relative to the repo root)"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "the path has an empty, '.' or '..' part"
    if path == ORG_FILE:
        return None
    if parts[0] != ANIMAS_DIR or len(parts) < 3:
        return f"only {ORG_FILE} and files under {ANIMAS_DIR}/<name>/ are spec"
    if problem := check_name(parts[1]):
        return f"unsafe Anima name {parts[1]!r}: {problem}"
    if parts[2] == "memory":
        return "memory is written by the runtime only, never by a proposal"
    if len(parts) == 3 and parts[2] in SPEC_FILES:
        return None
    is_skill = len(parts) == 4 and parts[2] == SKILLS_DIR and parts[3].endswith(".md")
    if is_skill and _SKILL_NAME.fullmatch(parts[3].removesuffix(".md")):
        return None
    return (f"not a spec file: an Anima's spec is {', '.join(SPEC_FILES)} and "
            f"{SKILLS_DIR}/<skill>.md (lower-case letters, digits, '-' and '_')")


def slugify(title: str, *, limit: int = 40) -> str:
    """``"Set bob's model to X"`` -> ``"set-bob-s-model-to-x"``: ASCII, at most ``limit`` chars, ``change`` if empty."""
    words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower())
    slug = ""
    for w in words:
        candidate = f"{slug}-{w}" if slug else w
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or (words[0][:limit] if words else "change")


def author_of(anima: str) -> tuple[str, str]:
    """The git identity of an Anima: ``("bob (orgctl Anima)", "bob@animas.orgctl.invalid")``."""
    return f"{anima} (orgctl Anima)", f"{anima}@{AUTHOR_DOMAIN}"


# ---------------------------------------------------------------- making a proposal


def _resolve(repo: Any, rev: str) -> Any:
    import git

    try:
        return repo.commit(rev)
    except (git.BadName, ValueError) as e:
        raise GitError(f"unknown revision {rev!r}", hint="check the name with `git log --oneline`") from e


def _exists(tree: Any, path: str) -> bool:
    try:
        tree / path
    except KeyError:
        return False
    return True


def _blob(tree: Any, path: str) -> Any | None:
    try:
        entry = tree / path
    except KeyError:
        return None
    return entry if entry.type == "blob" else None


def read_at(repo_dir: Path, path: str, *, rev: str = "HEAD") -> str | None:
    """The text of ``path`` at ``rev`` (UTF-8), or None when it is not a file there. Raises GitError."""
    repo = repos.open_repo(repo_dir)
    blob = _blob(_resolve(repo, rev).tree, path)
    return None if blob is None else blob.data_stream.read().decode("utf-8", errors="replace")


def _check_files(files: Mapping[str, str | None]) -> None:
    if not files:
        raise ProposalRefused("it changes no file")
    if len(files) > MAX_FILES:
        raise ProposalRefused(f"it changes {len(files)} files (at most {MAX_FILES})")
    for path, text in files.items():
        if problem := check_spec_path(path):
            raise ProposalRefused(f"{path!r}: {problem}")
        if text is not None and not isinstance(text, str):
            raise ProposalRefused(f"{path!r}: new content must be text (or None to delete the file)")
        if text is not None and len(text.encode()) > MAX_FILE_BYTES:
            raise ProposalRefused(f"{path!r} is larger than {MAX_FILE_BYTES // 1024} KiB")


def _one_line(text: str, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


def propose_change(repo_dir: Path, *, anima: str, title: str, files: Mapping[str, str | None],
                   base: str = "HEAD", body: str = "") -> Proposal:
    """Commit ``files`` on a new proposal branch of the org repo at ``repo_dir``; returns the proposal.

    ``files`` maps a repo-relative POSIX path to its new text, or to None to
    delete it. ``base`` is the revision the change is made against (the new
    commit's parent). ``title`` becomes the commit subject (one line, at
    most 100 characters) and the branch slug; ``body`` the commit body.

    Touches no work tree, index or checked-out branch. Raises
    :class:`ProposalRefused` (nothing written, no ref left) for a bad path, a
    proposer that is not an Anima at ``base``, a change that changes
    nothing, or a result that does not load as a valid org (with the
    loader's diagnostics); :class:`GitError` when ``repo_dir`` is not a
    repository, ``base`` is unknown or git fails.
    """
    if problem := check_name(anima):
        raise ProposalRefused(f"unsafe proposer name {anima!r}: {problem}")
    repo = repos.open_repo(repo_dir)
    base_commit = _resolve(repo, base)
    if _blob(base_commit.tree, f"{ANIMAS_DIR}/{anima}/{ANIMA_FILE}") is None:
        raise ProposalRefused(f"{anima!r} is not an Anima of the org at {base_commit.hexsha[:7]}")
    branch, commit = branch_change(repo_dir, files=files, title=title, body=body, base=base, author=author_of(anima),
                                   trailers={PROPOSED_BY: anima, BASE_TRAILER: base_commit.hexsha},
                                   branch=lambda slug, sha: f"{BRANCH_PREFIX}{anima}/{slug}-{sha[:8]}",
                                   reflog=f"orgctl: proposal by {anima}")
    return _describe(repo, branch, commit, tracked=tracked_branch(Path(repo_dir)))


def branch_change(repo_dir: Path, *, files: Mapping[str, str | None], title: str, body: str, base: str,
                  author: tuple[str, str], trailers: Mapping[str, str], branch: Callable[[str, str], str],
                  reflog: str) -> tuple[str, str]:
    """One commit of spec ``files`` on ``base`` by ``author`` (``(name, email)``; the orgctl bot commits),
    on a new branch named ``branch(slug of title, commit sha)``; returns ``(branch, commit sha)``.

    The one way a change becomes a branch: an Anima's proposal (:func:`propose_change`) and a person's
    ``orgctl hire --pr``. Built with plumbing in a temporary index: no work tree, index or checked-out
    branch is touched. Raises :class:`ProposalRefused` (no ref left) for a bad path, no change, an invalid
    result (the loader's diagnostics) or a branch that exists; GitError when git fails.
    """
    import git
    from gitdb import IStream

    title = _one_line(title, MAX_TITLE)
    if not title:
        raise ProposalRefused("a proposal needs a title")
    _check_files(files)
    repo = repos.open_repo(repo_dir)
    base_commit = _resolve(repo, base)
    env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_COMMITTER_NAME": repos.BOT_NAME, "GIT_COMMITTER_EMAIL": repos.BOT_EMAIL}
    try:
        with tempfile.TemporaryDirectory(prefix="orgctl-proposal-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            repo.git.read_tree(base_commit.hexsha, env=index)
            for path, text in sorted(files.items()):
                if text is None:
                    repo.git.update_index("--force-remove", "--", path, env=index)
                    continue
                data = text.encode()
                sha = repo.odb.store(IStream("blob", len(data), io.BytesIO(data))).hexsha.decode()
                old = base_commit.tree / path if _blob(base_commit.tree, path) is not None else None
                mode = "100755" if old is not None and old.mode == 0o100755 else "100644"
                repo.git.update_index("--add", "--replace", "--cacheinfo", f"{mode},{sha},{path}", env=index)
            tree = repo.git.write_tree(env=index)
    except git.GitCommandError as e:
        raise ProposalRefused(f"git could not build the tree: {(e.stderr or str(e)).strip()}") from e
    if tree == base_commit.tree.hexsha:
        raise ProposalRefused("it changes nothing at the base revision")

    lines = "\n".join(f"{key}: {value}" for key, value in trailers.items())
    message = f"{title}\n\n{body.strip()}\n\n{lines}\n" if body.strip() else f"{title}\n\n{lines}\n"
    try:
        commit = repo.git.commit_tree(tree, "-p", base_commit.hexsha, "--no-gpg-sign", "-m", message, env=env)
    except git.GitCommandError as e:
        raise GitError(f"git commit-tree failed: {(e.stderr or str(e)).strip()}") from e

    try:  # the commit exists but nothing points at it yet: a refusal here leaves no ref
        load_org(GitRevisionSource(Path(repo_dir), commit))
    except SpecError as e:
        raise ProposalRefused("the proposed spec is invalid", diagnostics=e.diagnostics,
                              hint="fix the change and propose it again") from None

    name = branch(slugify(title), commit)
    try:
        repo.git.check_ref_format(f"refs/heads/{name}")
    except git.GitCommandError:
        raise ProposalRefused(f"{name!r} is not a valid branch name") from None
    try:  # the zero old value: create only, never move an existing branch
        repo.git.update_ref("-m", reflog, f"refs/heads/{name}", commit, _ZERO)
    except git.GitCommandError as e:
        raise ProposalRefused(f"branch {name} already exists (the same change was made already)") from e
    return name, commit


# ---------------------------------------------------------------- convenience builders


def _require_anima(repo_dir: Path, name: str, base: str) -> str:
    """The text of ``animas/<name>/anima.yaml`` at ``base``; ProposalRefused when there is none."""
    if problem := check_name(name):
        raise ProposalRefused(f"unsafe Anima name {name!r}: {problem}")
    text = read_at(repo_dir, f"{ANIMAS_DIR}/{name}/{ANIMA_FILE}", rev=base)
    if text is None:
        raise ProposalRefused(f"there is no Anima named {name!r} at {base}")
    return text


def propose_set_model(repo_dir: Path, anima: str, target: str, model: str, *, background: bool = False,
                      base: str = "HEAD") -> Proposal:
    """Propose ``model: <model>`` (or ``background_model`` when ``background``) in ``target``'s anima.yaml.

    The line is replaced in place (comments elsewhere are kept) or appended.
    ``model`` is a LiteLLM-style string (``anthropic/claude-sonnet-4-5``);
    an invalid one is refused by the loader. Raises as :func:`propose_change`.
    """
    text = _require_anima(repo_dir, target, base)
    key = "background_model" if background else "model"
    line = f"{key}: {yaml_scalar(str(model))}"
    pattern = re.compile(rf"^{key}[ \t]*:.*$", re.MULTILINE)
    if pattern.search(text):
        new = pattern.sub(lambda _: line, text, count=1)
    else:
        new = (text if text.endswith("\n") or not text else text + "\n") + line + "\n"
    which = "background model" if background else "model"
    return propose_change(repo_dir, anima=anima, base=base, title=f"Set {target}'s {which} to {model}",
                          files={f"{ANIMAS_DIR}/{target}/{ANIMA_FILE}": new},
                          body=f"{anima} proposes that {target} runs on {model}.")


def propose_hire(repo_dir: Path, anima: str, name: str, role: str, supervisor: str, *, model: str | None = None,
                 identity: str = "", injection: str = "", tools: list[str] | None = None,
                 base: str = "HEAD") -> Proposal:
    """Propose a new Anima ``name`` with ``role`` reporting to ``supervisor``.

    Writes the folder an Anima has in the template (``anima.yaml``,
    ``identity.md``, ``injection.md``, ``permissions.md``, ``cron.md``; no
    ``memory/``, which the runtime creates); ``anima.yaml`` starts with the
    line naming its JSON Schema when the org keeps one in ``.schemas/``.
    ``identity``/``injection`` are Markdown bodies (a default from the role
    when empty); ``tools`` the granted tools (default: send_message,
    post_board, search_memory; no commands, least privilege). Refused when
    ``animas/<name>/`` exists at ``base``; otherwise raises as
    :func:`propose_change`.
    """
    if problem := check_name(name):
        raise ProposalRefused(f"unsafe Anima name {name!r}: {problem}")
    tree = _resolve(repos.open_repo(repo_dir), base).tree
    if _exists(tree, f"{ANIMAS_DIR}/{name}"):
        raise ProposalRefused(f"{ANIMAS_DIR}/{name}/ already exists: that would be a change, not a hire")
    _require_anima(repo_dir, supervisor, base)
    files = hire_files(name, role, supervisor, by=f"proposed by {anima}", model=model, identity=identity,
                       injection=injection, tools=tools,
                       schema_comment=_blob(tree, schemas.schema_path(ANIMA_FILE)) is not None)
    return propose_change(repo_dir, anima=anima, base=base, files=files,
                          title=f"Hire {name} ({role}) reporting to {supervisor}",
                          body=f"{anima} proposes to hire {name} as {role} under {supervisor}.")


def propose_skill(repo_dir: Path, anima: str, target: str, skill_name: str, description: str, body: str, *,
                  base: str = "HEAD") -> Proposal:
    """Propose the declared skill ``animas/<target>/skills/<skill_name>.md``.

    The file has frontmatter ``name`` and ``description`` (one line, at most
    200 characters) and ``body`` as Markdown. ``skill_name`` is lower-case
    letters, digits, ``-`` and ``_`` (at most 64). Raises as
    :func:`propose_change`; :class:`ProposalRefused` for a bad name or an
    empty description.

    Once merged, the skill is in the Anima's resolved spec (``AnimaSpec.skills``): priming offers its
    name and description, and the Anima reads the body when it asks.
    """
    _require_anima(repo_dir, target, base)
    if not _SKILL_NAME.fullmatch(skill_name):
        raise ProposalRefused(f"invalid skill name {skill_name!r}: use lower-case letters, digits, '-' and '_'")
    description = _one_line(description, 200)
    if not description:
        raise ProposalRefused("a skill needs a one-line description")
    front = yaml.safe_dump({"name": skill_name, "description": description}, sort_keys=False,
                           allow_unicode=True, width=1000)
    text = f"---\n{front}---\n{body.strip()}\n"
    return propose_change(repo_dir, anima=anima, base=base, files={f"{ANIMAS_DIR}/{target}/{SKILLS_DIR}/"
                                                                   f"{skill_name}.md": text},
                          title=f"Skill {skill_name} for {target}",
                          body=f"{anima} proposes the skill {skill_name!r} for {target}: {description}")


# ---------------------------------------------------------------- reading proposals


def tracked_branch(repo_dir: Path) -> str | None:
    """The branch proposals merge into: the checked-out branch unless it is a proposal, else ``main``/``master``."""
    repo = repos.open_repo(repo_dir)
    try:
        current: str | None = repo.active_branch.name
    except TypeError:  # detached HEAD
        current = None
    if current and not current.startswith(BRANCH_PREFIX):
        return current
    heads = {h.name for h in repo.heads}
    return next((b for b in ("main", "master") if b in heads), None)


def _trailer(message: str, key: str) -> str | None:
    for line in reversed(message.splitlines()):
        if line.startswith(f"{key}: "):
            return line.split(": ", 1)[1].strip()
    return None


def _proposal_commit(repo: Any, tip: Any) -> Any | None:
    """The newest commit on the branch that carries ``Proposed-by`` (people may add commits on top)."""
    commit = tip
    for _ in range(50):
        if _trailer(commit.message, PROPOSED_BY):
            return commit
        if not commit.parents:
            return None
        commit = commit.parents[0]
    return None


def _holds(tracked: Any, tip: Any, files: list[str]) -> bool:
    """True when the tracked commit's tree has every changed path exactly as the tip has it."""
    for path in files:
        want, have = _blob(tip.tree, path), _blob(tracked.tree, path)
        if (want.hexsha if want is not None else None) != (have.hexsha if have is not None else None):
            return False
    return True


def _describe(repo: Any, branch: str, sha: str, *, tracked: str | None) -> Proposal:
    tip = repo.commit(sha)
    proposal = _proposal_commit(repo, tip) or tip
    base = (_trailer(proposal.message, BASE_TRAILER) or
            (proposal.parents[0].hexsha if proposal.parents else ""))
    try:
        base_commit = repo.commit(base) if base else None
    except ValueError:
        base_commit = None
    if base_commit is None and proposal.parents:
        base_commit = proposal.parents[0]
    files = sorted(repo.git.diff("--name-only", "--no-renames", base_commit.hexsha, tip.hexsha).splitlines()) \
        if base_commit is not None else []
    anima = _trailer(proposal.message, PROPOSED_BY) or branch.removeprefix(BRANCH_PREFIX).split("/", 1)[0]
    merged = False
    if tracked is not None:
        target = repo.commit(f"refs/heads/{tracked}")
        merged = repo.is_ancestor(tip.hexsha, target.hexsha) or (bool(files) and _holds(target, tip, files))
    created = datetime.fromtimestamp(proposal.authored_date, UTC).isoformat(timespec="seconds")
    return Proposal(branch=branch, anima=anima, title=str(proposal.summary), commit=tip.hexsha,
                    base=base_commit.hexsha if base_commit is not None else "", created=created, files=files,
                    merged=merged, tracked=tracked)


def list_proposals(repo_dir: Path, *, tracked: str | None = None) -> list[Proposal]:
    """Every ``orgctl/proposals/*`` branch of the repo, oldest first.

    ``tracked`` is the branch ``merged`` is checked against (default:
    :func:`tracked_branch`). Raises GitError when ``repo_dir`` is not a
    repository or ``tracked`` is not a branch.
    """
    repo = repos.open_repo(repo_dir)
    tracked = tracked or tracked_branch(repo_dir)
    if tracked is not None and tracked not in {h.name for h in repo.heads}:
        raise GitError(f"no branch {tracked!r}", hint="pass the branch the org is applied from")
    proposals = [_describe(repo, branch, sha, tracked=tracked) for branch, sha in _proposal_refs(repo).items()]
    return sorted(proposals, key=lambda p: (p.created, p.branch))


def _proposal_refs(repo: Any) -> dict[str, str]:
    """``{branch: sha}`` of every proposal branch: local ones, and those fetched from a remote (an Anima's
    proposal is pushed to the org's remote from the runtime's clone; ``git fetch`` brings it here). A local
    branch wins over a remote-tracking one of the same name."""
    found: dict[str, str] = {}
    out = repo.git.for_each_ref("--format=%(refname)%00%(objectname)", REF_PREFIX, "refs/remotes/")
    for line in sorted(out.splitlines(), key=lambda ln: not ln.startswith("refs/heads/")):
        ref, _, sha = line.partition("\x00")
        if ref.startswith("refs/heads/"):
            branch = ref.removeprefix("refs/heads/")
        else:
            branch = ref.removeprefix("refs/remotes/").partition("/")[2]
            if not branch.startswith(BRANCH_PREFIX):
                continue
        found.setdefault(branch, sha)
    return found


def _branch(name: str) -> str:
    name = name.removeprefix("refs/heads/")
    return name if name.startswith(BRANCH_PREFIX) else BRANCH_PREFIX + name


def get_proposal(repo_dir: Path, branch: str, *, tracked: str | None = None) -> Proposal:
    """One proposal by branch (``orgctl/proposals/bob/x-1a2b3c4d`` or ``bob/x-1a2b3c4d``).

    Raises GitError naming the known proposals when there is no such branch.
    """
    import git

    repo = repos.open_repo(repo_dir)
    full = _branch(branch)
    try:
        sha = repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{full}^{{commit}}").strip()
    except git.GitCommandError:  # unknown ref: perhaps fetched from the org's remote only
        sha = _proposal_refs(repo).get(full, "")
    if not sha:
        known = [p.branch for p in list_proposals(repo_dir, tracked=tracked)]
        raise GitError(f"no proposal branch {full!r}",
                       hint=f"known: {', '.join(known) if known else 'none'} (`orgctl proposals`)")
    return _describe(repo, full, sha, tracked=tracked or tracked_branch(repo_dir))


def proposal_diff(repo_dir: Path, branch: str) -> str:
    """The unified diff of the proposal against its base (``git diff base tip``), with a stat header."""
    proposal = get_proposal(repo_dir, branch)
    repo = repos.open_repo(repo_dir)
    if not proposal.base:
        return ""
    stat = repo.git.diff("--stat", "--no-color", proposal.base, proposal.commit)
    patch = repo.git.diff("--no-color", proposal.base, proposal.commit)
    return f"{stat}\n\n{patch}\n" if patch else ""
