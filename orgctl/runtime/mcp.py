"""Tools over the Model Context Protocol for workflow phases (docs/workflows.md#tools-over-mcp).

An agent's ``mcp_servers`` are real MCP servers on the stdio transport, driven with the official ``mcp`` SDK
(:class:`mcp.Client`). They are started when a phase of that agent starts and stopped when it ends: a run's
phases run in different Anima processes, so a server per run would outlive the process that talks to it.
What a phase may call is the intersection of what the servers list and what the bound Anima's
``permissions.md`` allows (``tools: [mcp:files]`` for every tool of server ``files``, or
``mcp:files.read_note`` for one); the rest is never offered. Every string argument passes the same hard
blocks as a command (:func:`orgctl.runtime.guards.check_command`), and a tool's result is **untrusted**
data: once one is in a phase, the phase is offered no further tool or command, only its decision, so an
instruction injected in a result cannot reach a privileged tool.

The server runs without a shell, in the command sandbox of the Anima (or standalone agent) that runs the
phase, as its commands do (:mod:`orgctl.runtime.sandboxing`): the same bubblewrap mounts (its workspace
writable, the system, ``PATH`` and Python read-only; no state dir, home or keys), no network unless its
permissions say ``network: true``, and the per-process rlimits, set inside the sandbox by a few lines of
Python (:data:`_LIMITED_EXEC`) before the server's program is executed. Two parts of a command's sandbox do
not apply, because the SDK starts the process: the pids cgroup (``RLIMIT_NPROC`` still binds inside the
sandbox's user namespace when orgctl is not root) and the seccomp filter (``--new-session`` already stops
``TIOCSTI``). Its environment is the SDK's default (``PATH``, ``HOME``, ...; no model key, no token) plus
the ``env`` its file declares (``${VAR}`` passes one through). Where no sandbox can start, the server is not
started (fail closed, as a command is refused); under ``sandbox: off`` it runs as the user.

The SDK is asynchronous; the task cycle is not. Each :class:`McpConnection` runs its client in an
:func:`anyio.from_thread.start_blocking_portal` thread and calls it from the phase's thread.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orgctl.desired.workflows import McpServer
from orgctl.errors import OrgctlError

if TYPE_CHECKING:
    from orgctl.runtime.sandboxing import Profile

RESULT_KEPT = 2000
"""Characters of a tool's result kept in the phase's evidence."""
MCP_TOOL_PREFIX = "mcp:"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LIMITED_EXEC = ("import json,os,resource,sys\n"
                 "for which, soft, hard in json.loads(sys.argv[1]): resource.setrlimit(which, (soft, hard))\n"
                 "os.execvp(sys.argv[2], sys.argv[2:])")
"""Run inside the sandbox (``python -I -c``): set the rlimits given as JSON, then become the server."""


class McpError(OrgctlError):
    """A server that could not start, list its tools or answer a call in time."""


@dataclass(frozen=True)
class McpTool:
    """One tool a server lists: ``server``, ``name``, ``description`` and its JSON ``input_schema``."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        """``server.name``, as ``permissions.md`` and the evidence name it."""
        return f"{self.server}.{self.name}"

    @property
    def required(self) -> list[str]:
        return [str(r) for r in self.input_schema.get("required", [])]


@dataclass(frozen=True)
class McpResult:
    """A tool call's outcome: its text content (clipped to :data:`RESULT_KEPT`) and whether the server said
    it was an error."""

    text: str
    is_error: bool


def permitted(tools: list[str], tool: McpTool) -> bool:
    """Whether ``permissions.md``'s ``tools`` allow ``tool``: ``mcp:<server>`` or ``mcp:<server>.<tool>``."""
    return f"{MCP_TOOL_PREFIX}{tool.server}" in tools or f"{MCP_TOOL_PREFIX}{tool.qualified}" in tools


def server_permitted(tools: list[str], server: str) -> bool:
    """Whether ``permissions.md``'s ``tools`` allow any tool of ``server`` (else it is not even started)."""
    return any(t == f"{MCP_TOOL_PREFIX}{server}" or t.startswith(f"{MCP_TOOL_PREFIX}{server}.") for t in tools)


