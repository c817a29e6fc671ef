"""A tool that a timeout or a cancellation cannot stop never holds the run (issue 9, item 3).

And a profiler, tracer or debugger in the process does not hang the engine
(issue 9, item 7): the worker's pending interruption is cleared only when
one was sent.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from contextlib import aclosing
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan, execute_plan_sync

from .conftest import collect, finish

pytestmark = pytest.mark.anyio

BOUND_S = 60.0  # generous: without the fix these runs never end at all


def _stuck_threads(gate: threading.Event) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if getattr(t, "_marimo_gate", None) is gate]


async def test_a_blocking_tool_past_its_timeout_ends_the_run_at_once() -> None:
    gate = threading.Event()  # never set while the run lasts: the tool blocks in C

    def block() -> str:
        threading.current_thread()._marimo_gate = gate  # type: ignore[attr-defined]
        gate.wait()
        return "late"

    plan = {
        "steps": [
            {"id": "stuck", "tool": "block", "timeout_s": 0.5},
            {"id": "after", "tool": "block", "depends_on": ["stuck"]},
        ]
    }
    try:
        events = await asyncio.wait_for(collect(plan, {"block": block}), BOUND_S)
        end = finish(events)
        assert end.verdict is Verdict.FAILURE
        errors = [e for e in events if e.type is EventType.ERROR]
        assert [(e.step_id, e.error.type) for e in errors] == [("stuck", "TimeoutError")]
        assert end.abandoned == ["stuck"]
        assert "abandoned" in end.msg and "'stuck'" in end.msg
        assert "after" not in {e.step_id for e in events}
        assert len(_stuck_threads(gate)) == 1  # left running, not joined
        assert _stuck_threads(gate)[0].daemon  # so it cannot hold the process at exit
    finally:
        gate.set()
    for thread in _stuck_threads(gate):
        thread.join(BOUND_S)
    assert _stuck_threads(gate) == []  # it ends on its own once the tool returns


async def test_closing_the_stream_does_not_wait_for_a_blocking_tool() -> None:
    gate = threading.Event()
    finishes: list[Any] = []

    def block() -> None:
        gate.wait()

    plan = {"steps": [{"id": "b", "tool": "block"}]}
    try:

        async def consume() -> None:
            async with aclosing(
                execute_plan(plan, {"block": block}, on_event=finishes.append)
            ) as events:
                async for event in events:
                    if event.type is EventType.STEP_START:
                        break

        await asyncio.wait_for(consume(), BOUND_S)
        assert finishes[-1].type is EventType.FINISH
        assert finishes[-1].abandoned == ["b"]
    finally:
        gate.set()


def test_execute_plan_sync_does_not_wait_for_a_blocking_tool() -> None:
    gate = threading.Event()

    def block() -> None:
        gate.wait()

    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(
            execute_plan_sync(
                {"steps": [{"id": "b", "tool": "block", "timeout_s": 0.3}]}, {"block": block}
            )
        ),
        daemon=True,
    )
    runner.start()
    runner.join(BOUND_S)
    gate.set()
    assert done, "execute_plan_sync waited for the blocked worker"
    assert done[0].verdict is Verdict.FAILURE
    assert done[0].error.type == "TimeoutError"
    assert done[0].events[-1].abandoned == ["b"]


@pytest.mark.parametrize("returns", [True, False], ids=["returns-a-value", "raises-its-own-error"])
async def test_an_async_tool_that_swallows_its_cancellation_is_a_timeout(returns: bool) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if returns:
                return "I ignored the timeout"
            raise ValueError("cleanup failed") from None
        return "slept"

    events = await asyncio.wait_for(
        collect(
            {"steps": [{"id": "s", "tool": "stubborn", "timeout_s": 0.3}]}, {"stubborn": stubborn}
        ),
        BOUND_S,
    )
    end = finish(events)
    assert end.verdict is Verdict.FAILURE
    assert "s" not in (end.outputs or {})
    error = next(e for e in events if e.type is EventType.ERROR).error
    assert error.type in {"TimeoutError", "ValueError"}
    if returns:
        assert error.type == "TimeoutError"


# -- issue 9, item 7: tracers and profilers ------------------------------------------------


def _tracer(frame: Any, event: str, arg: Any) -> Any:
    return _tracer


def _profiler(frame: Any, event: str, arg: Any) -> None:
    return None


def _plain(x: int) -> int:
    return x + 1


PLAN = {
    "steps": [
        {"id": "a", "tool": "plain", "args": {"x": 1}},
        {"id": "b", "tool": "plain", "args": {"x": "$a"}},
        {"id": "c", "tool": "plain", "args": {"x": "$b"}},
    ]
}


def _run_in_thread(setup: Any, teardown: Any) -> list[Any]:
    """Run PLAN twice, then unrelated code, hooked in that thread and its workers."""
    results: list[Any] = []

    def body() -> None:
        setup()
        try:
            for _ in range(2):
                results.append(execute_plan_sync(PLAN, {"plain": _plain}))
            results.append(sum(_plain(i) for i in range(1000)))  # profiling unrelated code
        finally:
            teardown()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), "the engine hung under the tracer/profiler"
    return results


@pytest.mark.parametrize("hook", ["settrace", "setprofile"])
def test_the_engine_runs_under_a_tracer_or_profiler(hook: str) -> None:
    set_here = getattr(sys, hook)
    set_threads = getattr(threading, hook)
    function = _tracer if hook == "settrace" else _profiler

    def setup() -> None:
        set_threads(function)  # the engine's worker threads, as profilers and coverage do
        set_here(function)

    def teardown() -> None:
        set_here(None)
        set_threads(None)

    results = _run_in_thread(setup, teardown)
    assert [r.verdict for r in results[:2]] == [Verdict.SUCCESS, Verdict.SUCCESS]
    assert results[0].outputs == {"a": 2, "b": 3, "c": 4}
    assert results[2] == sum(i + 1 for i in range(1000))


async def test_a_try_that_cannot_be_stopped_is_not_retried_beside_itself() -> None:
    gate = threading.Event()
    starts: list[int] = []

    def block() -> None:
        starts.append(1)
        gate.wait()

    plan = {"steps": [{"id": "b", "tool": "block", "timeout_s": 0.3, "retries": 3}]}
    try:
        events = await asyncio.wait_for(collect(plan, {"block": block}), BOUND_S)
    finally:
        gate.set()
    assert [e.type for e in events if e.step_id == "b"] == [EventType.STEP_START, EventType.ERROR]
    error = next(e for e in events if e.type is EventType.ERROR).error
    assert error.type == "TimeoutError" and "not retried" in error.message
    assert starts == [1]


async def test_a_try_that_stops_when_interrupted_is_retried() -> None:
    tries: list[int] = []

    def spin() -> str:
        tries.append(1)
        if len(tries) == 1:
            while True:  # pure Python: the interruption lands at once
                pass
        return "second try"

    plan = {"steps": [{"id": "s", "tool": "spin", "timeout_s": 0.3, "retries": 1}]}
    events = await asyncio.wait_for(collect(plan, {"spin": spin}), BOUND_S)
    assert finish(events).verdict is Verdict.SUCCESS
    assert finish(events).outputs == {"s": "second try"}
    assert [e.type for e in events if e.step_id == "s"] == [
        EventType.STEP_START,
        EventType.STEP_RETRY,
        EventType.STEP_COMPLETE,
    ]
    assert finish(events).abandoned is None


async def test_idle_workers_exit_and_the_pool_starts_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A notebook's pool is never shut down: its idle workers leave on their own."""
    import time

    from marimo_engine.engine import _threads

    monkeypatch.setattr(_threads, "IDLE_EXIT_S", 0.1)
    pool = _threads.WorkerPool(2, name="marimo-engine-idle-test")

    def mine() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("marimo-engine-idle-test")]

    assert await pool.run(lambda: 1, {}) == 1
    deadline = time.monotonic() + BOUND_S
    while mine() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mine() == []
    assert await pool.run(lambda: 2, {}) == 2  # a new worker takes the next call
    pool.shutdown()
