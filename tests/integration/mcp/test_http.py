"""`marimo-engine mcp --http`: the token, the loopback bind, parallel clients, runs, code_goal."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import free_port
from tests.integration.conftest import LiveServer, notebook_file
from tests.integration.mcp.conftest import (
    MARIMO_ENGINE,
    HttpMcpServer,
    adopt_opened_server,
    release_opened_server,
    server_env,
    started_http_mcp,
    wait_until_down,
)
from tests.integration.mcp.test_stdio import Progress, call, durable_run_tools, fail
from tests.processes import run_process
from tests.unit.llm.openai_server import scripted_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(900)]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_http_refuses_requests_without_the_token(http_mcp: HttpMcpServer) -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        missing = await http.post(http_mcp.url, json=INITIALIZE, headers=ACCEPT)
        wrong = await http.post(
            http_mcp.url,
            json=INITIALIZE,
            headers={**ACCEPT, "Authorization": f"Bearer {http_mcp.token}-not"},
        )
        right = await http.post(
            http_mcp.url,
            json=INITIALIZE,
            headers={**ACCEPT, "Authorization": f"Bearer {http_mcp.token}"},
        )
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "MARIMO_ENGINE_MCP_TOKEN" in missing.json()["error_description"]
    assert right.status_code == 200, right.text
    with pytest.raises(Exception):  # noqa: B017 - the SDK's error type is its own business
        async with http_mcp.client(token="wrong-token-wrong-token") as client:
            await client.list_tools()


async def test_plan_tools_over_http_with_progress(http_mcp: HttpMcpServer) -> None:
    progress = Progress()
    async with http_mcp.client() as client:
        tools = await call(client, "list_tools")
        result = await client.call_tool(
            "run_plan", {"plan": "example:hull-check-7"}, progress_callback=progress
        )
        bad = await fail(client, "validate_plan", plan="example:no-such-plan")
    assert any(t["name"] == "scan_hull" for t in tools["tools"])
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["verdict"] == "SUCCESS"
    assert sum(m.startswith("STEP_COMPLETE") for m in progress.messages) == 2
    assert progress.messages[-1].startswith("FINISH")
    assert "There is no example plan 'no-such-plan'" in bad


async def test_two_clients_on_two_notebooks_in_parallel_stay_apart(
    http_mcp: HttpMcpServer, tmp_path: Path
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    async def work(owner: str) -> None:
        notebook = tmp_path / f"notebook_{owner}.py"
        async with http_mcp.client() as client:
            opened = await call(client, "open_notebook", path=str(notebook))
            adopt_opened_server(opened)
            session = opened["session"]
            await call(client, "create_cell", session=session, code=f"owner = {owner!r}")
            printed = await call(client, "execute", session=session, code="print(owner)")
            names = await call(client, "variables", session=session)
            cells = await call(client, "list_cells", session=session)
            listed = await call(client, "list_sessions")
            closed = await call(client, "close_notebook", session=session)
            gone = await fail(client, "execute", session=session, code="print(owner)")
        if closed["closed"]:
            release_opened_server(opened)
        seen[owner] = {
            "opened": opened,
            "printed": printed["stdout"].strip(),
            "owner_repr": next(v["repr"] for v in names["variables"] if v["name"] == "owner"),
            "codes": [c["code"] for c in cells["cells"]],
            "listed": {r["session"] for r in listed["sessions"]},
            "closed": closed["closed"],
            "gone": gone,
        }

    async with anyio.create_task_group() as group:
        group.start_soon(work, "alice")
        group.start_soon(work, "bob")

    alice, bob = seen["alice"], seen["bob"]
    assert alice["opened"]["session"] != bob["opened"]["session"]
    assert alice["opened"]["url"] != bob["opened"]["url"]  # a headless server each
    assert alice["opened"]["opened_here"] and bob["opened"]["opened_here"]
    assert alice["opened"]["server_pid"] != bob["opened"]["server_pid"]
    assert (alice["printed"], bob["printed"]) == ("alice", "bob")
    assert (alice["owner_repr"], bob["owner_repr"]) == ("'alice'", "'bob'")
    assert "owner = 'alice'" in alice["codes"] and "owner = 'bob'" not in alice["codes"]
    assert "owner = 'bob'" in bob["codes"] and "owner = 'alice'" not in bob["codes"]
    assert alice["closed"] and bob["closed"]
    for who in (alice, bob):
        assert who["opened"]["session"] in who["listed"]
        assert "is not open" in who["gone"] and "Call list_sessions" in who["gone"]


def test_http_refuses_a_non_loopback_bind_without_the_flag() -> None:
    result = run_process(
        [MARIMO_ENGINE, "mcp", "--http", "--host", "0.0.0.0", "--port", str(free_port())],
        timeout_s=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: Refusing to listen on '0.0.0.0'")
    assert "--allow-remote" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
async def test_a_signal_stops_the_server_and_the_notebooks_it_opened(
    http_mcp: HttpMcpServer, tmp_path: Path, signum: signal.Signals
) -> None:
    async with http_mcp.client() as client:
        opened = await call(client, "open_notebook", path=str(tmp_path / "left_open.py"))
        adopt_opened_server(opened)
    http_mcp.process.send_signal(signum)
    code = await anyio.to_thread.run_sync(lambda: http_mcp.process.wait(timeout=120))
    assert code == 0
    assert await anyio.to_thread.run_sync(wait_until_down, opened["url"])
    release_opened_server(opened)


async def test_durable_run_tools_over_http(http_mcp: HttpMcpServer, tmp_path: Path) -> None:
    async with http_mcp.client() as client:
        await durable_run_tools(client, str(tmp_path / "journal.sqlite3"))


async def test_code_goal_over_http_refuses_what_no_one_can_approve(
    live_server: LiveServer, notebook_server: HeadlessServer, tmp_path: Path
) -> None:
    # This client declares no elicitation: a patch the policy asks about is refused,
    # the model is told why, and the run goes on without it.
    notebook = notebook_file(notebook_server, tmp_path, "goal.py")
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "shell", "code": "import subprocess\nsubprocess.run(['ls'])"}
        ]}},
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "local", "code": "local = 2 ** 5\nlocal"}]}},
        {"tool": "finish", "tool_args": {"answer": "32", "cells": ["local"]}},
    ]  # fmt: skip
    with scripted_server(script) as model:
        env = {**server_env(live_server), "OPENAI_BASE_URL": model.base_url,
               "OPENAI_API_KEY": "test"}  # fmt: skip
        with started_http_mcp(env, tmp_path / "mcp.log") as server:
            async with server.client() as client:
                opened = await call(
                    client, "open_notebook", path=str(notebook), url=notebook_server.url
                )
                done = await call(
                    client,
                    "code_goal",
                    session=opened["session"],
                    goal="a power of two",
                    model="openai:scripted",
                    max_turns=5,
                )
                await call(client, "close_notebook", session=opened["session"])
        told = [r.text() for r in model.requests]
    assert done["verdict"] == "SUCCESS" and done["answer"] == "32", done
    assert "cannot ask a person" in told[1] and "--approve auto" in told[1]
    assert "subprocess" not in notebook.read_text()