def launch_argv(server: McpServer, profile: Profile | None) -> list[str]:
    """The argv that starts ``server`` under ``profile`` (see the module docstring): bwrap, then the rlimits,
    then the server's own argv. ``None`` or ``sandbox: off``: the server's argv as written. Raises
    :class:`McpError` when the profile refuses (no usable sandbox here)."""
    if profile is None or profile.mode == "off":
        return list(server.command)
    if profile.refusal:
        raise McpError(profile.refusal)
    from orgctl.runtime.spawning import rlimits

    limits = json.dumps(rlimits(profile.limits))
    return [*profile.bwrap_args(), sys.executable, "-I", "-c", _LIMITED_EXEC, limits, *server.command]


def server_env(server: McpServer, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's declared ``env`` with each ``${VAR}`` replaced from ``environ`` (default: this process's;
    an unset one becomes empty)."""
    source = os.environ if environ is None else environ
    return {k: _VAR.sub(lambda m: source.get(m.group(1), ""), v) for k, v in server.env.items()}


def _leaf(error: BaseException) -> BaseException:
    """The first error inside an exception group (the SDK's task groups wrap the one that matters)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class McpConnection:
    """One stdio MCP server for the length of a phase. Use as a context manager; :meth:`tools` and
    :meth:`call` raise :class:`McpError` (a server that did not start, a call past ``timeout_seconds``)."""

    def __init__(self, name: str, server: McpServer, *, cwd: Path, sandbox: Profile | None = None) -> None:
        """``sandbox``: the profile the server runs under (the phase agent's :attr:`Policy.sandbox_profile`);
        ``None`` only where no agent runs it (tests of the connection itself)."""
        self.name = name
        self.server = server
        self.cwd = cwd
        self.sandbox = sandbox
        self._portal_cm: Any = None
        self._portal: Any = None
        self._client_cm: Any = None
        self._client: Any = None

    def __enter__(self) -> McpConnection:
        from anyio.from_thread import start_blocking_portal
        from mcp import Client, StdioServerParameters

        try:
            argv = launch_argv(self.server, self.sandbox)
        except McpError as e:
            raise McpError(f"MCP server {self.name!r} ({' '.join(self.server.command)}) not started: "
                           f"{e.message}") from e
        self.cwd.mkdir(parents=True, exist_ok=True)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=server_env(self.server) or None,
                                       cwd=str(self.cwd))
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._client_cm = self._portal.wrap_async_context_manager(
                Client(params, read_timeout_seconds=float(self.server.timeout_seconds)))
            self._client = self._client_cm.__enter__()
        except BaseException as e:
            self.__exit__(None, None, None)
            cause = _leaf(e)
            raise McpError(f"MCP server {self.name!r} ({' '.join(self.server.command)}) did not start: "
                           f"{type(cause).__name__}: {str(cause)[:200]} (its stderr is in the Anima's log)") from e
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._client_cm is not None:
                self._client_cm.__exit__(None, None, None)
        except BaseException:  # noqa: S110 - a server that dies on the way out is stopped either way
            pass
        finally:
            self._client_cm = self._client = None
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
            self._portal_cm = self._portal = None

    def tools(self) -> list[McpTool]:
        """The tools the server lists, in its order."""
        try:
            listed = self._portal.call(self._client.list_tools)
        except Exception as e:
            raise McpError(f"MCP server {self.name!r} did not list its tools: {type(e).__name__}: {e}") from e
        return [McpTool(self.name, t.name, (t.description or "").strip()[:300], dict(t.input_schema or {}))
                for t in listed.tools]

    def call(self, tool: str, arguments: dict[str, Any]) -> McpResult:
        """Call ``tool``; its text content. A server-side failure is a result with ``is_error``; a call past
        the timeout raises :class:`McpError`."""
        import functools

        try:
            result = self._portal.call(functools.partial(self._client.call_tool, tool, arguments,
                                                         read_timeout_seconds=float(self.server.timeout_seconds)))
        except Exception as e:
            raise McpError(f"{self.name}.{tool} did not answer: {type(e).__name__}: {str(e)[:200]}") from e
        parts = [getattr(block, "text", None) or f"[{getattr(block, 'type', 'content')}]" for block in result.content]
        return McpResult("\n".join(parts)[:RESULT_KEPT], bool(result.is_error))
