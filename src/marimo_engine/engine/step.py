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
7. The output contract (`expect`, `schema`; `plans.contracts`): a broken
   one fails the step with `ContractError`, not retried.
8. `STEP_COMPLETE` with the output, then `intervention_if` (on the
   dependencies' outputs and the step's own, also as `$self`): true gives
   `INTERVENTION_NEEDED`.
9. A failure at any point gives one `ERROR` (the step's last one).

A markdown step (plan language 2) calls no tool: steps 3 to 6 are replaced
by filling the references into its text, which is its output.

Plan language 2 keeps this order: a `map` step (`engine._map`) resolves its
list after `run_if` and calls the tool once per item in 5 and 6 (per-item
retries, timeouts, `run_if`/`intervention_if` naming `$item`); a sub-plan
step (`engine._subplan`) resolves its `args` as the sub-plan's inputs, goes
through the durable hook, and has its host run the sub-plan in 5
(`run_subplan`). A host with `plan_inputs` gives `$input.NAME`.

A host whose step outputs live elsewhere (a Dask cluster: `engine.dask_host`)
gives `run_step` four optional hooks, so that what touches the data runs
where the data is while the semantics above stay here:
`async evaluate(prepared, expression, values) -> bool` (steps 2 and 8),
`async resolve_args(prepared, inputs) -> dict` (step 4),
`async call_tool(prepared, kwargs) -> output` (one try of step 5, which
`timeout_s` bounds and cancellation interrupts as any other try) and
`async check_contract(prepared, output, inputs) -> None` (step 7: runs
`Contract.check` where the output is and raises its `ContractError`).
Map and sub-plan steps find theirs through `engine._map` (`map_items`,
`map_output`, `find_item`) and `engine._subplan` (`resolve_args`).

This module imports nothing heavy at module level: compiled notebooks and live
kernels import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from marimo_engine.engine._threads import INTERRUPT_GRACE_S, WorkerPool
from marimo_engine.errors import ToolCancelledError, UnknownToolError
from marimo_engine.plans.contracts import SELF

_log = logging.getLogger(__name__)

_events: Any = None
"""`marimo_engine.engine.events` once a step has run (`_load_events`)."""


def _load_events() -> Any:
    """Import the events module on first use: it imports pydantic, which a notebook may not need.

    Two steps' worth of `from ... import` in the hot path cost as much as
    building an event, so the module is kept here after the first step.
    """
    global _events
    from marimo_engine.engine import events

    _events = events
    return events


if TYPE_CHECKING:
    from marimo_engine.engine.events import Event
    from marimo_engine.plans.contracts import Contract
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
    "markdown_output",
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
    what = step.description or step.tool
    what = what or (f"run plan {step.plan}" if step.plan is not None else f"{step.kind} step")
    what = what.strip().rstrip(".")
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
    return prepared.approval


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


def markdown_output(text: str, inputs: Mapping[str, Any]) -> str:
    """Return a markdown step's output: its text with references filled in.

    Args:
        text: The step's `markdown`.
        inputs: Outputs of the steps it names, by step id.

    Returns:
        The text; each `$id.path` replaced by `str()` of its value (a text
        that is one whole reference gives `str()` of that value).

    Raises:
        UnknownReferenceError: A reference names nothing.
    """
    from marimo_engine.plans.references import resolve_value

    value = resolve_value(text, inputs)
    return value if isinstance(value, str) else str(value)


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
        item_run_if: A `map` step whose `run_if` names `$item`/`$index`: it
            is evaluated per item (else once, for the step).
        item_intervention_if: The same for `intervention_if`.
        subplan: A sub-plan step's plan (`plans.subplans.ResolvedPlan`), else `None`.
        contract: The parsed `expect` and `schema`, or `None` when it has neither.
        started_msg: The `msg` of its `STEP_START` (`started_message`).
        approval: Whether a person must approve it before its tool is
            called (`needs_approval`).
        static_kwargs: The tool's keyword arguments when its `args` name no
            reference and every value is a `str`, number, `bool` or `None`
            (nothing a tool could change in place): literals converted,
            copied for each call. `None` otherwise: they are resolved per call.
    """

    step: Step
    tool: ToolSpec | None
    missing: str | None
    converted_args: Mapping[str, Any]
    run_if: Expression | None
    intervention_if: Expression | None
    dependencies: tuple[str, ...]
    item_run_if: bool = False
    item_intervention_if: bool = False
    subplan: Any = None
    contract: Contract | None = None
    started_msg: str = ""
    approval: bool = False
    static_kwargs: Mapping[str, Any] | None = None

    @property
    def id(self) -> str:
        """The step's id."""
        return self.step.id


def prepare_steps(
    plan: Plan,
    tools: Mapping[str | None, ToolSpec | None],
    *,
    missing: Mapping[str, str] | None = None,
    dependencies: Mapping[str, tuple[str, ...]] | None = None,
    subplans: Mapping[str, Any] | None = None,
) -> dict[str, PreparedStep]:
    """Prepare every step of a plan.

    Args:
        plan: A parsed plan.
        tools: Tool name to its spec; a name absent or mapped to `None`
            cannot be called (its steps fail with `UnknownToolError`).
        missing: Tool name to why it cannot be called, for the error message.
        dependencies: `step_dependencies(plan)` when the caller has it
            already (the compiled IR's); worked out here otherwise.
        subplans: Step id of each sub-plan step to its `ResolvedPlan`.

    Returns:
        Step id to its `PreparedStep`, in plan order.

    Raises:
        InvalidExpressionError: A `run_if`/`intervention_if` does not parse
            (validation rejects those plans first).
    """
    from marimo_engine.plans.contracts import Contract
    from marimo_engine.plans.dependencies import step_dependencies
    from marimo_engine.plans.expressions import parse_expression

    deps = dependencies if dependencies is not None else step_dependencies(plan)
    why = missing or {}
    prepared: dict[str, PreparedStep] = {}
    for step in plan.steps:
        spec = tools.get(step.tool) if step.tool is not None else None
        reason = None
        converted: Mapping[str, Any] = {}
        if spec is None:
            reason = why.get(step.tool or "", "it is not among the tools given")
        elif step.args:
            converted = spec.convert_literals(step.args)
        run_if = parse_expression(step.run_if) if step.run_if else None
        intervention_if = parse_expression(step.intervention_if) if step.intervention_if else None
        prepared[step.id] = PreparedStep(
            step=step,
            tool=spec,
            missing=reason,
            converted_args=converted,
            run_if=run_if,
            intervention_if=intervention_if,
            dependencies=deps[step.id],
            item_run_if=step.map is not None and _names_item(run_if),
            item_intervention_if=step.map is not None and _names_item(intervention_if),
            subplan=(subplans or {}).get(step.id),
            contract=Contract.of(step),
            started_msg=started_message(step),
            approval=bool(
                getattr(step, "requires_approval", False)
                or getattr(spec, "requires_approval", False)
            ),
            static_kwargs=_static_kwargs(step, converted),
        )
    return prepared


def _static_kwargs(step: Step, converted: Mapping[str, Any]) -> dict[str, Any] | None:
    """A tool step's keyword arguments if they are the same on every call, else `None`.

    They are when no value is a reference (no `$` in a string: `$$`, the
    escape, is resolved per call too) and every value is immutable (a list
    is made anew per call, so a tool changing it changes nothing for the next).
    """
    if step.map is not None or step.plan is not None or step.markdown is not None:
        return None
    kwargs = {**step.args, **converted}
    for value in kwargs.values():
        if isinstance(value, str):
            if "$" in value:
                return None
        elif value is not None and not isinstance(value, int | float):  # bool is an int
            return None
    return kwargs


def _names_item(expression: Expression | None) -> bool:
    """Whether an expression names `$item` or `$index` (then a map step evaluates it per item)."""
    return expression is not None and any(
        ref.step_id in ("item", "index") for ref in expression.references
    )


# -- the host ------------------------------------------------------------------------------


class StepHost(Protocol):
    """What a place that runs steps gives `run_step`.

    Attributes:
        plan_id: The plan's id, put on every event.
        pool: Runs plain-function tools in worker threads and interrupts them
            (`WorkerPool.run` with the step id as label); `run_step` also asks
            it `is_running(step_id)` and hands it `abandon_task(step_id, task)`.

    Optional: `run_id`, put on the step's events as they are made (the run
    sets it on every event anyway). Optional hooks, looked up with `getattr`
    (absent: the step runs here):
    `before_tool` and `intervene` (`durable.RunRecorder`'s, see
    docs/architecture.md); for outputs kept elsewhere (`dask_host.DaskTarget`)
    `evaluate(prepared, expression, values) -> bool` evaluates a `run_if` or
    `intervention_if` where the outputs are, `resolve_args(prepared, inputs)
    -> dict` builds the tool's keyword arguments (references resolved, literals
    converted), `call_tool(prepared, kwargs) -> output` makes one try and
    `check_contract(prepared, output, inputs) -> None` checks the output
    contract (`prepared.contract.check` where the output is; raises its
    `ContractError`).
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


async def _invoke(
    prepared: PreparedStep, kwargs: dict[str, Any], host: StepHost, label: str
) -> Any:
    tool = prepared.tool
    assert tool is not None
    try:
        remote_call = getattr(host, "call_tool", None)
        if remote_call is not None:  # the host runs the tool elsewhere (a Dask worker)
            return await remote_call(prepared, kwargs)
        if tool.is_async:
            return await tool.function(**kwargs)
        output = await host.pool.run(tool.function, kwargs, label=label)
        if inspect.isawaitable(output):  # a plain wrapper around a coroutine function
            output = await output
        return output
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Raised(exc)


def _one_try(
    prepared: PreparedStep,
    kwargs: dict[str, Any],
    host: StepHost,
    timeout_s: float | None,
    label: str,
) -> Awaitable[Any]:
    """Call the tool once, bounded by `timeout_s`; never waits on a tool that ignores its end.

    `label` names the call in the worker pool (the step id, or `step[3]` for
    an item of a `map` step). Returns what to await for the output (a
    `_Raised` when the tool raised `KeyboardInterrupt` or `SystemExit`).

    Awaiting it raises:
        TimeoutError: The try outlived `timeout_s` (its `__cause__`, if any,
            is what the interrupted tool raised); marked with `_STILL_RUNNING`
            when the try could not be stopped.
        asyncio.CancelledError: The caller was cancelled; the try was
            interrupted (and abandoned if it did not end within the grace).
    """
    if timeout_s is None:
        # No deadline: the tool call itself, no task of its own (the common
        # case, and the fast one); a coroutine function's own coroutine, not
        # even one of ours. A cancellation of the run reaches the tool
        # directly; a plain function's worker is interrupted, and abandoned if
        # it does not end. Whatever the tool raises reaches the caller as it
        # is (no task in between to mind a `KeyboardInterrupt`).
        tool = prepared.tool
        if tool is not None and tool.is_async and getattr(host, "call_tool", None) is None:
            return tool.function(**kwargs)  # type: ignore[no-any-return]
        return _invoke(prepared, kwargs, host, label)
    return _timed_try(prepared, kwargs, host, timeout_s, label)


async def _timed_try(
    prepared: PreparedStep, kwargs: dict[str, Any], host: StepHost, timeout_s: float, label: str
) -> Any:
    """`_one_try` with a deadline: the call in a task of its own, stopped at `timeout_s`."""
    task = asyncio.ensure_future(_invoke(prepared, kwargs, host, label))
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout_s)
    except asyncio.CancelledError:
        await _stop(task, label, host)
        raise
    if done:
        return task.result()
    ended = await _stop(task, label, host)
    timeout = TimeoutError(f"the tool call took longer than {timeout_s} s")
    if task.done() and not task.cancelled() and task.exception() is not None:
        timeout.__cause__ = task.exception()
    setattr(timeout, _STILL_RUNNING, not ended or host.pool.is_running(label))
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
    events = _events or _load_events()
    EventType = events.EventType

    step = prepared.step
    step_id = step.id
    started = time.monotonic()
    # No closures here: their cells were a tenth of the objects a step left to the collector.
    evaluate = getattr(host, "evaluate", None)  # outputs kept elsewhere: evaluate there
    await host.emit(
        events.new_event(
            {
                "type": EventType.STEP_START,
                "plan_id": host.plan_id,
                "run_id": getattr(host, "run_id", None),
                "step_id": step_id,
                "tool": step.tool,
                "msg": prepared.started_msg or started_message(step),
            }
        )
    )
    items: list[Any] | None = None
    plan_inputs = getattr(host, "plan_inputs", None)
    if plan_inputs is not None:  # `$input.NAME` (a plan with `inputs`)
        from collections import ChainMap

        inputs = ChainMap({"input": plan_inputs}, inputs)  # type: ignore[arg-type]
    try:
        if (
            prepared.run_if is not None
            and not prepared.item_run_if
            and not (
                prepared.run_if.is_true(inputs)
                if evaluate is None
                else await evaluate(prepared, prepared.run_if, inputs)
            )
        ):
            reason = f"run_if is false: {step.run_if}"
            await host.emit(
                events.Event(
                    type=EventType.STEP_SKIPPED,
                    plan_id=host.plan_id,
                    step_id=step_id,
                    tool=step.tool,
                    msg=skipped_message(step_id, reason),
                    reason=reason,
                    expression=step.run_if,
                )
            )
            return StepResult(StepOutcome.SKIPPED)
        if step.map is not None:
            from marimo_engine.engine._map import step_items

            items = await step_items(prepared, inputs, host)
        if step.markdown is not None:  # plan language 2: a markdown step calls no tool
            output = markdown_output(step.markdown, inputs)
        elif step.plan is not None:  # a sub-plan step: its args are the sub-plan's inputs
            from marimo_engine.engine._subplan import subplan_args

            kwargs = await subplan_args(prepared, inputs, host)
        elif prepared.tool is None:
            raise UnknownToolError(
                step.tool or "",
                message=f"Tool {step.tool!r} of step {step_id!r} cannot be called here: "
                f"{prepared.missing}.",
            )
        elif items is not None:
            kwargs = {"map": items, "args": dict(step.args)}
        elif (resolve_args := getattr(host, "resolve_args", None)) is not None:
            kwargs = await resolve_args(prepared, inputs)
        elif prepared.static_kwargs is not None:
            kwargs = dict(prepared.static_kwargs)
        elif step.args:
            from marimo_engine.plans.references import resolve_value

            kwargs = resolve_value(step.args, inputs)
            kwargs.update(prepared.converted_args)
        else:
            kwargs = {}
    except Exception as exc:
        return await _fail(host, step, started, exc, None)
    if step.markdown is not None:
        return await complete_step(prepared, inputs, host, output, attempt=1, started=started)

    # The durable-run hook (`durable.RunRecorder.before_tool`): journal the
    # receipt, reuse a journaled output, ask for an approval. Without it, a
    # step needing approval stops the run before it starts. A map step's
    # arguments here are its items and its args as written.
    gate = getattr(host, "before_tool", None)
    if gate is not None:
        decided = await gate(prepared, kwargs)
        if decided is not None:
            return decided
    elif needs_approval(prepared):
        await host.emit(approval_event(host.plan_id, prepared, kwargs))
        return StepResult(StepOutcome.INTERVENTION)

    if step.plan is not None:
        from marimo_engine.engine._subplan import run_subplan_step

        return await run_subplan_step(
            prepared, kwargs, inputs, host, started, functools.partial(_fail, host, step, started)
        )
    if items is not None:
        from marimo_engine.engine._map import run_map

        return await run_map(prepared, items, inputs, host, started)

    try:
        output, attempt = await call_tool(prepared, kwargs, host)
    except TriesFailed as failed:
        return await _fail(host, step, started, failed.error, failed.attempt)
    return await complete_step(prepared, inputs, host, output, attempt=attempt, started=started)


async def _fail(
    host: StepHost, step: Step, started: float, exc: BaseException, attempt: int | None
) -> StepResult:
    """A step failed with `exc`: its `ERROR`, and the result saying so.

    Args:
        host: The step's host.
        step: The step.
        started: `time.monotonic()` when the step started.
        exc: What failed it.
        attempt: Tries made, if the tool was called.
    """
    # The event carries type and message; the traceback goes to the log
    # (`marimo-engine --debug` shows it).
    _log.debug("Step %r failed: %s", step.id, type(exc).__name__, exc_info=exc)
    await host.emit(
        error_event(host.plan_id, step, exc, attempt=attempt, duration_s=time.monotonic() - started)
    )
    return StepResult(StepOutcome.FAILED, error=exc)


class TriesFailed(Exception):
    """Every try of a tool call failed (`call_tool`); `error` is the last try's."""

    def __init__(self, error: BaseException, attempt: int) -> None:
        super().__init__(attempt)  # never str(error): a tool's __str__ may raise
        self.error = error
        self.attempt = attempt


async def call_tool(
    prepared: PreparedStep, kwargs: dict[str, Any], host: StepHost, *, item: int | None = None
) -> tuple[Any, int]:
    """Call a step's tool with its retries (module docstring, 5 and 6): `(output, tries made)`.

    Args:
        prepared: The step (its tool must be callable).
        kwargs: The resolved arguments.
        host: The step's host (its `STEP_RETRY` events go there).
        item: The item's index in a `map` step (on `STEP_RETRY` and in the
            pool's label), else `None`.

    Raises:
        TriesFailed: No try succeeded; it carries the last error and the tries made.
        asyncio.CancelledError: The caller was cancelled.
    """
    step = prepared.step
    step_id = step.id
    label = step_id if item is None else f"{step_id}[{item}]"
    attempt = 1
    while True:
        try:
            output = await _one_try(prepared, kwargs, host, step.timeout_s, label)
            if isinstance(output, _Raised):
                raise output.exc
            return output, attempt
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
            raise TriesFailed(error, attempt)
        attempt += 1
        _log.debug("Step %r will retry after: %r", label, error, exc_info=error)
        from marimo_engine.engine.events import ErrorInfo, Event, EventType

        msg = retry_message(step_id, error, attempt, step.retries)
        if item is not None:
            msg = msg.replace(f"Step {step_id!r} failed", f"Step {step_id!r} item {item} failed")
        await host.emit(
            Event(
                type=EventType.STEP_RETRY,
                plan_id=host.plan_id,
                step_id=step_id,
                tool=step.tool,
                msg=msg,
                attempt=attempt,
                error=ErrorInfo.from_exception(error, step_id=step_id),
                item=item,
            )
        )
        await host.sleep(retry_delay_s(attempt))


async def complete_step(
    prepared: PreparedStep,
    inputs: Mapping[str, Any],
    host: StepHost,
    output: Any,
    *,
    attempt: int | None,
    started: float,
    items: list[Any] | None = None,
    note: str = "",
) -> StepResult:
    """The output contract, `STEP_COMPLETE`, then `intervention_if` (module docstring, 7-8).

    Args:
        prepared: The step.
        inputs: What its references read (outputs by step id).
        host: The step's host.
        output: The step's output.
        attempt: Tries made (`None` for a map step: each item has its own).
        started: `time.monotonic()` when the step started.
        items: A map step's items: an `intervention_if` that names `$item` or
            `$index` is evaluated per item, on that item's result as the
            step's own output; the first true one needs a person (its `item`).
        note: Text added to the `STEP_COMPLETE` message.

    Returns:
        `COMPLETED`, or `INTERVENTION` (or a durable callback's answer).
    """
    events = _events or _load_events()
    EventType = events.EventType

    step = prepared.step
    step_id = step.id
    if prepared.contract is not None:  # plan language 2: output contracts
        check = getattr(host, "check_contract", None)  # outputs kept elsewhere: check there
        try:
            if check is None:
                prepared.contract.check(output, inputs)
            else:
                await check(prepared, output, inputs)
        except Exception as exc:  # ContractError; never retried: the tool has answered
            await host.emit(
                error_event(
                    host.plan_id, step, exc, attempt=attempt, duration_s=time.monotonic() - started
                )
            )
            return StepResult(StepOutcome.FAILED, error=exc)
    duration_s = time.monotonic() - started
    msg = complete_message(step_id, duration_s, step.key_finding)
    if note:
        msg = msg[:-1] + f" ({note})."
    await host.emit(
        events.new_event(
            {
                "type": EventType.STEP_COMPLETE,
                "plan_id": host.plan_id,
                "run_id": getattr(host, "run_id", None),
                "step_id": step_id,
                "tool": step.tool,
                "msg": msg,
                "output": output,
                "key_finding": step.key_finding,
                "attempt": attempt,
                "duration_s": duration_s,
            }
        )
    )
    expression = prepared.intervention_if
    if expression is None:
        return StepResult(StepOutcome.COMPLETED, output=output)
    evaluate = getattr(host, "evaluate", None)  # outputs kept elsewhere: evaluate there
    needed_item: int | None = None
    try:
        if items is not None and prepared.item_intervention_if:
            from marimo_engine.engine._map import needing_item

            needed_item = await needing_item(prepared, inputs, items, output, host)
            needed = needed_item is not None
        elif evaluate is not None:
            needed = await evaluate(prepared, expression, {**inputs, step_id: output, SELF: output})
        else:
            needed = expression.is_true({**inputs, step_id: output, SELF: output})
    except Exception as exc:
        await host.emit(
            error_event(
                host.plan_id, step, exc, attempt=None, duration_s=time.monotonic() - started
            )
        )
        return StepResult(StepOutcome.FAILED, error=exc)
    if not needed:
        return StepResult(StepOutcome.COMPLETED, output=output)
    msg = intervention_message(step_id, step.intervention_if)
    if needed_item is not None:
        msg = msg[:-1] + f" for item {needed_item}."
    needed_event = events.Event(
        type=EventType.INTERVENTION_NEEDED,
        plan_id=host.plan_id,
        step_id=step_id,
        tool=step.tool,
        msg=msg,
        expression=step.intervention_if,
        output=output,
        kind="condition",
        intervention_id=new_intervention_id(),
        item=needed_item,
    )
    intervene = getattr(host, "intervene", None)  # durable: a callback may answer
    if intervene is not None:
        return await intervene(prepared, needed_event, output)
    await host.emit(needed_event)
    return StepResult(StepOutcome.INTERVENTION, output=output)
