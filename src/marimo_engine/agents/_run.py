"""Run an accepted plan on the engine, streaming its events, and build its `ExecutionResult`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import (
    Event,
    ExecutionResult,
)

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

    async with execute_plan(dict(plan), tools, max_workers=max_workers) as run:
        async for event in run:
            yield event
    result_box.append(run.result)  # the run's own result: its events, verdict and notebook
