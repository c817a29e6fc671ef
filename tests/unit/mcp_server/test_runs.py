"""The durable-run tools in process: run_plan with a journal, list_runs, show_run, resume_run.

A real SQLite journal in `tmp_path`, the SDK's own in-process `Client`, and
tools that count their calls, so that "completed steps are not run again"
is checked by the side effects themselves (docs/runs.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from marimo_engine.engine.journal import open_journal
from marimo_engine.mcp_server._sessions import SessionTable
from marimo_engine.mcp_server.server import build_server
from marimo_engine.tools.registry import ToolRegistry

pytestmark = pytest.mark.anyio

PLAN: dict[str, Any] = {
    "id": "pay-run",
    "steps": [
        {"id": "a", "tool": "first", "args": {"x": 1}},
        {"id": "pay", "tool": "last", "args": {"z": "$a"}, "requires_approval": True},
        {"id": "after", "tool": "double", "args": {"y": "$pay"}},
    ],
}


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def server(tmp_path: Path, calls: Counter[str]) -> Any:
    registry = ToolRegistry()

    def first(x: int) -> int:
        """Add one."""
        calls["first"] += 1
        return x + 1

    def last(z: int) -> int:
        """Return z."""
        calls["last"] += 1
        return z

    def double(y: int) -> dict:
        """Double y as {'v': ...}."""
        calls["double"] += 1
        return {"v": y * 2}

    for fn in (first, last, double):
        registry.register(fn)
    server, state = build_server(registry, sessions=SessionTable(registry_dir=str(tmp_path / "n")))
    yield server
    state.sessions.close_all()


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return str(tmp_path / "journal.sqlite3")


async def _paused(client: Client, journal: str) -> dict[str, Any]:
    result = await client.call_tool("run_plan", {"plan": PLAN, "journal": journal})
    assert not result.is_error, result.content
    return result.structured_content


async def test_a_paused_run_is_listed_shown_and_resumed_without_rerunning_steps(
    server: Any, journal: str, calls: Counter[str]
) -> None:
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(server) as client:
        paused = await _paused(client, journal)
        assert paused["verdict"] == "INTERVENTION_NEEDED"
        run_id = paused["run_id"]
        pending = paused["intervention"]
        assert pending["kind"] == "approval" and pending["step_id"] == "pay"
        assert pending["args"] == {"z": 2}
        assert calls == {"first": 1}

        listed = (await client.call_tool("list_runs", {"journal": journal})).structured_content
        [row] = listed["runs"]
        assert row["run_id"] == run_id and row["plan_id"] == "pay-run"
        assert row["status"] == "INTERVENTION_NEEDED"
        assert row["pending"]["intervention_id"] == pending["intervention_id"]

        shown = await client.call_tool("show_run", {"run_id": run_id, "journal": journal})
        assert not shown.is_error, shown.content
        run = shown.structured_content
        assert run["pending"]["intervention_id"] == pending["intervention_id"]
        assert run["pending"]["kind"] == "approval" and run["pending"]["step_id"] == "pay"
        steps = {s["step_id"]: s for s in run["steps"]}
        assert steps["a"]["status"] == "completed" and steps["a"]["attempt"] == 1
        assert steps["a"]["output_summary"] == "2"

        resumed = await client.call_tool(
            "resume_run",
            {
                "run_id": run_id,
                "journal": journal,
                "decision": "approve",
                "intervention_id": pending["intervention_id"],
            },
            progress_callback=on_progress,
        )
        assert not resumed.is_error, resumed.content
        result = resumed.structured_content
        assert result["run_id"] == run_id and result["verdict"] == "SUCCESS"
        assert result["outputs"]["after"] == {"v": 4}
        assert calls == {"first": 1, "last": 1, "double": 1}  # "a" came from the journal
        assert progress[0].startswith("START") and progress[-1].startswith("FINISH")
        assert sum(m.startswith("STEP_COMPLETE") for m in progress) == 3

        again = await client.call_tool("list_runs", {"journal": journal})
        assert again.structured_content["runs"][0]["status"] == "SUCCESS"
        done = await client.call_tool(
            "resume_run", {"run_id": run_id, "journal": journal, "decision": "approve"}
        )
    assert done.is_error and "nothing to resume" in done.content[0].text


async def test_reject_with_a_reason_skips_the_approval(
    server: Any, journal: str, calls: Counter[str]
) -> None:
    async with Client(server) as client:
        paused = await _paused(client, journal)
        resumed = await client.call_tool(
            "resume_run",
            {
                "run_id": paused["run_id"],
                "journal": journal,
                "decision": "reject",
                "reason": "too much",
            },
        )
    assert not resumed.is_error, resumed.content
    assert resumed.structured_content["skipped"] == ["pay", "after"]
    assert calls == {"first": 1}


async def test_stale_ids_missing_answers_and_busy_runs_are_tool_errors(
    server: Any, journal: str, calls: Counter[str]
) -> None:
    async with Client(server) as client:
        paused = await _paused(client, journal)
        run_id = paused["run_id"]
        stale = await client.call_tool(
            "resume_run",
            {"run_id": run_id, "journal": journal, "decision": "approve", "intervention_id": "x"},
        )
        unanswered = await client.call_tool("resume_run", {"run_id": run_id, "journal": journal})
        answered = await client.call_tool(
            "resume_run",
            {"run_id": run_id, "journal": journal, "decision": "answer", "answer": 5},
        )
        missing = await client.call_tool("show_run", {"run_id": "nope", "journal": journal})
        with open_journal(journal) as store:
            token = store.acquire(run_id)  # a live process (this one) holds the run
            try:
                busy = await client.call_tool(
                    "resume_run", {"run_id": run_id, "journal": journal, "decision": "approve"}
                )
            finally:
                store.release(run_id, token)
    assert stale.is_error and "Intervention 'x' is stale" in stale.content[0].text
    assert paused["intervention"]["intervention_id"] in stale.content[0].text
    assert unanswered.is_error and "Pass decision='approve' or decision='reject'." in (
        unanswered.content[0].text
    )
    assert answered.is_error and "takes approve or reject, not answer" in answered.content[0].text
    assert missing.is_error and "No run 'nope'" in missing.content[0].text
    assert busy.is_error and "is being run by process" in busy.content[0].text
    assert calls == {"first": 1}  # none of them ran anything


async def test_run_plan_without_a_journal_records_nothing(server: Any, journal: str) -> None:
    async with Client(server) as client:
        result = await client.call_tool("run_plan", {"plan": PLAN})
        listed = await client.call_tool("list_runs", {"journal": journal})
    assert result.structured_content["verdict"] == "INTERVENTION_NEEDED"
    assert listed.structured_content["runs"] == []


async def test_resume_run_takes_a_runs_inputs_from_the_journal(
    server: Any, journal: str, calls: Counter[str]
) -> None:
    from marimo_engine import execute_plan_sync

    plan = {
        "id": "with-inputs",
        "inputs": {"x": {"required": False, "default": 1}},
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": "$input.x"}},
            {"id": "pay", "tool": "last", "args": {"z": "$input.x"}, "requires_approval": True},
        ],
    }
    tools = {"first": lambda x: x + 1, "last": lambda z: z}
    started = execute_plan_sync(plan, tools, journal=journal, inputs={"x": 10})
    assert started.intervention is not None
    async with Client(server) as client:
        shown = await client.call_tool("show_run", {"run_id": started.run_id, "journal": journal})
        assert shown.structured_content["inputs"] == {"x": {"format": "json", "value": 10}}
        resumed = await client.call_tool(
            "resume_run", {"run_id": started.run_id, "journal": journal, "decision": "approve"}
        )
    assert not resumed.is_error, resumed.content
    assert resumed.structured_content["outputs"] == {"a": 11, "pay": 10}  # not the default 1
    assert calls == {"last": 1}  # the server's tool; "a" came from the journal
