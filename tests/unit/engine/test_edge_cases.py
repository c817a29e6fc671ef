"""Edge cases at the engine's boundaries: odd tools, odd callbacks, odd timing."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from marimo_engine import (
    EventType,
    Verdict,
    execute_plan,
    execute_plan_sync,
    plan_to_notebook,
    validate_plan,
)
from marimo_engine.errors import UsageError
from tests.processes import run_process

from . import notebook_tools
from .conftest import collect, finish, types

pytestmark = pytest.mark.anyio


def echo(value: Any = None) -> Any:
    return value


@pytest.mark.parametrize("kind", ["coroutine", "plain"])
async def test_a_tool_raising_cancelled_error_fails_its_step(kind: str) -> None:
    async def inner() -> None:
        raise asyncio.CancelledError

    async def coro() -> None:
        await inner()

    def plain() -> None:
        raise asyncio.CancelledError

    plan = {
        "steps": [
            {"id": "a", "tool": "t", "retries": 1},
            {"id": "b", "tool": "echo", "depends_on": ["a"]},
        ]
    }
    events = await collect(plan, {"t": coro if kind == "coroutine" else plain, "echo": echo})
    assert types(events, "a") == [EventType.STEP_START, EventType.STEP_RETRY, EventType.ERROR]
    error = events[-2].error
    assert error is not None and error.type == "ToolCancelledError"
    assert types(events, "b") == []
    assert finish(events).verdict is Verdict.FAILURE


async def test_an_unparsable_plan_reports_every_problem_at_once() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "echo", "timeout_s": -1},
            {"id": "b", "tool": "nope", "args": {"value": "$zz"}, "run_if": "len(1)"},
        ]
    }
    events = await collect(plan, {"echo": echo})
    problems = events[1].error.problems if events[1].error else None
    assert problems is not None
    assert {p.code for p in problems} == {
        "invalid_plan",
        "unknown_tool",
        "unknown_reference",
        "invalid_expression",
    }


async def test_no_step_starts_after_an_error_even_if_it_was_ready() -> None:
    async def slow(tag: str) -> str:
        await asyncio.sleep(0.2)
        return tag

    plan = {
        "steps": [
            {"id": "a", "tool": "echo", "args": {"value": {"k": 1}}},
            {"id": "b", "tool": "echo", "args": {"value": "$a.nokey"}},
            {"id": "c", "tool": "slow", "args": {"tag": "c"}, "depends_on": ["a"]},
        ]
    }
    events = await collect(plan, {"echo": echo, "slow": slow})
    first_error = next(i for i, e in enumerate(events) if e.type is EventType.ERROR)
    assert events[first_error].step_id == "b"
    assert all(e.type is not EventType.STEP_START for e in events[first_error:])
    assert finish(events).verdict is Verdict.FAILURE
    sync_events = execute_plan_sync(plan, {"echo": echo, "slow": slow}).events
    assert types(sync_events, "c") == []  # with no consumer to yield to, b fails first


async def test_a_plain_function_returning_a_coroutine_has_it_awaited() -> None:
    async def impl(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    def wrapper(x: int) -> Any:
        return impl(x)

    result = execute_plan_sync(
        {"steps": [{"id": "w", "tool": "w", "args": {"x": 21}}]}, {"w": wrapper}
    )
    assert result.verdict is Verdict.SUCCESS
    assert result.outputs == {"w": 42}


async def test_a_cancelled_run_does_not_retry_a_tool_that_hides_the_cancellation() -> None:
    calls: list[int] = []

    async def stubborn() -> None:
        calls.append(1)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise RuntimeError("connection closed") from None

    plan = {"steps": [{"id": "q", "tool": "echo"}, {"id": "s", "tool": "stubborn", "retries": 3}]}
    began = time.monotonic()
    async with aclosing(execute_plan(plan, {"echo": echo, "stubborn": stubborn})) as events:
        async for event in events:
            if event.type is EventType.STEP_COMPLETE:
                break
    assert time.monotonic() - began < 1.0
    assert calls == [1]


async def test_a_failing_on_event_callback_fails_the_run_not_a_step() -> None:
    def callback(event: Any) -> None:
        if event.type is EventType.STEP_COMPLETE:
            raise RuntimeError("display went away")

    result = execute_plan_sync(
        {"steps": [{"id": "a", "tool": "echo", "args": {"value": 1}}]},
        {"echo": echo},
        on_event=callback,
    )
    assert result.verdict is Verdict.FAILURE
    assert result.outputs == {"a": 1}
    assert result.error is not None
    assert result.error.step_id is None
    assert "on_event callback raised" in result.error.message


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="max_workers must be a whole number"):
        execute_plan_sync({"steps": [{"id": "a", "tool": "echo"}]}, {"echo": echo}, max_workers="2")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="tools must be a ToolRegistry"):
        execute_plan_sync({"steps": [{"id": "a", "tool": "echo"}]}, [echo])  # type: ignore[arg-type]


async def test_an_exception_whose_str_raises_keeps_its_type() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def weird() -> None:
        raise Weird

    result = execute_plan_sync({"steps": [{"id": "a", "tool": "weird"}]}, {"weird": weird})
    assert result.error is not None and result.error.type == "Weird"


def test_json_lines_keep_the_fields_every_event_has() -> None:
    result = execute_plan_sync({"steps": [{"id": "a", "tool": "echo"}]}, {"echo": echo})
    lines = [json.loads(e.to_json_line()) for e in result.events]
    assert lines[0]["step_id"] is None and lines[0]["tool"] is None
    complete = next(line for line in lines if line["type"] == "STEP_COMPLETE")
    assert "output" in complete and complete["output"] is None
    assert lines[-1]["step_id"] is None


def test_self_referencing_outputs_serialise_quickly() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    looped.append(looped)
    result = execute_plan_sync(
        {"steps": [{"id": "a", "tool": "echo", "args": {"value": 0}}]},
        {"echo": lambda value: looped},
    )
    began = time.monotonic()
    data = json.loads(result.model_dump_json())
    assert time.monotonic() - began < 1.0
    assert data["outputs"]["a"][1] == {"__type__": "builtins.list", "cycle": True}


@pytest.mark.integration
def test_odd_text_and_names_still_make_a_runnable_notebook(tmp_path: Path) -> None:
    plan = {
        "steps": [
            {
                "id": "json",
                "tool": "json",
                "description": 'line\u2028separator, \u0085 next line, """ quotes, \\ backslash',
                "args": {"value": "a\u2029b"},
            }
        ]
    }
    source = plan_to_notebook(plan, {"json": notebook_tools.json})
    path = tmp_path / "odd.py"
    path.write_text(source, encoding="utf-8")
    repo = Path(__file__).resolve().parents[3]
    proc = run_process(
        [sys.executable, str(path)],
        timeout_s=120,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr


def test_plan_to_notebook_without_tools_checks_only_the_plan() -> None:
    source = plan_to_notebook({"steps": [{"id": "a", "tool": "anything"}]})
    assert "Not importable by module path, so not callable here: 'anything'" in source


async def test_a_failing_on_event_callback_still_lets_the_stream_end_in_finish() -> None:
    def callback(event: Any) -> None:
        if event.type is EventType.STEP_START:
            raise RuntimeError("display went away")

    events = await collect(
        {"steps": [{"id": "a", "tool": "echo"}]}, {"echo": echo}, on_event=callback
    )
    assert EventType.ERROR in types(events)
    assert finish(events).verdict is Verdict.FAILURE


class Mode(enum.Enum):
    FAST = "fast"


@dataclass
class Point:
    x: int
    y: int


class Config(BaseModel):
    n: int


def test_literal_args_arrive_as_the_types_validation_checked() -> None:
    seen: dict[str, Any] = {}

    def tool(
        p: Point, cfg: Config, mode: Mode, pair: tuple[int, int], day: dt.date, raw: dict
    ) -> int:
        seen.update(p=p, cfg=cfg, mode=mode, pair=pair, day=day, raw=raw)
        return p.x + cfg.n

    plan = {
        "steps": [
            {
                "id": "t",
                "tool": "tool",
                "args": {
                    "p": {"x": 1, "y": 2},
                    "cfg": {"n": 3},
                    "mode": "fast",
                    "pair": [4, 5],
                    "day": "2026-11-21",
                    "raw": {"k": "v"},
                },
            }
        ]
    }
    result = execute_plan_sync(plan, {"tool": tool})
    assert result.verdict is Verdict.SUCCESS, result.error
    assert seen == {
        "p": Point(1, 2),
        "cfg": Config(n=3),
        "mode": Mode.FAST,
        "pair": (4, 5),
        "day": dt.date(2026, 11, 21),
        "raw": {"k": "v"},
    }
    bad = {
        "steps": [{"id": "t", "tool": "tool", "args": {**plan["steps"][0]["args"], "p": {"x": 1}}}]
    }
    problems = validate_plan(bad, {"tool": tool})
    assert [(p.code, p.field) for p in problems] == [("invalid_args", "args.p")]
