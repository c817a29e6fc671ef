"""The dependencies between a plan's steps, and cycle finding.

A step depends on every step that its `map`, `args`, `run_if`, `intervention_if`
(other than itself), `depends_on`, `expect` (other than itself) or `markdown`
text name (not `$item`, `$index`, `$input` or `$self`, which name no step) (the
plan language spec, "Dependencies and scheduling"). The dependencies must form
a DAG; a cycle is the validation problem `cycle`.

Everything here is iterative and linear in the number of steps and
dependencies, so plans of thousands of steps (and chains deeper than
Python's recursion limit) are fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from marimo_engine.errors import EngineError
from marimo_engine.plans.references import find_references
from marimo_engine.plans.schema import RESERVED_NAMES

if TYPE_CHECKING:
    from marimo_engine.plans.schema import Plan, Step

__all__ = ["expression_step_ids", "find_cycle", "find_cycles", "step_dependencies"]


def expression_step_ids(text: str | None) -> list[str]:
    """Return the step ids an expression's references name, in order, repeats kept.

    Args:
        text: A `run_if` or `intervention_if` expression, or `None`.

    Returns:
        The ids; empty for `None` or for an expression that does not parse
        (validation reports that as `invalid_expression`).
    """
    if text is None:
        return []
    from marimo_engine.plans.expressions import parse_expression

    try:
        expression = parse_expression(text)
    except EngineError:
        return []
    return [ref.step_id for ref in expression.references]


def _named_ids(step: Step) -> Iterable[str]:
    if step.map is not None:
        for ref in find_references(step.map):
            yield ref.step_id
    for ref in find_references(step.args):
        yield ref.step_id
    yield from expression_step_ids(step.run_if)
    yield from expression_step_ids(step.intervention_if)
    yield from step.depends_on
    for text in step.expect:
        yield from expression_step_ids(text)
    if step.markdown is not None:
        for ref in find_references(step.markdown):
            yield ref.step_id


def step_dependencies(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Return, for each step id, the ids of the steps it depends on.

    Args:
        plan: A parsed plan.

    Returns:
        Step id to the ids it depends on, through `args`, `run_if`,
        `intervention_if` and `depends_on`; each id once, ordered by the
        plan's step list. Ids of steps that do not exist and the step itself
        are left out (validation reports them as `unknown_reference` and
        `self_reference`). Keys are in plan order; when ids repeat (an
        invalid plan), the first step with an id wins.
    """
    position: dict[str, int] = {}
    for index, step in enumerate(plan.steps):
        position.setdefault(step.id, index)
    deps: dict[str, tuple[str, ...]] = {}
    for step in plan.steps:
        if step.id in deps:
            continue
        named = {
            step_id
            for step_id in _named_ids(step)
            if step_id in position and step_id != step.id and step_id not in RESERVED_NAMES
        }
        deps[step.id] = tuple(sorted(named, key=position.__getitem__))
    return deps


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return the step ids on one dependency cycle, in order, or `None`.

    Args:
        deps: Step id to the ids it depends on, as `step_dependencies`
            returns; ids that are not keys are ignored.

    Returns:
        For `a` depending on `b`, `b` on `c` and `c` on `a`: `["a", "b", "c"]`
        (read `a -> b -> c -> a`), starting at the step that comes first in
        `deps`. A step that depends on itself gives `[id]`. `None` when the
        dependencies form a DAG.
    """
    cycles = find_cycles(deps)
    return cycles[0] if cycles else None


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Return one cycle for each group of steps that depend on each other.

    Each strongly connected component with a cycle (Tarjan's algorithm, run
    iteratively) yields one cycle through some of its steps, so that every
    independent cycle of a plan is reported at once.

    Args:
        deps: Step id to the ids it depends on; ids that are not keys are
            ignored.

    Returns:
        Cycles as in `find_cycle`, ordered by their first step's position in
        `deps`; empty for a DAG.
    """
    order = {node: index for index, node in enumerate(deps)}
    cycles = [
        _cycle_in(component, deps, order)
        for component in _strongly_connected(deps, order)
        if len(component) > 1 or component[0] in deps[component[0]]
    ]
    cycles.sort(key=lambda cycle: order[cycle[0]])
    return cycles


def _strongly_connected(
    deps: Mapping[str, Sequence[str]], order: Mapping[str, int]
) -> list[list[str]]:
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in deps:
        if root in index_of:
            continue
        # Each frame: (node, iterator over its dependencies).
        work: list[tuple[str, Iterable[str]]] = []
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(deps[root])))
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in order:
                    continue
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(deps[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                component.sort(key=order.__getitem__)
                components.append(component)
    return components


def _cycle_in(
    component: list[str], deps: Mapping[str, Sequence[str]], order: Mapping[str, int]
) -> list[str]:
    """Walk from the component's first step, inside it, until a step repeats."""
    members = set(component)
    start = component[0]
    # Breadth-first search inside the component for the shortest way back to
    # `start`: the cycle a person reads is then as short as it can be.
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        next_frontier: list[str] = []
        for node in frontier:
            for child in deps[node]:
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                if child not in seen:
                    seen.add(child)
                    parent[child] = node
                    next_frontier.append(child)
        frontier = next_frontier
    raise AssertionError(f"no cycle through {start!r} in its component")  # pragma: no cover
