"""Run an accepted plan on the engine, streaming its events, and build its `ExecutionResult`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import (
    Event,
    ExecutionResult,
)
from marimo_engine.errors import EngineError

if TYPE_CHECKING:
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["execute_to_result"]


async def execute_to_result(
    plan: Mapping[str, Any],
    tools: ToolRegistry,
    result_box: list[ExecutionResult],
    *,
    max_workers: int | None = None,
) -> AsyncIterator[Event]:
    """Run `plan` with the engine, yield its events, then append its result to `result_box`.

    Args:
        plan: A valid plan (JSON).
        tools: The registry the plan was validated against.
        result_box: Receives the `ExecutionResult` once `FINISH` was seen.
        max_workers: Passed to `execute_plan`.

    Yields:
        The engine's events, `START` first and `FINISH` last.
    """
    from marimo_engine.engine.executor import execute_plan

    events: list[Event] = []
    async with aclosing(execute_plan(dict(plan), tools, max_workers=max_workers)) as stream:
        async for event in stream:
            events.append(event)
            yield event
    notebook = None
    with contextlib.suppress(EngineError):
        from marimo_engine.engine.compiler import plan_to_notebook

        notebook = plan_to_notebook(dict(plan), tools)
    result_box.append(ExecutionResult.from_events(events, notebook))
