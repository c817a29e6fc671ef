"""Sub-plan steps in the engine: nested events, outputs, inputs, the verdict mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import EventType, Verdict, execute_plan_sync
from marimo_engine.plans.subplans import PlanLibrary

from . import map_tools
from .conftest import collect, finish

pytestmark = pytest.mark.anyio

TOOLS = {
    "double": map_tools.double,
    "add": map_tools.add,
    "fail": map_tools.fail,
    "listing": map_tools.listing,
}

CHILD = {
    "id": "child",
    "inputs": {"n": {"description": "a number"}, "bonus": {"required": False, "default": 1}},
    "steps": [
        {"id": "c1", "tool": "double", "args": {"x": "$input.n"}, "output": True},
        {"id": "c2", "tool": "add", "args": {"values": ["$c1", "$input.bonus"]}, "output": True},
        {"id": "c3", "tool": "double", "args": {"x": "$c2"}},
    ],
}
UNMARKED = {"id": "unmarked", "steps": [{"id": "u1", "tool": "double", "args": {"x": 5}}]}
FAILING = {
    "id": "failing",
    "steps": [
        {"id": "f1", "tool": "double", "args": {"x": 1}},
        {"id": "f2", "tool": "fail", "args": {"message": "disk full"}},
    ],
}
ASKING = {
    "id": "asking",
    "steps": [{"id": "a1", "tool": "double", "args": {"x": 4}, "intervention_if": "$a1 > 5"}],
}
OUTER = {
    "id": "outer",
    "inputs": {"n": {}},
    "steps": [{"id": "o1", "plan": "child", "args": {"n": "$input.n"}}],
}
LIBRARY = PlanLibrary(
    {"child": CHILD, "unmarked": UNMARKED, "failing": FAILING, "asking": ASKING, "outer": OUTER}
)


def _parent(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "parent", "steps": [{"id": "p1", "tool": "double", "args": {"x": 3}}, *steps]}


async def test_a_sub_plan_runs_as_one_step_with_nested_events() -> None:
    plan = _parent(
        {"id": "p2", "plan": "child", "args": {"n": "$p1"}},
        {"id": "p3", "tool": "add", "args": {"values": ["$p2.c1", "$p2.c2"]}},
    )
    events = await collect(plan, TOOLS, plans=LIBRARY)
    end = finish(events)
    assert end.verdict is Verdict.SUCCESS
    assert end.outputs == {"p1": 6, "p2": {"c1": 12, "c2": 13}, "p3": 25}
    start = next(
        i for i, e in enumerate(events) if e.type is EventType.STEP_START and e.step_id == "p2"
    )
    done = next(
        i for i, e in enumerate(events) if e.type is EventType.STEP_COMPLETE and e.step_id == "p2"
    )
    nested = [e for e in events if e.parent_step_id is not None]
    assert nested == events[start + 1 : done]
    assert {e.parent_step_id for e in nested} == {"p2"}
    assert {e.plan_id for e in nested} == {"child"}
    assert [(e.type.value, e.step_id) for e in nested] == [
        ("STEP_START", "c1"),
        ("STEP_COMPLETE", "c1"),
        ("STEP_START", "c2"),
        ("STEP_COMPLETE", "c2"),
        ("STEP_START", "c3"),
        ("STEP_COMPLETE", "c3"),
    ]
    assert {e.run_id for e in events} == {events[0].run_id}
    assert nested[0].to_json()["parent_step_id"] == "p2"


async def test_without_marked_steps_the_output_is_every_completed_step() -> None:
    events = await collect(_parent({"id": "p2", "plan": "unmarked"}), TOOLS, plans=LIBRARY)
    assert finish(events).outputs["p2"] == {"u1": 10}


async def test_a_failing_sub_plan_fails_the_step_with_sub_plan_error() -> None:
    result = execute_plan_sync(_parent({"id": "p2", "plan": "failing"}), TOOLS, plans=LIBRARY)
    assert result.verdict is Verdict.FAILURE
    assert result.error is not None
    assert (result.error.type, result.error.step_id) == ("SubPlanError", "p2")
    assert result.error.message == (
        "the sub-plan 'failing' failed at step 'f2': RuntimeError: disk full"
    )
    nested_error = next(
        e for e in result.events if e.type is EventType.ERROR and e.parent_step_id == "p2"
    )
    assert nested_error.step_id == "f2"
    assert set(result.outputs) == {"p1"}


async def test_a_sub_plan_needing_a_person_stops_the_parent() -> None:
    result = execute_plan_sync(
        _parent(
            {"id": "p2", "plan": "asking"}, {"id": "p3", "tool": "double", "args": {"x": "$p2.a1"}}
        ),
        TOOLS,
        plans=LIBRARY,
    )
    assert result.verdict is Verdict.INTERVENTION_NEEDED
    assert result.intervention is not None
    assert result.intervention.step_id == "p2"
    assert result.intervention.expression == "sub-plan asking, step a1: $a1 > 5"
    assert result.intervention.output == {"a1": 8}
    assert result.outputs["p2"] == {"a1": 8}
    assert "p3" not in result.outputs


async def test_inputs_take_defaults_and_a_run_can_give_them() -> None:
    result = execute_plan_sync(CHILD, TOOLS, inputs={"n": 2, "bonus": 10})
    assert result.outputs == {"c1": 4, "c2": 14, "c3": 28}
    result = execute_plan_sync(CHILD, TOOLS, inputs={"n": 2})
    assert result.outputs["c2"] == 5
    missing = execute_plan_sync(CHILD, TOOLS)
    assert missing.verdict is Verdict.FAILURE
    assert missing.error is not None and missing.error.type == "UsageError"
    assert "needs the input 'n'" in missing.error.message


async def test_a_sub_plan_of_a_sub_plan_nests_its_events_under_its_own_step() -> None:
    events = await collect(
        _parent({"id": "p2", "plan": "outer", "args": {"n": 1}}), TOOLS, plans=LIBRARY
    )
    end = finish(events)
    assert end.outputs["p2"] == {"o1": {"c1": 2, "c2": 3}}
    deep = [e for e in events if e.plan_id == "child"]
    assert deep and {e.parent_step_id for e in deep} == {"o1"}
    middle = [e for e in events if e.plan_id == "outer"]
    assert middle and {e.parent_step_id for e in middle} == {"p2"}


async def test_a_plan_file_next_to_the_parent(tmp_path: Path) -> None:
    (tmp_path / "child.json").write_text(json.dumps(CHILD), encoding="utf-8")
    plan = _parent({"id": "p2", "plan": "child.json", "args": {"n": 2}})
    result = execute_plan_sync(plan, TOOLS, plans=PlanLibrary(base_dir=tmp_path))
    assert result.outputs["p2"] == {"c1": 4, "c2": 5}
    result = execute_plan_sync(plan, TOOLS)  # the current directory holds no child.json
    assert result.verdict is Verdict.FAILURE
    assert result.error is not None and result.error.problems
    assert result.error.problems[0].code.value == "unknown_plan"


async def test_a_journaled_run_with_a_sub_plan_records_the_step(tmp_path: Path) -> None:
    from marimo_engine import list_runs

    journal = str(tmp_path / "runs.sqlite")
    plan = _parent({"id": "p2", "plan": "child", "args": {"n": "$p1"}})
    result = execute_plan_sync(plan, TOOLS, plans=LIBRARY, journal=journal, run_id="with-sub")
    assert result.verdict is Verdict.SUCCESS
    [run] = list_runs(journal)
    assert (run.run_id, run.status) == ("with-sub", "SUCCESS")


async def test_a_run_stopped_in_its_sub_plan_resumes_with_a_persons_decision(
    tmp_path: Path,
) -> None:
    from marimo_engine import Decision, resume_run

    journal = str(tmp_path / "runs.sqlite")
    plan = _parent(
        {"id": "p2", "plan": "asking"},
        {"id": "p3", "tool": "double", "args": {"x": "$p2.a1"}},
    )
    first = execute_plan_sync(plan, TOOLS, plans=LIBRARY, journal=journal, run_id="asks")
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    assert first.intervention is not None
    assert first.outputs["p2"] == {"a1": 8}  # completed with what the sub-plan returned
    run = resume_run("asks", TOOLS, journal=journal, decision=Decision.approve(), plans=LIBRARY)
    events = [event async for event in run]
    # The person approved: the sub-plan's output stands, and the run goes on after it.
    assert run.result.verdict is Verdict.SUCCESS
    assert run.result.outputs["p3"] == 16
    assert not [e for e in events if e.parent_step_id is not None]  # not run again
