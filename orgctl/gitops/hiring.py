"""A new Anima's files: from its role's template, or from a character sheet (``orgctl hire --from-md``).

The folder is the one every template Anima has: ``anima.yaml``, ``identity.md``, ``injection.md``,
``permissions.md`` (least privilege unless the sheet grants more) and ``cron.md``; never ``memory/``, which the
runtime creates. :func:`hire_files` builds it for a person's ``orgctl hire`` and for an Anima's proposed hire
alike.

A character sheet is one Markdown file that says who the Anima is, in the spirit of AnimaWorks's
``create-anima --from-md``; ours is documented in docs/file-formats.md::

    ---
    role: engineer           # anima.yaml settings (role and supervisor may come from the command line)
    supervisor: alice
    model: anthropic/claude-sonnet-4-5
    ---
    # Dave

    ## Identity             -> identity.md (who it is, how it speaks)
    ## Role guidelines      -> injection.md (also "Guidelines", "Injection")
    ## Permissions          -> permissions.md: a ```yaml block is its frontmatter, the rest its body
    ## Scheduled tasks      -> cron.md (also "Cron"; each task a ### heading, written as cron.md's ##)

Any other ``##`` section is an error with its line, so a typo never drops a part of the sheet silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orgctl.desired import schemas
from orgctl.desired.documents import first_alias
from orgctl.desired.roles import ROLES
from orgctl.errors import Diagnostic, SpecError

DEFAULT_HIRE_TOOLS = ("send_message", "post_board", "search_memory")
"""What a new Anima may use unless its sheet (or its proposal) says otherwise: least privilege."""
MAX_SHEET_BYTES = 256 * 1024

_HEADING = re.compile(r"^(?P<level>#{1,6})(?!#)[ \t]*(?P<text>.*?)[ \t#]*$")
_SECTIONS = {"identity": "identity", "personality": "identity", "role guidelines": "injection",
             "guidelines": "injection", "injection": "injection", "permissions": "permissions",
             "scheduled tasks": "cron", "cron": "cron"}


class SheetError(SpecError):
    """A character sheet that cannot be read: every problem with the sheet's path and line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics)
        n = len(self.diagnostics)
        self.message = f"{n} problem{'s' if n != 1 else ''} in the character sheet; nothing was changed"
        self.hint = "fix the sheet (its sections: docs/file-formats.md, \"Character sheets\") and run it again"


@dataclass
class Sheet:
    """A character sheet, read: ``settings`` for anima.yaml (from its frontmatter) and the Markdown of each
    part (empty when the sheet has no such section)."""

    settings: dict[str, Any] = field(default_factory=dict)
    identity: str = ""
    injection: str = ""
    permissions: str = ""
    cron: str = ""


