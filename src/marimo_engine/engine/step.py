"""One step, as the plan language spec says it runs: the step semantics, written once.

Every place a plan runs is a thin **host** of `run_step`:

- the in-process run (`execute_plan`, `engine._run`),
- a compiled notebook run standalone (`runtime.StepRunner`: `marimo edit`,
  `python nb.py`, `marimo export html`),
- a live kernel (`runtime.KernelStepRunner`, driven by `engine.live_run`).

A host gives `run_step` what differs between those places (`StepHost`):
where events go (`emit`), how to wait (`sleep`), and the `WorkerPool` that
runs plain-function tools and interrupts them. What a step does is the same
everywhere, in this order:

1. `STEP_START`.
2. `run_if` (on the outputs of the step's dependencies): false gives
   `STEP_SKIPPED` with the reason and the expression; an error evaluating it
   fails the step.
3. A tool that cannot be called (not registered, not importable where the
   step runs) fails the step with `UnknownToolError`.
4. References in `args` are resolved; literal args are converted to the
   types validation checked them against (`ToolSpec.convert_literals`).
5. The tool is called, each try bounded by `timeout_s`: a coroutine
   function in its own task on the loop, a plain function on the host's
   worker pool. A try that outlives `timeout_s` is a `TimeoutError`, also
   when the tool swallowed its cancellation and returned. The try is
   interrupted (a task is cancelled, a worker thread gets `StepInterrupted`)
   and gets `INTERRUPT_GRACE_S` to end; one that still runs is abandoned and
   named in `FINISH` (`abandoned`).
6. A failed try is retried `retries` times, after 0.1, 0.2, 0.4 s …
   (`STEP_RETRY` before each), unless the failed try is still running: a
   retry never runs beside an earlier try of the same step.
7. `STEP_COMPLETE` with the output, then `intervention_if` (on the
   dependencies' outputs and the step's own): true gives
   `INTERVENTION_NEEDED`.
8. A failure at any point gives one `ERROR` (the step's last one).

This module imports nothing heavy at module level: compiled notebooks and live
kernels import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from marimo_engine.engine._threads import INTERRUPT_GRACE_S, WorkerPool
from marimo_engine.errors import ToolCancelledError, UnknownToolError

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event
    from marimo_engine.plans.expressions import Expression
    from marimo_engine.plans.schema import Plan, Step
    from marimo_engine.tools.registry import ToolSpec

__all__ = [
    "RETRY_BASE_DELAY_S",
    "PreparedStep",
    "StepHost",
    "StepOutcome",
    "StepResult",
    "approval_event",
    "needs_approval",
    "new_intervention_id",
    "prepare_steps",
    "retry_delay_s",
    "run_step",
]

RETRY_BASE_DELAY_S = 0.1
"""Seconds before the first retry; each later one waits twice as long (spec: 0.1, 0.2, 0.4 s …)."""


def retry_delay_s(attempt: int) -> float:
    """Return the wait before try number `attempt` (2 for the first retry), in seconds.

    Args:
        attempt: The number of the try about to start, 2 or more.

    Returns:
        `0.1 * 2 ** (attempt - 2)`: 0.1 s before the 2nd try, 0.2 s before the
        3rd, 0.4 s before the 4th (plan language spec, `retries`).
    """
    return RETRY_BASE_DELAY_S * (2 ** (attempt - 2))


# -- messages (the `msg` of each event) ---------------------------------------------------


def started_message(step: Step) -> str:
    """`msg` of a step's `STEP_START`."""
    what = (step.description or step.tool).strip().rstrip(".")
    return f"Step {step.id!r} started: {what}."


def skipped_message(step_id: str, reason: str) -> str:
    """`msg` of a `STEP_SKIPPED`."""
    return f"Step {step_id!r} skipped: {reason}."


def retry_message(step_id: str, error: BaseException, attempt: int, retries: int) -> str:
    """`msg` of a `STEP_RETRY` before try number `attempt` (of `retries + 1`)."""
    name = type(error).__name__
    return f"Step {step_id!r} failed ({name}: {error}); try {attempt} of {retries + 1}."


def complete_message(step_id: str, duration_s: float, key_finding: bool) -> str:
    """`msg` of a `STEP_COMPLETE`; `duration_s` in seconds."""
    tail = " (key finding)." if key_finding else "."
    return f"Step {step_id!r} completed in {duration_s:.3f} s{tail}"


def intervention_message(step_id: str, expression: str | None) -> str:
    """`msg` of an `INTERVENTION_NEEDED`."""
    return f"Step {step_id!r} needs a person: {expression} is true."


def failed_message(step_id: str, error_type: str, message: str) -> str:
    """`msg` of a step's `ERROR`."""
    return f"Step {step_id!r} failed: {error_type}: {message}"


