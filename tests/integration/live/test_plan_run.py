"""run_plan_live: a plan's steps become cells of the live notebook and run there."""

from __future__ import annotations

from typing import Any

import pytest

from marimo_engine.engine.events import Event, EventType, Verdict
from marimo_engine.engine.live_run import run_plan_live
from marimo_engine.examples import load_example
from marimo_engine.live import LiveClient
from marimo_engine.live.session import LiveSession
from marimo_engine.tools.examples import example_registry

from .conftest import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

HULL_CHECK = load_example("hull-check-7")  # the spec's example plan, verbatim


async def _run(client: LiveClient, plan: Any) -> list[Event]:
    return [event async for event in run_plan_live(plan, example_registry(), client)]


def _per_step(events: list[Event]) -> dict[str | None, list[str]]:
    steps: dict[str | None, list[str]] = {}
    for event in events:
        steps.setdefault(event.step_id, []).append(event.type.value)
    return steps


async def test_a_plan_runs_live_with_the_engines_events(live_session: LiveSession) -> None:
    from marimo_engine import execute_plan_sync

    async with live_session.client() as client:
        events = await _run(client, HULL_CHECK)
        cells = {c.name: c for c in await client.cells()}
        variables = {v.name: v for v in await client.variables()}
    engine = execute_plan_sync(HULL_CHECK, tools=example_registry())
    assert events[0].type is EventType.START and events[-1].type is EventType.FINISH
    assert _per_step(events) == _per_step(engine.events)
    assert _per_step(events)["s3"] == ["STEP_START", "STEP_SKIPPED"]
    finish = events[-1]
    assert finish.verdict is Verdict.SUCCESS
    assert set(finish.outputs or {}) == {"s1", "s2"}
    assert finish.outputs["s2"]["level"] == 20.9
    assert all(e.plan_id == "hull-check-7" for e in events)
    complete = next(e for e in events if e.type is EventType.STEP_COMPLETE and e.step_id == "s2")
    assert complete.key_finding is True and complete.tool == "check_oxygen"
    # The person sees one cell per step, named after it, with its output.
    step_cells = [c for c in cells.values() if ".step('s" in c.code and "hull" not in c.name]
    assert len(step_cells) >= 3
    s2_cell = next(c for c in step_cells if ".step('s2'" in c.code)
    assert s2_cell.status == "idle"
    assert s2_cell.output is not None and "20.9" in s2_cell.output
    assert variables[s2_cell.name].type.endswith("OxygenReading")


def _owned(cells: list[Any], plan_id: str) -> dict[str, Any]:
    """The cells a run of `plan_id` owns, by name."""
    from marimo_engine.engine.live_run import runner_name

    mark = f"# marimo-engine plan run {runner_name(plan_id)} "
    return {c.name: c for c in cells if c.code.startswith(mark)}


async def test_running_the_same_plan_again_updates_its_cells_in_place(
    live_session: LiveSession,
) -> None:
    plan = {**HULL_CHECK, "id": "hull-again"}
    async with live_session.client() as client:
        first = await _run(client, plan)
        after_first = _owned(await client.cells(), "hull-again")
        second = await _run(client, plan)
        after_second = _owned(await client.cells(), "hull-again")
        shorter = {**plan, "steps": [s for s in plan["steps"] if s["id"] != "s3"]}
        third = await _run(client, shorter)
        after_third = _owned(await client.cells(), "hull-again")
    assert first[-1].verdict is Verdict.SUCCESS
    assert second[-1].verdict is Verdict.SUCCESS
    assert third[-1].verdict is Verdict.SUCCESS
    # One setup cell and one cell per step, the same cells, the same names: no s1_2.
    assert len(after_first) == 1 + len(plan["steps"])
    assert set(after_second) == set(after_first)
    assert {c.id for c in after_second.values()} == {c.id for c in after_first.values()}
    assert not any(name.endswith("_2") for name in after_second)
    # A step the plan no longer has loses its cell; the others keep theirs.
    gone = next(name for name, c in after_first.items() if ".step('s3'" in c.code)
    assert set(after_third) == set(after_first) - {gone}
    kept = next(name for name, c in after_first.items() if ".step('s1'" in c.code)
    assert after_third[kept].id == after_first[kept].id
    assert all(not c.errors for c in after_third.values())  # no name defined twice


BROKEN_IN_KERNEL = """
import pathlib


class Broken(BaseException):
    pass


if pathlib.Path(__file__).with_suffix(".broken").exists():
    raise Broken("this module refuses to import in the kernel")


def steady(value: int = 1) -> int:
    return value
"""


