"""Which tries of a run on Dask may go ahead of their dependencies' end (`engine._dask_ahead`)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import pytest

from marimo_engine.engine._dask_ahead import LookAhead
from marimo_engine.engine._dask_tasks import NO_OUTPUT, ToolRef
from marimo_engine.engine.graph import StepGraph
from marimo_engine.engine.step import prepare_steps
from marimo_engine.plans.dependencies import step_dependencies
from marimo_engine.plans.validation import check_plan
from marimo_engine.tools.registry import as_registry


def echo(value: Any = None) -> Any:
    return value


def other(value: Any = None) -> Any:
    return value


@dataclass(frozen=True)
class Case:
    id: str
    step: dict[str, Any]  # step "b", after step "a" (`echo`, no options)
    b_may_follow: bool
    a: dict[str, Any] | None = None  # options of step "a"
    a_may_lead: bool = True


CASES = [
    Case("whole reference", {"args": {"value": "$a"}}, True),
    Case("depends_on only", {"depends_on": ["a"]}, True),
    Case("literal args", {"args": {"value": [1, "$$5"]}, "depends_on": ["a"]}, True),
    Case("reference with a path", {"args": {"value": "$a.level"}}, False),
    Case("reference inside text", {"args": {"value": "at $a"}}, False),
    Case("run_if", {"args": {"value": "$a"}, "run_if": "1 < 2"}, False),
    Case("intervention_if", {"args": {"value": "$a"}, "intervention_if": "$b"}, False),
    Case("timeout_s", {"args": {"value": "$a"}, "timeout_s": 5}, False),
    Case("requires_approval", {"args": {"value": "$a"}, "requires_approval": True}, False),
    Case("a tool the workers cannot load", {"tool": "other", "depends_on": ["a"]}, False),
    Case("its own retries", {"args": {"value": "$a"}, "retries": 2}, True),
    Case("a with retries", {"depends_on": ["a"]}, True, {"retries": 1}, False),
    Case("a with intervention_if", {"depends_on": ["a"]}, True, {"intervention_if": "$a"}, False),
    Case("a with a contract", {"depends_on": ["a"]}, True, {"expect": ["$self == 1"]}, False),
    Case("a with a timeout", {"depends_on": ["a"]}, True, {"timeout_s": 5}, False),
]


def _look_ahead(case: Case, *, enabled: bool = True) -> LookAhead:
    plan = check_plan(
        {
            "steps": [
                {"id": "a", "tool": "echo", "args": {"value": 1}, **(case.a or {})},
                {"id": "b", "tool": "echo", **case.step},
            ]
        },
        as_registry({"echo": echo, "other": other}),
    )
    registry = as_registry({"echo": echo, "other": other})
    prepared = prepare_steps(plan, {name: registry.get(name) for name in ("echo", "other")})
    graph = StepGraph.from_dependencies(plan.step_ids, step_dependencies(plan))
    loadable = {"echo": ToolRef("echo", (__name__, "echo"), None)}
    return LookAhead.of(
        prepared, {}, graph.parents, graph.children, loadable=loadable, enabled=enabled
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_what_may_go_ahead(case: Case) -> None:
    ahead = _look_ahead(case)
    assert ("b" in ahead.may_follow) is case.b_may_follow
    assert ("a" in ahead.may_lead) is case.a_may_lead
    # b goes ahead when a's try is submitted only if both hold.
    expected = ["b"] if case.b_may_follow and case.a_may_lead else []
    assert ahead.submitted("a", object()) == expected


def test_a_try_goes_ahead_once_and_not_after_its_step_started_or_the_run_stopped() -> None:
    case = CASES[0]
    ahead = _look_ahead(case)
    ahead.started.add("b")
    assert ahead.submitted("a", object()) == []
    ahead = _look_ahead(case)
    ahead.stopped = True
    assert ahead.submitted("a", object()) == []
    assert _look_ahead(case, enabled=False).submitted("a", object()) == []


def test_a_try_ahead_reads_its_dependencies_futures_and_waits_for_them() -> None:
    ahead = _look_ahead(CASES[0])
    future = object()
    ahead.submitted("a", future)
    assert ahead.inputs("b") == ({"a": future}, (future,))
    ahead.ended("a")
    ahead.outputs = {"a": 1}  # completed: its output, nothing to wait for
    assert ahead.inputs("b") == ({"a": 1}, ())


def test_no_output_is_one_value_across_pickling() -> None:
    assert pickle.loads(pickle.dumps(NO_OUTPUT)) is NO_OUTPUT
    assert repr(NO_OUTPUT) == "NO_OUTPUT"
