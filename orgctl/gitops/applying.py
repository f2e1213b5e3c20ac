"""Apply: carry out a plan on a backend and record what was applied in the inventory.

Each action is recorded in the inventory as soon as it succeeds, so a
failure half-way leaves observed state true to what runs, and the next plan
shows exactly what remains. Retiring an Anima follows its ``deletion_policy``:
``archive`` (default) stops it and archives its memory to
``<state>/archive/<name>-<time>/`` (as last committed, plus anything newer the
runtime's clone holds); ``delete`` stops it without an archive; both then
commit the removal of its memory folder in the runtime's clone (one reviewable
commit, the files stay in history). ``orphan`` leaves it running and unmanaged.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orgctl.desired.models import AnimaSpec, OrgSpec
from orgctl.errors import GitError
from orgctl.gitops import repos
from orgctl.gitops.backends import Backend
from orgctl.gitops.clones import RuntimeClone
from orgctl.gitops.planning import Action, Change, Plan, inventory_entry
from orgctl.paths import StatePaths
from orgctl.state.inventories import Inventory, now_iso, save_inventory
from orgctl.state.snapshots import Snapshot, write_snapshot, write_workflows


@dataclass
class ApplyResult:
    """Names per action that were carried out, and where retired memory went."""

    done: dict[Action, list[str]] = field(default_factory=lambda: {a: [] for a in Action})
    archives: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        d = self.done
        return (f"Apply complete! Animas: {len(d[Action.HIRE])} hired, "
                f"{len(d[Action.CHANGE]) + len(d[Action.RESTART])} changed, "
                f"{len(d[Action.RETIRE])} retired.")


def _last_committed_memory(repo_dir: Path, rel: str):  # type: ignore[no-untyped-def]
    """The git tree of ``rel`` as last committed on HEAD's history (before any deletion), or None."""
    import git

    repo = repos.open_repo(repo_dir)
    try:
        last = repo.git.rev_list("-1", "HEAD", "--", rel).strip()
    except git.GitCommandError:  # no commits yet: nothing to export
        return None
    if not last:
        return None
    commit = repo.commit(last)
    for candidate in (commit, *commit.parents[:1]):  # the commit that deleted it has the content in its parent
        try:
            return candidate.tree / rel
        except KeyError:
            continue
    return None


