"""Events streamed while a plan runs, verdicts, and the `ExecutionResult`.

The shapes follow the plan language spec ("Events and results"). Step outputs
are carried as the Python objects the tools returned; when an event or a
result is serialised to JSON they go through the documented fallback in
`marimo_engine._json.to_jsonable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    computed_field,
    field_serializer,
    model_validator,
)

from marimo_engine._json import to_jsonable
from marimo_engine.plans.problems import Problem

__all__ = [
    "ErrorInfo",
    "Event",
    "EventFold",
    "EventType",
    "ExecutionResult",
    "InterventionInfo",
    "Verdict",
    "new_event",
]


class EventType(StrEnum):
    """The kinds of event a run emits, in the spec's words."""

    START = "START"
    STEP_START = "STEP_START"
    STEP_COMPLETE = "STEP_COMPLETE"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_RETRY = "STEP_RETRY"
    ERROR = "ERROR"
    INTERVENTION_NEEDED = "INTERVENTION_NEEDED"
    FINISH = "FINISH"


class Verdict(StrEnum):
    """How a run ended.

    `SUCCESS`: every step completed or was skipped. `FAILURE`: an error, a
    cancellation or a timeout. `INTERVENTION_NEEDED`: an `intervention_if`
    was true and the run stopped for a person.
    """

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    INTERVENTION_NEEDED = "INTERVENTION_NEEDED"


MAX_TRACEBACK_CHARS = 8_000
"""Characters of a traceback an `ErrorInfo` keeps (the end: where it was raised)."""


class ErrorInfo(BaseModel):
    """An error as carried on events and results.

    Attributes:
        type: The exception's class name, such as `"TimeoutError"` or
            `"PlanValidationError"`.
        message: The exception's message (`str(exc)`).
        step_id: The failing step, or `None` for a plan-level error.
        problems: For `PlanValidationError`, every validation problem.
        traceback: The exception's traceback as Python prints it (its last
            `MAX_TRACEBACK_CHARS` characters), when it had one. Not part of
            the event's JSON (events carry type and message; `--debug` logs
            the traceback), but kept in the run journal for `runs show` and
            the runs UI.
    """

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    step_id: str | None = None
    problems: list[Problem] | None = None
    traceback: str | None = Field(default=None, exclude=True, repr=False)

    @classmethod
    def from_exception(cls, exc: BaseException, *, step_id: str | None = None) -> ErrorInfo:
        """Build an `ErrorInfo` from an exception.

        Args:
            exc: Any exception, including `BaseException` subclasses.
            step_id: The step it belongs to, if any.

        Returns:
            The error info; a `PlanValidationError`'s problems are kept.
        """
        problems = getattr(exc, "problems", None)
        try:
            message = str(exc) or repr(exc)
        except Exception as broken:  # an exception whose __str__ itself raises
            message = f"<message unavailable: its __str__ raised {type(broken).__name__}>"
        trace = None
        if exc.__traceback__ is not None:
            import traceback

            trace = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
        return cls(
            type=type(exc).__name__,
            message=message,
            step_id=step_id,
            problems=list(problems) if isinstance(problems, list) else None,
            traceback=trace,
        )


