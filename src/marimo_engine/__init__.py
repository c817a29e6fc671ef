"""marimo-engine: run tool plans as real marimo notebooks.

Only the public API lives here (see the plan language spec, "Python API").
Names are loaded on first use so that `import marimo_engine` stays light:
it does not import marimo, pydantic-ai, httpx or rich.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.engine.compiler import plan_to_notebook
    from marimo_engine.engine.durable import Decision, list_runs, rerun, resume_run
    from marimo_engine.engine.events import Event, EventType, ExecutionResult, Verdict
    from marimo_engine.engine.executor import execute_plan, execute_plan_sync
    from marimo_engine.errors import PlanValidationError
    from marimo_engine.plans.schema import Plan, Step
    from marimo_engine.tools.registry import ToolRegistry
    from marimo_engine.tools.validation import validate_plan

__all__ = [
    "Decision",
    "Event",
    "EventType",
    "ExecutionResult",
    "Plan",
    "PlanValidationError",
    "Step",
    "ToolRegistry",
    "Verdict",
    "execute_plan",
    "execute_plan_sync",
    "list_runs",
    "plan_to_notebook",
    "rerun",
    "resume_run",
    "validate_plan",
]

__version__ = "0.1.0"

_LOCATIONS = {
    "Decision": "marimo_engine.engine.durable",
    "list_runs": "marimo_engine.engine.durable",
    "rerun": "marimo_engine.engine.durable",
    "resume_run": "marimo_engine.engine.durable",
    "Event": "marimo_engine.engine.events",
    "EventType": "marimo_engine.engine.events",
    "ExecutionResult": "marimo_engine.engine.events",
    "Verdict": "marimo_engine.engine.events",
    "Plan": "marimo_engine.plans.schema",
    "Step": "marimo_engine.plans.schema",
    "PlanValidationError": "marimo_engine.errors",
    "ToolRegistry": "marimo_engine.tools.registry",
    "execute_plan": "marimo_engine.engine.executor",
    "execute_plan_sync": "marimo_engine.engine.executor",
    "plan_to_notebook": "marimo_engine.engine.compiler",
    "validate_plan": "marimo_engine.tools.validation",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'marimo_engine' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
