"""The one step runtime (`engine.step.run_step`) through a host of the test's own.

The three real hosts (the in-process run, `StepRunner`, `KernelStepRunner`)
are checked against each other in tests/integration/live/test_parity.py;
here a bare host shows what the interface asks: events go where the host
says, the backoff waits through the host's `sleep`, tools run on its pool.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from marimo_engine.engine._threads import WorkerPool
from marimo_engine.engine.events import Event, EventType
from marimo_engine.engine.step import StepOutcome, prepare_steps, retry_delay_s, run_step
from marimo_engine.plans.schema import load_plan
from marimo_engine.tools.registry import build_tool_spec

pytestmark = pytest.mark.anyio


class RecordingHost:
    """Keeps events, records sleeps instead of sleeping, runs plain tools on a real pool."""

    def __init__(self) -> None:
        self.plan_id = "p"
        self.pool = WorkerPool(2)
        self.events: list[Event] = []
        self.slept: list[float] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _prepared(steps: list[dict[str, Any]], tools: dict[str, Any]) -> dict[str, Any]:
    plan = load_plan({"id": "p", "steps": steps})
    specs = {name: build_tool_spec(function, name=name) for name, function in tools.items()}
    return prepare_steps(plan, specs)


async def test_retries_wait_through_the_hosts_sleep() -> None:
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise RuntimeError(f"glitch {len(calls)}")
        return x * 2

    prepared = _prepared(
        [{"id": "s", "tool": "flaky", "args": {"x": 21}, "retries": 3}], {"flaky": flaky}
    )
    host = RecordingHost()
    try:
        result = await run_step(prepared["s"], {}, host)
    finally:
        host.pool.shutdown()
    assert (result.outcome, result.output) == (StepOutcome.COMPLETED, 42)
    assert host.slept == [retry_delay_s(2), retry_delay_s(3)] == [0.1, 0.2]
    assert [e.type for e in host.events] == [
        EventType.STEP_START,
        EventType.STEP_RETRY,
        EventType.STEP_RETRY,
        EventType.STEP_COMPLETE,
    ]
    assert all(e.plan_id == "p" and e.step_id == "s" and e.tool == "flaky" for e in host.events)


async def test_a_failing_step_is_a_result_not_an_exception() -> None:
    async def broken() -> None:
        raise ValueError("bad sensor")

    prepared = _prepared([{"id": "s", "tool": "broken"}], {"broken": broken})
    host = RecordingHost()
    result = await run_step(prepared["s"], {}, host)
    assert result.outcome is StepOutcome.FAILED
    assert isinstance(result.error, ValueError)
    assert host.events[-1].type is EventType.ERROR
    assert host.events[-1].error is not None and host.events[-1].error.type == "ValueError"


async def test_a_tool_the_host_cannot_call_is_an_unknown_tool_error() -> None:
    plan = load_plan({"id": "p", "steps": [{"id": "s", "tool": "gone"}]})
    prepared = prepare_steps(plan, {}, missing={"gone": "it did not import (No module 'x')"})
    host = RecordingHost()
    result = await run_step(prepared["s"], {}, host)
    assert result.outcome is StepOutcome.FAILED
    error = host.events[-1].error
    assert error is not None and error.type == "UnknownToolError"
    assert "it did not import (No module 'x')" in error.message


async def test_run_if_and_intervention_if_read_the_inputs_given() -> None:
    prepared = _prepared(
        [
            {"id": "a", "tool": "echo", "args": {"value": 1}},
            {"id": "b", "tool": "echo", "args": {"value": "$a"}, "run_if": "$a > 5"},
            {"id": "c", "tool": "echo", "args": {"value": "$a"}, "intervention_if": "$c < 5"},
        ],
        {"echo": lambda value: value},
    )
    host = RecordingHost()
    try:
        skipped = await run_step(prepared["b"], {"a": 1}, host)
        stopped = await run_step(prepared["c"], {"a": 1}, host)
    finally:
        host.pool.shutdown()
    assert skipped.outcome is StepOutcome.SKIPPED
    assert (stopped.outcome, stopped.output) == (StepOutcome.INTERVENTION, 1)
    assert [e.type for e in host.events if e.step_id == "c"][-1] is EventType.INTERVENTION_NEEDED


async def test_cancelling_the_step_interrupts_its_worker() -> None:
    started = threading.Event()
    stopped: list[str] = []

    def spin() -> None:
        started.set()
        try:
            while True:  # pure Python: the interruption lands at once
                pass
        except BaseException as exc:
            stopped.append(type(exc).__name__)
            raise

    prepared = _prepared([{"id": "s", "tool": "spin"}], {"spin": spin})
    host = RecordingHost()
    task = asyncio.ensure_future(run_step(prepared["s"], {}, host))
    await asyncio.to_thread(started.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    host.pool.shutdown()
    assert stopped == ["StepInterrupted"]
    assert host.pool.abandoned() == []
