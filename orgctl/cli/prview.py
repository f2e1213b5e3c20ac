"""What a person reads on a pull request: the plan comment ``orgctl pr comment`` posts and keeps up to date.

One comment per org directory, found again by a hidden marker on every push and edited in place (Atlantis
and tfcmt do the same), so a PR's conversation holds one current plan, never a pile of stale ones. The
comment is Markdown that GitHub renders: the summary line, a table of the actions, the org chart before and
after as Mermaid, the full plan in a collapsed details block, and what the Animas' memory learned and forgot
in the change (``memory diff``). Text that a pull request's author controls (roles, reasons, note titles) is
escaped or fenced, so it cannot close the bot's markup or pose as orgctl's own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orgctl.cli import rendering
from orgctl.desired.models import OrgSpec
from orgctl.errors import SpecError
from orgctl.gitops.planning import Plan
from orgctl.state.inventories import Inventory

MAX_BODY = 60_000
"""Characters a comment may have: GitHub refuses a body over 65,536, so a larger plan drops its charts, then
its details block, then all but :data:`MAX_ROWS` rows of its table (and says how to see the rest)."""
MAX_ROWS = 300
MAX_MEMORY_LINES = 200
MAX_MEMORY_CHARS = 15_000
"""Characters of ``memory diff`` a comment shows, its lines clipped at 500 each: a note of a few huge lines
must not push the comment past GitHub's limit."""
"""Lines of ``memory diff`` a comment shows (GitHub refuses a comment body over 65,536 characters)."""
STATUS_CONTEXT = "orgctl/plan"
"""The commit status the comment's verdict is also set as (a branch protection rule can require it)."""


def marker(where: str) -> str:
    """The hidden HTML comment that names orgctl's plan comment for the org at ``where`` (its directory in the
    repository, ``.`` at the root): ``<!-- orgctl:plan dir=. -->``."""
    return f"<!-- orgctl:plan dir={_attr(where)} -->"


def _attr(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._/-]", "_", text)[:200] or "."


