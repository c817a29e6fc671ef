"""Validate and compile a plan once, not on every run of it.

A run of a plan validates it (`check_plan`), compiles it to the notebook IR,
compiles its step cells with marimo's compiler and prepares its steps. All
of that depends only on the plan's text and on the tools it is checked
against, so a plan run again (a scheduled job, a benchmark, an agent that
reruns the same plan) finds it here and goes straight to its steps: the
"second run" paid about 30 µs a step for work it had already done.

The key is the plan's exact content (a dict serialised with `marshal`, format
version 0, which writes every str, number, bool, None, list and dict by
value alone, with no references to objects seen before and no interning
flags, so equal plans give equal bytes; two to three times faster than
`json.dumps` on a 1,000-step plan; a JSON string taken as is, a `Plan`
dumped by pydantic) and, per registered tool, its
name, function and `requires_approval`: everything validation, compilation
and step preparation read (a `ToolSpec` is derived from its function). A
plan without its own id is not cached (each run names it afresh), nor is
one whose dict holds other objects, nor one run with a tool that is not a
module-level function (a closure or lambda could hold the caller's data,
which the cache would keep alive), nor one with sub-plan steps: their plans
come from the run's plan library (`plans=`, files next to it), which may
change between runs, so such a plan is checked against it on every run.
Input values (`inputs=`) are not part of what is cached: each run puts its
own in the cells' globals. What is cached is never changed by a run:
the checked `Plan`, the `NotebookIR`, marimo's compiled cells (marimo's
cell executor does not change a cell it runs) and the `PreparedStep`s.

The cache holds at most `MAX_CACHED_STEPS` steps in all, the least recently
used plans leaving first.
"""

from __future__ import annotations

import json
import marshal
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.engine.compiler import NotebookIR
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.engine.step import PreparedStep
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "MAX_CACHED_STEPS",
    "PreparedPlan",
    "cache_key",
    "clear",
    "discard",
    "lookup",
    "store",
]

MAX_CACHED_STEPS = 50_000
"""Steps the cache holds at most, over all plans in it."""


@dataclass(frozen=True, slots=True)
class PreparedPlan:
    """A plan validated, compiled and prepared for the in-process run.

    Attributes:
        plan: The checked plan.
        ir: Its notebook IR.
        cells: Step id to marimo's compiled step cell.
        prepared: Step id to its `PreparedStep`.
        graph: The DAG built from the cells' defs and refs.
    """

    plan: Plan
    ir: NotebookIR
    cells: Mapping[str, Any]
    prepared: Mapping[str, PreparedStep]
    graph: StepGraph


_lock = threading.Lock()
_plans: OrderedDict[tuple[Any, ...], PreparedPlan] = OrderedDict()
_steps = 0


def cache_key(source: Any, registry: ToolRegistry) -> tuple[Any, ...] | None:
    """The cache key of a plan source and tools, or `None` when it is not to be cached.

    Args:
        source: The plan as given: a `Plan`, a dict or a JSON string.
        registry: The tools it runs with.
    """
    from marimo_engine.plans.schema import Plan

    if isinstance(source, str):
        text = source
    elif isinstance(source, Plan):
        text = source.model_dump_json()
    elif isinstance(source, dict):
        try:
            text = marshal.dumps(source, 0)  # by value: equal content, equal bytes
        except ValueError:  # an object marshal does not write (a str subclass, a model)
            return None
    elif isinstance(source, Mapping):
        try:
            text = json.dumps(dict(source), ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError):
            return None
    else:
        return None
    tools = []
    for name in registry:
        spec = registry.get(name)
        if not _lives_on(spec.function):
            return None
        tools.append((name, spec.function, bool(getattr(spec, "requires_approval", False))))
    try:
        key = (text, tuple(tools))
        hash(key)
    except TypeError:  # an unhashable callable object
        return None
    return key


def _lives_on(function: Any) -> bool:
    """Whether `function` is a module's own function, which lives as long as its module.

    A cached plan holds its tools; a closure or a lambda may hold the caller's
    data (a DataFrame), which the cache must not keep alive, so plans with
    such tools are not cached.
    """
    import sys
    import types

    if not isinstance(function, types.FunctionType):
        return False
    qualname = function.__qualname__
    if "<" in qualname or "." in qualname:  # <lambda>, <locals>, methods
        return False
    module = sys.modules.get(function.__module__)
    return module is not None and getattr(module, qualname, None) is function


def lookup(key: tuple[Any, ...] | None) -> PreparedPlan | None:
    """The prepared plan stored under `key`, or `None`."""
    if key is None:
        return None
    with _lock:
        found = _plans.get(key)
        if found is not None:
            _plans.move_to_end(key)
        return found


def store(key: tuple[Any, ...] | None, prepared: PreparedPlan) -> None:
    """Keep `prepared` under `key` (dropping the least recently used plans past the bound)."""
    global _steps
    size = len(prepared.plan.steps)
    if key is None or size > MAX_CACHED_STEPS or _has_subplans(prepared.plan):
        return
    with _lock:
        old = _plans.pop(key, None)
        if old is not None:
            _steps -= len(old.plan.steps)
        _plans[key] = prepared
        _steps += size
        while _steps > MAX_CACHED_STEPS:
            _, dropped = _plans.popitem(last=False)
            _steps -= len(dropped.plan.steps)


def _has_subplans(plan: Plan) -> bool:
    """Whether a plan has sub-plan steps (their plans are read from the plan library afresh)."""
    return any(step.plan is not None for step in plan.steps)


def discard(key: tuple[Any, ...] | None) -> None:
    """Forget the plan stored under `key`, if any (benchmarks: a first run leaves no trace)."""
    global _steps
    if key is None:
        return
    with _lock:
        old = _plans.pop(key, None)
        if old is not None:
            _steps -= len(old.plan.steps)


def clear() -> None:
    """Forget every cached plan (benchmarks measuring first runs)."""
    global _steps
    with _lock:
        _plans.clear()
        _steps = 0
