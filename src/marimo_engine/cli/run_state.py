"""The state of a run as its events tell it, step by step (no output of its own).

`ProgressModel.apply(event)` folds events into one `StepLine` per step:
what the progress display (`cli/progress.py`) draws and the HTML report
(`cli/report.py`) summarises.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from marimo_engine._json import to_jsonable

if TYPE_CHECKING:
    from marimo_engine.engine.events import ErrorInfo, Event
    from marimo_engine.plans.schema import Plan

__all__ = ["ProgressModel", "StepLine", "StepState", "describe_value", "summarize_output"]

_SUMMARY_CHARS = 100


class StepState(StrEnum):
    """What the progress display says about a step."""

    WAITING = "waiting"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERVENTION = "intervention"
    CANCELLED = "cancelled"
    NOT_RUN = "not run"


@dataclass
class StepLine:
    """One step's line of the progress display.

    Attributes:
        step_id: The step's id.
        tool: The tool's name (a markdown step's kind, `"markdown"`).
        description: The step's description, or `""`.
        is_markdown: Whether it is a markdown step (its output is markdown text).
        is_key_finding: Whether the plan marks the step as a key finding.
        state: The current state.
        started_at: `time.monotonic()` when the step started, or `None`.
        duration_s: Seconds the step took, once it ended.
        attempt: The try in progress after a retry (2 for the first retry).
        note: Why it was skipped, the error, or the intervention expression.
        output: The step's output once done.
        summary: `summarize_output(output)`, worked out once when the step is done.
        finished_order: 1 for the first step to finish (done, skipped, failed),
            2 for the next, ...; `None` while it has not finished.
    """

    step_id: str
    tool: str
    description: str = ""
    is_markdown: bool = False
    is_key_finding: bool = False
    state: StepState = StepState.WAITING
    started_at: float | None = None
    duration_s: float | None = None
    attempt: int | None = None
    note: str = ""
    output: Any = None
    summary: str = ""
    finding: str = ""
    finished_order: int | None = None


def _error_text(error: ErrorInfo | None) -> str:
    if error is None:
        return "unknown error"
    message = " ".join(error.message.split())
    return f"{error.type}: {message}" if message else error.type


def summarize_output(value: object, limit: int = _SUMMARY_CHARS) -> str:
    """Return a short one-line description of a step output.

    Args:
        value: Any output: a dataframe gives `table 1461×6 (date, ...)`, an
            Altair chart `chart (Vega-Lite)`, anything else compact JSON
            (the documented fallback of `marimo_engine._json`).
        limit: The most characters to return.

    Returns:
        One line of at most `limit` characters.
    """
    module = type(value).__module__
    shape = getattr(value, "shape", None)
    columns = getattr(value, "columns", None)
    if isinstance(shape, tuple) and len(shape) == 2 and columns is not None:
        names = ", ".join(str(c) for c in list(columns)[:6])
        more = ", …" if len(columns) > 6 else ""
        text = f"table {shape[0]}×{shape[1]} ({names}{more})"
    elif module.startswith("altair"):
        text = f"chart ({type(value).__name__}, Vega-Lite)"
    else:
        try:
            text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(", ", ": "))
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_value(value: object, limit: int = 300) -> str:
    """Return a step output as a person reads it on one line: names with their values.

    Args:
        value: Any output. A mapping or model (its JSON form) gives
            `level = 14.2, status = 'critical'` (nested values as compact
            JSON); a table or chart gives `summarize_output`'s line; a plain
            value its JSON text (`14.2`, `'critical'`).
        limit: The most characters to return.

    Returns:
        One line of at most `limit` characters. Integers keep their digits
        (`2012`, never `2,012`).
    """
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) or type(value).__module__.startswith("altair"):
        return summarize_output(value, limit)
    jsonable = to_jsonable(value)
    if isinstance(jsonable, dict) and jsonable:
        text = ", ".join(f"{key} = {_scalar_text(item)}" for key, item in jsonable.items())
    else:
        text = _scalar_text(jsonable)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar_text(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class ProgressModel:
    """The state of a run as far as its events tell, step by step.

    Attributes:
        plan_id: The plan's id.
        title: The plan's name, or its id.
        steps: One line per step, in plan order.
        verdict: The verdict once `FINISH` arrived, else `None`.
        duration_s: The run's seconds once `FINISH` arrived.
        plan_error: An error not tied to a step (an invalid plan).
        key_findings: Step id to output, for completed key-finding steps.
        intervention: `(step_id, expression)` when the run stopped for a person.
        intervention_values: The values of the references in that
            expression when it was true, keyed by reference text
            (`{"$o2.level": 14.2}`); empty when they cannot be resolved.
        run_id: The run's id, from `START` (docs/runs.md).
    """

    plan_id: str
    title: str
    steps: dict[str, StepLine] = field(default_factory=dict)
    verdict: str | None = None
    duration_s: float | None = None
    plan_error: str | None = None
    key_findings: dict[str, Any] = field(default_factory=dict)
    intervention: tuple[str, str] | None = None
    intervention_values: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    _started_at: float = field(default_factory=time.monotonic)
    _finished: int = 0

    @classmethod
    def from_plan(cls, plan: Plan) -> ProgressModel:
        """Return a model with every step of `plan` waiting."""
        model = cls(plan_id=plan.id, title=plan.name or plan.id)
        for step in plan.steps:
            model.steps[step.id] = StepLine(
                step_id=step.id,
                tool=step.tool or step.kind,
                description=step.description or "",
                is_markdown=step.markdown is not None,
                is_key_finding=bool(step.key_finding),
            )
        return model

    @property
    def finished_count(self) -> int:
        """How many steps have finished: done, skipped or failed."""
        return self._finished

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds since the model was made, or the run's duration once finished."""
        if self.duration_s is not None:
            return self.duration_s
        return (now if now is not None else time.monotonic()) - self._started_at

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one event into the state.

        Args:
            event: The event, in the order the run emitted it.
            now: `time.monotonic()` at arrival; `None` reads the clock.
        """
        from marimo_engine.engine.events import EventType

        if event.parent_step_id is not None or (
            event.item is not None and event.type is EventType.STEP_SKIPPED
        ):
            return  # a sub-plan's events, an item's skip: the step's line tells its outcome
        now = time.monotonic() if now is None else now
        line = self._line(event)
        kind = event.type
        if kind is EventType.START:
            self._started_at = now
            self.run_id = event.run_id
        elif kind is EventType.STEP_START and line is not None:
            line.state, line.started_at = StepState.RUNNING, now
        elif kind is EventType.STEP_RETRY and line is not None:
            line.state, line.attempt = StepState.RETRYING, event.attempt
            line.note = _error_text(event.error)
        elif kind is EventType.STEP_COMPLETE and line is not None:
            line.state, line.output = StepState.DONE, event.output
            line.duration_s = self._duration(event, line, now)
            line.summary = summarize_output(event.output)
            self._finish(line)
            if event.key_finding or line.is_key_finding:
                line.is_key_finding = True
                line.finding = describe_value(event.output)
                self.key_findings[line.step_id] = event.output
        elif kind is EventType.STEP_SKIPPED and line is not None:
            line.state, line.note = StepState.SKIPPED, event.reason or event.msg
            self._finish(line)
        elif kind is EventType.ERROR:
            if line is not None:
                line.state, line.note = StepState.FAILED, _error_text(event.error)
                line.duration_s = self._duration(event, line, now)
                self._finish(line)
            else:
                self.plan_error = _error_text(event.error)
        elif kind is EventType.INTERVENTION_NEEDED and line is not None:
            line.state, line.note = StepState.INTERVENTION, event.expression or event.msg
            self.intervention = (line.step_id, event.expression or "")
            self.intervention_values = self._reference_values(
                event.expression or "", line.step_id, event.output
            )
        elif kind is EventType.FINISH:
            self.verdict = event.verdict.value if event.verdict is not None else None
            self.duration_s = (
                event.duration_s if event.duration_s is not None else now - self._started_at
            )
            for step in self.steps.values():
                if step.state in (StepState.RUNNING, StepState.RETRYING):
                    step.state = StepState.CANCELLED
                elif step.state is StepState.WAITING:
                    step.state = StepState.NOT_RUN

    def _reference_values(self, expression: str, step_id: str, output: object) -> dict[str, Any]:
        """What each reference of a fired `intervention_if` named, for the person reading."""
        from marimo_engine.errors import EngineError
        from marimo_engine.plans.expressions import parse_expression
        from marimo_engine.plans.references import resolve_reference

        outputs = {
            line.step_id: line.output
            for line in self.steps.values()
            if line.state in (StepState.DONE, StepState.INTERVENTION)
        }
        if output is not None:
            outputs[step_id] = output
        try:
            references = parse_expression(expression).references
        except EngineError:
            return {}
        values: dict[str, Any] = {}
        for reference in references:
            try:
                values[reference.text] = resolve_reference(reference, outputs)
            except EngineError:
                continue
        return values

    def intervention_text(self) -> str | None:
        """One line saying which condition stopped the run and what it saw, or `None`.

        For example `step 'o2': intervention_if $o2.level < 15 was true
        ($o2.level = 14.2)`.
        """
        if self.intervention is None:
            return None
        step_id, expression = self.intervention
        text = f"step {step_id!r}: intervention_if {expression} was true"
        if self.intervention_values:
            seen = ", ".join(
                f"{ref} = {describe_value(value, 80)}"
                for ref, value in self.intervention_values.items()
            )
            text += f" ({seen})"
        return text

    def _finish(self, line: StepLine) -> None:
        self._finished += 1
        line.finished_order = self._finished

    def _line(self, event: Event) -> StepLine | None:
        if event.step_id is None:
            return None
        line = self.steps.get(event.step_id)
        if line is None:  # a step the plan did not list: show it all the same
            line = StepLine(step_id=event.step_id, tool=event.tool or "?")
            self.steps[event.step_id] = line
        return line

    @staticmethod
    def _duration(event: Event, line: StepLine, now: float) -> float | None:
        if event.duration_s is not None:
            return event.duration_s
        return None if line.started_at is None else now - line.started_at

    def counts(self) -> dict[StepState, int]:
        """Return how many steps are in each state (states with none left out)."""
        result: dict[StepState, int] = {}
        for line in self.steps.values():
            result[line.state] = result.get(line.state, 0) + 1
        return result
