"""The steps of the composite action (``action.yml`` at the project's root) that are more than one command.

``prepare`` runs under the interpreter actions/setup-python installed, before orgctl is, so it uses the
standard library only. It works out where things go and what the cache keys are, and writes them as step
outputs:

* ``venv``: the virtual environment orgctl is installed in, one per set of pinned dependencies
  (``$RUNNER_TEMP/orgctl/venv-<deps>``); ``installed`` is ``true`` when an earlier use of the action in
  this job already installed it there, so a second step that uses the action does not install again;
* ``pip-cache`` and ``pip-key``/``pip-key-prefix``: pip's cache (the wheel of llama-cpp-python it built,
  the embedded model's package) and its key: the OS, the CPU, the Python version and a digest of the
  constraints file, the orgctl requirement and the ``CMAKE_ARGS`` the wheel was built with;
* ``state-dir``: orgctl's state dir (``ORGCTL_STATE_DIR``): the ``state-dir`` input, else an
  ``ORGCTL_STATE_DIR`` the job set, else ``$RUNNER_TEMP/orgctl/state-<org>``, one per org folder;
* ``index-dir``, ``index`` and ``index-key-prefix``: the memory index (``<state>/cache/memory-index``,
  :attr:`orgctl.paths.StatePaths.memory_index`), whether this command is one that searches memory
  (``index-cache: auto``: ``tick`` but ``tick --matrix``, ``memory``, ``consolidate``), and its key less
  the memory tree's hash, which action.yml adds with ``hashFiles``: per org folder and per tick shard,
  since each shard indexes its own Animas.

``run`` runs ``orgctl`` with the ``command`` input split like a shell line (:func:`shlex.split`: quotes
group words) and never given to a shell, so nothing in it is ever executed as shell code. It passes the
command's standard output through and keeps it as the ``stdout`` output (at most :data:`STDOUT_CAP`
bytes), with ``exit-code``; an exit code listed in ``ok-exit-codes`` counts as success. When a token is
given, git is handed it for the GitHub server through a credential helper in the environment of orgctl
alone: ``orgctl tick`` pushes from git directories of its own in the state dir (the runtime's clone, the
``orgctl/state`` branch's), which do not see the credentials actions/checkout writes into the checkout's
``.git/config``. The commands Animas run get none of it (their environment is built from nothing,
:func:`orgctl.runtime.commands.minimal_env`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

STDOUT_CAP = 256 * 1024
"""Bytes of the command's standard output kept as the ``stdout`` output (GitHub caps a job's outputs at 1 MB)."""
INDEX_COMMANDS = frozenset({"tick", "memory", "consolidate"})
"""The commands that search memory, whose index ``index-cache: auto`` restores and saves."""
MARKER = ".orgctl-action"
"""The file in the venv that says which dependencies it holds (written by action.yml after the install)."""


class Failure(Exception):
    """A problem with the action's inputs: reported as an error annotation, exit 1."""


def _digest(*parts: bytes | str, length: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:length]


def split_command(command: str) -> list[str]:
    """The ``command`` input as orgctl's arguments. Raises Failure when it is empty or its quotes do not close."""
    try:
        args = shlex.split(command)
    except ValueError as e:
        raise Failure(f"the command input cannot be split into arguments ({e}): {command!r}") from e
    if not args:
        raise Failure("the command input is empty: give the orgctl arguments, e.g. `validate`")
    return args


def shard_of(args: list[str]) -> str:
    """``--shard I/N`` of a tick as ``I-N`` (a cache key part), ``all`` without one."""
    for i, arg in enumerate(args):
        if arg == "--shard" and i + 1 < len(args):
            return args[i + 1].replace("/", "-")
        if arg.startswith("--shard="):
            return arg.split("=", 1)[1].replace("/", "-")
    return "all"


