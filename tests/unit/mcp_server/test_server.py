"""The MCP server in process, driven by the SDK's own `Client`: plan tools, resources, errors.

Over stdio and streamable HTTP, and on live notebooks, see
tests/integration/mcp. Here the transport is the SDK's in-process one, so
these tests exercise the tools' schemas, results and errors quickly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from marimo_engine.examples import load_example
from marimo_engine.mcp_server._sessions import SessionTable
from marimo_engine.mcp_server.server import (
    PLAN_LANGUAGE_URI,
    PLAN_SCHEMA_URI,
    TOOLS_URI,
    build_server,
)
from marimo_engine.plans.json_schema import published_plan_schema_text

pytestmark = pytest.mark.anyio

PLAN_TOOLS = ["list_tools", "validate_plan", "run_plan", "export_notebook"]
RUN_TOOLS = ["list_runs", "show_run", "resume_run"]
LIVE_TOOLS = [
    "list_sessions", "open_notebook", "close_notebook", "execute", "list_cells",
    "create_cell", "edit_cell", "run_cells", "delete_cell", "describe", "variables",
    "run_plan_live",
]  # fmt: skip
CODE_TOOLS = ["code_goal"]
MISSPELT = {"id": "bad-1", "steps": [{"id": "s1", "tool": "scan_hul"}]}
DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture
def server(tmp_path: Path) -> Any:
    # An empty registry folder: no marimo server of the machine leaks into these tests.
    server, state = build_server(sessions=SessionTable(registry_dir=str(tmp_path / "none")))
    yield server
    state.sessions.close_all()


async def test_every_tool_has_a_description_and_a_schema(server: Any) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == PLAN_TOOLS + RUN_TOOLS + LIVE_TOOLS + CODE_TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.input_schema["type"] == "object"
    by_name = {t.name: t for t in tools}
    session = by_name["describe"].input_schema["properties"]["session"]
    assert "list_sessions" in session["description"]
    assert by_name["run_plan"].input_schema["required"] == ["plan"]
    assert "ctx" not in by_name["run_plan"].input_schema["properties"]
    code = by_name["code_goal"].input_schema
    assert code["required"] == ["session", "goal"]
    assert "approve" not in code["properties"]  # the server's owner sets the policy, not a model


async def test_list_tools_returns_the_registry_schemas(server: Any) -> None:
    async with Client(server) as client:
        result = await client.call_tool("list_tools", {})
    assert not result.is_error
    names = [t["name"] for t in result.structured_content["tools"]]
    assert "scan_hull" in names and "query_tables" in names


async def test_validate_plan_returns_every_problem(server: Any) -> None:
    async with Client(server) as client:
        good = await client.call_tool("validate_plan", {"plan": "example:hull-check-7"})
        bad = await client.call_tool("validate_plan", {"plan": json.dumps(MISSPELT)})
    assert good.structured_content == {"valid": True, "problems": []}
    assert bad.structured_content["valid"] is False
    [problem] = bad.structured_content["problems"]
    assert problem["code"] == "unknown_tool" and problem["step_id"] == "s1"
    assert "Did you mean 'scan_hull'?" in problem["message"]


async def test_run_plan_reports_progress_per_event_and_returns_the_verdict(server: Any) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    plan = load_example("hull-check-7")
    async with Client(server) as client:
        result = await client.call_tool("run_plan", {"plan": plan}, progress_callback=on_progress)
    assert not result.is_error, result.content
    summary = result.structured_content
    assert summary["verdict"] == "SUCCESS"
    assert summary["key_findings"]["s2"]["status"] == "nominal"
    assert summary["skipped"] == ["s3"]
    assert [s["state"] for s in summary["steps"]] == ["STEP_COMPLETE", "STEP_COMPLETE",
                                                      "STEP_SKIPPED"]  # fmt: skip
    messages = [m or "" for _, _, m in progress]
    assert messages[0].startswith("START") and messages[-1].startswith("FINISH")
    assert sum(m.startswith("STEP_COMPLETE") for m in messages) == 2
    assert progress[-1][:2] == (3.0, 3.0)
    values = [v for v, _, _ in progress]
    assert values == sorted(values)


async def test_run_plan_takes_the_plan_inputs(server: Any) -> None:
    plan = {
        "id": "o2-input",
        "inputs": {"level": {"description": "percent O2"}},
        "steps": [
            {"id": "o2", "tool": "check_oxygen", "args": {"simulated_level": "$input.level"}},
        ],
    }
    async with Client(server) as client:
        ran = await client.call_tool("run_plan", {"plan": plan, "inputs": {"level": 17.5}})
        missing = await client.call_tool("run_plan", {"plan": plan})
        unknown = await client.call_tool("run_plan", {"plan": plan, "inputs": {"lvl": 1}})
    assert not ran.is_error, ran.content
    assert ran.structured_content["verdict"] == "SUCCESS"
    assert "17.5" in json.dumps(ran.structured_content["outputs"]["o2"])
    assert missing.is_error and "needs the input 'level'" in missing.content[0].text
    assert "inputs: {'level': ...}" in missing.content[0].text
    assert unknown.is_error and "has no input 'lvl'" in unknown.content[0].text


async def test_a_bad_plan_is_a_tool_error_with_its_problems(server: Any) -> None:
    async with Client(server) as client:
        result = await client.call_tool("run_plan", {"plan": MISSPELT})
    assert result.is_error
    text = result.content[0].text
    assert "The plan has 1 problem; nothing was run" in text
    problems = json.loads(text.split("Problems: ", 1)[1])
    assert problems[0]["code"] == "unknown_tool"


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ("{not json", "not valid JSON: Expecting property name"),
        ("example:nope", "There is no example plan 'nope'"),
        ("missing.json", "Plan file 'missing.json' does not exist"),
        ("-", "Give the plan as a JSON object"),
    ],
    ids=["bad-json", "unknown-example", "missing-file", "stdin"],
)
async def test_unreadable_plans_say_what_to_change(server: Any, plan: str, expected: str) -> None:
    async with Client(server) as client:
        result = await client.call_tool("validate_plan", {"plan": plan})
    assert result.is_error
    assert expected in result.content[0].text


async def test_run_plan_cuts_outputs_to_the_budget_and_writes_the_notebook(
    server: Any, tmp_path: Path
) -> None:
    target = tmp_path / "run.py"
    async with Client(server) as client:
        result = await client.call_tool(
            "run_plan",
            {"plan": "example:hull-check-7", "max_output_chars": 100, "notebook_path": str(target)},
        )
    summary = result.structured_content
    s1 = summary["outputs"]["s1"]
    assert s1["truncated"] is True and len(s1["preview"]) == 100 and s1["chars"] > 100
    assert summary["notebook_path"] == str(target.resolve())
    assert "marimo.App" in target.read_text(encoding="utf-8")


async def test_export_notebook_returns_or_writes_the_source(server: Any, tmp_path: Path) -> None:
    target = tmp_path / "hull.py"
    async with Client(server) as client:
        inline = await client.call_tool("export_notebook", {"plan": "example:hull-check-7"})
        written = await client.call_tool(
            "export_notebook", {"plan": "example:hull-check-7", "path": str(target)}
        )
        nowhere = await client.call_tool(
            "export_notebook", {"plan": "example:hull-check-7", "path": str(tmp_path / "x/y.py")}
        )
    assert inline.structured_content["steps"] == 3
    assert target.read_text(encoding="utf-8") == inline.structured_content["notebook"]
    assert written.structured_content["path"] == str(target.resolve())
    assert nowhere.is_error and "does not exist" in nowhere.content[0].text


async def test_resources_serve_the_reference_and_the_schemas(server: Any) -> None:
    async with Client(server) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        reference = await client.read_resource(PLAN_LANGUAGE_URI)
        schemas = await client.read_resource(TOOLS_URI)
        example = await client.read_resource("marimo-engine://examples/seattle-weather")
        plan_schema = await client.read_resource(PLAN_SCHEMA_URI)
    assert listed == {PLAN_LANGUAGE_URI, PLAN_SCHEMA_URI, TOOLS_URI}
    assert plan_schema.contents[0].text == published_plan_schema_text()
    text = reference.contents[0].text
    assert text == (DOCS / "plan-language.md").read_text(encoding="utf-8")
    assert any(t["name"] == "scan_hull" for t in json.loads(schemas.contents[0].text))
    assert json.loads(example.contents[0].text) == load_example("seattle-weather")


async def test_a_missing_session_says_to_list_sessions(server: Any) -> None:
    async with Client(server) as client:
        result = await client.call_tool("variables", {"session": "s_gone"})
        listed = await client.call_tool("list_sessions", {})
    assert result.is_error
    assert "Session 's_gone' is not open" in result.content[0].text
    assert "Call list_sessions" in result.content[0].text
    assert listed.structured_content["sessions"] == []
    assert "open_notebook" in listed.structured_content["hint"]


async def test_bad_arguments_are_tool_errors_not_crashes(server: Any) -> None:
    async with Client(server) as client:
        result = await client.call_tool("run_plan", {"plan": "example:hull-check-7",
                                                     "max_workers": 0})  # fmt: skip
        again = await client.call_tool("list_tools", {})
    assert result.is_error and "max_workers" in result.content[0].text
    assert not again.is_error


async def test_code_goal_says_what_is_missing(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    async with Client(server) as client:
        no_model = await client.call_tool("code_goal", {"session": "s_gone", "goal": "x"})
        no_key = await client.call_tool(
            "code_goal", {"session": "s_gone", "goal": "x", "model": "openai:x"}
        )
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        no_session = await client.call_tool(
            "code_goal", {"session": "s_gone", "goal": "x", "model": "openai:x"}
        )
        no_data = await client.call_tool(
            "code_goal",
            {"session": "s_gone", "goal": "x", "model": "openai:x",
             "data": [str(tmp_path / "missing.csv")]},
        )  # fmt: skip
    assert no_model.is_error and "Give model, such as 'openai:gpt-4o-mini'" in (
        no_model.content[0].text
    )
    assert "--model" in no_model.content[0].text
    assert no_key.is_error and "has no key or endpoint: set OPENAI_API_KEY" in (
        no_key.content[0].text
    )
    assert no_session.is_error and "Session 's_gone' is not open" in no_session.content[0].text
    assert no_data.is_error and "does not exist" in no_data.content[0].text


def test_the_approval_policy_is_the_servers_and_checked(tmp_path: Path) -> None:
    from marimo_engine.cli.main import build_parser
    from marimo_engine.errors import UsageError

    args = build_parser().parse_args(["mcp", "--model", "openai:x", "--approve", "deny"])
    assert (args.model, args.approve) == ("openai:x", "deny")
    assert build_parser().parse_args(["mcp"]).approve == "ask"
    with pytest.raises(UsageError, match="use ask, auto or deny"):
        build_server(approve="always", sessions=SessionTable(registry_dir=str(tmp_path)))  # type: ignore[arg-type]