def archive_memory(*, clone: RuntimeClone, paths: StatePaths, name: str) -> Path:
    """Copy a retired Anima's memory into the archive; return the archive folder.

    The memory as last committed comes first (found in history even when the
    folder was deleted in a later commit); memory the runtime's clone holds
    uncommitted (newer) is then moved over it, so the clone no longer holds a
    folder for an Anima the spec does not have.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = paths.archive / f"{name}-{stamp}" / "memory"
    dest.mkdir(parents=True, exist_ok=True)
    rel = f"animas/{name}/memory"
    tree = _last_committed_memory(clone.root, rel)
    for blob in tree.traverse() if tree is not None else ():
        if blob.type == "blob":
            target = dest / Path(blob.path).relative_to(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
    live = clone.root / rel
    if live.is_dir() and not live.is_symlink():
        shutil.copytree(live, dest, dirs_exist_ok=True)
        shutil.rmtree(live)
        parent = live.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return dest.parent


def delete_memory(*, clone: RuntimeClone, name: str) -> None:
    """Remove a retired Anima's memory folder from the runtime's clone (``deletion_policy: delete``).

    Only ``animas/<name>/memory`` (and the then empty ``animas/<name>``) is removed; what was committed
    stays in git history.
    """
    live = clone.memory_dir(name)
    if live.is_dir() and not live.is_symlink():
        shutil.rmtree(live)
    parent = live.parent
    if parent.is_dir() and not parent.is_symlink() and not any(parent.iterdir()):
        parent.rmdir()


def apply_plan(*, plan: Plan, desired: OrgSpec, inventory: Inventory, org_dir: Path,
               paths: StatePaths, backend: Backend, clone: RuntimeClone,
               source_repo: Path | None = None) -> ApplyResult:
    """Carry out ``plan`` (computed from ``desired`` and ``inventory``) on ``backend``.

    ``clone``: the runtime's clone, where memory is written (:meth:`RuntimeClone.for_checkout`).
    ``source_repo``: the repository that holds ``desired.revision`` (the controller's mirror);
    default ``org_dir``. Mutates and saves ``inventory`` after every action. Raises whatever the
    backend raises (:class:`orgctl.errors.RuntimeFailure`) and stops there.
    """
    result = ApplyResult()
    org_dir = Path(org_dir).resolve()
    paths.ensure()
    if clone.hooks_enabled() != desired.memory.hooks:
        clone.set_hooks(desired.memory.hooks)
    if any(c.action != Action.RETIRE for c in plan.changes):
        backend.prepare()

    for change in plan.changes:
        apply_change(change, desired=desired, inventory=inventory, org_dir=org_dir, paths=paths,
                     backend=backend, result=result, clone=clone, source_repo=source_repo)
        save_inventory(paths.inventory, inventory)
    write_workflows(paths.specs, desired.workflows, revision=desired.revision)
    inventory.workflows = {name: w.digest for name, w in desired.workflows.items()}
    inventory.revision = desired.revision
    inventory.applied_at = now_iso()
    inventory.sandbox = desired.sandbox.mode
    save_inventory(paths.inventory, inventory)
    return result


def hand_over(spec: AnimaSpec, *, desired: OrgSpec, clone: RuntimeClone, paths: StatePaths,
                    source_repo: Path) -> None:
    """Hand ``spec`` to the runtime: its snapshot, its workspace (a checkout of ``source_repo`` at the
    desired revision) and its memory folder (in the clone) made sure of. Raises GitError."""
    memory = clone.memory_dir(spec.name)
    memory.mkdir(parents=True, exist_ok=True)
    repos.prepare_workspace(source_repo, paths.workspace(spec.name), revision=desired.revision)
    write_snapshot(paths.spec_snapshot(spec.name), Snapshot(
        spec=spec, revision=desired.revision, org_name=desired.name,
        memory_dir=str(memory), applied_at=now_iso()))


def apply_change(change: Change, *, desired: OrgSpec, inventory: Inventory, org_dir: Path,
                 paths: StatePaths, backend: Backend, result: ApplyResult, clone: RuntimeClone,
                 source_repo: Path | None = None) -> None:
    """Carry out one planned ``change`` and record it in ``inventory`` (the caller saves it).

    The controller calls this per Anima, so one Anima's failure does not hold back the others.
    Raises what the backend raises; ``inventory`` is then unchanged for that Anima.
    """
    name = change.name
    if change.action == Action.RETIRE:
        entry = inventory.animas[name]
        if entry.deletion_policy == "orphan":  # no longer ours to manage: the process and memory stay
            inventory.animas[name] = entry.model_copy(update={"status": "orphaned", "applied_at": now_iso()}).sealed()
            result.done[change.action].append(name)
            return
        backend.stop(name)
        with contextlib.suppress(GitError):  # bring the branch in, so the archive starts from the memory as
            clone.sync(push=False)           # last committed; a source out of reach must not hold a retirement
        archive: Path | None = None
        if entry.deletion_policy == "delete":
            delete_memory(clone=clone, name=name)
        else:
            archive = archive_memory(clone=clone, paths=paths, name=name)
            result.archives[name] = archive
        where = f"archived to {archive}" if archive else "not archived (deletion_policy: delete)"
        clone.commit([f"animas/{name}/memory"], subject=f"memory({name}): retired",
                     body=f"{name} was retired at {desired.revision or 'the work tree'}; its memory is {where}. "
                          "Git history keeps every committed version.",
                     trailers={"Anima": name, "Pass": "retirement", "Source-Revision": desired.revision or "work-tree"})
        paths.spec_snapshot(name).unlink(missing_ok=True)
        inventory.animas[name] = entry.model_copy(update={
            "status": "retired", "archive": str(archive) if archive else None, "applied_at": now_iso()}).sealed()
    else:
        spec = desired.animas[name]
        if not spec.enabled:
            backend.stop(name)
            inventory.animas[name] = inventory_entry(spec, revision=desired.revision, status="disabled")
        else:
            hand_over(spec, desired=desired, clone=clone, paths=paths,
                            source_repo=Path(source_repo or org_dir))
            previous = inventory.animas.get(name)
            if change.paused:
                pass  # recorded; it reads the new snapshot when it is resumed
            elif change.action == Action.RESTART:
                backend.restart(name)
            elif change.action == Action.HIRE or (previous and previous.status == "disabled"):
                backend.start(name)
            else:
                backend.reload(name)
            inventory.animas[name] = inventory_entry(spec, revision=desired.revision, status="active")
    result.done[change.action].append(name)