def error_event(
    plan_id: str,
    step: Step,
    exc: BaseException,
    *,
    attempt: int | None = None,
    duration_s: float | None = None,
) -> Event:
    """The `ERROR` event of a step that failed with `exc`.

    Args:
        plan_id: The plan's id.
        step: The failed step.
        exc: What failed it.
        attempt: Tries made, if the tool was called.
        duration_s: Seconds since the step started, if it did.

    Returns:
        The event, its `error` built with `ErrorInfo.from_exception`.
    """
    from marimo_engine.engine.events import ErrorInfo, Event, EventType

    info = ErrorInfo.from_exception(exc, step_id=step.id)
    return Event(
        type=EventType.ERROR,
        plan_id=plan_id,
        step_id=step.id,
        tool=step.tool,
        msg=failed_message(step.id, info.type, info.message),
        error=info,
        attempt=attempt,
        duration_s=duration_s,
    )


def taken_up_event(plan_id: str, step: Step) -> Event:
    """The `STEP_START` of a step the run took up without starting its tool."""
    from marimo_engine.engine.events import Event, EventType

    return Event(
        type=EventType.STEP_START,
        plan_id=plan_id,
        step_id=step.id,
        tool=step.tool,
        msg=f"Step {step.id!r} taken up.",
    )


def blocked_events(plan_id: str, step: Step, dependency: str) -> list[Event]:
    """`STEP_START` and `STEP_SKIPPED` of a step skipped because `dependency` was skipped."""
    from marimo_engine.engine.events import Event, EventType

    reason = f"dependency {dependency!r} was skipped"
    return [
        taken_up_event(plan_id, step),
        Event(
            type=EventType.STEP_SKIPPED,
            plan_id=plan_id,
            step_id=step.id,
            tool=step.tool,
            msg=skipped_message(step.id, reason),
            reason=reason,
        ),
    ]


def new_intervention_id() -> str:
    """A fresh `intervention_id` (12 hex characters)."""
    import uuid

    return uuid.uuid4().hex[:12]


def needs_approval(prepared: PreparedStep) -> bool:
    """Whether a person must approve the step before its tool is called.

    True when the step says `"requires_approval": true` or its tool was
    registered with `requires_approval=True`.
    """
    return bool(
        getattr(prepared.step, "requires_approval", False)
        or getattr(prepared.tool, "requires_approval", False)
    )


def approval_event(plan_id: str, prepared: PreparedStep, kwargs: Mapping[str, Any]) -> Event:
    """The `INTERVENTION_NEEDED` (kind `approval`) before a step that needs a person's yes."""
    from marimo_engine.engine.events import Event, EventType

    step = prepared.step
    return Event(
        type=EventType.INTERVENTION_NEEDED,
        plan_id=plan_id,
        step_id=step.id,
        tool=step.tool,
        msg=f"Step {step.id!r} needs approval before it calls {step.tool!r}.",
        kind="approval",
        args=dict(kwargs),
        intervention_id=new_intervention_id(),
    )


# -- the prepared step ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedStep:
    """A step ready to run: what `run_step` needs, worked out once per run.

    Attributes:
        step: The plan's step.
        tool: The tool's spec, or `None` when it cannot be called where the
            step runs (`missing` says why).
        missing: Why the tool cannot be called, or `None`.
        converted_args: The literal args converted to their parameters' types.
        run_if: The parsed `run_if`, or `None`.
        intervention_if: The parsed `intervention_if`, or `None`.
        dependencies: Ids of the steps it depends on, in the order a compiled
            cell passes their outputs (`plans.dependencies.step_dependencies`).
    """

    step: Step
    tool: ToolSpec | None
    missing: str | None
    converted_args: Mapping[str, Any]
    run_if: Expression | None
    intervention_if: Expression | None
    dependencies: tuple[str, ...]

    @property
    def id(self) -> str:
        """The step's id."""
        return self.step.id


def prepare_steps(
    plan: Plan,
    tools: Mapping[str, ToolSpec | None],
    *,
    missing: Mapping[str, str] | None = None,
    dependencies: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, PreparedStep]:
    """Prepare every step of a plan.

    Args:
        plan: A parsed plan.
        tools: Tool name to its spec; a name absent or mapped to `None`
            cannot be called (its steps fail with `UnknownToolError`).
        missing: Tool name to why it cannot be called, for the error message.
        dependencies: `step_dependencies(plan)` when the caller has it
            already (the compiled IR's); worked out here otherwise.

    Returns:
        Step id to its `PreparedStep`, in plan order.

    Raises:
        InvalidExpressionError: A `run_if`/`intervention_if` does not parse
            (validation rejects those plans first).
    """
    from marimo_engine.plans.dependencies import step_dependencies
    from marimo_engine.plans.expressions import parse_expression

    deps = dependencies if dependencies is not None else step_dependencies(plan)
    why = missing or {}
    prepared: dict[str, PreparedStep] = {}
    for step in plan.steps:
        spec = tools.get(step.tool)
        reason = None
        converted: Mapping[str, Any] = {}
        if spec is None:
            reason = why.get(step.tool, "it is not among the tools given")
        elif step.args:
            converted = spec.convert_literals(step.args)
        prepared[step.id] = PreparedStep(
            step=step,
            tool=spec,
            missing=reason,
            converted_args=converted,
            run_if=parse_expression(step.run_if) if step.run_if else None,
            intervention_if=parse_expression(step.intervention_if)
            if step.intervention_if
            else None,
            dependencies=deps[step.id],
        )
    return prepared


