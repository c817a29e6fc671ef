"""What a compiled notebook's cells call: one step, as the plan language spec says.

A compiled notebook's setup cell builds a `StepRunner` named `plan_run` from
the plan and the tools, and each step cell is one line::

    s3 = await plan_run.step("s3", s1, s2)

The same cells run in two ways:

- **Under the engine** (`execute_plan`): the executor puts its own runner in
  the cells' globals, which emits events, runs plain functions in a bounded
  worker pool and applies fail-fast; see `marimo_engine.engine.executor`.
- **Standalone** (`marimo edit`, `python notebook.py`, `marimo export html`):
  `StepRunner` evaluates `run_if`, resolves references, calls the tool with
  the step's retries and timeout, shows the output, and checks
  `intervention_if`. A skipped step and a step that needs a person stop their
  cell with `mo.stop`, so marimo itself does not run the cells that depend
  on them: marimo's reactivity is the plan's skip propagation.

The step semantics shared by both (`evaluate_run_if`, `call_with_retries`,
`evaluate_intervention`) live here, once.

This module imports nothing heavy at module level: it is imported by every
compiled notebook.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import ToolCancelledError, UsageError

if TYPE_CHECKING:
    from marimo_engine.plans.expressions import Expression
    from marimo_engine.plans.schema import Plan, Step

__all__ = [
    "RETRY_BASE_DELAY_S",
    "StepRunner",
    "call_tool",
    "call_with_retries",
    "evaluate_condition",
    "retry_delay_s",
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


def evaluate_condition(expression: Expression, outputs: Mapping[str, Any]) -> bool:
    """Evaluate a `run_if` / `intervention_if` expression for its truth value.

    Args:
        expression: A parsed expression.
        outputs: Outputs of completed steps by step id (the step itself
            included for `intervention_if`).

    Returns:
        `bool(value)` of the expression's value.

    Raises:
        ExpressionError: A type error during evaluation (say, `None < 15`),
            or a value whose truth cannot be taken.
        UnknownReferenceError: A reference names a missing step or path.
    """
    from marimo_engine.errors import ExpressionError

    value = expression.evaluate(outputs)
    try:
        return bool(value)
    except Exception as exc:  # e.g. a dataframe's ambiguous truth value
        raise ExpressionError(
            f"Expression {expression.text!r} gave a {type(value).__name__}, whose truth "
            f"value cannot be taken ({exc}); compare it to something instead.",
            expression=expression.text,
        ) from exc


async def call_with_retries(
    call: Callable[[], Awaitable[Any]],
    *,
    retries: int,
    timeout_s: float | None,
    on_retry: Callable[[int, BaseException], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> tuple[Any, int]:
    """Call a tool until it returns, with the spec's timeout and retries.

    Args:
        call: Starts one try and returns an awaitable of the tool's output.
        retries: Further tries after the first, 0-10.
        timeout_s: Seconds one try may take before it is cancelled with
            `TimeoutError`; `None` waits forever.
        on_retry: Called as `on_retry(attempt, error)` before each new try,
            with the number of the try about to start (2 for the first
            retry) and the error of the try that failed. May be a coroutine
            function.
        sleep: The sleep used for the backoff (tests may pass their own).

    Returns:
        `(output, tries)`: the tool's output and how many tries it took.

    Raises:
        BaseException: Whatever the last try raised (`TimeoutError` for a
            timeout), once no retry is left. `asyncio.CancelledError` from a
            cancellation of the caller is never retried.
    """
    attempt = 1
    while True:
        try:
            if timeout_s is None:
                return await call(), attempt
            async with asyncio.timeout(timeout_s):
                return await call(), attempt
        except TimeoutError as exc:
            error: BaseException = (
                exc if str(exc) else TimeoutError(f"the tool call took longer than {timeout_s} s")
            )
        except BaseException as exc:  # a failing tool is data, whatever it raised
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Our caller is being cancelled (the tool may have turned the
                # cancellation into another error): stop, never retry.
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise asyncio.CancelledError() from exc
            if isinstance(exc, asyncio.CancelledError):
                error = ToolCancelledError(
                    "the tool raised CancelledError although the run was not cancelled "
                    "(it awaited something that was cancelled)"
                )
                error.__cause__ = exc
            else:
                error = exc
        if attempt > retries:
            raise error
        attempt += 1
        if on_retry is not None:
            result = on_retry(attempt, error)
            if inspect.isawaitable(result):
                await result
        await sleep(retry_delay_s(attempt))


async def call_tool(
    function: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    is_async: bool,
    run_in_thread: Callable[[Callable[..., Any], dict[str, Any]], Awaitable[Any]],
) -> Any:
    """Call a tool once: a coroutine function on the loop, a plain function off it.

    Args:
        function: The tool.
        kwargs: Its resolved keyword arguments.
        is_async: Whether `function` is a coroutine function.
        run_in_thread: Runs a plain function in a worker thread, as
            `await run_in_thread(function, kwargs)`.

    Returns:
        The tool's output. A plain function that returns an awaitable (a
        wrapper around a coroutine function, say) has it awaited on the loop.
    """
    if is_async:
        return await function(**kwargs)
    output = await run_in_thread(function, kwargs)
    if inspect.isawaitable(output):
        output = await output
    return output


async def _to_thread(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return await asyncio.to_thread(function, **kwargs)


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


def stop_skipped(step_id: str, run_if: str | None) -> None:
    """Stop the calling marimo cell as skipped (`mo.stop`), so marimo skips its dependents.

    Raises:
        MarimoStopError: Always (that is how `mo.stop` stops a cell).
    """
    import marimo as mo

    mo.stop(True, mo.md(f"**Skipped** `{step_id}`: `run_if` is false: `{run_if}`"))


def stop_for_person(step_id: str, expression: str | None, output: Any) -> None:
    """Stop the calling marimo cell with a callout and the step's output (`mo.stop`).

    Raises:
        MarimoStopError: Always; marimo then does not run the dependent cells.
    """
    import marimo as mo

    callout = mo.callout(
        mo.md(
            f"**Intervention needed** after `{step_id}`: `{expression}` is true. "
            "A person must decide before the dependent steps run."
        ),
        kind="warn",
    )
    mo.stop(True, mo.vstack([callout, output]))


@dataclass(frozen=True)
class _PreparedStep:
    step: Step
    run_if: Expression | None
    intervention_if: Expression | None
    dependencies: tuple[str, ...]


class StepRunner:
    """Runs a compiled notebook's steps standalone (`marimo edit`, `python file.py`).

    Args:
        plan: The plan, as a `Plan`, a dict or a JSON string.
        tools: Tool name to callable. A tool missing here (not importable
            by module path when the notebook was written) fails its step
            with a message saying so.

    Raises:
        PlanValidationError: The plan does not parse.
    """

    def __init__(
        self, plan: Plan | Mapping[str, Any] | str, tools: Mapping[str, Callable[..., Any]]
    ) -> None:
        from marimo_engine.plans.dependencies import step_dependencies
        from marimo_engine.plans.expressions import parse_expression
        from marimo_engine.plans.schema import load_plan

        self.plan = load_plan(plan)
        self.tools = dict(tools)
        deps = step_dependencies(self.plan)
        from marimo_engine.engine._script_report import ScriptReport

        self._report = ScriptReport(self.plan.id, deps)  # prints under `python notebook.py`
        self._steps = {
            s.id: _PreparedStep(
                step=s,
                run_if=parse_expression(s.run_if) if s.run_if else None,
                intervention_if=parse_expression(s.intervention_if) if s.intervention_if else None,
                dependencies=deps[s.id],
            )
            for s in self.plan.steps
        }

    def _prepared(self, step_id: str) -> _PreparedStep:
        try:
            return self._steps[step_id]
        except KeyError:
            known = ", ".join(repr(k) for k in self._steps)
            raise UsageError(
                f"Plan {self.plan.id!r} has no step {step_id!r}. Known steps: {known}."
            ) from None

    async def step(self, step_id: str, *inputs: Any) -> Any:
        """Run one step in a marimo cell and return its output (see `_run_step`).

        Run as a script (`python notebook.py`), each step's outcome is
        printed as it ends, and the verdict when the script ends
        (`marimo_engine.engine._script_report`).
        """
        from marimo_engine.engine._script_report import FAILED

        try:
            return await self._run_step(step_id, *inputs)
        except BaseException as exc:  # recorded unless the step was stopped (skip, person)
            message = failed_message(step_id, type(exc).__name__, str(exc))
            self._report.record(step_id, FAILED, message)
            raise

    async def _run_step(self, step_id: str, *inputs: Any) -> Any:
        """Run one step in a marimo cell and return its output.

        Args:
            step_id: The step's id in the plan.
            *inputs: The outputs of the step's dependencies, in the order of
                `step_dependencies(plan)[step_id]` (the cell passes them so
                that marimo's graph holds the plan's edges).

        Returns:
            The tool's output, which the cell assigns to the step's variable
            and shows as its output.

        Raises:
            MarimoStopError: Through `mo.stop`, when `run_if` is false (the
                step is skipped) or `intervention_if` is true (a person must
                decide); marimo then does not run the dependent cells.
            BaseException: What the tool raised once no retry was left.
        """
        import marimo as mo

        prepared = self._prepared(step_id)
        step = prepared.step
        if len(inputs) != len(prepared.dependencies):
            raise UsageError(
                f"Step {step_id!r} got {len(inputs)} inputs but depends on "
                f"{len(prepared.dependencies)} steps ({', '.join(prepared.dependencies)})."
            )
        outputs = dict(zip(prepared.dependencies, inputs, strict=True))
        if prepared.run_if is not None and not evaluate_condition(prepared.run_if, outputs):
            reason = f"run_if is false: {step.run_if}"
            self._report.record(step_id, "skipped", skipped_message(step_id, reason))
            stop_skipped(step_id, step.run_if)
        tool = self.tools.get(step.tool)
        if tool is None:
            raise UsageError(
                f"Tool {step.tool!r} of step {step_id!r} was not importable by module path when "
                "this notebook was written; define it in an importable module and export again."
            )
        from marimo_engine.plans.references import resolve_value

        kwargs = resolve_value(step.args, outputs)
        if step.args:
            from marimo_engine.tools.registry import build_tool_spec

            kwargs.update(build_tool_spec(tool, name=step.tool).convert_literals(step.args))

        is_async = inspect.iscoroutinefunction(tool)

        def start() -> Awaitable[Any]:
            return call_tool(tool, kwargs, is_async=is_async, run_in_thread=_to_thread)

        def report_retry(attempt: int, error: BaseException) -> None:
            print(retry_message(step_id, error, attempt, step.retries))

        started = time.monotonic()
        output, _ = await call_with_retries(
            start, retries=step.retries, timeout_s=step.timeout_s, on_retry=report_retry
        )
        done = complete_message(step_id, time.monotonic() - started, step.key_finding)
        if prepared.intervention_if is not None:
            outputs[step_id] = output
            if evaluate_condition(prepared.intervention_if, outputs):
                message = intervention_message(step_id, step.intervention_if)
                self._report.record(step_id, "intervention", f"{done}\n{message}")
                stop_for_person(step_id, step.intervention_if, output)
        self._report.record(step_id, "completed", done)
        mo.output.replace(output)
        return output