def prepare(env: Mapping[str, str]) -> dict[str, str]:
    """The outputs of the ``prepare`` step (see the module's docstring). Raises Failure for bad inputs."""
    action = Path(env["GITHUB_ACTION_PATH"])
    temp = Path(env["RUNNER_TEMP"])
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    org = (workspace / env.get("INPUT_WORKING_DIRECTORY", ".")).resolve()
    args = split_command(env.get("INPUT_COMMAND", ""))
    spec = env.get("INPUT_ORGCTL_SPEC", "").strip()
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    constraints = action / "constraints.txt"
    if not constraints.is_file():
        raise Failure(f"the action's constraints file is missing ({constraints})")
    deps = _digest(constraints.read_bytes(), spec, env.get("CMAKE_ARGS", ""), python)
    venv = temp / "orgctl" / f"venv-{deps}"
    marker = venv / MARKER
    installed = marker.is_file() and marker.read_text().strip() == deps
    org_key = _digest(str(org), length=12)
    state = env.get("INPUT_STATE_DIR") or env.get("ORGCTL_STATE_DIR") or str(temp / "orgctl" / f"state-{org_key}")
    state_dir = (workspace / state).resolve()  # an absolute path stays as it is
    mode = env.get("INPUT_INDEX_CACHE", "auto").strip().lower() or "auto"
    if mode not in ("auto", "true", "false"):
        raise Failure(f"index-cache must be auto, true or false, not {mode!r}")
    searches = args[0] in INDEX_COMMANDS and "--matrix" not in args  # `tick --matrix` only reads org.yaml
    index = searches if mode == "auto" else mode == "true"
    runner = f"{env.get('RUNNER_OS', 'Linux')}-{env.get('RUNNER_ARCH', 'X64')}"
    pip_prefix = f"orgctl-pip-v1-{runner}-py{python}-"
    return {
        "python-version": python,
        "deps": deps,
        "venv": str(venv),
        "installed": "true" if installed else "false",
        "pip-cache": str(temp / "orgctl" / "pip-cache"),
        "pip-key-prefix": pip_prefix,
        "pip-key": pip_prefix + deps,
        "state-dir": str(state_dir),
        "index-dir": str(state_dir / "cache" / "memory-index"),
        "index": "true" if index else "false",
        "index-key-prefix": f"orgctl-index-v1-{runner}-{deps}-{org_key}-{shard_of(args)}-",
    }


def write_outputs(path: str | None, values: Mapping[str, str]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT`` (a value with a newline in a delimited block), or print them."""
    lines = []
    for key, value in values.items():
        if "\n" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{key}={value}\n")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(lines)
    else:
        sys.stdout.writelines(lines)


def git_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """Environment entries that give git the token (``GITHUB_TOKEN``) for the GitHub server, added after any
    ``GIT_CONFIG_*`` entries the environment already has; none without a token."""
    if not env.get("GITHUB_TOKEN"):
        return {}
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    try:
        n = int(env.get("GIT_CONFIG_COUNT") or 0)
    except ValueError:
        n = 0
    helper = '!f() { test "$1" = get || return 0; echo username=x-access-token; echo "password=$GITHUB_TOKEN"; }; f'
    return {"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": f"credential.{server}.helper",
            f"GIT_CONFIG_VALUE_{n}": helper}


def ok_codes(value: str) -> set[int]:
    """The ``ok-exit-codes`` input (``"0 2"``, ``"0,2"``) as a set. Raises Failure for anything but numbers."""
    try:
        codes = {int(word) for word in value.replace(",", " ").split()}
    except ValueError as e:
        raise Failure(f"ok-exit-codes must be exit codes separated by spaces, not {value!r}") from e
    return codes or {0}


def run(env: Mapping[str, str]) -> int:
    """Run orgctl with the command input; returns the step's exit code (0 for an exit code in ok-exit-codes)."""
    args = split_command(env.get("ORGCTL_ARGS", ""))
    ok = ok_codes(env.get("OK_EXIT_CODES", "0"))
    orgctl = env.get("ORGCTL_BIN") or "orgctl"
    child_env = {**env, "PYTHONUNBUFFERED": "1", **git_credentials(env)}
    try:
        proc = subprocess.Popen([orgctl, *args], stdout=subprocess.PIPE, env=child_env)
    except OSError as e:
        raise Failure(f"cannot start {orgctl}: {e.strerror or e}") from e
    assert proc.stdout is not None
    kept = bytearray()
    out = sys.stdout.buffer
    while chunk := os.read(proc.stdout.fileno(), 65536):
        out.write(chunk)
        out.flush()
        if len(kept) < STDOUT_CAP:
            kept += chunk[: STDOUT_CAP - len(kept)]
    code = proc.wait()
    write_outputs(env.get("GITHUB_OUTPUT"), {"exit-code": str(code),
                                             "stdout": kept.decode("utf-8", errors="replace").rstrip()})
    if code in ok:
        return 0
    print(f"::error title=orgctl {args[0]}::orgctl {shlex.join(args)} exited {code}", flush=True)
    return code if code > 0 else 128 - code if code < 0 else 1  # a signal N as the shell shows it, 128+N


def main(argv: list[str]) -> int:
    env = os.environ
    try:
        if argv == ["prepare"]:
            write_outputs(env.get("GITHUB_OUTPUT"), prepare(env))
            return 0
        if argv == ["run"]:
            return run(env)
    except Failure as e:
        print(f"::error title=orgctl action::{e}", flush=True)
        return 1
    print("usage: action_steps.py prepare|run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
