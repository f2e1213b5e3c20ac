"""Loading and validating the whole org spec from a :class:`~orgctl.desired.sources.Source`.

Validation collects *every* problem before failing, so one run of
``orgctl validate`` shows them all. ``plan`` and ``apply`` call the same
:func:`load_org`, so they fail the same way and change nothing.

Every spec file is scanned once for secrets as it is read
(:mod:`orgctl.desired.secrets`): ``org.yaml``, each Anima's ``*.md`` and
``*.yaml`` files (the ones orgctl reads and any others next to them) and its
declared ``skills/``. A key or token there is a diagnostic like any other.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import unicodedata
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orgctl.desired.crontabs import parse_cron_md
from orgctl.desired.documents import Located, parse_markdown
from orgctl.desired.models import (
    SCHEMA_VERSION,
    AnimaFile,
    AnimaSpec,
    CronTask,
    MessageLimits,
    OrgFile,
    OrgPlacement,
    OrgSpec,
    Skill,
)
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.desired.sources import Source
from orgctl.desired.speccache import SpecCache
from orgctl.desired.workflows import WORKFLOWS_DIR, WorkflowFile, WorkflowSpec, check_workflow, workflow_digest
from orgctl.errors import Diagnostic, SpecError

ORG_FILE = "org.yaml"
ANIMAS_DIR = "animas"
ANIMA_FILE = "anima.yaml"
ANIMA_FILES = ("identity.md", "injection.md", "permissions.md", "cron.md")
SKILLS_DIR = "skills"
SPEC_SUFFIXES = (".md", ".yaml", ".yml")
MAX_NAME = 64
SECRET_ADVICE = "keep secrets in the environment or the org's .env file (not in git)"

M = TypeVar("M", bound=BaseModel)


def check_name(name: str) -> str | None:
    """Return None if ``name`` is a safe Anima name, else the reason it is not.

    Names become directory names, process titles and git paths, so they must
    be plain: ASCII letters, digits, ``.``, ``_``, ``-``; no leading dot, no
    ``..``, no path separators or control characters; at most 64 characters.
    """
    if not name:
        return "name is empty"
    if "/" in name or "\\" in name:
        return "name contains a path separator"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "name contains a control character"
    if ".." in name:
        return "name contains '..'"
    if name.startswith("."):
        return "name starts with a dot"
    if len(name) > MAX_NAME:
        return f"name is longer than {MAX_NAME} characters"
    if not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        return "name may only contain ASCII letters, digits, '.', '_' and '-'"
    return None


def _reason(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field {loc!r}"
    if kind == "missing":
        return f"missing required field {loc!r}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def read_spec_file(source: Source, path: str, diags: list[Diagnostic], cache: SpecCache) -> str | None:
    """Read one spec file, adding a diagnostic for every line that looks like it holds a secret
    (``cache`` remembers the results by content)."""
    text = source.read_text(path)
    if text is not None:
        diags.extend(Diagnostic(path, f.line, f"{f.describe()}; {SECRET_ADVICE}")
                     for f in cache.scan(text, filename=path))
    return text


def _scan_other_files(source: Source, base: str, diags: list[Diagnostic], cache: SpecCache) -> list[Skill]:
    """Scan the Anima's spec files that the loader does not read (notes), and load its declared skills.

    A skill is ``skills/<skill>.md``: frontmatter ``name`` (default: the file's stem) and ``description``
    (required), then the body. Returns the skills, by file name.
    """
    known = {ANIMA_FILE, *ANIMA_FILES}
    for fname in source.list_files(base):
        if fname.endswith(SPEC_SUFFIXES) and fname not in known:
            read_spec_file(source, f"{base}/{fname}", diags, cache)
    skills = []
    for fname in source.list_files(f"{base}/{SKILLS_DIR}"):
        path = f"{base}/{SKILLS_DIR}/{fname}"
        text = read_spec_file(source, path, diags, cache) if fname.endswith(SPEC_SUFFIXES) else None
        if text is None or not fname.endswith(".md"):
            continue
        doc, errs = parse_markdown(text, file=path, parse=cache.parse_yaml)
        diags.extend(errs)
        if doc is None:
            continue
        meta = doc.frontmatter.data if doc.frontmatter is not None else {}
        name, description = meta.get("name", fname[:-3]), meta.get("description")
        if not isinstance(description, str) or not description.strip():
            line = doc.frontmatter.line_of(("description",)) if doc.frontmatter is not None else 1
            diags.append(Diagnostic(path, line, "a skill needs a one-line `description:` in its frontmatter (the "
                                                "Anima sees names and descriptions, and loads the body on demand)"))
            continue
        if not isinstance(name, str) or not name.strip():
            diags.append(Diagnostic(path, doc.frontmatter.line_of(("name",)) if doc.frontmatter else 1,
                                    "a skill's `name:` must be a non-empty string"))
            continue
        skills.append(Skill(name=name.strip(), description=" ".join(description.split()), body=doc.body.strip(),
                            file=f"{SKILLS_DIR}/{fname}"))
    return skills


def validate_model(model: type[M], located: Located, *, file: str) -> tuple[M | None, list[Diagnostic]]:
    """Validate parsed YAML against ``model``; map each pydantic error to a file line."""
    data = located.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Diagnostic(file, located.base_line,
                                 f"expected a mapping of keys, got {type(data).__name__}")]
    try:
        return model.model_validate(data), []
    except ValidationError as e:
        return None, [Diagnostic(file, located.line_of(tuple(err["loc"])), _reason(dict(err)))
                      for err in e.errors()]


class _Loaded:
    """One Anima's files, parsed but not yet placed in the org chart."""

    def __init__(self, name: str, spec: AnimaFile, located: Located, texts: dict[str, str],
                 bodies: dict[str, str], permissions: PermissionsFrontmatter, permissions_text: str,
                 cron: list[CronTask]) -> None:
        self.name, self.spec, self.located = name, spec, located
        self.texts, self.bodies, self.permissions, self.permissions_text, self.cron = (
            texts, bodies, permissions, permissions_text, cron)
        self.skills: list[Skill] = []


def _pattern_warnings(perms: PermissionsFrontmatter, frontmatter: Located, *, file: str) -> list[Diagnostic]:
    """Schema 1's allowed commands were argv prefixes; from schema 2 they match exactly. One warning per
    pattern whose meaning narrowed, with the pattern that keeps the old meaning (``... ``)."""
    return [Diagnostic(file, frontmatter.line_of(("commands", i)),
                       f"`{rule.command}` now allows exactly that command (schema 1 read it as a prefix, "
                       f"`{rule.command} ...`); write `{rule.command} ...` if further arguments should be allowed, "
                       f"then set `schema_version: {SCHEMA_VERSION}` in org.yaml")
            for i, rule in enumerate(perms.commands) if rule.argv()[-1] != "..."]


_RETIRED: Any = object()  # what _load_anima returns for a retired Anima's folder: no spec, no diagnostic


def _retired(source: Source, folder: str) -> bool:
    """A folder under ``animas/`` that holds nothing but ``memory/``: a retired Anima whose memory stays
    until the runtime archives it (``apply`` into the state dir, a tick into ``archive/`` by a commit)."""
    return (not source.list_files(folder) and source.list_dirs(folder) == ["memory"])


def _load_anima(source: Source, name: str, diags: list[Diagnostic], cache: SpecCache, *,
                warnings: list[Diagnostic], legacy_patterns: bool) -> _Loaded | None:
    base = f"{ANIMAS_DIR}/{name}"
    spec_file = f"{base}/{ANIMA_FILE}"
    skills = _scan_other_files(source, base, diags, cache)
    text = read_spec_file(source, spec_file, diags, cache)
    if text is None and _retired(source, base):
        return _RETIRED  # type: ignore[no-any-return]  # its spec files were deleted; its memory waits for the runtime to archive it
    if text is None:
        diags.append(Diagnostic(spec_file, 0, f"missing {ANIMA_FILE}: every folder under "
                                              f"{ANIMAS_DIR}/ is an Anima and needs one"))
        return None
    located, errs = cache.parse_yaml(text, file=spec_file)
    diags.extend(errs)
    spec = None
    if located is not None:
        spec, errs = validate_model(AnimaFile, located, file=spec_file)
        diags.extend(errs)

    texts: dict[str, str] = {}  # raw file text (hashed)
    bodies: dict[str, str] = {}  # text without frontmatter (what the prompt gets)
    permissions, permissions_text, cron = PermissionsFrontmatter(), "", []
    ok = True
    for fname in ANIMA_FILES:
        path = f"{base}/{fname}"
        body = read_spec_file(source, path, diags, cache)
        if body is None:
            if fname == "identity.md":
                diags.append(Diagnostic(path, 0, "missing identity.md (the Anima's personality)"))
                ok = False
            texts[fname] = bodies[fname] = ""
            continue
        texts[fname] = body
        doc, errs = parse_markdown(body, file=path, parse=cache.parse_yaml)
        if errs or doc is None:
            diags.extend(errs)
            ok = False
            continue
        bodies[fname] = doc.body
        if fname == "permissions.md":
            permissions_text = doc.body.strip()
            if doc.frontmatter is not None:
                perms, errs = validate_model(PermissionsFrontmatter, doc.frontmatter, file=path)
                diags.extend(errs)
                if perms is not None and legacy_patterns:
                    warnings.extend(_pattern_warnings(perms, doc.frontmatter, file=path))
                permissions = perms or permissions
                ok = ok and not errs
        elif fname == "cron.md":
            cron, errs = parse_cron_md(doc.body, file=path, first_line=doc.body_line)
            diags.extend(errs)
            ok = ok and not errs
    if spec is None or located is None or not ok:
        return None
    loaded = _Loaded(name, spec, located, texts, bodies, permissions, permissions_text, cron)
    loaded.skills = skills
    return loaded


def _check_hierarchy(loaded: dict[str, _Loaded], all_names: set[str],
                     diags: list[Diagnostic]) -> bool:
    """Unknown supervisors and cycles. Returns True when the chart is a forest."""
    ok = True
    for a in loaded.values():
        sup = a.spec.supervisor
        if sup is not None and sup not in all_names:
            diags.append(Diagnostic(f"{ANIMAS_DIR}/{a.name}/{ANIMA_FILE}",
                                    a.located.line_of(("supervisor",)),
                                    f"unknown supervisor {sup!r}: there is no {ANIMAS_DIR}/{sup}/"))
            ok = False
    reported: set[str] = set()
    for start in loaded:
        path, seen, cur = [], set(), start
        while cur in loaded and cur not in seen:
            seen.add(cur)
            path.append(cur)
            cur = loaded[cur].spec.supervisor  # type: ignore[assignment]
        if cur in seen:
            cycle = path[path.index(cur):]
            if not reported.intersection(cycle):
                reported.update(cycle)
                chain = " -> ".join(cycle + [cur])
                for member in cycle:
                    diags.append(Diagnostic(f"{ANIMAS_DIR}/{member}/{ANIMA_FILE}",
                                            loaded[member].located.line_of(("supervisor",)),
                                            f"supervisor cycle: {chain}"))
            ok = False
    return ok


def _placement(name: str, loaded: dict[str, _Loaded], teams: dict[str | None, list[str]]) -> OrgPlacement:
    """Where ``name`` sits; ``teams`` maps each supervisor (None: the top) to its sorted reports,
    built once for the org (a scan of every Anima per Anima was quadratic: 1M steps at 1,000)."""
    sup = loaded[name].spec.supervisor
    chain: list[str] = []
    cur = sup
    while cur is not None:
        chain.append(cur)
        cur = loaded[cur].spec.supervisor
    team = teams.get(sup, [])
    i = team.index(name)  # the team minus itself, by slicing (a comparison per member was 1M steps at 1,000)
    # built from names already validated: not validated again (under one manager of 1,000, 1M peer names)
    return OrgPlacement.model_construct(supervisor=sup, reports=list(teams.get(name, [])),
                                        peers=team[:i] + team[i + 1:], chain=chain)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees everything acyclic).

    Loading 1,000 Animas allocates hundreds of thousands of objects that all survive, so the collector
    ran full passes over them for nothing: 0.1-0.2 s of every plan. Mercurial's ``util.nogc`` does the
    same around its parsers.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_org(source: Source, *, cache: SpecCache | None = None) -> OrgSpec:
    """Load and validate the org at ``source``.

    ``cache`` keeps secret-scan and YAML parse results by content across runs
    (:mod:`orgctl.desired.speccache`; saved here; default: this load only). Returns the resolved
    :class:`OrgSpec`. Raises :class:`SpecError` with every diagnostic when anything is wrong; nothing
    partial is returned.
    """
    with _cyclic_gc_paused():
        return _load_org(source, cache if cache is not None else SpecCache())