class InterventionInfo(BaseModel):
    """Why a run stopped for a person.

    Attributes:
        step_id: The step whose `intervention_if` was true.
        expression: The expression text.
        output: The step's output the expression was evaluated on.
        intervention_id: Names this intervention; an answer naming another
            one is refused as stale (`durable.resume_run`).
        kind: `condition` (an `intervention_if` was true after the step) or
            `approval` (the step needs a person's yes before it starts).
        args: `approval`: the step's resolved arguments.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    step_id: str
    expression: str
    output: Any = None
    intervention_id: str | None = None
    kind: str = "condition"
    args: dict[str, Any] | None = None

    @field_serializer("output", when_used="json")
    def _serialize_output(self, value: Any) -> Any:
        return to_jsonable(value)


class Event(BaseModel):
    """One thing that happened during a run.

    Every event has `type`, `plan_id`, `run_id` (the run's id, the journal's
    key: docs/runs.md), `step_id` (`None` on `START` and `FINISH`), `tool`,
    `msg` (one human-readable line) and `timestamp` (Unix seconds); the other
    fields are set where they apply.

    Attributes:
        output: `STEP_COMPLETE`, `INTERVENTION_NEEDED`: the step's output.
        key_finding: `STEP_COMPLETE`: whether the step is a key finding.
        reason: `STEP_SKIPPED`: why; `FINISH` after a cancellation: why.
        error: `ERROR`, `STEP_RETRY`: the exception's type and message.
        expression: `INTERVENTION_NEEDED`, `STEP_SKIPPED` by `run_if`: the text.
        attempt: `STEP_RETRY`: the number of the try that is about to start
            (2 for the first retry); `STEP_COMPLETE`/`ERROR`: tries made.
        duration_s: `STEP_COMPLETE`, `ERROR`, `FINISH`: seconds taken,
            measured on a monotonic clock.
        verdict: `FINISH`: the verdict.
        outputs: `FINISH`: every completed step's output, by step id.
        abandoned: `FINISH`: ids of the steps whose tool was still running in
            an abandoned worker thread when the run ended (a plain function
            that a timeout or a cancellation could not stop; see
            docs/engine.md, "Timeouts").
        intervention_id: `INTERVENTION_NEEDED`: names it, for `resume`.
        kind: `INTERVENTION_NEEDED`: `condition` or `approval`.
        args: `INTERVENTION_NEEDED` of kind `approval`: the resolved arguments.
        reused_from: `STEP_COMPLETE` of a step not run again: the run whose
            journal gave its output.
        item: In a `map` step, the index of the item the event is about
            (`STEP_RETRY`, `STEP_SKIPPED` of one item, `ERROR` of the item that
            failed the step, `INTERVENTION_NEEDED` of a per-item check).
        parent_step_id: On the events of a sub-plan run inside a step: that
            step's id in the parent plan (`plan_id` is the sub-plan's).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: EventType
    plan_id: str
    run_id: str | None = None
    step_id: str | None = None
    tool: str | None = None
    msg: str = ""
    timestamp: float = Field(default_factory=time.time)
    output: Any = None
    key_finding: bool | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    expression: str | None = None
    attempt: int | None = None
    duration_s: float | None = None
    verdict: Verdict | None = None
    outputs: dict[str, Any] | None = None
    abandoned: list[str] | None = None
    intervention_id: str | None = None
    kind: str | None = None
    args: dict[str, Any] | None = None
    reused_from: str | None = None
    # plan language 2: map and sub-plans
    item: int | None = None
    parent_step_id: str | None = None

    @field_serializer("output", when_used="json")
    def _serialize_output(self, value: Any) -> Any:
        return to_jsonable(value)

    @field_serializer("args", when_used="json")
    def _serialize_args(self, value: dict[str, Any] | None) -> Any:
        return None if value is None else {k: to_jsonable(v) for k, v in value.items()}

    @field_serializer("outputs", when_used="json")
    def _serialize_outputs(self, value: dict[str, Any] | None) -> Any:
        return None if value is None else {k: to_jsonable(v) for k, v in value.items()}

    def to_json(self) -> dict[str, Any]:
        """Return the event as JSON data: the one JSON form of an event.

        `run --json`, `agent --json` (inside its `ENGINE_EVENT`s) and the
        live run all write this. Fields that do not apply (`None`) are left
        out, except the ones every event has (`step_id` and `tool`, `null` on
        `START` and `FINISH`) and `output` on `STEP_COMPLETE` and
        `INTERVENTION_NEEDED` (a tool may return `None`).
        """
        data = self.model_dump(mode="json", exclude_none=True)
        data.setdefault("step_id", None)
        data.setdefault("tool", None)
        if self.type in (EventType.STEP_COMPLETE, EventType.INTERVENTION_NEEDED):
            data.setdefault("output", None)
        return data

    def to_json_line(self) -> str:
        """Return `to_json()` as one line of JSON, for other programs."""
        import json

        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))


_EVENT_DEFAULTS: dict[str, Any] = {
    name: field.default
    for name, field in Event.model_fields.items()
    if field.default_factory is None
}
_new_model = BaseModel.__new__
_set = object.__setattr__


def new_event(fields: dict[str, Any]) -> Event:
    """Build an `Event` from fields the engine made, without pydantic's validation.

    The step runtime's events (`STEP_START`, `STEP_COMPLETE`) are made two per
    step, from values whose types the engine controls; validating them was
    about a tenth of a fan-out step's cost. The result is the same as
    `Event(**fields)`: equal, with the same `model_fields_set`, and the same
    dump (tests/unit/engine/test_events.py compares them). The way the model
    is filled is the one `BaseModel.model_construct` uses (pydantic 2 docs,
    "Creating models without validation"), without its per-field default
    lookups.

    Args:
        fields: Field name to value; `type` and `plan_id` are required, every
            value must already have its field's type (an `EventType`, a
            `str`, an `ErrorInfo` ...). Taken over: not to be used again.

    Returns:
        The event, `timestamp` now (Unix seconds) unless given.
    """
    data = _EVENT_DEFAULTS.copy()
    fields_set = set(fields)
    data.update(fields)
    if "timestamp" not in fields:
        data["timestamp"] = time.time()
    event = _new_model(Event)
    _set(event, "__dict__", data)
    _set(event, "__pydantic_fields_set__", fields_set)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


