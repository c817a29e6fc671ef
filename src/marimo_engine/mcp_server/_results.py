"""What a plan run looks like to a model: events become progress, the result a summary.

Both `run_plan` (the engine, in this process) and `run_plan_live` (a live
notebook's kernel) stream `Event`s; this module turns each into an MCP
progress notification and the finished run into one JSON summary whose
outputs fit a character budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from marimo_engine._json import clip_json

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event, ExecutionResult

__all__ = ["DEFAULT_MAX_OUTPUT_CHARS", "ProgressFn", "clip_json", "collect_run", "summarize_run"]

DEFAULT_MAX_OUTPUT_CHARS = 2000
"""Characters of JSON each step output may take in a tool result before it is cut."""

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
"""`Context.report_progress(progress, total, message)` of the MCP SDK."""

_FINISHING = {"STEP_COMPLETE", "STEP_SKIPPED", "ERROR", "INTERVENTION_NEEDED"}


async def collect_run(
    events: AsyncIterator[Event], *, total_steps: int, report: ProgressFn
) -> list[Event]:
    """Consume a run's events, reporting one progress notification per event.

    Args:
        events: The run (`execute_plan(...)` or `run_plan_live(...)`).
        total_steps: Steps in the plan: progress counts finished steps out of it.
        report: Where progress goes (`Context.report_progress`).

    Returns:
        Every event, `START` first and `FINISH` last.
    """
    collected: list[Event] = []
    finished: set[str] = set()
    try:
        async for event in events:
            collected.append(event)
            if event.step_id and event.type.value in _FINISHING:
                finished.add(event.step_id)
            where = f"{event.step_id}: " if event.step_id else ""
            await report(
                float(len(finished)), float(total_steps), f"{event.type.value} {where}{event.msg}"
            )
    finally:
        # A cancelled call (the client gave up) stops the run: its steps are cancelled.
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
    return collected


def summarize_run(result: ExecutionResult, *, max_output_chars: int) -> dict[str, Any]:
    """The tool result of a run: verdict, key findings, what failed, and each step's state.

    Args:
        result: The finished run.
        max_output_chars: Budget per output, in characters of JSON (see `clip_json`).

    Returns:
        `{"run_id", "plan_id", "verdict", "duration_s", "key_findings", "skipped",
        "error", "intervention", "steps", "outputs"}`: `steps` lists each
        step that did something with its last state (`STEP_COMPLETE`,
        `STEP_SKIPPED`, `ERROR`, `INTERVENTION_NEEDED`) and message;
        `outputs` holds every completed step's output, each cut to the budget;
        `intervention` (or null) has the `intervention_id` and `kind` that
        `resume_run` answers.
    """
    steps: dict[str, dict[str, Any]] = {}
    for event in result.events:
        if event.step_id and event.type.value in _FINISHING:
            steps[event.step_id] = {"step_id": event.step_id, "state": event.type.value,
                                    "msg": event.msg}  # fmt: skip
    intervention = None
    if result.intervention is not None:
        info = result.intervention
        intervention = {
            "intervention_id": info.intervention_id,
            "kind": info.kind,
            "step_id": info.step_id,
            "expression": info.expression,
            "output": clip_json(info.output, max_output_chars),
            "args": clip_json(info.args, max_output_chars),
        }
    return {
        "run_id": result.run_id,
        "plan_id": result.plan_id,
        "verdict": result.verdict.value,
        "duration_s": round(result.duration_s, 3),
        "key_findings": {k: clip_json(v, max_output_chars) for k, v in result.key_findings.items()},
        "skipped": list(result.skipped),
        "error": result.error.model_dump(mode="json") if result.error else None,
        "intervention": intervention,
        "steps": list(steps.values()),
        "outputs": {k: clip_json(v, max_output_chars) for k, v in result.outputs.items()},
    }