def read_sheet(path: Path) -> Sheet:
    """Parse the character sheet at ``path``. Raises SheetError (file:line) for an unreadable or oversized
    file, frontmatter that is not a YAML mapping, or an unknown ``##`` section."""
    shown = str(path)
    try:
        if path.is_symlink() or not path.is_file():
            raise SheetError([Diagnostic(shown, 0, "not a regular file (a symlink or a folder is not a sheet)")])
        if path.stat().st_size > MAX_SHEET_BYTES:
            raise SheetError([Diagnostic(shown, 0, f"over {MAX_SHEET_BYTES // 1024} KiB: not a character sheet")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SheetError([Diagnostic(shown, 0, f"cannot read it: {e}")]) from None
    sheet, lines, start = Sheet(), text.splitlines(), 0
    if lines[:1] == ["---"]:
        try:
            end = lines.index("---", 1)
        except ValueError:
            raise SheetError([Diagnostic(shown, 1, "frontmatter opened with --- is never closed")]) from None
        front = "\n".join(lines[1:end])
        if (alias := first_alias(front)) is not None:
            raise SheetError([Diagnostic(shown, alias + 2, "YAML aliases (*name) are not allowed: write the value "
                                                           "out")])
        try:
            settings = yaml.safe_load(front) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise SheetError([Diagnostic(shown, (mark.line + 2) if mark else 1, f"frontmatter: {e}")]) from None
        if not isinstance(settings, dict):
            raise SheetError([Diagnostic(shown, 2, "frontmatter must be a mapping of anima.yaml settings")])
        sheet.settings, start = settings, end + 1
    part, fence, problems, titled = None, False, [], False
    parts: dict[str, list[str]] = {}
    for number, line in enumerate(lines[start:], start=start + 1):
        opens = line.lstrip().startswith("```")
        heading = None if fence or opens else _HEADING.match(line)
        fence = fence ^ opens
        if heading is not None and len(heading["level"]) == 2:  # "## Identity", and the typo "##Identity"
            part = _SECTIONS.get(heading["text"].lower())
            if part is None:
                problems.append(Diagnostic(shown, number, f"unknown section {heading['text']!r}; a sheet has "
                                                          "Identity, Role guidelines, Permissions, Scheduled tasks"))
            continue
        if part is None:  # before the first section: one "# Name" title, blank lines, nothing else
            if heading is not None and len(heading["level"]) == 1 and not titled:
                titled = True
            elif line.strip():
                problems.append(Diagnostic(shown, number, "text outside a section would be lost: put it under "
                                                          "## Identity, ## Role guidelines, ## Permissions or "
                                                          "## Scheduled tasks"))
            continue
        parts.setdefault(part, []).append(line)
    if problems:
        raise SheetError(problems)
    for name, body in parts.items():
        setattr(sheet, name, "\n".join(body).strip())
    return sheet


def yaml_scalar(value: Any) -> str:
    """A YAML scalar for ``value`` on one line that reads back as the same value (plain when that is safe,
    else JSON, which YAML reads)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_./-]*", value) and value.lower() not in (
            "null", "true", "false", "yes", "no", "on", "off", "y", "n"):
        return value
    return json.dumps(value)


def _permissions(name: str, by: str, sheet_text: str, tools: list[str] | None) -> str:
    """permissions.md: the sheet's (its ```yaml block as frontmatter) or least privilege."""
    block = re.search(r"```ya?ml\n(.*?)\n```", sheet_text, re.DOTALL)
    if block:
        rest = (sheet_text[:block.start()] + sheet_text[block.end():]).strip()
        return f"---\n{block.group(1).strip()}\n---\n# Permissions\n\n{rest or f'As the sheet for {name} says.'}\n"
    granted = list(tools) if tools is not None else list(DEFAULT_HIRE_TOOLS)
    body = sheet_text or (f"{name} may use only the tools listed above ({by}).\nAnything not listed is denied.")
    return (f"---\ntools: {json.dumps(granted)}\ncommands: []\nfile_roots: [common_knowledge]\n---\n"
            f"# Permissions\n\n{body}\n")


def hire_files(name: str, role: str, supervisor: str, *, by: str, model: str | None = None,
               settings: Mapping[str, Any] | None = None, identity: str = "", injection: str = "",
               permissions: str = "", cron: str = "", tools: list[str] | None = None,
               schema_comment: bool = True) -> dict[str, str | None]:
    """The files of a new Anima ``name`` (``role``, reporting to ``supervisor``), by repo path.

    ``by`` says who wants it (``proposed by bob``, ``hired by Ada``), for the default permissions' text.
    ``settings`` are further anima.yaml keys (a sheet's frontmatter), ``model`` one of them; the Markdown
    parts default from the role; ``tools`` the granted tools when ``permissions`` is empty (default
    :data:`DEFAULT_HIRE_TOOLS`, no commands). ``schema_comment``: anima.yaml opens with the line naming its
    JSON Schema for editors (:func:`orgctl.desired.schemas.modeline`; for an org that has ``.schemas/``).
    The loader validates the result where it is committed."""
    folder = f"animas/{name}"
    values: dict[str, Any] = {"role": role, "supervisor": supervisor, "enabled": True}
    values |= {k: v for k, v in (settings or {}).items() if k not in ("role", "supervisor")}
    if model:
        values["model"] = model
    spec = "".join(f"{key}: {yaml_scalar(value)}\n" for key, value in values.items())
    if schema_comment:
        spec = schemas.modeline(f"{folder}/anima.yaml") + "\n" + spec
    guidance = ROLES.get(role, "")
    scheduled = cron.replace("\n### ", "\n## ")
    scheduled = ("## " + scheduled[4:]) if scheduled.startswith("### ") else scheduled
    return {
        f"{folder}/anima.yaml": spec,
        f"{folder}/identity.md": f"# {name}\n\n{identity.strip() or f'A new {role} in the team of {supervisor}.'}\n",
        f"{folder}/injection.md": "# Role guidelines\n\n" + (
            injection.strip() or f"- {guidance}\n- Report progress and blockers to {supervisor}.") + "\n",
        f"{folder}/permissions.md": _permissions(name, by, permissions.strip(), tools),
        f"{folder}/cron.md": "# Scheduled tasks\n\n" + (
            scheduled.strip() or "(none yet: add a `## Title` section with a `schedule:` line)") + "\n",
    }


def person_of(repo_dir: Path) -> tuple[str, str]:
    """``(name, email)`` git would author a commit in ``repo_dir`` with (``git var GIT_AUTHOR_IDENT``); the
    orgctl bot when git knows no one."""
    from orgctl.errors import GitError
    from orgctl.gitexec import run_git
    from orgctl.gitops import repos

    try:
        ident = run_git("var", "GIT_AUTHOR_IDENT", cwd=repo_dir)
    except GitError:
        return repos.BOT_NAME, repos.BOT_EMAIL
    m = re.match(r"^(.*?) <([^>]*)>", ident)
    return (m.group(1), m.group(2)) if m else (repos.BOT_NAME, repos.BOT_EMAIL)