class ExecutionResult(BaseModel):
    """Everything a run produced (plan language spec, "Events and results").

    Attributes:
        plan_id: The plan's id (generated when the plan had none).
        run_id: The run's id (`START`'s), the journal's key.
        verdict: How the run ended.
        outputs: Step id to output, for completed steps only; skipped and
            unrun steps are absent.
        key_findings: Step id to output, for completed steps marked
            `key_finding`.
        skipped: Ids of skipped steps, in the order they were skipped.
        error: The first error, or `None`.
        intervention: Why the run stopped for a person, or `None`.
        events: Every event of the run, `START` first and `FINISH` last.
        duration_s: Wall-clock seconds from `START` to `FINISH`.
        notebook: The marimo notebook source (`.py`) the run executed; a
            run's result renders it on first read (a run does not build
            notebook text nobody reads).
        released: Ids of completed steps whose outputs the run released
            once no remaining step read them (`keep_outputs="needed"`), in
            the order released: `outputs` does not hold them and their
            `STEP_COMPLETE` events in `events` carry no `output`.
        abandoned: Ids of steps whose tool was still running in an abandoned
            worker thread when the run ended (from `FINISH`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    plan_id: str
    run_id: str | None = None
    verdict: Verdict
    outputs: dict[str, Any] = Field(default_factory=dict)
    key_findings: dict[str, Any] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    error: ErrorInfo | None = None
    intervention: InterventionInfo | None = None
    events: list[Event] = Field(default_factory=list)
    duration_s: float = 0.0
    abandoned: list[str] = Field(default_factory=list)
    released: list[str] = Field(default_factory=list)
    _notebook: str | Callable[[], str] | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _take_notebook(cls, data: Any, handler: Any) -> Any:
        """Keep `notebook=` (text, or a function rendering it) aside: `notebook` reads it."""
        notebook = None
        if isinstance(data, dict) and "notebook" in data:
            data = dict(data)
            notebook = data.pop("notebook")
        result = handler(data)
        if notebook is not None:
            result._notebook = notebook
        return result

    @computed_field  # type: ignore[prop-decorator]
    @property
    def notebook(self) -> str | None:
        """The notebook source (`.py`) the run executed, or `None` (rendered on first read)."""
        notebook = self._notebook
        if callable(notebook):
            notebook = self._notebook = notebook()
        return notebook

    @notebook.setter
    def notebook(self, value: str | None) -> None:
        self._notebook = value

    @field_serializer("outputs", "key_findings", when_used="json")
    def _serialize_outputs(self, value: dict[str, Any]) -> Any:
        return {k: to_jsonable(v) for k, v in value.items()}

    @classmethod
    def from_events(cls, events: Sequence[Event], notebook: str | None = None) -> ExecutionResult:
        """Build the result of a run from its events (spec, "Events and results").

        Args:
            events: Every event of one run, `START` first and `FINISH` last.
            notebook: The notebook source of the run, if known.

        Returns:
            See `EventFold.result`. Without a `FINISH` the verdict is `FAILURE`.
        """
        fold = EventFold()
        for event in events:
            fold.add(event)
        return fold.result(notebook)

    @property
    def succeeded(self) -> bool:
        """Whether the verdict is `SUCCESS`."""
        return self.verdict is Verdict.SUCCESS


_MISSING = object()


class EventFold:
    """A run's events folded, one at a time, into what its result says: the one fold.

    The run itself keeps one (its outputs feed references; its error and
    intervention stop the scheduler), and `ExecutionResult.from_events`
    folds a finished list with one.

    Attributes:
        events: Every event added, in order.
        outputs: Step id to output, from `STEP_COMPLETE` (then `FINISH`'s).
        key_findings: Step id to output of completed key-finding steps.
        skipped: Ids of skipped steps, in the order they were skipped.
        error: The first `ERROR`'s error, or `None`.
        intervention: The first `INTERVENTION_NEEDED`, or `None`.
        finish: The `FINISH` event once added, else `None`.
        released: Ids of completed steps whose outputs were released
            (`release`, or absent from `FINISH`'s outputs), in order.
    """

    __slots__ = (
        "_completed_at",
        "error",
        "events",
        "finish",
        "intervention",
        "key_findings",
        "outputs",
        "released",
        "skipped",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.outputs: dict[str, Any] = {}
        self.key_findings: dict[str, Any] = {}
        self.skipped: list[str] = []
        self.error: ErrorInfo | None = None
        self.intervention: InterventionInfo | None = None
        self.finish: Event | None = None
        self.released: list[str] = []
        self._completed_at: dict[str, int] = {}  # step id -> index of its STEP_COMPLETE

    def add(self, event: Event) -> None:
        """Fold one event in.

        A sub-plan's events (`parent_step_id` set) are kept in `events` only:
        the step that ran the sub-plan carries their outcome. An item's
        `STEP_SKIPPED` (`item` set) does not skip the step.
        """
        if event.parent_step_id is not None:
            self.events.append(event)
            return
        kind = event.type
        if kind is EventType.STEP_COMPLETE and event.step_id is not None:
            self._completed_at[event.step_id] = len(self.events)
        self.events.append(event)
        if kind is EventType.STEP_SKIPPED and event.item is not None:
            return
        if kind is EventType.STEP_COMPLETE and event.step_id is not None:
            self.outputs[event.step_id] = event.output
            if event.key_finding:
                self.key_findings[event.step_id] = event.output
        elif kind is EventType.STEP_SKIPPED and event.step_id is not None:
            self.skipped.append(event.step_id)
        elif kind is EventType.ERROR and self.error is None:
            self.error = event.error or ErrorInfo(type="Error", message=event.msg)
        elif kind is EventType.INTERVENTION_NEEDED and self.intervention is None:
            self.intervention = InterventionInfo(
                step_id=event.step_id or "",
                expression=event.expression or "",
                output=event.output,
                intervention_id=event.intervention_id,
                kind=event.kind or "condition",
                args=event.args,
            )
        elif kind is EventType.FINISH:
            self.finish = event
            if event.outputs is not None:
                self.released += [
                    sid
                    for sid in self.outputs
                    if sid not in event.outputs and sid not in self.released
                ]
                self.outputs = dict(event.outputs)

    def release(self, step_id: str) -> None:
        """Let go of a completed step's output: `outputs` drops it, its event's copy here too.

        The `STEP_COMPLETE` already delivered is not changed (a consumer that
        kept it keeps the output); the fold's list holds a copy without it.
        A key finding's output stays in `key_findings`.

        Args:
            step_id: A step whose `STEP_COMPLETE` was added.
        """
        if self.outputs.pop(step_id, _MISSING) is _MISSING:
            return
        self.released.append(step_id)
        at = self._completed_at.get(step_id)
        if at is not None:
            self.events[at] = self.events[at].model_copy(update={"output": None})

    def verdict(self, *, cancelled: bool = False) -> Verdict:
        """The verdict the events so far call for (`FINISH`'s own once it came).

        Args:
            cancelled: Whether the run was cancelled (then `FAILURE`).

        Returns:
            `FAILURE` after an error or a cancellation, else
            `INTERVENTION_NEEDED` after an intervention, else `SUCCESS`.
        """
        if self.finish is not None and self.finish.verdict is not None:
            return self.finish.verdict
        if self.error is not None or cancelled:
            return Verdict.FAILURE
        if self.intervention is not None:
            return Verdict.INTERVENTION_NEEDED
        return Verdict.SUCCESS

    def result(self, notebook: str | Callable[[], str] | None = None) -> ExecutionResult:
        """The `ExecutionResult`: verdict, outputs and duration of `FINISH`.

        Args:
            notebook: The notebook source of the run, or a function that
                renders it (called on the result's first `notebook` read),
                or `None`.

        Returns:
            The result; without a `FINISH` the verdict is `FAILURE`.
        """
        finish = self.finish
        return ExecutionResult(
            plan_id=self.events[0].plan_id if self.events else "",
            run_id=self.events[0].run_id if self.events else None,
            verdict=finish.verdict if finish and finish.verdict else Verdict.FAILURE,
            outputs=dict(self.outputs) if finish else {},
            key_findings=dict(self.key_findings),
            skipped=list(self.skipped),
            error=self.error,
            intervention=self.intervention,
            events=list(self.events),
            duration_s=(finish.duration_s or 0.0) if finish else 0.0,
            notebook=notebook,
            abandoned=list((finish.abandoned or []) if finish else []),
            released=list(self.released),
        )
