"""`marimo-engine mcp` over stdio, driven by the SDK's client: plans, and a real `marimo edit`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, types

from marimo_engine.examples import load_example
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession
from tests.integration.conftest import LiveServer, notebook_file
from tests.integration.mcp.conftest import (
    adopt_opened_server,
    release_opened_server,
    server_env,
    stdio_mcp_client,
    wait_until_down,
)
from tests.unit.llm.openai_server import scripted_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(900)]


class Progress:
    """Collects the progress notifications of one call."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, value: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed and return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"
    assert result.structured_content is not None
    return result.structured_content


async def fail(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail and return its error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return result.content[0].text


async def test_plan_tools_over_stdio(live_server: LiveServer, tmp_path: Path) -> None:
    progress = Progress()
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_mcp_client(server_env(live_server), errlog) as client:
            tools = await call(client, "list_tools")
            valid = await call(client, "validate_plan", plan=load_example("hull-check-7"))
            invalid = await call(
                client, "validate_plan", plan={"steps": [{"id": "s1", "tool": "scan_hul"}]}
            )
            result = await client.call_tool(
                "run_plan", {"plan": "example:seattle-weather"}, progress_callback=progress
            )
            bad = await fail(client, "run_plan", plan={"steps": [{"id": "s1", "tool": "nope"}]})
            exported = await call(
                client, "export_notebook", plan="example:hull-check-7", path=str(tmp_path / "n.py")
            )
            reference = await client.read_resource("marimo-engine://docs/plan-language")
    assert {t["name"] for t in tools["tools"]} >= {"scan_hull", "load_table", "query_tables"}
    assert valid == {"valid": True, "problems": []}
    assert invalid["problems"][0]["code"] == "unknown_tool"
    assert not result.is_error, result.content[0].text
    summary = result.structured_content
    assert summary is not None and summary["verdict"] == "SUCCESS"
    assert summary["key_findings"]
    steps = len(load_example("seattle-weather")["steps"])
    completed = [m for m in progress.messages if m.startswith("STEP_COMPLETE")]
    assert len(completed) == steps
    assert progress.messages[0].startswith("START") and progress.messages[-1].startswith("FINISH")
    assert "The plan has 1 problem" in bad and '"code": "unknown_tool"' in bad
    assert Path(exported["path"]).read_text(encoding="utf-8").startswith("# Plan 'hull-check-7'")
    assert reference.contents[0].text.startswith("# The plan language")


async def test_every_live_tool_over_stdio_on_a_real_marimo_edit(
    live_server: LiveServer, live_session: LiveSession, tmp_path: Path
) -> None:
    session = live_session.session_id
    output = Progress()
    plan_progress = Progress()
    frame_code = "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2, 3], 'b': list('xyz')})"
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_mcp_client(server_env(live_server), errlog) as client:
            listed = await call(client, "list_sessions")
            executed = await client.call_tool(
                "execute",
                {"session": session, "code": "print(seed_value * 2)"},
                progress_callback=output,
            )
            created = await call(
                client, "create_cell", session=session, code=frame_code, name="make_frame"
            )
            cells = await call(client, "list_cells", session=session)
            edited = await call(
                client,
                "edit_cell",
                session=session,
                cell="make_frame",
                code=frame_code.replace("[1, 2, 3]", "[1, 2, 4]"),
            )
            ran = await call(client, "run_cells", session=session, cells=["make_frame"])
            variables = await call(client, "variables", session=session)
            stable_id = next(r for r in listed["sessions"] if r["session"] == session)["stable_id"]
            by_stable_id = await call(client, "variables", session=stable_id)
            described = await call(client, "describe", session=session, name="frame")
            not_a_frame = await fail(client, "describe", session=session, name="seed_value")
            live_run = await client.call_tool(
                "run_plan_live",
                {"session": session, "plan": "example:hull-check-7"},
                progress_callback=plan_progress,
            )
            deleted = await call(client, "delete_cell", session=session, cell="make_frame")
            after = await call(client, "list_cells", session=session)
            joined = await call(
                client, "open_notebook", path=str(live_server.notebook), url=live_server.url
            )
            closed = await call(client, "close_notebook", session=session)
            missing = await fail(client, "list_cells", session="s_does_not_exist")
    row = next(r for r in listed["sessions"] if r["session"] == session)
    assert row["notebook"] == str(live_server.notebook) and row["url"] == live_server.url
    assert not executed.is_error and executed.structured_content is not None
    assert executed.structured_content["stdout"].strip() == "20"
    assert any("stdout: 20" in m for m in output.messages)
    assert created["status"] not in ("exception", None) and not created["errors"]
    assert "make_frame" in [c["name"] for c in cells["cells"]]
    assert not edited["errors"] and not ran["changes"][0]["errors"]
    frame = next(v for v in variables["variables"] if v["name"] == "frame")
    assert stable_id and stable_id.startswith("sess") and by_stable_id == variables
    assert "DataFrame" in frame["type"]
    assert described["shape"] == [3, 2] and described["library"] == "pandas"
    assert [c["name"] for c in described["columns"]] == ["a", "b"]
    assert "frame: pandas DataFrame, 3 rows x 2 columns" in described["text"]
    assert "4" in json.dumps(described["sample"])
    assert "not a pandas or polars DataFrame" in not_a_frame
    assert not live_run.is_error, live_run.content[0].text
    assert live_run.structured_content is not None
    assert live_run.structured_content["verdict"] == "SUCCESS"
    assert live_run.structured_content["key_findings"]["s2"]["status"] == "nominal"
    assert sum(m.startswith("STEP_COMPLETE") for m in plan_progress.messages) == 2
    assert deleted["op"] == "delete"
    assert "make_frame" not in [c["name"] for c in after["cells"]]
    assert joined["session"] == session and joined["opened_here"] is False
    assert closed == {
        "session": session,
        "closed": False,
        "msg": "Forgot the session; it was not opened here, so it stays open.",
    }
    assert "Session 's_does_not_exist' is not open" in missing
    assert "Call list_sessions" in missing


async def test_servers_opened_over_stdio_stop_when_the_client_leaves(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_mcp_client(server_env(live_server), errlog) as client:
            opened = await call(client, "open_notebook", path=str(tmp_path / "headless.py"))
            adopt_opened_server(opened)
            async with httpx.AsyncClient() as http:
                health = await http.get(f"{opened['url']}/health", timeout=30.0)
    assert opened["opened_here"] is True and health.status_code == 200
    assert await anyio.to_thread.run_sync(wait_until_down, opened["url"])
    release_opened_server(opened)


async def durable_run_tools(client: Client, journal: str) -> None:
    """A run that waits for an approval, listed, shown, refused twice, then resumed.

    The same calls over each transport (stdio here, HTTP in test_http.py).
    """
    plan = load_example("hull-check-7")
    plan["steps"][1]["requires_approval"] = True  # check_oxygen waits for a person
    progress = Progress()
    paused = await call(client, "run_plan", plan=plan, journal=journal)
    run_id = paused["run_id"]
    listed = await call(client, "list_runs", journal=journal)
    shown = await call(client, "show_run", run_id=run_id, journal=journal)
    unanswered = await fail(client, "resume_run", run_id=run_id, journal=journal)
    stale = await fail(
        client,
        "resume_run",
        run_id=run_id,
        journal=journal,
        decision="approve",
        intervention_id="not-it",
    )
    resumed = await client.call_tool(
        "resume_run",
        {
            "run_id": run_id,
            "journal": journal,
            "decision": "approve",
            "intervention_id": shown["pending"]["intervention_id"],
        },
        progress_callback=progress,
    )
    after = await call(client, "show_run", run_id=run_id, journal=journal)
    assert paused["verdict"] == "INTERVENTION_NEEDED"
    assert paused["intervention"]["kind"] == "approval"
    assert paused["intervention"]["intervention_id"] == shown["pending"]["intervention_id"]
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert shown["pending"]["step_id"] == "s2"
    assert "Pass decision='approve' or decision='reject'." in unanswered
    assert "is stale" in stale
    assert not resumed.is_error, resumed.content[0].text
    assert resumed.structured_content["verdict"] == "SUCCESS"
    assert resumed.structured_content["run_id"] == run_id
    assert progress.messages[0].startswith("START") and progress.messages[-1].startswith("FINISH")
    steps = {s["step_id"]: s for s in after["steps"]}
    assert steps["s1"]["starts"] == 1  # completed before the pause: not run again
    assert steps["s2"]["status"] == "completed" and after["pending"] is None


async def test_durable_run_tools_over_stdio(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (tmp_path / "mcp.log").open("w") as errlog:
        async with stdio_mcp_client(env, errlog) as client:
            await durable_run_tools(client, str(tmp_path / "journal.sqlite3"))


async def test_code_goal_over_stdio_asks_the_person_in_the_client(
    notebook_server: HeadlessServer, tmp_path: Path
) -> None:
    # The model is the loopback OpenAI-compatible server answering from a script: a
    # patch the policy asks about (a network import), then, refused, a local one.
    notebook = notebook_file(notebook_server, tmp_path, "goal.py")  # new: one blank cell
    script = [
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "fetch", "code": "import requests\npage = requests.get('x')"}
        ]}},
        {"tool": "apply_patch", "tool_args": {"ops": [
            {"op": "create", "name": "local", "code": "local = 6 * 7\nlocal"}]}},
        {"tool": "finish", "tool_args": {"answer": "42", "cells": ["local"]}},
    ]  # fmt: skip
    asked: list[str] = []

    async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": False, "note": "no web"})

    progress = Progress()
    with scripted_server(script) as model, (tmp_path / "mcp.log").open("w") as errlog:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENAI_BASE_URL": model.base_url,
               "OPENAI_API_KEY": "test", "XDG_STATE_HOME": str(tmp_path / "state")}  # fmt: skip
        # The handshake clients such as Claude Code speak (MCP up to 2025-11-25), where a
        # server may ask the person in the middle of a tool call.
        client = stdio_mcp_client(
            env, errlog, "--model", "openai:scripted", elicitation_callback=person, mode="legacy"
        )
        async with client:
            opened = await call(
                client, "open_notebook", path=str(notebook), url=notebook_server.url
            )
            result = await client.call_tool(
                "code_goal",
                {"session": opened["session"], "goal": "the answer"},
                progress_callback=progress,
            )
            cells = await call(client, "list_cells", session=opened["session"])
            await call(client, "close_notebook", session=opened["session"])
        told = [r.text() for r in model.requests]
    assert not result.is_error, result.content[0].text
    assert result.structured_content["verdict"] == "SUCCESS", (
        result.structured_content,
        progress.messages,
        (tmp_path / "mcp.log").read_text(),
    )
    refused = told[1]
    done = result.structured_content
    assert done is not None and done["verdict"] == "SUCCESS" and done["answer"] == "42"
    assert done["answer_cells"] == ["local"] and done["session"] == opened["session"]
    # The person was asked in the client, with the code, and their note reached the model.
    assert len(asked) == 1 and "Apply this patch?" in asked[0]
    assert "import requests" in asked[0]
    assert "no web" in refused
    kinds = [m.split(":")[0] for m in progress.messages]
    assert kinds[0] == "START" and kinds[-1] == "DONE"
    assert kinds.index("PATCH_PROPOSED") < kinds.index("APPROVAL")
    # Only the agent's cell: marimo's blank first cell went, the refused one never came.
    assert [(c["name"], c["code"]) for c in cells["cells"]] == [("local", "local = 6 * 7\nlocal")]
    assert "requests" not in notebook.read_text()