def _load_org(source: Source, cache: SpecCache) -> OrgSpec:
    diags: list[Diagnostic] = []
    links = source.symlinks([ORG_FILE, ANIMAS_DIR, WORKFLOWS_DIR])
    for link, target in sorted(links.items()):
        diags.append(Diagnostic(link, 0, f"is a symbolic link (to {target!r}): spec and memory files must be "
                                         "regular files in the repo, so nothing is read or written through a link"))
    org: OrgFile | None = None
    sandbox_line = 0
    text = read_spec_file(source, ORG_FILE, diags, cache)
    if text is None:
        diags.append(Diagnostic(ORG_FILE, 0, f"missing {ORG_FILE} at the repo root "
                                             f"(in the {source.describe()})"))
    else:
        located, errs = cache.parse_yaml(text, file=ORG_FILE)
        diags.extend(errs)
        if located is not None:
            org, errs = validate_model(OrgFile, located, file=ORG_FILE)
            diags.extend(errs)
            sandbox_line = located.line_of(("sandbox",))
            if org is not None and (org.schema_version or 1) > SCHEMA_VERSION:
                diags.append(Diagnostic(ORG_FILE, located.line_of(("schema_version",)),
                                        f"schema_version {org.schema_version} needs a newer orgctl: this one reads "
                                        f"schema versions up to {SCHEMA_VERSION} (upgrade: pip install -U orgctl)"))

    warnings: list[Diagnostic] = []
    if org is not None and org.sandbox.mode == "off":
        warnings.append(Diagnostic(ORG_FILE, sandbox_line, "sandbox: off -- every command an Anima runs has all "
                                   "the rights of the user who runs orgctl (docs/sandbox.md)"))
    legacy_patterns = org is not None and (org.schema_version or 1) < SCHEMA_VERSION
    names = source.list_dirs(ANIMAS_DIR)
    folded: dict[str, str] = {}
    loaded: dict[str, _Loaded] = {}
    clashing: set[str] = set()  # named twice: its own diagnostic says so, a workflow naming it adds nothing
    for name in names:
        where = f"{ANIMAS_DIR}/{name}"
        if problem := check_name(name):
            diags.append(Diagnostic(where, 0, f"unsafe Anima name {name!r}: {problem}"))
            continue
        key = unicodedata.normalize("NFC", name).casefold()
        if key in folded:
            diags.append(Diagnostic(where, 0, f"duplicate Anima name {name!r}: clashes with "
                                              f"{folded[key]!r} (names are case-insensitive)"))
            clashing.add(name)
            continue
        folded[key] = name
        a = _load_anima(source, name, diags, cache, warnings=warnings, legacy_patterns=legacy_patterns)
        if a is _RETIRED:
            del folded[key]  # not an Anima of the org any more: nobody may name it as a supervisor
        elif a is not None:
            loaded[name] = a

    workflows = _load_workflows(source, set(loaded) | set(folded.values()) | clashing, diags, cache)
    cache.save()  # what was scanned counts even when the spec is refused: fix one file, rescan one file
    # a link is not read, so its file also counts as missing: the link's own diagnostic says it better
    diags = [d for d in diags if not (d.file in links and d.reason.startswith("missing"))]
    hierarchy_ok = _check_hierarchy(loaded, set(folded.values()), diags)
    if diags or org is None or not hierarchy_ok:
        raise SpecError(diags)

    d = org.defaults
    animas: dict[str, AnimaSpec] = {}
    teams: dict[str | None, list[str]] = {}
    for name in sorted(loaded):
        teams.setdefault(loaded[name].spec.supervisor, []).append(name)
    for name, a in loaded.items():
        s = a.spec
        # Resolved values, so writing an inherited default explicitly is no change (no empty diffs).
        model = s.model or d.model
        limits = _message_limits(org, s)
        settings = {"role": s.role, "supervisor": s.supervisor, "model": model,
                    "background_model": s.background_model or d.background_model or model,
                    "heartbeat_interval": s.heartbeat_interval or d.heartbeat_interval,
                    "active_hours": s.active_hours or d.active_hours,
                    "timezone": s.timezone or d.timezone, "enabled": s.enabled,
                    "deletion_policy": s.deletion_policy or d.deletion_policy,
                    "messaging": limits.model_dump(mode="json"),
                    "budget": (s.budget or org.budgets.per_anima).model_dump(mode="json"),
                    "org_budget": org.budgets.org.model_dump(mode="json"),
                    "notifications": [c.model_dump(mode="json") for c in org.notifications]
                    if s.supervisor is None else []}
        animas[name] = AnimaSpec(
            name=name,
            role=s.role,
            model=model,
            background_model=settings["background_model"],
            messaging=limits,
            budget=s.budget or org.budgets.per_anima,
            org_budget=org.budgets.org,
            notifications=list(org.notifications) if s.supervisor is None else [],
            heartbeat_interval=settings["heartbeat_interval"],
            active_hours=settings["active_hours"],
            timezone=settings["timezone"],
            enabled=s.enabled,
            deletion_policy=s.deletion_policy or d.deletion_policy,
            identity=a.bodies["identity.md"].strip(),
            injection=a.bodies["injection.md"].strip(),
            permissions=a.permissions,
            permissions_text=a.permissions_text,
            cron=a.cron,
            org=_placement(name, loaded, teams),
            files={f: hashlib.sha256(t.encode()).hexdigest()
                   for f, t in sorted(a.texts.items())}
            | {ANIMA_FILE: hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()}
            | {k.file: hashlib.sha256(f"{k.name}\n{k.description}\n{k.body}".encode()).hexdigest() for k in a.skills},
            skills=a.skills,
            memory=org.memory,
            sandbox=org.sandbox,
        )
    return OrgSpec(name=org.name, defaults=d, revision=source.revision, animas=animas,
                   notifications=list(org.notifications), board_channels=list(org.board_channels),
                   schema_version=org.schema_version, memory=org.memory, sandbox=org.sandbox,
                   runtime=org.runtime, shards=org.shards,
                   workflows={n: w.with_default_model(d.model) for n, w in workflows.items()},
                   warnings=sorted(set(warnings)))


