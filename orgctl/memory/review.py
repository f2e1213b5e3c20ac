"""Reviewing memory: the passes in git history, what one of them learned or forgot, and undoing one.

Memory commits are ordinary commits in the runtime's clone (pulled into a
checkout with ``orgctl pull``), so ``git log -p`` shows everything. This
module reads them the way a reviewer asks: ``orgctl memory log`` lists the
passes with their counts (from the trailers), ``orgctl memory diff`` groups a
commit's changes by note (learned, changed, archived, forgotten; a fact added
or dropped per line), ``orgctl memory revert`` undoes a bad pass with a
revert commit of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orgctl.errors import GitError, OrgctlError
from orgctl.gitexec import run_git
from orgctl.gitops.clones import RuntimeClone
from orgctl.gitops.repos import BOT_EMAIL, parse_trailers
from orgctl.memory.notes import split_frontmatter
from orgctl.memory.stores import MemoryStore
from orgctl.state.files import write_text_atomic

_SEP = "\x1e"


@dataclass(frozen=True)
class PassEntry:
    """One memory commit: sha, ISO date, subject, and its ``Orgctl-*`` trailers (Anima, Pass, counts …)."""

    sha: str
    date: str
    subject: str
    trailers: dict[str, str]

    @property
    def anima(self) -> str:
        return self.trailers.get("Anima", "")

    @property
    def kind(self) -> str:
        return self.trailers.get("Pass", "")


def memory_log(repo: Path, *, anima: str | None = None, limit: int = 20, passes_only: bool = True) -> list[PassEntry]:
    """The newest memory commits of ``repo`` (of one Anima with ``anima``), newest first; ``passes_only``
    leaves out the batches of episodes. Raises GitError when ``repo`` is not a repository."""
    path = f"animas/{anima}/memory" if anima else "animas"
    out = run_git("log", f"--author={BOT_EMAIL}", f"--format=%H{_SEP}%cI{_SEP}%s{_SEP}%B{_SEP}\x1d",
                  "--", path, cwd=repo)
    entries = []
    for record in out.split("\x1d"):
        parts = record.strip("\n").split(_SEP)
        if len(parts) < 4:
            continue
        sha, when, subject, body = parts[0].strip(), parts[1], parts[2], parts[3]
        trailers = parse_trailers(body)
        if not trailers.get("Pass") or (anima and trailers.get("Anima") != anima):
            continue
        if passes_only and trailers["Pass"] == "episodes":
            continue
        entries.append(PassEntry(sha=sha, date=when, subject=subject, trailers=trailers))
        if len(entries) >= limit:
            break
    return entries


@dataclass
class NoteDiff:
    """What one commit did to one memory file: ``action`` (learned, changed, archived, forgotten), the
    note's title, its facts added and removed, and frontmatter keys that changed (``{key: (old, new)}``)."""

    path: str
    action: str
    title: str = ""
    target: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    meta: dict[str, tuple[object, object]] = field(default_factory=dict)


def _show(repo: Path, rev: str, path: str) -> str:
    try:
        return run_git("show", f"{rev}:{path}", cwd=repo, strip=False)
    except GitError:
        return ""


def _title(text: str, path: str) -> str:
    meta, body = split_frontmatter(text)
    title = (meta or {}).get("title")
    if isinstance(title, str) and title:
        return title
    heading = next((ln[2:] for ln in body.splitlines() if ln.startswith("# ")), "")
    return heading or Path(path).stem


def _lines(text: str) -> list[str]:
    _, body = split_frontmatter(text)
    return [ln for ln in body.splitlines() if ln.strip()]


_VERBS = {"learned": "learned", "changed": "changed", "forgotten": "forgot", "archived": "archived",
          "moved": "moved"}


def describe_diffs(diffs: list[NoteDiff], rev: str, *, max_lines: int = 20) -> list[str]:
    """``memory diff``'s text, one note per paragraph: ``learned bob: knowledge/rota.md  "Rota"`` then
    its changed frontmatter keys and at most ``max_lines`` facts added (``+``) and removed (``-``) each."""
    out: list[str] = []
    for d in diffs:
        where = "/".join(d.path.split("/")[3:]) or d.path
        target = f" -> {'/'.join(d.target.split('/')[3:])}" if d.target else ""
        out.append(f"{_VERBS[d.action]:<9} {d.path.split('/')[1]}: {where}{target}  \"{d.title}\"")
        out += [f"            {key}: {old} -> {new}" for key, (old, new) in d.meta.items()]
        out += [f"          + {line}" for line in d.added[:max_lines]]
        out += [f"          - {line}" for line in d.removed[:max_lines]]
        hidden = max(0, len(d.added) - max_lines) + max(0, len(d.removed) - max_lines)
        if hidden:
            out.append(f"          … {hidden} more lines (git show {rev})")
    return out


