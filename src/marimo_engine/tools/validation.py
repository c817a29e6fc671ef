"""Validate a plan against tools in any form the public API takes: the public `validate_plan`.

`marimo_engine.plans.validation` checks a plan against a `ToolCatalog` and
never imports this package (docs/architecture.md: `tools` imports `plans`,
not the reverse). A mapping of names to callables becomes a `ToolRegistry`
here, one layer up, and `marimo_engine.validate_plan` / `check_plan` are
these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.plans import validation as _plans
from marimo_engine.tools.registry import ToolRegistry, as_registry

if TYPE_CHECKING:
    from marimo_engine.plans.problems import Problem
    from marimo_engine.plans.schema import Plan

__all__ = ["check_plan", "validate_plan"]

Tools = ToolRegistry | Mapping[str, Callable[..., Any]] | None


def validate_plan(
    plan: _plans.PlanSource, tools: Tools = None, *, plans: Any = None
) -> list[Problem]:
    """Return every problem of a plan, or an empty list when it is valid.

    Args:
        plan: A `Plan`, a dict, or the plan's JSON text (`str` or UTF-8 `bytes`).
        tools: The tools the plan will run with: a `ToolRegistry` or a mapping
            of names to callables. With `None`, tool names and `args` are not
            checked (only the plan's own structure and references).
        plans: Where sub-plan steps find their plans (`PlanLibrary`, or a
            mapping of names to plans); `None`: examples and files relative
            to the current directory.

    Returns:
        As `plans.validation.validate_plan`: every problem, never raising for
        a bad plan.

    Raises:
        UsageError: `tools` is not a registry or a mapping of callables.
    """
    registry = None if tools is None else as_registry(tools)
    return _plans.validate_plan(plan, registry, plans=plans)


def check_plan(plan: _plans.PlanSource, tools: Tools = None, *, plans: Any = None) -> Plan:
    """Return the parsed plan when it has no problem.

    Args:
        plan: As for `validate_plan`.
        tools: As for `validate_plan`.
        plans: As for `validate_plan`.

    Raises:
        PlanValidationError: The plan has problems (all of them).
        UsageError: `tools` is not a registry or a mapping of callables.
    """
    registry = None if tools is None else as_registry(tools)
    return _plans.check_plan(plan, registry, plans=plans)
