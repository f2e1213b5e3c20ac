"""``orgctl consolidate`` and ``orgctl pull``: memory passes, and memory brought into a checkout.

Memory is written and committed in the runtime's own clone (:mod:`orgctl.gitops.clones`), never in
the person's checkout; ``pull`` is how it gets there.
"""

from __future__ import annotations

from pathlib import Path

import click

from orgctl.cli.main import cli
from orgctl.cli.options import (
    json_option,
    load_desired,
    lock_timeout_option,
    org_dir_argument,
    org_option,
    resolve,
    revision_option,
)
from orgctl.errors import OrgctlError
from orgctl.paths import StatePaths


def _services(paths: StatePaths):  # type: ignore[no-untyped-def]
    """The org's services, chosen once: the running supervisor's (then it stays the one writer of memory),
    else this process's (:meth:`orgctl.runtime.services.Services.for_org`)."""
    from orgctl.runtime.services import Services

    return Services.for_org(paths)


def _sync(services) -> None:  # type: ignore[no-untyped-def]
    """Commit what the Animas wrote, then sync the clone; a failed push is a warning (the commits wait in
    the clone)."""
    report = services.commits.commit()
    if report.error:
        click.secho(f"Warning: {report.error}", fg="yellow", err=True)


@cli.command()
@org_dir_argument
def pull(org_dir: Path) -> None:
    """Bring the memory the Animas committed into this checkout (a fast-forward, or a merge)."""
    from orgctl.gitops.clones import RuntimeClone, pull_into

    root, paths = resolve(org_dir)
    clone = RuntimeClone.open(paths.clone)
    if clone is None:
        raise OrgctlError("there is no memory to pull: no Anima of this org has run on this machine",
                          hint="orgctl apply starts them; their memory is committed in the runtime's clone")
    _sync(_services(paths))
    result = pull_into(root, clone)
    if result.action == "up-to-date":
        click.echo("Already up to date.")
        return
    notes = sorted({"/".join(p.split("/")[:2]) for p in result.files})
    click.echo(f"{'Fast-forwarded' if result.action == 'fast-forward' else 'Merged'} {result.commits} commit(s) "
               f"to {result.head[:7]}: {len(result.files)} memory file(s) of {', '.join(notes) or 'no Anima'}.")


def _pass_options(f):  # type: ignore[no-untyped-def]
    for option in reversed([
        org_dir_argument, revision_option,
        click.option("--anima", "animas", multiple=True, metavar="NAME",
                     help="Only this Anima (repeatable). Default: every Anima in the spec."),
        click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                     help="The day the pass runs for (default: today, in each Anima's time zone)."),
        click.option("--dry-run", is_flag=True, help="Show what would change, as diffs; write and commit nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
        lock_timeout_option]):
        f = option(f)
    return f


def _run_pass(kind: str, org_dir: Path, revision: str, animas: tuple[str, ...], day, dry_run: bool,  # type: ignore[no-untyped-def]
              as_json: bool, lock_timeout: float) -> None:
    """Run ``kind`` over the chosen Animas: through the supervisor when the org runs (the runtime is then
    the one writer of memory), else here; print what changed (diffs with --dry-run)."""
    import json

    from orgctl.memory.passes import result_from_json, result_json, run_passes

    root, paths = resolve(org_dir)
    desired = load_desired(root, revision)
    unknown = sorted(set(animas) - set(desired.animas))
    if unknown:
        raise OrgctlError(f"unknown Anima(s): {', '.join(unknown)}",
                          hint=f"known: {', '.join(sorted(desired.animas))}")
    names = list(animas) or sorted(desired.animas)
    services = _services(paths)
    if not services.in_process:  # the running org's passes run on its applied specs
        answered = services.commits.run_pass(kind, names=[n for n in names if paths.spec_snapshot(n).is_file()],
                                             day=day.date().isoformat() if day else None, dry_run=dry_run)
        results = [result_from_json(r) for r in answered]
    else:  # nothing runs: the passes run here on the spec at --revision, in the runtime's clone
        from orgctl.gitops.clones import RuntimeClone
        from orgctl.state.locking import state_lock

        paths.ensure()
        with state_lock(paths.lock, operation=kind, timeout=lock_timeout):
            clone = RuntimeClone.for_checkout(root, paths.clone)
            done = run_passes(kind, clone=clone, paths=paths, animas={n: desired.animas[n] for n in names},
                              revision=desired.revision, day=day.date() if day else None, dry_run=dry_run,
                              progress=lambda name: click.echo(f"{kind.capitalize()} {name} …", err=True))
            if any(r.commit for r in done):
                _sync(services)
        results = [(r, {c.path: c.diff() for c in r.changes} if dry_run else {}) for r in done]
    if as_json:
        click.echo(json.dumps([result_json(r, diffs) for r, diffs in results], indent=2))
        return
    for r, diffs in results:
        counts = ", ".join(f"{n} {k}" for k, n in r.counts.items() if n) or "nothing"
        if r.skipped:
            click.echo(f"{r.anima}: nothing to {kind} ({r.skipped})")
            continue
        head = f"{r.anima}: would {kind}" if r.dry_run else f"{r.anima}: {kind}"
        click.echo(f"{head}: {counts}" + (f", commit {r.commit[:7]}" if r.commit else ""))
        for c in r.changes:
            click.echo(f"  {c.action:<10} {c.path}{' -> ' + c.target if c.target else ''}: {c.summary}")
            if dry_run and diffs.get(c.path):
                click.echo("".join("    " + line for line in diffs[c.path].splitlines(keepends=True)).rstrip())
    if any(r.commit for r, _ in results) and not dry_run:
        click.echo("Bring it into a checkout with `orgctl pull`.")


