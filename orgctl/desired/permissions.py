"""``permissions.md``: what an Anima may use, run and read, as people declare it.

The frontmatter is the policy; the Markdown body is an explanation for
people (and is shown to the Anima). Everything not listed is denied::

    ---
    tools: [send_message, delegate_task, run_command, search_memory]
    commands:
      - git status --short                      # exactly this argv
      - command: git log --oneline -n *         # `*`: any one argument
        description: list the last N commits
      - git show ...                            # a trailing `...`: any further arguments
    ask: [git push]                             # held until a person approves (`orgctl approve`)
    deny: [git push --force]                    # deny beats ask beats allow
    network: false                              # commands reach no network unless true
    file_roots: [common_knowledge]              # relative to the org repo
    ---

An allowed command (``commands:``) matches the argv after shell-word
splitting exactly, word for word; ``*`` matches exactly one argument and a
trailing ``...`` any number of further arguments. ``ask:`` and ``deny:``
patterns match as prefixes (they can only make the policy stricter). In the
words a ``*`` or ``...`` matched, options that write files or run programs
(``--output``, ``--exec``, ``--basetemp`` ...) are refused whatever the pattern
(:data:`orgctl.runtime.permissions.RISKY_OPTIONS`). A ``description`` is what
the Anima reads when it chooses among its commands: the embedded model picks
the right command far more often when each choice explains itself (ROADMAP,
measured here). Destructive commands are hard-blocked by the runtime whatever
this file says, and every command runs in the kernel's sandbox
(:mod:`orgctl.runtime.sandboxing`).

Enforcement lives in :mod:`orgctl.runtime.permissions`; this module only
describes and validates the file.
"""

from __future__ import annotations

import functools
import re
import shlex
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

TOOLS: dict[str, str] = {
    "send_message": "send a direct message along the org chart (report, question, delegation)",
    "post_board": "post to a Board channel (#general, #ops ...)",
    "delegate_task": "hand a task to a direct report and track it",
    "plan_tasks": "split work into a graph of tasks with dependencies",
    "run_command": "run one of the allowed shell commands in the Anima's workspace",
    "read_file": "read a file under the allowed file roots",
    "write_file": "write a file under the allowed file roots",
    "search_memory": "search the Anima's own memory",
    "call_human": "notify a human through the org's configured channels (top of the org only)",
    "org_dashboard": "see the states and queues of the Anima's subtree",
    "audit_subordinate": "read a report's recent activity",
    "pause_anima": "pause a direct or indirect report",
    "resume_anima": "resume a paused report",
    "restart_anima": "restart a report's process",
    "propose_change": "propose a change to the org spec as a git branch (never applied live)",
    "start_workflow": "route a task to one of the org's applied workflows (docs/workflows.md)",
}
"""Every tool an Anima can be granted, with the one line it reads about it."""

PRIVILEGED_TOOLS = frozenset({"run_command", "write_file", "call_human", "org_dashboard", "audit_subordinate",
                              "pause_anima", "resume_anima", "restart_anima", "propose_change", "start_workflow"})
"""Tools that act beyond the Anima's own memory and messages: never triggered by untrusted data."""


@functools.lru_cache(maxsize=4096)
def _argv(value: str) -> tuple[str, ...]:
    """``value`` split into words as a shell would (cached: the same patterns recur in every
    Anima's permissions and every check). Raises ValueError for an unsplittable or empty pattern."""
    try:
        argv = tuple(shlex.split(value))
    except ValueError as e:
        raise ValueError(f"cannot split {value!r} into words: {e}") from e
    if not argv:
        raise ValueError("a command pattern must not be empty")
    if argv[0] == "...":
        raise ValueError(f"{value!r}: a pattern must start with a program, not `...`")
    if "..." in argv[:-1]:
        raise ValueError(f"{value!r}: `...` may only end a pattern (it stands for any further arguments)")
    return argv


class CommandRule(BaseModel):
    """One command pattern: an argv (``*`` = any one argument, a trailing ``...`` = any further arguments)
    and what it is for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: StrictStr
    description: StrictStr = ""

    def argv(self) -> tuple[str, ...]:
        return _argv(self.command)


def _rule(value: Any) -> Any:
    if isinstance(value, str):
        value = {"command": value}
    if isinstance(value, dict) and isinstance(value.get("command"), str):
        _argv(value["command"])  # raises ValueError with the reason
    return value


Rule = Annotated[CommandRule, BeforeValidator(_rule)]


MCP_TOOL = re.compile(r"^mcp:[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})?$")
"""A tool of a workflow's MCP server (docs/workflows.md): ``mcp:<server>`` (every tool it lists) or
``mcp:<server>.<tool>`` (that one)."""


def _tool(value: Any) -> Any:
    if isinstance(value, str) and value not in TOOLS and not MCP_TOOL.match(value):
        raise ValueError(f"unknown tool {value!r}; known tools: {', '.join(sorted(TOOLS))}, or mcp:<server> "
                         "and mcp:<server>.<tool> for a workflow's MCP servers")
    return value


Tool = Annotated[StrictStr, BeforeValidator(_tool)]


class PermissionsFrontmatter(BaseModel):
    """Frontmatter of ``permissions.md``. Fail-closed: what is not listed is denied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: list[Tool] = []
    commands: list[Rule] = Field(default=[], description="allowed commands, matched exactly (`*` one argument, "
                                                         "a trailing `...` any further arguments)")
    ask: list[Rule] = Field(default=[], description="command prefixes held until a person approves them")
    deny: list[Rule] = Field(default=[], description="command prefixes always refused (deny beats ask beats allow)")
    network: StrictBool = Field(default=False, description="commands may reach the network (default: none at all, "
                                                           "not even loopback)")
    file_roots: list[StrictStr] = []
