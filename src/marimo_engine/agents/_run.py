"""Run an accepted plan on the engine, streaming its events, and build its `ExecutionResult`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import (
    Event,
    EventType,
    ExecutionResult,
    InterventionInfo,
    Verdict,
)
from marimo_engine.errors import EngineError

if TYPE_CHECKING:
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["execute_to_result", "result_from_events"]


def result_from_events(events: Sequence[Event], notebook: str | None = None) -> ExecutionResult:
    """Build the `ExecutionResult` of a run from its events (spec, "Events and results").

    Args:
        events: Every event of one run, `START` first and `FINISH` last.
        notebook: The notebook source of the run, if known.

    Returns:
        The result: the verdict and outputs of `FINISH`, key findings from
        `STEP_COMPLETE`, skipped steps from `STEP_SKIPPED`, the first
        `ERROR`, the `INTERVENTION_NEEDED`, and the events themselves.
    """
    finish = events[-1] if events and events[-1].type is EventType.FINISH else None
    key_findings: dict[str, Any] = {}
    skipped: list[str] = []
    error = None
    intervention = None
    for event in events:
        if event.type is EventType.STEP_COMPLETE and event.key_finding and event.step_id:
            key_findings[event.step_id] = event.output
        elif event.type is EventType.STEP_SKIPPED and event.step_id:
            skipped.append(event.step_id)
        elif event.type is EventType.ERROR and error is None:
            error = event.error
        elif event.type is EventType.INTERVENTION_NEEDED and intervention is None:
            intervention = InterventionInfo(
                step_id=event.step_id or "",
                expression=event.expression or "",
                output=event.output,
            )
    return ExecutionResult(
        plan_id=events[0].plan_id if events else "",
        verdict=finish.verdict if finish and finish.verdict else Verdict.FAILURE,
        outputs=dict(finish.outputs or {}) if finish else {},
        key_findings=key_findings,
        skipped=skipped,
        error=error,
        intervention=intervention,
        events=list(events),
        duration_s=(finish.duration_s or 0.0) if finish else 0.0,
        notebook=notebook,
    )


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
    result_box.append(result_from_events(events, notebook))
