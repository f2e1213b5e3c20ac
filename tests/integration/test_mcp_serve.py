"""``orgctl mcp serve`` as another MCP client meets it: the real command started as a child process over stdio,
driven with the official SDK's client, on the template org's work in flight (snapshots written as apply writes
them; no Anima runs, so what the tools return is exactly what the test put there)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio

from orgctl.desired.loading import load_org
from orgctl.desired.sources import GitRevisionSource
from orgctl.gitops.applying import inventory_entry
from orgctl.paths import StatePaths
from orgctl.runtime.organization import Organization
from orgctl.runtime.workflows import Engine
from orgctl.state.inventories import Inventory, now_iso, save_inventory
from orgctl.state.snapshots import Snapshot, write_snapshot

ORGCTL = str(Path(sys.executable).parent / "orgctl")


def call_all(org: Path, state: StatePaths, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:  # type: ignore[type-arg]
    """Start ``orgctl mcp serve -C org``, list its tools and make ``calls``; (tool names, results)."""
    from mcp import Client, StdioServerParameters

    async def session() -> tuple[list[str], list]:  # type: ignore[type-arg]
        params = StdioServerParameters(command=ORGCTL, args=["mcp", "serve", "-C", str(org)],
                                       env={"ORGCTL_STATE_DIR": str(state.root), "PATH": os.environ["PATH"],
                                            "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        async with Client(params, read_timeout_seconds=60) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            return names, [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(session)


def test_mcp_serve_gives_a_client_the_org_read_only(org: Path, state: StatePaths) -> None:
    spec = load_org(GitRevisionSource(org, "HEAD"))
    state.ensure()
    for a in spec.animas.values():  # applied, as apply records it
        write_snapshot(state.spec_snapshot(a.name), Snapshot(spec=a, revision=spec.revision, org_name=spec.name,
                                                             memory_dir=str(state.memory(a.name)),
                                                             applied_at=now_iso()))
    save_inventory(state.inventory, Inventory(revision=spec.revision, animas={
        n: inventory_entry(a, revision=spec.revision, status="active") for n, a in spec.animas.items()}))
    work = Organization(paths=state)
    task = work.add_task("bob", "Run the test suite and report whether it passes")
    run = Engine(work, work.runs).start(spec.workflows["task"], revision=spec.revision, subject="tidy the README")
    before = sorted(p.relative_to(state.root).as_posix() for p in state.root.rglob("*") if p.is_file())

    names, (dashboard, tasks, one_run, runs, unknown) = call_all(org, state, [
        ("org_dashboard", {}), ("tasks", {"anima": "bob"}), ("workflow_status", {"run": run.id}),
        ("workflow_status", {}), ("search_memory", {"anima": "mallory", "query": "x"})])
    assert sorted(names) == ["org_dashboard", "search_memory", "tasks", "workflow_status"]
    status = json.loads(dashboard.content[0].text)
    assert {a["name"] for a in status["animas"]} == {"alice", "bob", "carol"}
    assert [t["id"] for t in json.loads(tasks.content[0].text)] == [task.id]
    detail = json.loads(one_run.content[0].text)
    assert detail["id"] == run.id and detail["workflow"] == "task" and detail["subject"] == "tidy the README"
    assert [r["id"] for r in json.loads(runs.content[0].text)] == [run.id]
    assert unknown.is_error and "mallory" in unknown.content[0].text
    after = sorted(p.relative_to(state.root).as_posix() for p in state.root.rglob("*") if p.is_file())
    assert [p for p in after if p not in before and not p.endswith(".lock")] == []  # it wrote nothing