# -- the host ------------------------------------------------------------------------------


class StepHost(Protocol):
    """What a place that runs steps gives `run_step`.

    Attributes:
        plan_id: The plan's id, put on every event.
        pool: Runs plain-function tools in worker threads and interrupts them
            (`WorkerPool.run` with the step id as label).
    """

    plan_id: str
    pool: WorkerPool

    async def emit(self, event: Event) -> None:
        """Deliver one event (stream it, record it, print it)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (the retry backoff)."""


class StepOutcome(Enum):
    """How one step ended."""

    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERVENTION = "intervention"


@dataclass(frozen=True, slots=True)
class StepResult:
    """What `run_step` returns.

    Attributes:
        outcome: How the step ended.
        output: The tool's output (`COMPLETED`, `INTERVENTION`), else `None`.
        error: The exception that failed the step (`FAILED`), else `None`.
    """

    outcome: StepOutcome
    output: Any = None
    error: BaseException | None = None


_STILL_RUNNING = "_marimo_engine_still_running"
"""Attribute set on a try's `TimeoutError` when the try could not be stopped (no retry then)."""


class _Raised:
    """A `KeyboardInterrupt`/`SystemExit` a tool raised, carried out of its task.

    asyncio re-raises those two out of the event loop when a task raises them;
    a tool's are the step's error, never the loop's.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _invoke(prepared: PreparedStep, kwargs: dict[str, Any], host: StepHost) -> Any:
    tool = prepared.tool
    assert tool is not None
    try:
        if tool.is_async:
            return await tool.function(**kwargs)
        output = await host.pool.run(tool.function, kwargs, label=prepared.id)
        if inspect.isawaitable(output):  # a plain wrapper around a coroutine function
            output = await output
        return output
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Raised(exc)


async def _one_try(
    prepared: PreparedStep, kwargs: dict[str, Any], host: StepHost, timeout_s: float | None
) -> Any:
    """Call the tool once, bounded by `timeout_s`; never waits on a tool that ignores its end.

    Raises:
        TimeoutError: The try outlived `timeout_s` (its `__cause__`, if any,
            is what the interrupted tool raised); marked with `_STILL_RUNNING`
            when the try could not be stopped.
        asyncio.CancelledError: The caller was cancelled; the try was
            interrupted (and abandoned if it did not end within the grace).
    """
    if timeout_s is None:
        # No deadline: no task of its own (the common case, and the fast
        # one). A cancellation of the run reaches the tool directly; a plain
        # function's worker is interrupted, and abandoned if it does not end.
        output = await _invoke(prepared, kwargs, host)
        if isinstance(output, _Raised):
            raise output.exc
        return output
    task = asyncio.ensure_future(_invoke(prepared, kwargs, host))
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout_s)
    except asyncio.CancelledError:
        await _stop(task, prepared.id, host)
        raise
    if done:
        output = task.result()
        if isinstance(output, _Raised):
            raise output.exc
        return output
    ended = await _stop(task, prepared.id, host)
    timeout = TimeoutError(f"the tool call took longer than {timeout_s} s")
    if task.done() and not task.cancelled() and task.exception() is not None:
        timeout.__cause__ = task.exception()
    setattr(timeout, _STILL_RUNNING, not ended or host.pool.is_running(prepared.id))
    raise timeout


async def _stop(task: asyncio.Future[Any], label: str, host: StepHost) -> bool:
    """Cancel a try and give it `INTERRUPT_GRACE_S` to end; whether it ended.

    A try that does not end is handed to the pool as abandoned.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait((task,), timeout=INTERRUPT_GRACE_S)
    if not task.done():
        host.pool.abandon_task(label, task)
        return False
    if not task.cancelled():
        task.exception()  # retrieved: a swallowed cancellation is not "never read"
    return True


def _as_failure(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncio.CancelledError):
        error = ToolCancelledError(
            "the tool raised CancelledError although the run was not cancelled "
            "(it awaited something that was cancelled)"
        )
        error.__cause__ = exc
        return error
    return exc


