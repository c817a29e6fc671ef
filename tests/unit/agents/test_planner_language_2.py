"""The planner agent and plan language 2: the model sees `map` and sub-plans and may use them."""

from __future__ import annotations

import pytest

from marimo_engine.agents import PlannerAgent
from marimo_engine.engine.events import EventType, Verdict
from marimo_engine.tools.registry import ToolRegistry
from tests.unit.agents.scripted import ScriptedPlanner
from tests.unit.agents.tools import planner_registry


def readings(count: int) -> list[float]:
    """Read `count` oxygen levels, in percent.

    Args:
        count: How many readings.
    """
    return [20.0 + i for i in range(count)]


def registry() -> ToolRegistry:
    tools = planner_registry()
    tools.register(readings)
    return tools


MAPPED = {
    "name": "each reading",
    "steps": [
        {"id": "levels", "tool": "readings", "args": {"count": 3}},
        {
            "id": "lines",
            "tool": "summarize",
            "map": "$levels",
            "args": {"value": "$item", "label": "reading $index"},
        },
    ],
}
ITEM_OUTSIDE_MAP = {
    "name": "no map",
    "steps": [
        {"id": "levels", "tool": "readings", "args": {"count": 3}},
        {"id": "lines", "tool": "summarize", "args": {"value": "$item"}},
    ],
}


@pytest.mark.anyio
async def test_the_model_sees_map_and_sub_plans_in_the_schema_and_instructions() -> None:
    script = ScriptedPlanner([MAPPED])
    await PlannerAgent(script.model(), registry()).run("summarise each reading")
    info = script.infos[0]
    schema = info.output_tools[0].parameters_json_schema
    defs = schema.get("$defs", {})
    items = schema["properties"]["steps"]["items"]
    step = (defs["Step"] if "$ref" in items else items)["properties"]
    assert {"map", "map_concurrency", "map_errors", "plan", "output"} <= set(step)
    assert "$item" in step["map"]["description"]
    assert "inputs" in schema["properties"]
    assert info.instructions is not None
    assert '"map": "$ID.PATH"' in info.instructions
    assert '"$item" is the item' in info.instructions


@pytest.mark.anyio
async def test_a_scripted_model_maps_a_tool_over_a_list() -> None:
    script = ScriptedPlanner([ITEM_OUTSIDE_MAP, MAPPED])
    result = await PlannerAgent(script.model(), registry()).run("summarise each reading")
    assert result.verdict is Verdict.SUCCESS
    # The first plan used $item without map: the problem went back to the model.
    assert "item_outside_map" in script.told(1)
    assert result.execution.outputs["lines"] == [
        "reading 0: 20",
        "reading 1: 21",
        "reading 2: 22",
    ]
    complete = [
        e
        for e in result.execution.events
        if e.type is EventType.STEP_COMPLETE and e.step_id == "lines"
    ]
    assert len(complete) == 1 and complete[0].msg.endswith("(3 items).")