@cli.command()
@_pass_options
@click.option("--weekly", is_flag=True, help="Run the weekly pass instead: merge and compress knowledge notes.")
def consolidate(org_dir: Path, revision: str, animas: tuple[str, ...], day, dry_run: bool, as_json: bool,  # type: ignore[no-untyped-def]
                lock_timeout: float, weekly: bool) -> None:
    """File each Anima's day into knowledge and procedures; one git commit per Anima."""
    _run_pass("compress" if weekly else "consolidate", org_dir, revision, animas, day, dry_run, as_json,
              lock_timeout)


@cli.command()
@_pass_options
def forget(org_dir: Path, revision: str, animas: tuple[str, ...], day, dry_run: bool, as_json: bool,  # type: ignore[no-untyped-def]
           lock_timeout: float) -> None:
    """Downscale, archive and forget unused memory (protected notes never); one git commit per Anima."""
    _run_pass("forget", org_dir, revision, animas, day, dry_run, as_json, lock_timeout)


# ------------------------------------------------------------------ orgctl memory …

@cli.group()
def memory() -> None:
    """Search, review and repair the Animas' memory: reindex, search, show, log, diff, revert."""


def _check_anima(paths: StatePaths, name: str) -> None:
    from orgctl.state.snapshots import unknown_anima

    if problem := unknown_anima(paths, name):
        raise OrgctlError(problem, hint="orgctl status lists the Animas that run")


@memory.command()
@click.argument("names", nargs=-1)
@org_option
def reindex(names: tuple[str, ...], org_dir: Path) -> None:
    """Rebuild the search index of NAMES (default: every applied Anima) from the memory files."""
    from orgctl.memory.index import collect_docs
    from orgctl.state.snapshots import applied_names, read_snapshot

    _, paths = resolve(org_dir)
    chosen = list(names) or applied_names(paths)
    for name in chosen:
        _check_anima(paths, name)
    services = _services(paths)
    try:
        for name in chosen:
            if not services.in_process:
                click.echo(f"Rebuilding {name}'s index in the runtime …", err=True)
                click.echo(f"{name}: {services.memory.reindex(name)} items indexed")
                continue
            snapshot = read_snapshot(paths.spec_snapshot(name))
            total = len(collect_docs(Path(snapshot.memory_dir), common=paths.workspace(name) / "common_knowledge",
                                     skills=snapshot.spec.skills))
            with click.progressbar(length=total, label=f"{name}: embedding {total} items", file=None) as bar:
                count = services.memory.reindex(name, progress=bar.update)
            click.echo(f"{name}: {count} items indexed")
    finally:
        services.close()


@memory.command()
@click.argument("name")
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 50), help="How many items.")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["episode", "knowledge", "procedures", "common", "skill"]),
              help="Only items of this kind (repeatable).")
@click.option("--lexical", is_flag=True, help="BM25 alone (the baseline), without embeddings and graph.")
@org_option
@json_option
def search(name: str, query: str, k: int, kinds: tuple[str, ...], lexical: bool, org_dir: Path,
           as_json: bool) -> None:
    """Search NAME's memory for QUERY: the ranking the Anima gets, with scores per channel."""
    import json

    _, paths = resolve(org_dir)
    _check_anima(paths, name)
    services = _services(paths)
    try:
        results = services.memory.search(name, query, k=k, kinds=list(kinds) or None, lexical=lexical, record=False)
    finally:
        services.close()
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    if not results:
        click.echo("Nothing found.")
        return
    for rank, r in enumerate(results, start=1):
        channels = " ".join(f"{c}={v:g}" for c, v in r["channels"].items())
        click.echo(f"{rank:>2}. {r['score']:.3f}  {r['id']}  [{r['kind']}{', ' + r['date'] if r['date'] else ''}]")
        click.echo(f"      {r['text'][:200]}")
        click.echo(f"      {channels}")


