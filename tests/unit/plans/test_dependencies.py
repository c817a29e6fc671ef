"""Step dependencies of a plan, and cycle finding."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marimo_engine.plans.dependencies import (
    expression_step_ids,
    find_cycle,
    find_cycles,
    step_dependencies,
)
from marimo_engine.plans.schema import load_plan


def _plan(*steps: dict[str, Any]) -> Any:
    return load_plan({"id": "p", "steps": list(steps)})


@dataclass(frozen=True)
class DepsCase:
    id: str
    steps: tuple[dict[str, Any], ...]
    expected: dict[str, tuple[str, ...]]


DEPS_CASES = [
    DepsCase(
        "spec-example",
        (
            {"id": "s1", "tool": "scan_hull"},
            {"id": "s2", "tool": "check_oxygen", "intervention_if": "$s2.level < 15"},
            {
                "id": "s3",
                "tool": "analyze_atmosphere",
                "args": {"o2_level": "$s2.level"},
                "run_if": "$s1.breach_detected or $s2.level < 19.5",
            },
        ),
        {"s1": (), "s2": (), "s3": ("s1", "s2")},
    ),
    DepsCase(
        "every-source-once-in-plan-order",
        (
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t"},
            {"id": "c", "tool": "t"},
            {"id": "d", "tool": "t"},
            {
                "id": "e",
                "tool": "t",
                "args": {"x": {"nested": ["$d.v", "text $c and $d"]}},
                "run_if": "$b.ok",
                "intervention_if": "$a.x > $e.y",
                "depends_on": ["c", "b"],
            },
        ),
        {"a": (), "b": (), "c": (), "d": (), "e": ("a", "b", "c", "d")},
    ),
    DepsCase(
        "self-and-unknown-left-out",
        (
            {"id": "a", "tool": "t", "args": {"x": "$a.y", "z": "$ghost"}, "depends_on": ["a"]},
            {"id": "b", "tool": "t", "run_if": "$nobody == 1", "depends_on": ["a", "zz"]},
        ),
        {"a": (), "b": ("a",)},
    ),
    DepsCase(
        "escaped-dollar-and-bad-expression-name-nothing",
        (
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t", "args": {"price": "$$a"}, "run_if": "$a.x ** 2"},
        ),
        {"a": (), "b": ()},
    ),
    DepsCase(
        "later-steps-may-be-named",
        (
            {"id": "a", "tool": "t", "args": {"x": "$c"}},
            {"id": "b", "tool": "t"},
            {"id": "c", "tool": "t", "depends_on": ["b"]},
        ),
        {"a": ("c",), "b": (), "c": ("b",)},
    ),
]


@pytest.mark.parametrize("case", DEPS_CASES, ids=[c.id for c in DEPS_CASES])
def test_step_dependencies(case: DepsCase) -> None:
    assert step_dependencies(_plan(*case.steps)) == case.expected


def test_expression_step_ids() -> None:
    assert expression_step_ids(None) == []
    assert expression_step_ids("$a.x < 1 and $b or $a") == ["a", "b", "a"]
    assert expression_step_ids("f($a)") == []  # invalid: validation reports it


@dataclass(frozen=True)
class CycleCase:
    id: str
    deps: dict[str, tuple[str, ...]]
    expected: list[list[str]]


CYCLE_CASES = [
    CycleCase("empty", {}, []),
    CycleCase("dag", {"a": (), "b": ("a",), "c": ("a", "b")}, []),
    CycleCase("three-in-order", {"a": ("b",), "b": ("c",), "c": ("a",)}, [["a", "b", "c"]]),
    CycleCase("starts-at-first-listed", {"x": ("z",), "y": ("x",), "z": ("y",)}, [["x", "z", "y"]]),
    CycleCase("two", {"a": ("b",), "b": ("a",)}, [["a", "b"]]),
    CycleCase("self-loop", {"a": ("a",), "b": ()}, [["a"]]),
    CycleCase("unknown-ids-ignored", {"a": ("ghost",), "b": ("a", "nowhere")}, []),
    CycleCase(
        "tail-into-cycle-reports-only-the-cycle",
        {"t": ("a",), "a": ("b",), "b": ("c",), "c": ("b",)},
        [["b", "c"]],
    ),
    CycleCase(
        "shortest-way-back-in-a-component",
        {"a": ("b", "d"), "b": ("c",), "c": ("a",), "d": ("a",)},
        [["a", "d"]],
    ),
    CycleCase(
        "independent-cycles-each-reported",
        {"a": ("b",), "b": ("a",), "m": (), "x": ("y",), "y": ("z",), "z": ("x",)},
        [["a", "b"], ["x", "y", "z"]],
    ),
]


@pytest.mark.parametrize("case", CYCLE_CASES, ids=[c.id for c in CYCLE_CASES])
def test_find_cycles(case: CycleCase) -> None:
    assert find_cycles(case.deps) == case.expected
    assert find_cycle(case.deps) == (case.expected[0] if case.expected else None)


def test_every_returned_cycle_is_a_real_cycle() -> None:
    deps = {f"n{i}": (f"n{(i * 7 + 3) % 50}", f"n{(i * 11 + 1) % 50}") for i in range(50)}
    for cycle in find_cycles(deps):
        for position, node in enumerate(cycle):
            assert cycle[(position + 1) % len(cycle)] in deps[node]
        assert len(set(cycle)) == len(cycle)


def test_a_5000_step_chain_is_linear_and_needs_no_recursion() -> None:
    count = 5000
    assert count > sys.getrecursionlimit() // 2
    steps = [{"id": "s0", "tool": "t"}] + [
        {"id": f"s{i}", "tool": "t", "args": {"x": f"$s{i - 1}.v"}, "run_if": f"$s{i - 1}.ok"}
        for i in range(1, count)
    ]
    plan = _plan(*steps)
    started = time.perf_counter()
    deps = step_dependencies(plan)
    assert find_cycle(deps) is None
    assert deps["s4999"] == ("s4998",)
    deps["s0"] = ("s4999",)  # close the chain into one long cycle
    cycle = find_cycle(deps)
    elapsed = time.perf_counter() - started
    assert cycle is not None
    assert len(cycle) == count
    assert cycle[:3] == ["s0", "s4999", "s4998"]
    assert elapsed < 60.0, f"took {elapsed:.2f} s"  # generous: speed lives in benchmarks


def _is_dag(deps: dict[str, tuple[str, ...]]) -> bool:
    """Kahn's algorithm: the reference answer that find_cycles must agree with."""
    waiting = {node: sum(1 for d in targets if d in deps) for node, targets in deps.items()}
    users: dict[str, list[str]] = {node: [] for node in deps}
    for node, targets in deps.items():
        for target in targets:
            if target in deps:
                users[target].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for user in users[node]:
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    return done == len(deps)


@given(
    st.dictionaries(
        st.sampled_from([f"n{i}" for i in range(12)]),
        st.lists(st.sampled_from([f"n{i}" for i in range(14)]), max_size=4).map(tuple),
        max_size=12,
    )
)
@settings(max_examples=150, deadline=None)
def test_find_cycles_agrees_with_kahn_and_returns_real_disjoint_cycles(
    deps: dict[str, tuple[str, ...]],
) -> None:
    cycles = find_cycles(deps)
    assert (cycles == []) == _is_dag(deps)
    seen: set[str] = set()
    for cycle in cycles:
        assert len(set(cycle)) == len(cycle)
        assert not seen & set(cycle), "one cycle per strongly connected component"
        seen |= set(cycle)
        for position, node in enumerate(cycle):
            assert cycle[(position + 1) % len(cycle)] in deps[node]