def _load_workflows(source: Source, animas: set[str], diags: list[Diagnostic],
                    cache: SpecCache) -> dict[str, WorkflowSpec]:
    """Each ``workflows/<name>.yaml`` (``.yml``), validated against the org's Animas; by name. A file of
    another kind there is an error (a typo'd ``.yaml`` would otherwise be a workflow that silently is not)."""
    out: dict[str, WorkflowSpec] = {}
    for fname in source.list_files(WORKFLOWS_DIR):
        path = f"{WORKFLOWS_DIR}/{fname}"
        stem, dot, suffix = fname.rpartition(".")
        if not dot or f".{suffix}" not in (".yaml", ".yml"):
            if fname != "README.md":
                diags.append(Diagnostic(path, 0, f"not a workflow: files in {WORKFLOWS_DIR}/ are <name>.yaml "
                                                 "(a README.md may explain them)"))
            continue
        if problem := check_name(stem):
            diags.append(Diagnostic(path, 0, f"unsafe workflow name {stem!r}: {problem}"))
            continue
        if stem in out:
            diags.append(Diagnostic(path, 0, f"workflow {stem!r} is defined twice (.yaml and .yml)"))
            continue
        text = read_spec_file(source, path, diags, cache)
        if text is None:
            continue
        located, errs = cache.parse_yaml(text, file=path)
        diags.extend(errs)
        if located is None:
            continue
        spec, errs = validate_model(WorkflowFile, located, file=path)
        diags.extend(errs)
        if spec is None:
            continue
        errs = check_workflow(stem, path, spec, located, animas=animas)
        diags.extend(errs)
        if not errs:
            out[stem] = WorkflowSpec(name=stem, file=path, digest=workflow_digest(spec), spec=spec)
    return out


def _message_limits(org: OrgFile, anima: AnimaFile) -> MessageLimits:
    """Built-in defaults, then ``org.yaml``'s limits, then its role's, then the Anima's own."""
    merged = org.messaging.limits.model_dump()
    for override in (org.messaging.roles.get(anima.role), anima.messaging):
        if override is not None:
            merged |= override.model_dump(exclude_none=True)
    return MessageLimits.model_validate(merged)