async def run_step(prepared: PreparedStep, inputs: Mapping[str, Any], host: StepHost) -> StepResult:
    """Run one step as the plan language spec says (see the module docstring).

    Args:
        prepared: The step.
        inputs: Outputs of (at least) the step's dependencies, by step id.
        host: Where events go, how to sleep, and the worker pool.

    Returns:
        How the step ended, with its output or its error. A failing tool never
        raises out of here: its error is the result.

    Raises:
        asyncio.CancelledError: The caller was cancelled (the running try is
            interrupted first).
    """
    from marimo_engine.engine.events import ErrorInfo, Event, EventType

    step = prepared.step
    step_id = step.id
    started = time.monotonic()

    def event(type_: EventType, msg: str, **fields: Any) -> Event:
        return Event(
            type=type_, plan_id=host.plan_id, step_id=step_id, tool=step.tool, msg=msg, **fields
        )

    async def fail(exc: BaseException, attempt: int | None) -> StepResult:
        # The event carries type and message; the traceback goes to the log
        # (`marimo-engine --debug` shows it).
        _log.debug("Step %r failed: %s", step_id, type(exc).__name__, exc_info=exc)
        await host.emit(
            error_event(
                host.plan_id, step, exc, attempt=attempt, duration_s=time.monotonic() - started
            )
        )
        return StepResult(StepOutcome.FAILED, error=exc)

    await host.emit(event(EventType.STEP_START, started_message(step)))
    try:
        if prepared.run_if is not None and not prepared.run_if.is_true(inputs):
            reason = f"run_if is false: {step.run_if}"
            await host.emit(
                event(
                    EventType.STEP_SKIPPED,
                    skipped_message(step_id, reason),
                    reason=reason,
                    expression=step.run_if,
                )
            )
            return StepResult(StepOutcome.SKIPPED)
        if prepared.tool is None:
            raise UnknownToolError(
                step.tool,
                message=f"Tool {step.tool!r} of step {step_id!r} cannot be called here: "
                f"{prepared.missing}.",
            )
        if step.args:
            from marimo_engine.plans.references import resolve_value

            kwargs = resolve_value(step.args, inputs)
            kwargs.update(prepared.converted_args)
        else:
            kwargs = {}
    except Exception as exc:
        return await fail(exc, None)

    # The durable-run hook (`durable.RunRecorder.before_tool`): journal the
    # receipt, reuse a journaled output, ask for an approval. Without it, a
    # step needing approval stops the run before it starts.
    gate = getattr(host, "before_tool", None)
    if gate is not None:
        decided = await gate(prepared, kwargs)
        if decided is not None:
            return decided
    elif needs_approval(prepared):
        await host.emit(approval_event(host.plan_id, prepared, kwargs))
        return StepResult(StepOutcome.INTERVENTION)

    attempt = 1
    while True:
        try:
            output = await _one_try(prepared, kwargs, host, step.timeout_s)
            break
        except BaseException as exc:  # a failing tool is data, whatever it raised
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The run is being cancelled (the tool may have turned the
                # cancellation into another error): stop, never retry.
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise asyncio.CancelledError() from exc
            error = _as_failure(exc)
        still_running = getattr(error, _STILL_RUNNING, False)
        if attempt > step.retries or still_running:
            if still_running and attempt <= step.retries:
                error = TimeoutError(
                    f"{error}; not retried: the timed-out try is still running "
                    "(a blocking call the interruption cannot stop)"
                )
            return await fail(error, attempt)
        attempt += 1
        _log.debug("Step %r will retry after: %r", step_id, error, exc_info=error)
        await host.emit(
            event(
                EventType.STEP_RETRY,
                retry_message(step_id, error, attempt, step.retries),
                attempt=attempt,
                error=ErrorInfo.from_exception(error, step_id=step_id),
            )
        )
        await host.sleep(retry_delay_s(attempt))

    duration_s = time.monotonic() - started
    await host.emit(
        event(
            EventType.STEP_COMPLETE,
            complete_message(step_id, duration_s, step.key_finding),
            output=output,
            key_finding=step.key_finding,
            attempt=attempt,
            duration_s=duration_s,
        )
    )
    if prepared.intervention_if is not None:
        try:
            needed = prepared.intervention_if.is_true({**inputs, step_id: output})
        except Exception as exc:
            return await fail(exc, None)
        if needed:
            needed_event = event(
                EventType.INTERVENTION_NEEDED,
                intervention_message(step_id, step.intervention_if),
                expression=step.intervention_if,
                output=output,
                kind="condition",
                intervention_id=new_intervention_id(),
            )
            intervene = getattr(host, "intervene", None)  # durable: a callback may answer
            if intervene is not None:
                return await intervene(prepared, needed_event, output)
            await host.emit(needed_event)
            return StepResult(StepOutcome.INTERVENTION, output=output)
    return StepResult(StepOutcome.COMPLETED, output=output)