@memory.command()
@click.argument("name")
@click.argument("path")
@org_option
def show(name: str, path: str, org_dir: Path) -> None:
    """Print NAME's memory file PATH (e.g. knowledge/bob.md), or one episode (episodes/2026-11-24.md#09:00:00)."""
    from orgctl.memory.index import episode_docs

    _, paths = resolve(org_dir)
    _check_anima(paths, name)
    from orgctl.state.files import file_inside

    rel, _, anchor = path.partition("#")
    target = file_inside(paths.memory(name), rel)
    if target is None:
        raise OrgctlError(f"{name} has no memory file {rel!r}",
                          hint=f"paths are relative to {name}'s memory folder: episodes/…, knowledge/…, procedures/…")
    text = target.read_text(encoding="utf-8")
    if anchor:
        if not rel.startswith("episodes/"):
            raise OrgctlError("only episodes have items inside a file (#HH:MM:SS)")
        from orgctl.memory.stores import episode_sections

        docs = episode_docs(text, rel=rel, day=Path(rel).stem)
        sections = episode_sections(text)
        found = [s for d, s in zip(docs, sections, strict=False) if d.id == f"{rel}#{anchor}"]
        if not found:
            raise OrgctlError(f"no episode {anchor!r} in {rel}")
        text = found[0] + "\n"
    click.echo(text, nl=False)


@memory.command("log")
@click.argument("name", required=False)
@click.option("-n", "limit", default=20, show_default=True, type=click.IntRange(1), help="How many passes.")
@click.option("--all", "show_all", is_flag=True, help="Include the batches of episodes.")
@org_option
@json_option
def memory_log_cmd(name: str | None, limit: int, show_all: bool, org_dir: Path, as_json: bool) -> None:
    """The memory passes (of NAME), newest first, with what each added, changed, archived and forgot."""
    import json

    from orgctl.cli.reports import memory_log_report, memory_repo
    from orgctl.memory.review import memory_log

    root, paths = resolve(org_dir)
    if as_json:
        click.echo(json.dumps(memory_log_report(memory_repo(paths, root), anima=name, limit=limit,
                                                passes_only=not show_all), indent=2))
        return
    entries = memory_log(memory_repo(paths, root), anima=name, limit=limit, passes_only=not show_all)
    if not entries:
        click.echo("No memory passes yet.")
        return
    for e in entries:
        t = e.trailers
        counts = " ".join(f"{sign}{t[key]}" for sign, key in (("+", "Added"), ("~", "Changed"), (">", "Archived"),
                                                              ("-", "Forgotten")) if t.get(key, "0") != "0")
        redacted = f"  {t['Redactions']} redacted" if t.get("Redactions", "0") != "0" else ""
        click.echo(f"{e.sha[:7]}  {e.date[:16].replace('T', ' ')}  {e.anima:<12} {e.kind:<12} {counts or '-'}"
                   f"{redacted}")


@memory.command("diff")
@click.argument("rev")
@click.argument("name", required=False)
@org_option
@json_option
def memory_diff_cmd(rev: str, name: str | None, org_dir: Path, as_json: bool) -> None:
    """What the memory commit REV (or a range A..B) learned, changed and forgot, note by note."""
    from orgctl.cli.reports import memory_diff_report, memory_repo
    from orgctl.memory.review import memory_diff

    root, paths = resolve(org_dir)
    repo = memory_repo(paths, root)
    if as_json:
        import json

        click.echo(json.dumps(memory_diff_report(repo, rev, anima=name), indent=2))
        return
    diffs = memory_diff(repo, rev, anima=name)
    if not diffs:
        click.echo("No memory changes.")
        return
    from orgctl.memory.review import describe_diffs

    for line in describe_diffs(diffs, rev):
        click.echo(line)


@memory.command()
@click.argument("commit")
@org_option
def revert(commit: str, org_dir: Path) -> None:
    """Undo the memory pass COMMIT with a revert commit (the index follows the files)."""
    from orgctl.gitops.clones import RuntimeClone
    from orgctl.memory.review import revert_pass

    _, paths = resolve(org_dir)
    clone = RuntimeClone.open(paths.clone)
    if clone is None:
        raise OrgctlError("there is no memory to revert: no Anima of this org has run on this machine")
    sha = revert_pass(clone, commit, memory_lock=paths.memory_lock)
    click.echo(f"Reverted {commit[:7]} as {sha[:7]}.")
    _sync(_services(paths))
    if not clone.remote:
        click.echo("Bring it into this checkout with `orgctl pull`.")
