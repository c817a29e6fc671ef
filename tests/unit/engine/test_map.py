"""`map` steps in the engine: order, the concurrency bound, failures, collect, empty lists."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan_sync

from . import map_tools
from .conftest import collect, finish

pytestmark = pytest.mark.anyio

TOOLS = {
    "listing": map_tools.listing,
    "measure": map_tools.measure,
    "measure_sync": map_tools.measure_sync,
}


def _plan(count: int = 4, **step: Any) -> dict[str, Any]:
    mapped = {
        "id": "sizes",
        "tool": "measure",
        "map": "$files",
        "args": {"name": "$item", "position": "$index"},
        **step,
    }
    return {
        "id": "mapping",
        "steps": [{"id": "files", "tool": "listing", "args": {"count": count}}, mapped],
    }


async def test_results_are_in_item_order_whatever_order_the_calls_end_in() -> None:
    events = await collect(_plan(6), TOOLS)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    sizes = end.outputs["sizes"]
    assert [s["position"] for s in sizes] == [0, 1, 2, 3, 4, 5]
    assert [s["name"] for s in sizes] == [f"f{i}.csv" for i in range(6)]
    complete = [e for e in events if e.type is EventType.STEP_COMPLETE and e.step_id == "sizes"]
    assert len(complete) == 1 and complete[0].msg.endswith("(6 items).")


def _gauge() -> tuple[dict[str, int], Any]:
    state = {"now": 0, "most": 0}

    async def gauged(name: str) -> str:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return name

    return state, gauged


async def test_map_concurrency_bounds_the_items_in_flight() -> None:
    state, gauged = _gauge()
    plan = _plan(10, tool="gauged", args={"name": "$item"}, map_concurrency=3)
    events = await collect(plan, {**TOOLS, "gauged": gauged})
    assert finish(events).verdict is Verdict.SUCCESS
    assert state["most"] == 3


async def test_max_workers_bounds_a_map_without_map_concurrency() -> None:
    state, gauged = _gauge()
    plan = _plan(10, tool="gauged", args={"name": "$item"})
    events = await collect(plan, {**TOOLS, "gauged": gauged}, max_workers=2)
    assert finish(events).outputs["sizes"] == [f"f{i}.csv" for i in range(10)]
    assert state["most"] == 2


async def test_map_concurrency_above_max_workers_is_bounded_by_max_workers() -> None:
    state, gauged = _gauge()
    plan = _plan(10, tool="gauged", args={"name": "$item"}, map_concurrency=8)
    await collect(plan, {**TOOLS, "gauged": gauged}, max_workers=4)
    assert state["most"] == 4


async def test_a_plain_function_maps_on_the_worker_pool() -> None:
    plan = _plan(5, tool="measure_sync", args={"name": "$item"})
    events = await collect(plan, TOOLS, max_workers=2)
    assert finish(events).outputs["sizes"] == [6, 6, 6, 6, 6]


async def test_a_failing_item_fails_the_step_with_its_index() -> None:
    tools = {**TOOLS, "listing": lambda count: ["ok.csv", "bad.csv", "ok2.csv"]}
    events = await collect(_plan(), tools)
    end = finish(events)
    assert end.verdict is Verdict.FAILURE
    errors = [e for e in events if e.type is EventType.ERROR]
    assert len(errors) == 1
    error = errors[0]
    assert (error.step_id, error.item) == ("sizes", 1)
    assert error.error is not None and error.error.type == "ValueError"
    assert error.error.message == "item 1: cannot read bad.csv"
    assert error.msg == "Step 'sizes' failed: ValueError: item 1: cannot read bad.csv"
    assert error.to_json()["item"] == 1
    assert "sizes" not in end.outputs


async def test_collect_returns_the_errors_in_place() -> None:
    tools = {**TOOLS, "listing": lambda count: ["ok.csv", "bad.csv", "ok2.csv"]}
    events = await collect(_plan(map_errors="collect"), tools)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    first, second, third = end.outputs["sizes"]
    assert first["name"] == "ok.csv" and third["name"] == "ok2.csv"
    assert second == {"error": "ValueError", "message": "cannot read bad.csv", "index": 1}
    complete = next(
        e
        for e in events
        if e.type is EventType.STEP_COMPLETE and e.item is None and e.step_id == "sizes"
    )
    assert complete.msg.endswith("(3 items, 1 failed and collected).")


async def test_an_empty_list_is_an_empty_output() -> None:
    events = await collect(_plan(0), TOOLS)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    assert end.outputs["sizes"] == []


async def test_map_over_something_that_is_not_a_list_fails_the_step() -> None:
    plan = _plan()
    plan["steps"][1]["map"] = "$files.0"
    events = await collect(plan, TOOLS)
    error = next(e for e in events if e.type is EventType.ERROR)
    assert error.error is not None and error.error.type == "TypeError"
    assert error.error.message == (
        "'map' of step 'sizes' is '$files.0', which is str 'f0.csv', not a list; map over a "
        "list (such as '$s1.files')."
    )


async def test_run_if_with_item_skips_items_and_without_skips_the_step() -> None:
    per_item = _plan(4, run_if="$index != 1 and $item != 'f3.csv'")
    events = await collect(per_item, TOOLS)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    sizes = end.outputs["sizes"]
    assert [s is None for s in sizes] == [False, True, False, True]
    skipped = [e for e in events if e.type is EventType.STEP_SKIPPED]
    assert sorted(e.item for e in skipped) == [1, 3]
    result = execute_plan_sync(per_item, TOOLS)
    assert result.skipped == []  # an item's skip is not the step's

    whole = _plan(4, run_if="$files.0 == 'none'")
    result = execute_plan_sync(whole, TOOLS)
    assert result.skipped == ["sizes"]
    skip = next(e for e in result.events if e.type is EventType.STEP_SKIPPED)
    assert skip.item is None


async def test_retries_and_timeouts_are_per_item() -> None:
    calls: dict[int, int] = {}

    async def flaky(position: int) -> int:
        calls[position] = calls.get(position, 0) + 1
        if position == 2 and calls[position] == 1:
            raise ConnectionError("dropped")
        if position == 3 and calls[position] == 1:
            await asyncio.sleep(30)
        return position

    plan = _plan(5, tool="flaky", args={"position": "$index"}, retries=1, timeout_s=2.0)
    events = await collect(plan, {**TOOLS, "flaky": flaky})
    assert finish(events).outputs["sizes"] == [0, 1, 2, 3, 4]
    retries = sorted(
        (e.item, e.error.type if e.error else None)
        for e in events
        if e.type is EventType.STEP_RETRY
    )
    assert retries == [(2, "ConnectionError"), (3, "TimeoutError")]
    assert calls == {0: 1, 1: 1, 2: 2, 3: 2, 4: 1}


async def test_intervention_if_with_item_names_the_item() -> None:
    plan = _plan(4, intervention_if="$index >= 2 and $sizes.position >= 2")
    events = await collect(plan, TOOLS)
    end = finish(events)
    assert end.verdict is Verdict.INTERVENTION_NEEDED
    needed = next(e for e in events if e.type is EventType.INTERVENTION_NEEDED)
    assert needed.item == 2
    assert len(needed.output) == 4

    whole = _plan(4, intervention_if="$sizes.3.size > 5")
    needed = next(e for e in await collect(whole, TOOLS) if e.type is EventType.INTERVENTION_NEEDED)
    assert needed.item is None


async def test_events_of_other_steps_leave_item_out_of_their_json() -> None:
    events = await collect(_plan(2), TOOLS)
    for event in events:
        assert "item" not in event.to_json()
        assert "parent_step_id" not in json.loads(event.to_json_line())


async def test_a_journaled_map_step_resumes_from_its_output(tmp_path: Any) -> None:
    journal = tmp_path / "runs.sqlite"
    first = execute_plan_sync(_plan(3), TOOLS, journal=str(journal), run_id="map-run")
    assert first.verdict is Verdict.SUCCESS
    from marimo_engine import list_runs

    runs = list_runs(str(journal))
    assert [r.run_id for r in runs] == ["map-run"]