async def test_a_failing_setup_removes_the_cells_it_added(
    live_session: LiveSession, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    from marimo_engine.tools.registry import ToolRegistry

    folder = live_server.notebook.parent  # on the kernel's sys.path
    (folder / "breaks_in_kernel.py").write_text(BROKEN_IN_KERNEL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "breaks_in_kernel", raising=False)
    module = importlib.import_module("breaks_in_kernel")  # here it imports
    (folder / "breaks_in_kernel.broken").write_text("", encoding="utf-8")
    plan = {"id": "setup-fails", "steps": [{"id": "a", "tool": "steady"}]}
    async with live_session.client() as client:
        before = [c.id for c in await client.cells()]
        events = await _run_with(client, plan, ToolRegistry.from_mapping({"steady": module.steady}))
        after = [c.id for c in await client.cells()]
    assert [e.type.value for e in events] == ["START", "ERROR", "FINISH"]
    assert events[1].error is not None and "setup cell failed" in events[1].error.message
    assert "removed" in events[1].error.message
    assert events[-1].verdict is Verdict.FAILURE
    assert after == before


async def test_a_tools_file_runs_in_the_kernel(live_session: LiveSession, tmp_path: Any) -> None:
    from marimo_engine.cli.loading import load_tools

    tools_file = tmp_path / "file_tools_for_live.py"  # not on the kernel's sys.path
    tools_file.write_text("def double(x: int) -> int:\n    return 2 * x\n", encoding="utf-8")
    loaded = load_tools([str(tools_file)], include_defaults=False)
    plan = {
        "id": "file-tools-live",
        "steps": [
            {"id": "a", "tool": "double", "args": {"x": 21}},
            {"id": "b", "tool": "double", "args": {"x": "$a"}},
        ],
    }
    async with live_session.client() as client:
        events = await _run_with(client, plan, loaded.registry)
    assert events[-1].verdict is Verdict.SUCCESS, [e.msg for e in events]
    assert events[-1].outputs == {"a": 42, "b": 84}


async def _run_with(client: LiveClient, plan: Any, tools: Any) -> list[Event]:
    return [event async for event in run_plan_live(plan, tools, client)]


async def test_an_intervention_stops_the_live_run(live_session: LiveSession) -> None:
    plan = {
        "id": "low-oxygen-live",
        "steps": [
            {"id": "reading", "tool": "check_oxygen", "args": {"simulated_level": 12.0},
             "intervention_if": "$reading.level < 15"},
            {"id": "advice", "tool": "analyze_atmosphere", "args": {"o2_level": "$reading.level"}},
        ],
    }  # fmt: skip
    async with live_session.client() as client:
        events = await _run(client, plan)
        cells = [
            c for c in await client.cells() if "low-oxygen-live" in c.code or ".step('" in c.code
        ]
    assert [e.type.value for e in events] == [
        "START", "STEP_START", "STEP_COMPLETE", "INTERVENTION_NEEDED", "FINISH",
    ]  # fmt: skip
    assert events[-1].verdict is Verdict.INTERVENTION_NEEDED
    assert events[3].expression == "$reading.level < 15"
    advice = next(c for c in cells if ".step('advice'" in c.code)
    assert advice.status != "idle"  # never ran: still disabled


async def test_a_failing_step_is_an_error_event(live_session: LiveSession) -> None:
    plan = {
        "id": "bad-scan-live",
        "steps": [
            {"id": "scan", "tool": "scan_hull",
             "args": {"sections": ["bow"], "breach_sections": ["stern"]}},
            {"id": "after", "tool": "check_oxygen", "depends_on": ["scan"]},
        ],
    }  # fmt: skip
    async with live_session.client() as client:
        events = await _run(client, plan)
    assert [e.type.value for e in events] == ["START", "STEP_START", "ERROR", "FINISH"]
    error = events[2].error
    assert error is not None and error.type == "ValueError"
    assert "not among the scanned sections" in error.message
    assert events[-1].verdict is Verdict.FAILURE
    assert events[-1].outputs == {}


async def test_an_invalid_plan_runs_nothing(live_session: LiveSession) -> None:
    plan = {"id": "bad-plan", "steps": [{"id": "x", "tool": "no_such_tool"}]}
    async with live_session.client() as client:
        before = len(await client.cells())
        events = await _run(client, plan)
        after = len(await client.cells())
    assert [e.type.value for e in events] == ["START", "ERROR", "FINISH"]
    assert events[1].error is not None and events[1].error.type == "PlanValidationError"
    assert events[1].error.problems and events[1].error.problems[0].code == "unknown_tool"
    assert before == after


TOOLS_MODULE = '''
import asyncio
import pathlib


def flaky_reading(marker: str, fail_times: int = 1) -> dict:
    """Fail the first `fail_times` calls (counted in a file), then read 42."""
    path = pathlib.Path(marker)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise RuntimeError(f"sensor glitch {calls + 1}")
    return {"value": 42, "tries": calls + 1}


async def slow_reading(seconds: float) -> float:
    """Take `seconds` to answer."""
    await asyncio.sleep(seconds)
    return seconds
'''


async def test_retries_and_timeouts_run_live(
    live_session: LiveSession, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    from marimo_engine.tools.registry import ToolRegistry

    folder = live_server.notebook.parent  # marimo puts the notebook's folder on sys.path
    (folder / "live_plan_tools.py").write_text(TOOLS_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "live_plan_tools", raising=False)
    module = importlib.import_module("live_plan_tools")
    tools = ToolRegistry.from_mapping(
        {"flaky_reading": module.flaky_reading, "slow_reading": module.slow_reading}
    )
    marker = folder / "flaky-calls.txt"
    plan = {
        "id": "retry-live",
        "steps": [
            {"id": "reading", "tool": "flaky_reading", "args": {"marker": str(marker)},
             "retries": 2},
            {"id": "slow", "tool": "slow_reading", "args": {"seconds": 30}, "timeout_s": 0.5,
             "depends_on": ["reading"]},
        ],
    }  # fmt: skip
    async with live_session.client() as client:
        events = [e async for e in run_plan_live(plan, tools, client)]
    assert [(e.type.value, e.step_id) for e in events] == [
        ("START", None),
        ("STEP_START", "reading"),
        ("STEP_RETRY", "reading"),
        ("STEP_COMPLETE", "reading"),
        ("STEP_START", "slow"),
        ("ERROR", "slow"),
        ("FINISH", None),
    ]
    retry, complete, error = events[2], events[3], events[5]
    assert retry.attempt == 2 and retry.error is not None
    assert retry.error.message == "sensor glitch 1"
    assert complete.output == {"value": 42, "tries": 2} and complete.attempt == 2
    assert error.error is not None and error.error.type == "TimeoutError"
    assert events[-1].verdict is Verdict.FAILURE
    assert events[-1].outputs == {"reading": {"value": 42, "tries": 2}}


def _live_cli(argv: list[str]) -> int:
    """`marimo-engine live ...` in process, as `main` runs it."""
    import argparse

    from marimo_engine.cli import live as live_cli
    from marimo_engine.cli.exits import run_handler

    parser = argparse.ArgumentParser(prog="marimo-engine")
    live_cli.add_parser(parser.add_subparsers(dest="command"))
    return run_handler(live_cli.run, parser.parse_args(argv), debug=False)


def test_run_plan_command_with_a_tools_file_and_an_invalid_plan(
    live_server: LiveServer,
    live_session: LiveSession,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    where = ["--url", live_server.url, "--session", live_session.session_id]
    tools_file = tmp_path / "cli_file_tools.py"  # not on the kernel's sys.path
    tools_file.write_text("def triple(x: int) -> int:\n    return 3 * x\n", encoding="utf-8")
    plan = {"id": "cli-file-tools", "steps": [{"id": "t", "tool": "triple", "args": {"x": 14}}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    argv = ["live", "run-plan", *where, "--json", "--tools", str(tools_file)]
    assert _live_cli([*argv, str(tmp_path / "plan.json")]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["verdict"] == "SUCCESS" and events[-1]["outputs"] == {"t": 42}

    bad = {"id": "cli-bad", "steps": [{"id": "t", "tool": "triple", "args": {"y": 1}}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    assert _live_cli([*argv[:-2], str(tmp_path / "bad.json")]) == 2  # exit 2: bad input
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in events] == ["START", "ERROR", "FINISH"]
    assert [p["code"] for p in events[1]["error"]["problems"]] == ["unknown_tool"]


async def test_contracts_and_a_markdown_step_run_live(live_session: LiveSession) -> None:
    plan = {
        "id": "live-contracts",
        "steps": [
            {"id": "s2", "tool": "check_oxygen", "expect": ["$self.level > 0"],
             "schema": {"type": "object", "required": ["level"]}},
            {"id": "note", "markdown": "Oxygen **$s2.level** %"},
            {"id": "strict", "tool": "check_oxygen", "expect": ["$self.level > 50"],
             "depends_on": ["note"], "retries": 2},
        ],
    }  # fmt: skip
    async with live_session.client() as client:
        events = await _run(client, plan)
        cells = _owned(await client.cells(), "live-contracts")
    steps = _per_step(events)
    assert steps["note"] == ["STEP_START", "STEP_COMPLETE"]
    assert steps["strict"] == ["STEP_START", "ERROR"]  # not retried
    error = next(e.error for e in events if e.type is EventType.ERROR)
    assert error is not None and error.type == "ContractError"
    assert "'$self.level > 50' is false; seen: $self.level = 20.9." in error.message
    assert events[-1].verdict is Verdict.FAILURE
    assert events[-1].outputs["note"] == "Oxygen **20.9** %"
    note = next(c for c in cells.values() if ".step('note'" in c.code)
    assert note.output == "Oxygen 20.9 %" and note.output_mimetype == "text/markdown"


async def test_plan_inputs_go_into_the_kernel_with_the_run(live_session: LiveSession) -> None:
    plan = {
        "id": "live-inputs",
        "inputs": {"level": {"description": "percent O2"}, "sensor": {"required": False,
                   "default": "O2-AFT"}},
        "steps": [
            {"id": "o2", "tool": "check_oxygen",
             "args": {"simulated_level": "$input.level", "sensor_id": "$input.sensor"},
             "run_if": "$input.level > 0"},
            {"id": "note", "markdown": "$input.sensor reads $o2.level %"},
        ],
    }  # fmt: skip
    async with live_session.client() as client:
        events = [
            e async for e in run_plan_live(plan, example_registry(), client, inputs={"level": 17.5})
        ]
        cells = _owned(await client.cells(), "live-inputs")
        missing = [e async for e in run_plan_live(plan, example_registry(), client)]
        frame = [
            e
            async for e in run_plan_live(
                plan, example_registry(), client, inputs={"level": object()}
            )
        ]
    finish = events[-1]
    assert finish.verdict is Verdict.SUCCESS, finish.error
    assert finish.outputs["o2"]["level"] == 17.5
    assert finish.outputs["o2"]["sensor_id"] == "O2-AFT"  # the default
    assert finish.outputs["note"] == "O2-AFT reads 17.5 %"
    assert not any("plan_inputs" in c.code.split("\n", 2)[-1] for c in cells.values())
    assert [e.type for e in missing] == [EventType.START, EventType.ERROR, EventType.FINISH]
    assert "needs the input 'level'" in (missing[1].error.message if missing[1].error else "")
    assert frame[1].error is not None and "cannot send into the kernel" in frame[1].error.message


def test_run_plan_command_takes_inputs(
    live_server: LiveServer,
    live_session: LiveSession,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    where = ["--url", live_server.url, "--session", live_session.session_id]
    plan = {
        "id": "cli-inputs",
        "inputs": {"level": {"description": "percent O2"}},
        "steps": [
            {"id": "o2", "tool": "check_oxygen", "args": {"simulated_level": "$input.level"}}
        ],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    argv = ["live", "run-plan", *where, "--json", str(tmp_path / "plan.json")]
    assert _live_cli([*argv, "--input", "level=18"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["verdict"] == "SUCCESS" and events[-1]["outputs"]["o2"]["level"] == 18
    assert _live_cli(argv) == 2  # nothing placed in the notebook: bad input
    captured = capsys.readouterr()
    assert captured.out == "" and "--input level=VALUE" in captured.err


async def test_a_sub_plan_step_runs_embedded_in_the_kernel(live_session: LiveSession) -> None:
    from marimo_engine.plans.subplans import PlanLibrary

    child = {
        "id": "o2-child",
        "inputs": {"level": {}},
        "steps": [
            {"id": "read", "tool": "check_oxygen", "args": {"simulated_level": "$input.level"},
             "output": True},
            {"id": "skip", "tool": "check_oxygen", "run_if": "$read.level > 50"},
        ],
    }  # fmt: skip
    plan = {
        "id": "live-subplan",
        "steps": [
            {"id": "s1", "tool": "check_oxygen", "args": {"simulated_level": 19.0}},
            {"id": "sub", "plan": "child", "args": {"level": "$s1.level"}},
            {"id": "after", "markdown": "child read $sub.read.level %"},
        ],
    }
    library = PlanLibrary({"child": child})
    async with live_session.client() as client:
        events = [e async for e in run_plan_live(plan, example_registry(), client, plans=library)]
        cells = _owned(await client.cells(), "live-subplan")
    finish = events[-1]
    assert finish.verdict is Verdict.SUCCESS, finish.error
    assert finish.outputs["sub"]["read"]["level"] == 19.0
    assert finish.outputs["after"] == "child read 19.0 %"
    outer = [(e.type.value, e.step_id) for e in events if e.parent_step_id is None]
    assert ("STEP_COMPLETE", "sub") in outer and ("STEP_SKIPPED", "skip") not in outer
    nested = [(e.type.value, e.step_id) for e in events if e.parent_step_id == "sub"]
    assert nested == [
        ("STEP_START", "read"),
        ("STEP_COMPLETE", "read"),
        ("STEP_START", "skip"),
        ("STEP_SKIPPED", "skip"),
    ]
    step_cells = [c for c in cells.values() if not c.code.split("\n", 1)[0].endswith("below.")]
    assert len(step_cells) == 3  # one cell a step: the sub-plan adds none to the notebook
