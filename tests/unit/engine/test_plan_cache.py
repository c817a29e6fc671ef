"""A plan run again is validated and compiled once; anything that changes it is checked again."""

from __future__ import annotations

from typing import Any

import pytest

from marimo_engine import Verdict, execute_plan_sync
from marimo_engine.engine import _plan_cache
from marimo_engine.plans import validation
from marimo_engine.tools.registry import ToolRegistry


def double(x: int = 1) -> int:
    return 2 * x


def triple(x: int = 1) -> int:
    return 3 * x


PLAN = {
    "id": "cached",
    "steps": [
        {"id": "a", "tool": "f", "args": {"x": 2}},
        {"id": "b", "tool": "f", "args": {"x": "$a"}},
    ],
}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call of `check_plan` (validation) from now on."""
    _plan_cache.clear()
    calls: list[Any] = []
    real = validation.check_plan

    def counted(plan: Any, tools: Any = None, **options: Any) -> Any:
        calls.append(plan)
        return real(plan, tools, **options)

    monkeypatch.setattr(validation, "check_plan", counted)
    return calls


def test_the_same_plan_and_tools_are_checked_once(checks: list[Any]) -> None:
    first = execute_plan_sync(PLAN, {"f": double})
    again = execute_plan_sync(dict(PLAN), {"f": double})
    assert first.outputs == again.outputs == {"a": 4, "b": 8}
    assert len(checks) == 1
    assert again.notebook == first.notebook


def test_an_equal_plan_built_anew_is_found_and_a_changed_value_type_is_not(
    checks: list[Any],
) -> None:
    """The key is the plan's content: not the objects' identity, sharing or interning."""
    import copy
    import json
    import sys

    execute_plan_sync(PLAN, {"f": double})
    execute_plan_sync(copy.deepcopy(PLAN), {"f": double})
    execute_plan_sync(json.loads(json.dumps(PLAN)), {"f": double})
    shared = {**PLAN, "id": sys.intern("cached")}
    shared["steps"] = [PLAN["steps"][0], PLAN["steps"][1]]
    execute_plan_sync(shared, {"f": double})
    assert len(checks) == 1
    # 2.0 is not 2 (nor True 1): a plan differing only so is checked again
    floats = copy.deepcopy(PLAN)
    floats["steps"][0]["args"]["x"] = 2.0
    execute_plan_sync(floats, {"f": double})
    assert len(checks) == 2


def test_other_tools_a_changed_plan_or_an_approval_flag_are_checked_again(
    checks: list[Any],
) -> None:
    assert execute_plan_sync(PLAN, {"f": double}).outputs["b"] == 8
    assert execute_plan_sync(PLAN, {"f": triple}).outputs["b"] == 18
    changed = {**PLAN, "steps": [PLAN["steps"][0]]}
    assert execute_plan_sync(changed, {"f": double}).outputs == {"a": 4}
    assert len(checks) == 3
    registry = ToolRegistry()
    registry.register(double, name="f", requires_approval=True)
    stopped = execute_plan_sync(PLAN, registry)
    assert stopped.verdict is Verdict.INTERVENTION_NEEDED  # not the cached steps without approval
    assert len(checks) == 4


def test_an_invalid_plan_is_never_cached(checks: list[Any]) -> None:
    bad = {"id": "bad", "steps": [{"id": "a", "tool": "nope"}]}
    for _ in range(2):
        assert execute_plan_sync(bad, {"f": double}).verdict is Verdict.FAILURE
    assert len(checks) == 2


def test_a_plan_without_an_id_is_checked_each_time(checks: list[Any]) -> None:
    plan = {"steps": PLAN["steps"]}
    ids = {execute_plan_sync(plan, {"f": double}).plan_id for _ in range(2)}
    assert len(ids) == 2 and len(checks) == 2


def test_json_text_and_plan_objects_are_cached_too(checks: list[Any]) -> None:
    import json

    from marimo_engine.plans.schema import load_plan

    text = json.dumps(PLAN)
    for source in (text, text, load_plan(PLAN), load_plan(PLAN)):
        assert execute_plan_sync(source, {"f": double}).outputs["b"] == 8
    assert len(checks) == 2


def test_the_cache_is_bounded_by_steps(monkeypatch: pytest.MonkeyPatch, checks: list[Any]) -> None:
    monkeypatch.setattr(_plan_cache, "MAX_CACHED_STEPS", 3)
    other = {**PLAN, "id": "other"}
    execute_plan_sync(PLAN, {"f": double})  # 2 steps
    execute_plan_sync(other, {"f": double})  # 2 more: PLAN leaves
    execute_plan_sync(other, {"f": double})
    execute_plan_sync(PLAN, {"f": double})
    assert len(checks) == 3


def test_closures_are_not_kept_alive_by_the_cache(checks: list[Any]) -> None:
    """A tool made in a function may hold the caller's data: such plans are not cached."""
    import gc
    import weakref

    class Big:
        pass

    big = Big()
    seen = weakref.ref(big)

    def make(data: Big) -> Any:
        def f(x: int = 1) -> int:
            return x + (data is not None)

        return f

    for _ in range(2):
        assert execute_plan_sync(PLAN, {"f": make(big)}).outputs["b"] == 4
    assert len(checks) == 2
    del big
    gc.collect()
    assert seen() is None


