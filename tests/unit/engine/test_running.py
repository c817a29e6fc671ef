"""Every clause of the spec's "Running" section, through the public API."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan_sync
from marimo_engine.tools.examples import example_registry

from .conftest import collect, finish, types

pytestmark = pytest.mark.anyio

E = EventType


@dataclass(frozen=True)
class Reading:
    level: float
    items: tuple[str, ...] = ("a", "b")


def reading(level: float = 20.9) -> Reading:
    return Reading(level=level)


def echo(value: Any = None) -> Any:
    return value


async def aecho(value: Any = None) -> Any:
    await asyncio.sleep(0)
    return value


def boom(message: str = "sensor offline") -> None:
    raise RuntimeError(message)


TOOLS = {"reading": reading, "echo": echo, "aecho": aecho, "boom": boom}


# -- clause 1 and the frame: START, STEP_START, exactly one FINISH --------------------------------


async def test_a_run_starts_with_start_and_ends_with_exactly_one_finish() -> None:
    plan = {
        "id": "p1",
        "steps": [
            {"id": "a", "tool": "reading"},
            {"id": "b", "tool": "echo", "args": {"value": "$a.level"}},
        ],
    }
    events = await collect(plan, TOOLS)
    assert types(events) == [
        E.START,
        E.STEP_START,
        E.STEP_COMPLETE,
        E.STEP_START,
        E.STEP_COMPLETE,
        E.FINISH,
    ]
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    assert end.outputs == {"a": Reading(20.9), "b": 20.9}
    assert {e.plan_id for e in events} == {"p1"}
    assert events[0].step_id is None and end.step_id is None
    assert all(e.msg for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)


async def test_a_plan_without_id_gets_one_carried_on_every_event() -> None:
    events = await collect({"steps": [{"id": "a", "tool": "echo"}]}, TOOLS)
    ids = {e.plan_id for e in events}
    assert len(ids) == 1
    assert ids.pop().startswith("plan-")


# -- clause 2: skips ---------------------------------------------------------------------------


async def test_run_if_false_skips_the_step_with_a_reason_and_no_output() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "reading"},
            {"id": "b", "tool": "echo", "args": {"value": 1}, "run_if": "$a.level < 19.5"},
        ]
    }
    events = await collect(plan, TOOLS)
    assert types(events, "b") == [E.STEP_START, E.STEP_SKIPPED]
    skipped = events[types(events).index(E.STEP_SKIPPED)]
    assert skipped.reason == "run_if is false: $a.level < 19.5"
    assert skipped.expression == "$a.level < 19.5"
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    assert "b" not in end.outputs


async def test_a_skip_propagates_to_every_dependent_step() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "echo", "args": {"value": 1}, "run_if": "1 > 2"},
            {"id": "b", "tool": "echo", "args": {"value": "$a"}},
            {"id": "c", "tool": "echo", "depends_on": ["b"]},
            {"id": "d", "tool": "echo", "args": {"value": 4}},
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    assert result.verdict is Verdict.SUCCESS
    assert result.skipped == ["a", "b", "c"]
    assert result.outputs == {"d": 4}
    reasons = {e.step_id: e.reason for e in result.events if e.type is E.STEP_SKIPPED}
    assert reasons == {
        "a": "run_if is false: 1 > 2",
        "b": "dependency 'a' was skipped",
        "c": "dependency 'b' was skipped",
    }
    for step_id in "abc":
        assert types(result.events, step_id) == [E.STEP_START, E.STEP_SKIPPED]


# -- clause 3: references resolved, tools called, plain functions off the loop ------------------


async def test_references_keep_types_interpolate_and_walk_paths() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "reading", "args": {"level": 14.5}},
            {
                "id": "b",
                "tool": "aecho",
                "args": {
                    "value": {
                        "whole": "$a",
                        "level": "$a.level",
                        "item": "$a.items.1",
                        "text": "O2 is $a.level % ($$5)",
                        "nested": ["$a.level", {"deep": "$a.items.0"}],
                    }
                },
            },
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    assert result.verdict is Verdict.SUCCESS, result.error
    assert result.outputs["b"] == {
        "whole": Reading(14.5),
        "level": 14.5,
        "item": "b",
        "text": "O2 is 14.5 % ($5)",
        "nested": [14.5, {"deep": "a"}],
    }


async def test_plain_functions_run_in_worker_threads_and_coroutines_on_the_loop() -> None:
    seen: dict[str, int] = {}

    def plain() -> None:
        seen["plain"] = threading.get_ident()

    async def coro() -> None:
        seen["coro"] = threading.get_ident()

    await collect(
        {"steps": [{"id": "p", "tool": "plain"}, {"id": "c", "tool": "coro"}]},
        {"plain": plain, "coro": coro},
    )
    assert seen["coro"] == threading.get_ident()
    assert seen["plain"] != threading.get_ident()


async def test_a_missing_path_in_an_output_is_an_error_naming_the_reference() -> None:
    # `echo` declares no output type, so validation cannot see the path is missing.
    plan = {
        "steps": [
            {"id": "a", "tool": "echo", "args": {"value": {"level": 20.9}}},
            {"id": "b", "tool": "echo", "args": {"value": "$a.pressure"}},
        ]
    }
    events = await collect(plan, TOOLS)
    error = next(e for e in events if e.type is E.ERROR)
    assert error.step_id == "b"
    assert error.error is not None
    assert error.error.type == "UnknownReferenceError"
    assert "$a.pressure" in error.error.message
    assert finish(events).verdict is Verdict.FAILURE


async def test_a_type_error_in_an_expression_is_an_error_of_that_step() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "echo"},
            {"id": "b", "tool": "echo", "run_if": "$a < 15"},
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    assert result.verdict is Verdict.FAILURE
    assert result.error is not None
    assert result.error.step_id == "b"
    assert result.error.type == "ExpressionError"


# -- clause 4: errors, retries, timeouts, fail-fast --------------------------------------------


async def test_an_error_stops_new_steps_and_lets_running_ones_finish() -> None:
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    async def failing() -> None:
        await started.wait()
        raise ValueError("bad reading")

    plan = {
        "steps": [
            {"id": "slow", "tool": "slow"},
            {"id": "bad", "tool": "failing"},
            {"id": "after", "tool": "echo", "depends_on": ["bad"]},
            {"id": "later", "tool": "echo", "depends_on": ["slow"]},
        ]
    }
    events = await collect(plan, {"slow": slow, "failing": failing, "echo": echo})
    error = next(e for e in events if e.type is E.ERROR)
    assert error.step_id == "bad"
    assert error.error is not None
    assert (error.error.type, error.error.message) == ("ValueError", "bad reading")
    assert types(events, "slow") == [E.STEP_START, E.STEP_COMPLETE]
    assert types(events, "after") == [] and types(events, "later") == []
    end = finish(events)
    assert end.verdict is Verdict.FAILURE
    assert end.outputs == {"slow": "finished"}


async def test_retries_emit_step_retry_with_attempt_and_error_then_succeed() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)} dropped")
        return "ok"

    events = await collect(
        {"steps": [{"id": "f", "tool": "flaky", "retries": 3}]}, {"flaky": flaky}
    )
    assert types(events, "f") == [E.STEP_START, E.STEP_RETRY, E.STEP_RETRY, E.STEP_COMPLETE]
    retries = [e for e in events if e.type is E.STEP_RETRY]
    assert [r.attempt for r in retries] == [2, 3]
    assert [r.error.message for r in retries if r.error] == ["try 1 dropped", "try 2 dropped"]
    assert [r.error.type for r in retries if r.error] == ["ConnectionError"] * 2
    # the spec's backoff: 0.1 s, then 0.2 s
    assert retries[1].timestamp - retries[0].timestamp >= 0.1
    complete = events[-2]
    assert complete.attempt == 3
    assert finish(events).verdict is Verdict.SUCCESS


async def test_an_error_after_the_last_retry_fails_the_run() -> None:
    events = await collect({"steps": [{"id": "b", "tool": "boom", "retries": 1}]}, TOOLS)
    assert types(events, "b") == [E.STEP_START, E.STEP_RETRY, E.ERROR]
    assert events[-2].attempt == 2
    assert finish(events).verdict is Verdict.FAILURE


@pytest.mark.parametrize("kind", ["coroutine", "plain"])
async def test_a_timeout_is_an_error_of_type_timeout_error(kind: str) -> None:
    async def slow_coro() -> None:
        await asyncio.sleep(5)

    def slow_plain() -> None:
        total = 0
        for i in range(10**9):  # pure Python, so the interruption lands at once
            total += i

    tool = slow_coro if kind == "coroutine" else slow_plain
    loop = asyncio.get_running_loop()
    began = loop.time()
    events = await collect(
        {"steps": [{"id": "s", "tool": "slow", "timeout_s": 0.2}]}, {"slow": tool}
    )
    assert loop.time() - began < 3
    error = next(e for e in events if e.type is E.ERROR)
    assert error.error is not None and error.error.type == "TimeoutError"
    assert finish(events).verdict is Verdict.FAILURE


async def test_a_timeout_is_retried_like_an_error() -> None:
    tries: list[int] = []

    async def sometimes_slow() -> str:
        tries.append(1)
        if len(tries) == 1:
            await asyncio.sleep(5)
        return "fast enough"

    result = execute_plan_sync(
        {"steps": [{"id": "s", "tool": "t", "timeout_s": 0.2, "retries": 1}]}, {"t": sometimes_slow}
    )
    assert result.verdict is Verdict.SUCCESS
    retry = next(e for e in result.events if e.type is E.STEP_RETRY)
    assert retry.error is not None and retry.error.type == "TimeoutError"


class Halt(BaseException):
    """A BaseException that is not an Exception."""


@pytest.mark.parametrize("kind", ["coroutine", "plain"])
@pytest.mark.parametrize("exc_type", [Halt, KeyboardInterrupt, SystemExit])
async def test_a_base_exception_from_a_tool_is_an_error_not_a_crash(
    kind: str, exc_type: type[BaseException]
) -> None:
    async def coro() -> None:
        raise exc_type("stop now")

    def plain() -> None:
        raise exc_type("stop now")

    events = await collect(
        {"steps": [{"id": "x", "tool": "t"}, {"id": "y", "tool": "echo", "depends_on": ["x"]}]},
        {"t": coro if kind == "coroutine" else plain, "echo": echo},
    )
    error = next(e for e in events if e.type is E.ERROR)
    assert error.error is not None and error.error.type == exc_type.__name__
    assert types(events, "y") == []
    assert finish(events).verdict is Verdict.FAILURE


# -- clause 5: STEP_COMPLETE with output and key finding ---------------------------------------


async def test_step_complete_carries_output_and_key_finding() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "reading", "key_finding": True},
            {"id": "b", "tool": "echo", "args": {"value": 3}},
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    completes = {e.step_id: e for e in result.events if e.type is E.STEP_COMPLETE}
    assert completes["a"].output == Reading(20.9) and completes["a"].key_finding is True
    assert completes["b"].output == 3 and completes["b"].key_finding is False
    assert completes["a"].duration_s is not None and completes["a"].duration_s >= 0
    assert result.key_findings == {"a": Reading(20.9)}


# -- clause 6: intervention --------------------------------------------------------------------


async def test_intervention_stops_new_steps_and_sets_the_verdict() -> None:
    plan = {
        "steps": [
            {
                "id": "o2",
                "tool": "reading",
                "args": {"level": 14.0},
                "intervention_if": "$o2.level < 15",
            },
            {"id": "next", "tool": "echo", "args": {"value": "$o2.level"}},
        ]
    }
    events = await collect(plan, TOOLS)
    assert types(events) == [
        E.START,
        E.STEP_START,
        E.STEP_COMPLETE,
        E.INTERVENTION_NEEDED,
        E.FINISH,
    ]
    stop = events[3]
    assert (stop.step_id, stop.expression, stop.output) == ("o2", "$o2.level < 15", Reading(14.0))
    end = finish(events)
    assert end.verdict is Verdict.INTERVENTION_NEEDED
    assert end.outputs == {"o2": Reading(14.0)}


async def test_intervention_that_does_not_fire_lets_the_run_go_on() -> None:
    plan = {
        "steps": [
            {"id": "o2", "tool": "reading", "intervention_if": "$o2.level < 15"},
            {"id": "next", "tool": "echo", "args": {"value": "$o2.level"}},
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    assert result.verdict is Verdict.SUCCESS
    assert result.intervention is None
    assert result.outputs["next"] == 20.9


async def test_intervention_lets_running_steps_finish() -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "done"

    async def alarm() -> int:
        release.set()
        return 1

    plan = {
        "steps": [
            {"id": "slow", "tool": "slow"},
            {"id": "alarm", "tool": "alarm", "intervention_if": "$alarm == 1"},
            {"id": "after", "tool": "echo", "depends_on": ["alarm"]},
        ]
    }
    result = execute_plan_sync(plan, {"slow": slow, "alarm": alarm, "echo": echo})
    assert result.verdict is Verdict.INTERVENTION_NEEDED
    assert result.outputs == {"slow": "done", "alarm": 1}
    assert result.intervention is not None and result.intervention.step_id == "alarm"


# -- invalid plans -----------------------------------------------------------------------------


async def test_an_invalid_plan_runs_nothing_and_does_not_raise() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "nope"},
            {"id": "b", "tool": "echo", "args": {"value": "$zz.level"}},
        ]
    }
    events = await collect(plan, TOOLS)
    assert types(events) == [E.START, E.ERROR, E.FINISH]
    error = events[1].error
    assert error is not None and error.type == "PlanValidationError"
    assert error.problems is not None
    assert {p.code for p in error.problems} == {"unknown_tool", "unknown_reference"}
    assert finish(events).verdict is Verdict.FAILURE


@pytest.mark.parametrize("plan", ["{not json", "[]", '{"steps": []}', 42])
async def test_malformed_plans_end_in_failure_with_problems(plan: Any) -> None:
    result = execute_plan_sync(plan, TOOLS)
    assert result.verdict is Verdict.FAILURE
    assert result.error is not None and result.error.type == "PlanValidationError"
    assert result.error.problems
    assert [e.type for e in result.events] == [E.START, E.ERROR, E.FINISH]


# -- results -----------------------------------------------------------------------------------


def test_events_and_results_serialise_to_json() -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "reading", "key_finding": True},
            {"id": "b", "tool": "echo", "args": {"value": {1, 2}}, "run_if": "$a.level > 50"},
        ]
    }
    result = execute_plan_sync(plan, TOOLS)
    data = json.loads(result.model_dump_json())
    assert data["verdict"] == "SUCCESS"
    assert data["outputs"]["a"] == {"level": 20.9, "items": ["a", "b"]}
    assert data["skipped"] == ["b"]
    assert data["events"][-1]["type"] == "FINISH"
    for event in result.events:
        line = json.loads(event.to_json_line())
        assert line["type"] == event.type.value
        assert "plan_id" in line and "timestamp" in line and "msg" in line
    assert "plan_run.step('a')" in (result.notebook or "")


def test_the_example_plans_run_with_the_example_tools() -> None:
    from marimo_engine.examples import load_example

    result = execute_plan_sync(load_example("hull-check-7"), example_registry())
    assert result.verdict is Verdict.SUCCESS
    assert set(result.outputs) == {"s1", "s2"}
    assert result.skipped == ["s3"]
