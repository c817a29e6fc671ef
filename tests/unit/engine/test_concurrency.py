"""Independent steps run at once; dependents see their inputs; stopping early cleans up."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from contextlib import aclosing
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan, execute_plan_sync

from .conftest import collect, finish

pytestmark = pytest.mark.anyio


async def nap(seconds: float, label: str = "") -> str:
    await asyncio.sleep(seconds)
    return label


def block(seconds: float, label: str = "") -> str:
    time.sleep(seconds)
    return label


def gather_labels(**labels: Any) -> list[Any]:
    return [labels[k] for k in sorted(labels)]


def fan_out(tool: str, k: int, seconds: float) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": f"w{i}", "tool": tool, "args": {"seconds": seconds, "label": f"L{i}"}}
        for i in range(k)
    ]
    steps.append(
        {"id": "join", "tool": "gather", "args": {f"x{i:03d}": f"$w{i}" for i in range(k)}}
    )
    return {"steps": steps}


TOOLS = {"nap": nap, "block": block, "gather": gather_labels}


@pytest.mark.parametrize("tool", ["nap", "block"])
async def test_independent_steps_overlap_and_the_join_sees_every_input(tool: str) -> None:
    k, seconds = 8, 0.3
    events = await collect(fan_out(tool, k, seconds), TOOLS, max_workers=k)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    assert end.outputs["join"] == [f"L{i}" for i in range(k)]
    workers = [e for e in events if e.step_id != "join" and e.step_id is not None]
    wall = max(e.timestamp for e in workers) - min(e.timestamp for e in workers)
    # close to the longest sleep, far from the sum (2.4 s)
    assert wall < seconds * 3, f"{k} sleeps of {seconds} s took {wall:.2f} s"
    starts = [e for e in events if e.type is EventType.STEP_START and e.step_id != "join"]
    first_complete = next(i for i, e in enumerate(events) if e.type is EventType.STEP_COMPLETE)
    assert all(events.index(s) < first_complete for s in starts), (
        "all workers start before any ends"
    )


async def test_max_workers_bounds_the_plain_functions_running_at_once() -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def counted() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    plan = {"steps": [{"id": f"c{i}", "tool": "counted"} for i in range(8)]}
    result = execute_plan_sync(plan, {"counted": counted}, max_workers=2)
    assert result.verdict is Verdict.SUCCESS
    assert peak[0] == 2


async def test_a_blocking_tool_does_not_block_a_coroutine_step() -> None:
    plan = {
        "steps": [
            {"id": "slow", "tool": "block", "args": {"seconds": 0.5}},
            {"id": "quick", "tool": "nap", "args": {"seconds": 0.01}},
        ]
    }
    events = await collect(plan, TOOLS)
    order = [(e.type, e.step_id) for e in events if e.type is EventType.STEP_COMPLETE]
    assert order == [(EventType.STEP_COMPLETE, "quick"), (EventType.STEP_COMPLETE, "slow")]


async def test_list_order_decides_who_starts_first_among_ready_steps() -> None:
    plan = {"steps": [{"id": s, "tool": "nap", "args": {"seconds": 0}} for s in ["c", "a", "b"]]}
    events = await collect(plan, TOOLS)
    assert [e.step_id for e in events if e.type is EventType.STEP_START] == ["c", "a", "b"]


async def test_events_stream_as_they_happen() -> None:
    gate = asyncio.Event()

    async def wait_for_gate() -> str:
        await gate.wait()
        return "opened"

    plan = {
        "steps": [
            {"id": "first", "tool": "nap", "args": {"seconds": 0}},
            {"id": "gated", "tool": "gate"},
        ]
    }
    seen: list[EventType] = []
    async for event in execute_plan(plan, {"nap": nap, "gate": wait_for_gate}):
        seen.append(event.type)
        if event.type is EventType.STEP_COMPLETE and event.step_id == "first":
            # the gated step is still waiting: this event was not replayed at the end
            gate.set()
    assert seen[-1] is EventType.FINISH


def _engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("marimo-engine-step")]


async def test_stopping_early_cancels_running_steps_and_leaves_nothing_behind() -> None:
    cancelled: list[str] = []
    finishes: list[Any] = []

    async def long_coro() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("coro")
            raise

    def long_plain() -> None:
        try:
            while True:  # pure Python: the interruption lands at once
                pass
        except BaseException:
            cancelled.append("plain")
            raise

    plan = {
        "steps": [
            {"id": "quick", "tool": "nap", "args": {"seconds": 0}},
            {"id": "coro", "tool": "long_coro"},
            {"id": "plain", "tool": "long_plain"},
        ]
    }
    tools = {"nap": nap, "long_coro": long_coro, "long_plain": long_plain}
    before = set(asyncio.all_tasks())
    async with aclosing(execute_plan(plan, tools, on_event=finishes.append)) as events:
        async for event in events:
            if event.type is EventType.STEP_COMPLETE:
                break
    assert sorted(cancelled) == ["coro", "plain"]
    assert set(asyncio.all_tasks()) == before
    assert _engine_threads() == []
    assert finishes[-1].type is EventType.FINISH
    assert finishes[-1].verdict is Verdict.FAILURE
    assert "stopped iterating" in (finishes[-1].reason or "")
    assert [e.type for e in finishes].count(EventType.FINISH) == 1


async def test_a_plain_break_also_cleans_up() -> None:
    finished = asyncio.Event()

    async def forever() -> None:
        await asyncio.sleep(30)

    def on_event(event: Any) -> None:
        if event.type is EventType.FINISH:
            finished.set()

    plan = {
        "steps": [
            {"id": "q", "tool": "nap", "args": {"seconds": 0}},
            {"id": "f", "tool": "forever"},
        ]
    }
    async for event in execute_plan(plan, {"nap": nap, "forever": forever}, on_event=on_event):
        if event.type is EventType.STEP_COMPLETE:
            break
    gc.collect()  # the abandoned generator is closed by the event loop's finaliser
    await asyncio.wait_for(finished.wait(), timeout=10)


async def test_cancelling_the_consumer_cancels_the_run() -> None:
    finishes: list[Any] = []

    async def forever() -> None:
        await asyncio.sleep(30)

    async def consume() -> None:
        async with aclosing(
            execute_plan(
                {"steps": [{"id": "f", "tool": "forever"}]},
                {"forever": forever},
                on_event=finishes.append,
            )
        ) as events:
            async for _ in events:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finishes[-1].type is EventType.FINISH
    assert finishes[-1].verdict is Verdict.FAILURE


async def test_a_slow_consumer_holds_the_run_back_instead_of_buffering() -> None:
    steps = [{"id": f"s{i}", "tool": "nap", "args": {"seconds": 0}} for i in range(40)]
    for i in range(1, 40):
        steps[i]["depends_on"] = [f"s{i - 1}"]
    plan = {"steps": steps}
    produced: list[int] = []
    consumed = 0
    async with aclosing(
        execute_plan(plan, TOOLS, buffer_size=2, on_event=lambda e: produced.append(1))
    ) as events:
        async for _ in events:
            consumed += 1
            await asyncio.sleep(0.001)
            assert len(produced) - consumed <= 4
    assert consumed == len(produced)


def test_execute_plan_sync_works_inside_a_running_event_loop() -> None:
    async def inside() -> Any:
        return execute_plan_sync(
            {"steps": [{"id": "a", "tool": "nap", "args": {"seconds": 0.01, "label": "x"}}]}, TOOLS
        )

    result = asyncio.run(inside())
    assert result.verdict is Verdict.SUCCESS
    assert result.outputs == {"a": "x"}