def test_plan_language_2_plans_use_the_cache_and_each_run_its_own_inputs(
    checks: list[Any],
) -> None:
    """Inputs, a map step and a markdown step: cached once, the input values per run."""
    from tests.unit.engine import map_tools

    plan = {
        "id": "cached-lang2",
        "inputs": {"count": {"description": "files"}},
        "steps": [
            {"id": "files", "tool": "listing", "args": {"count": "$input.count"}},
            {"id": "sizes", "tool": "measure_sync", "map": "$files", "args": {"name": "$item"}},
            {"id": "report", "markdown": "Sizes: $sizes"},
        ],
    }
    tools = {"listing": map_tools.listing, "measure_sync": map_tools.measure_sync}
    two = execute_plan_sync(plan, tools, inputs={"count": 2})
    three = execute_plan_sync(plan, tools, inputs={"count": 3})
    assert two.outputs["sizes"] == [6, 6] and three.outputs["sizes"] == [6, 6, 6]
    assert three.outputs["report"] == "Sizes: [6, 6, 6]"
    assert len(checks) == 1
    # one compiled notebook; each run's own values in its inputs cell
    assert two.notebook and three.notebook and "plan_inputs" in three.notebook
    assert two.notebook.replace('{"count": 2}', '{"count": 3}') == three.notebook != two.notebook


def test_a_plan_with_sub_plan_steps_is_checked_against_its_library_every_run(
    checks: list[Any],
) -> None:
    """A cached parent must not hide a changed sub-plan."""
    from marimo_engine.plans.subplans import PlanLibrary

    parent = {"id": "cached-parent", "steps": [{"id": "p", "plan": "child", "args": {}}]}

    def child(x: int) -> dict[str, Any]:
        step = {"id": "c", "tool": "f", "args": {"x": x}, "output": True}
        return {"id": "child", "steps": [step]}

    first = execute_plan_sync(parent, {"f": double}, plans=PlanLibrary({"child": child(1)}))
    again = execute_plan_sync(parent, {"f": double}, plans=PlanLibrary({"child": child(5)}))
    assert first.outputs["p"] == {"c": 2} and again.outputs["p"] == {"c": 10}
    assert "SUBPLANS" in again.notebook


def keep(items: list[int], label: str = "", count: int = 0) -> dict[str, Any]:
    """Changes its list in place, as a careless tool may."""
    items.append(len(items))
    return {"items": list(items), "label": label, "count": count}


def test_a_cached_plans_literal_args_are_fresh_on_every_run(checks: list[Any]) -> None:
    """A tool changing a literal list, and `$$` in a literal, are the same on every run."""
    plan = {
        "id": "literal-args",
        "steps": [
            {"id": "a", "tool": "keep", "args": {"items": [7], "label": "costs $$5", "count": 2}},
            {"id": "b", "tool": "keep", "args": {"items": [], "label": "plain", "count": 3}},
        ],
    }
    runs = [execute_plan_sync(plan, {"keep": keep}) for _ in range(3)]
    assert len(checks) == 1
    for result in runs:
        assert result.outputs["a"] == {"items": [7, 1], "label": "costs $5", "count": 2}
        assert result.outputs["b"] == {"items": [0], "label": "plain", "count": 3}
    assert plan["steps"][0]["args"]["items"] == [7]