def _code(text: str, limit: int = 500) -> str:
    """``text`` as one inline code span, safe in a table cell: whatever a pull request's author wrote in it
    (emphasis, links, images, @mentions, HTML) shows as the characters it is. Line endings of every kind
    become spaces, a backtick a quote, a pipe ``\\|`` (GFM's escape inside a table's code span); at most
    ``limit`` characters."""
    flat = re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85]+", " ", text).replace("`", "'").replace("|", "\\|")
    flat = flat[:limit] + ("…" if len(flat) > limit else "")
    return f"`{flat.strip() or ' '}`"


def fenced(text: str, info: str = "", *, limit: int = 20_000) -> str:
    """``text`` in a code fence longer than any run of backticks inside it (CommonMark), so it cannot end
    the fence early; at most ``limit`` characters of it (each line at most 500), the rest said as clipped."""
    lines = [ln if len(ln) <= 500 else ln[:500] + " …" for ln in text.replace("\r", "").split("\n")]
    text = "\n".join(lines)
    if len(text) > limit:
        text = text[:limit].rsplit("\n", 1)[0] + f"\n… clipped: {len(text) - limit} more characters"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


@dataclass(frozen=True)
class Verdict:
    """The commit status a comment stands for: ``state`` (``success``, ``failure``) and a one-line
    ``description`` (GitHub shows at most 140 characters)."""

    state: str
    description: str


def plan_comment(plan: Plan, desired: OrgSpec, inventory: Inventory, *, where: str,
                 memory: list[str] | None = None) -> tuple[str, Verdict]:
    """The comment for a valid change and its verdict (``success``: the plan is what the PR would do).

    ``memory``: :func:`orgctl.memory.review.describe_diffs` lines for the range, shown in their own section
    (a PR that changes only memory gets a comment that says so). ``where``: the org's directory."""
    every = len(plan.changes)
    for rows, charts, details in ((every, True, True), (every, False, True), (MAX_ROWS, False, False),
                                  (50, False, False), (10, False, False)):
        body = _plan_body(plan, desired, inventory, where, memory, rows=rows, charts=charts, details=details)
        if len(body) <= MAX_BODY:
            break
    return body, Verdict("success", plan.summary()[:140])


def _plan_body(plan: Plan, desired: OrgSpec, inventory: Inventory, where: str, memory: list[str] | None, *,
               rows: int, charts: bool, details: bool) -> str:
    head = f"{marker(where)}\n### orgctl plan: {_code(plan.org)}" + (f" in {_code(where)}" if where != "." else "")
    revs = f"base `{rendering.short(plan.base)}` → head `{rendering.short(plan.revision)}`"
    parts = [head, f"**{plan.summary()}** ({revs})"]
    if plan.settings:
        parts.append("Org settings (org.yaml): " + "; ".join(_code(s) for s in plan.settings))
    if plan.workflows:
        parts.append("Workflows: " + "; ".join(f"`{w.symbol}` {_code(w.name)} {w.action}" for w in plan.workflows))
    if plan.changes:
        table = ["| | Anima | Action | Why |", "|---|---|---|---|"]
        table += [f"| `{c.action.symbol}` | {_code(c.name)} | {c.action.value} | {_code('; '.join(c.reasons))} |"
                  for c in plan.changes[:rows]]
        if len(plan.changes) > rows:
            table.append(f"| | … {len(plan.changes) - rows} more | | |")
        parts.append("\n".join(table))
        if charts:
            before, after = rendering.mermaid_before_after(plan, desired, inventory)
            parts += ["#### Org chart before", fenced(before, "mermaid", limit=MAX_BODY),
                      "#### Org chart after", fenced(after, "mermaid", limit=MAX_BODY)]
        if details:
            parts.append(f"<details><summary>Full plan</summary>\n\n{fenced(rendering.plan_text(plan))}\n\n"
                         "</details>")
        if not (charts and details):
            what = "The org chart is" if details else "The full plan and the org chart are"
            parts.append(f"{what} too large for a comment: run `orgctl plan --base {rendering.short(plan.base)} "
                         "--chart`.")
    if memory:
        title = "#### Memory" + (" (this change touches memory only: no spec change)" if not plan.has_changes else "")
        shown = memory[:MAX_MEMORY_LINES]
        rest = (f"\n\n… {len(memory) - len(shown)} more lines: `orgctl memory diff BASE..HEAD`"
                if len(memory) > len(shown) else "")
        parts += [title, "What the Animas learned, changed and forgot in this change (`orgctl memory diff`):",
                  fenced("\n".join(shown), limit=MAX_MEMORY_CHARS) + rest]
    parts.append("<sub>Posted by `orgctl pr comment`; updated in place on every push.</sub>")
    return "\n\n".join(parts)


def error_comment(error: SpecError | Exception, *, where: str, head: str | None) -> tuple[str, Verdict]:
    """The comment for a change that does not validate: the error and each diagnostic (file:line), fenced;
    its verdict is ``failure``."""
    lines = [str(getattr(error, "message", error))]
    lines += [f"  {d}" for d in getattr(error, "diagnostics", [])]
    hint = getattr(error, "hint", None)
    if hint:
        lines.append(f"Hint: {hint}")
    text = "\n".join(lines)
    body = "\n\n".join([f"{marker(where)}\n### orgctl plan: the spec does not validate",
                        f"At head `{rendering.short(head)}`: fix these, push, and the plan appears here.",
                        fenced(text), "<sub>Posted by `orgctl pr comment`; updated in place on every push.</sub>"])
    first = text.splitlines()[0] if text else "invalid spec"
    return body, Verdict("failure", f"Invalid spec: {first}"[:140])


def base_invalid_comment(error: SpecError, *, where: str, base: str, head: str) -> tuple[str, Verdict]:
    """The comment for a change whose base does not validate but whose head does (the pull request repairs
    the spec): no plan can start from the base, so it says what was wrong there; its verdict is ``success``."""
    lines = [f"  {d}" for d in error.diagnostics]
    body = "\n\n".join([f"{marker(where)}\n### orgctl plan: this change makes the spec valid again",
                        f"The base `{rendering.short(base)}` does not validate, so there is no plan to show from "
                        f"it; the head `{rendering.short(head)}` validates. What was wrong at the base:",
                        fenced("\n".join(lines)),
                        "<sub>Posted by `orgctl pr comment`; updated in place on every push.</sub>"])
    return body, Verdict("success", f"Head validates; the base {rendering.short(base)} does not (this change "
                                    "fixes it)"[:140])