def memory_diff(repo: Path, rev: str, *, anima: str | None = None) -> list[NoteDiff]:
    """The changes of commit ``rev`` (or a range ``A..B``) to memory files, grouped by note, in path order.

    Raises GitError for an unknown revision.
    """
    if ".." in rev:
        base, head = rev.split("..", 1)
    else:
        base, head = f"{rev}^", rev
    path = f"animas/{anima}/memory" if anima else ":(glob)animas/*/memory/**"  # memory only, never a spec file
    # a revision is resolved to a sha first: one starting with "-" is never read as an option
    base, head = (run_git("rev-parse", "--verify", "--end-of-options", f"{r}^{{commit}}", cwd=repo)
                  for r in (base, head))
    status = run_git("diff", "--name-status", "-M", base, head, "--", path, cwd=repo)
    diffs = []
    for line in status.splitlines():
        fields = line.split("\t")
        code, file = fields[0], fields[1]
        if file.endswith("/.gitkeep"):
            continue
        if code.startswith("R"):
            new = fields[2]
            text = _show(repo, head, new)
            action = "archived" if "/archive/" in new and "/archive/" not in file else "moved"
            diffs.append(NoteDiff(path=file, action=action, title=_title(text, new), target=new))
            continue
        before = _show(repo, base, file) if code != "A" else ""
        after = _show(repo, head, file) if code != "D" else ""
        action = {"A": "learned", "D": "forgotten"}.get(code, "changed")
        old_lines, new_lines = _lines(before), _lines(after)
        diff = NoteDiff(path=file, action=action, title=_title(after or before, file),
                        added=[ln for ln in new_lines if ln not in set(old_lines)],
                        removed=[ln for ln in old_lines if ln not in set(new_lines)])
        old_meta, new_meta = split_frontmatter(before)[0] or {}, split_frontmatter(after)[0] or {}
        if code == "M":
            diff.meta = {k: (old_meta.get(k), new_meta.get(k)) for k in sorted(set(old_meta) | set(new_meta))
                         if old_meta.get(k) != new_meta.get(k) and k not in ("sources",)}
        diffs.append(diff)
    return diffs


def _object(repo: Path, rev: str, path: str) -> str | None:
    """The blob id of ``path`` at ``rev``, or None when it is not there."""
    try:
        return run_git("rev-parse", "--verify", "--quiet", f"{rev}:{path}", cwd=repo) or None
    except GitError:
        return None


def revert_pass(clone: RuntimeClone, sha: str, *, memory_lock: Callable[[str], Path] | None = None) -> str:
    """Undo the memory commit ``sha`` in the runtime's ``clone`` with a revert commit of its own (bot,
    trailers ``Pass: revert``, ``Reverts: <sha>``); returns the new commit's sha.

    Each file the commit touched goes back to its parent's version (or away, if the commit added it).
    Refused (OrgctlError, nothing written) when ``sha`` is not a memory commit, touches several Animas, or a
    file changed again since (naming it: revert the later commit first). Holds the Anima's memory lock
    (``memory_lock(anima)``, e.g. :meth:`StatePaths.memory_lock`) while it writes. Raises GitError when git
    refuses.
    """
    sha = run_git("rev-parse", "--verify", f"{sha}^{{commit}}", cwd=clone.root)
    message = run_git("log", "-1", "--format=%B", sha, cwd=clone.root)
    trailers = parse_trailers(message)
    author = run_git("log", "-1", "--format=%ae", sha, cwd=clone.root)
    if author != BOT_EMAIL or not trailers.get("Pass") or not trailers.get("Anima"):
        raise OrgctlError(f"{sha[:7]} is not a memory commit (made by the bot, with an Orgctl-Pass trailer)",
                          hint="`orgctl memory log` lists the memory passes")
    anima = trailers["Anima"]
    touched = run_git("diff-tree", "--no-commit-id", "-r", "--name-status", "--no-renames", sha,
                      cwd=clone.root).splitlines()
    files = [(line.split("\t")[0], line.split("\t")[1]) for line in touched]
    prefix = f"animas/{anima}/memory/"
    if not files or any(not f.startswith(prefix) for _, f in files):
        raise OrgctlError(f"{sha[:7]} touches files outside {prefix}: it cannot be reverted as one Anima's memory")
    tip = clone.tip()
    changed_since = [f for _, f in files if _object(clone.root, tip, f) != _object(clone.root, sha, f)]
    if changed_since:
        raise OrgctlError(f"{', '.join(changed_since)} changed again after {sha[:7]}: reverting would lose that",
                          hint="revert the later memory commits first (`orgctl memory log` lists them)")
    store = MemoryStore(clone.memory_dir(anima), anima=anima, holder="memory revert",
                        lock=memory_lock(anima) if memory_lock is not None else None)
    subject = message.splitlines()[0] if message else sha[:7]
    with store.writing(operation="memory revert", wait=5.0):
        for code, rel in files:
            target = clone.root / rel
            if code == "A":
                target.unlink(missing_ok=True)
            else:
                write_text_atomic(target, run_git("show", f"{sha}^:{rel}", cwd=clone.root, strip=False))
        new = clone.commit([prefix.rstrip("/")], subject=f"memory({anima}): revert \"{subject}\"",
                           body=f"This reverts memory commit {sha}.",
                           trailers={"Anima": anima, "Pass": "revert", "Reverts": sha})
    if new is None:
        raise OrgctlError(f"reverting {sha[:7]} changed nothing")
    return new
