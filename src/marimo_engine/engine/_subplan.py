"""A sub-plan step: another plan run as one step (plan language 2, "Sub-plans").

The step's semantics are written once here (`run_subplan_step`); how the
sub-plan runs is the host's (`run_subplan(prepared, values)`):

- in process (`engine._run`), a nested run of the same engine
  (`run_nested`), whose events reach the parent's stream with
  `parent_step_id` set to the step's id (`plan_id` is the sub-plan's);
- in a compiled notebook (`runtime.StepRunner`), the sub-plan's own
  notebook, embedded with marimo's `app.embed()`;
- on a Dask cluster (`dask_host.DaskTarget`), a nested run whose target is
  a Dask host sharing the parent's client (`run_nested`'s `target`).

The step's `args` are resolved by `subplan_args`: here, or by the host's
`resolve_args` hook (outputs kept elsewhere: an input may stay a Dask future).

Either returns the sub-plan's `ExecutionResult`, whose verdict maps to the step's:

- `SUCCESS`: the step completes; its output is the sub-plan's output.
- `FAILURE`: the step fails with `SubPlanError`, naming the sub-plan's
  failing step and its error.
- `INTERVENTION_NEEDED`: as after a true `intervention_if`, the step
  completes with the sub-plan's output so far, then needs a person
  (`INTERVENTION_NEEDED`, kind `condition`, its expression naming the
  sub-plan's step and expression); a `Decision` answers it as for any step.

The sub-plan's output is a dict of step id to output: of the steps marked
`"output": true` when any is, else of every completed step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.step import StepOutcome, StepResult, complete_step
from marimo_engine.errors import EngineError, SubPlanError, UsageError

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event, ExecutionResult
    from marimo_engine.engine.step import PreparedStep, StepHost
    from marimo_engine.plans.schema import Plan

__all__ = ["input_values", "run_nested", "run_subplan_step", "subplan_args", "subplan_output"]


async def subplan_args(
    prepared: PreparedStep, inputs: Mapping[str, Any], host: StepHost
) -> dict[str, Any]:
    """A sub-plan step's resolved `args` (the sub-plan's input values, by name).

    Resolved here, or by the host's `resolve_args` hook when it has one
    (`dask_host.DaskTarget`: an input read from an output on the cluster
    stays there).

    Raises:
        UnknownReferenceError: A reference does not resolve.
    """
    step = prepared.step
    if not step.args:
        return {}
    hook = getattr(host, "resolve_args", None)
    if hook is not None:
        return await hook(prepared, inputs)  # type: ignore[no-any-return]
    from marimo_engine.plans.references import resolve_value

    return resolve_value(step.args, inputs)  # type: ignore[return-value]


def input_values(
    plan: Plan,
    given: Mapping[str, Any] | None,
    *,
    how: str = "inputs={{{name!r}: ...}}, or the sub-plan step's args",
) -> dict[str, Any] | None:
    """Return the values of a plan's `inputs`: those given, else the defaults.

    Args:
        plan: The plan.
        given: Input name to value (a sub-plan step's resolved `args`, or a
            run's `inputs=`); `None` for none.
        how: How the caller gives an input, for the message of a missing
            one: a `str.format` template of `name` (the CLI says
            `--input {name}=VALUE`).

    Returns:
        Input name to value, or `None` when the plan declares no inputs and
        none are given.

    Raises:
        UsageError: A required input is missing, or a given name is not an
            input of the plan; the message lists the inputs.
    """
    given = dict(given or {})
    if not plan.inputs and not given:
        return None
    listed = ", ".join(repr(name) for name in plan.inputs) or "none"
    unknown = [name for name in given if name not in plan.inputs]
    if unknown:
        raise UsageError(f"Plan {plan.id!r} has no input {unknown[0]!r}; its inputs: {listed}.")
    values: dict[str, Any] = {}
    for name, spec in plan.inputs.items():
        if name in given:
            values[name] = given[name]
        elif spec.required:
            raise UsageError(
                f"Plan {plan.id!r} needs the input {name!r}; give it ({how.format(name=name)}). "
                f"Its inputs: {listed}."
            )
        else:
            values[name] = spec.default
    return values


def subplan_output(plan: Plan, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The output of a plan run as a sub-plan: its marked steps' outputs, else all.

    Args:
        plan: The sub-plan.
        outputs: Its run's outputs (completed steps), by step id.

    Returns:
        Step id to output, in plan order: the steps with `"output": true`
        that completed, or every completed step when none is marked.
    """
    marked = [step.id for step in plan.steps if step.output]
    ids = marked or plan.step_ids
    return {sid: outputs[sid] for sid in ids if sid in outputs}


async def run_subplan_step(
    prepared: PreparedStep,
    given: Mapping[str, Any],
    inputs: Mapping[str, Any],
    host: StepHost,
    started: float,
    fail: Callable[[BaseException, int | None], Awaitable[StepResult]],
) -> StepResult:
    """Run a sub-plan step (module docstring) on its host; never raises but `CancelledError`.

    Args:
        prepared: The step.
        given: Its resolved `args`: the sub-plan's input values.
        inputs: What the step's own references read (for its `intervention_if`).
        host: The step's host (`run_subplan` runs the sub-plan there).
        started: `time.monotonic()` when the step started.
        fail: `run_step`'s failure: emits the step's `ERROR`.
    """
    from marimo_engine.engine.events import Event, EventType, Verdict
    from marimo_engine.engine.step import new_intervention_id

    step = prepared.step
    runner = getattr(host, "run_subplan", None)
    try:
        if prepared.subplan is None or runner is None:
            raise EngineError(
                f"Step {step.id!r} runs the sub-plan {step.plan!r}, which cannot run here: "
                "the plan was not found where the step runs. Run the plan with the engine "
                "(execute_plan) or from its compiled notebook."
            )
        values = input_values(prepared.subplan.plan, given) or {}
    except Exception as exc:
        return await fail(exc, None)
    result: ExecutionResult = await runner(prepared, values)
    if result.verdict is Verdict.FAILURE:
        error = result.error
        where = f" at step {error.step_id!r}" if error and error.step_id else ""
        what = f": {error.type}: {error.message}" if error else ""
        return await fail(
            SubPlanError(
                f"the sub-plan {step.plan!r} failed{where}{what}",
                plan=step.plan or "",
                step_id=error.step_id if error else None,
                error_type=error.type if error else "",
            ),
            None,
        )
    output = subplan_output(prepared.subplan.plan, result.outputs)
    if result.verdict is Verdict.INTERVENTION_NEEDED:
        # As after any step whose intervention_if is true: the step completes with
        # what the sub-plan returned so far, then a person decides (a durable run's
        # `intervene` hook may ask `on_intervention`; its journal keeps the output).
        inner = result.intervention
        inner_step = inner.step_id if inner else "?"
        duration_s = time.monotonic() - started
        await host.emit(
            Event(
                type=EventType.STEP_COMPLETE,
                plan_id=host.plan_id,
                step_id=step.id,
                tool=step.tool,
                msg=f"Step {step.id!r} completed in {duration_s:.3f} s (sub-plan stopped for "
                "a person).",
                output=output,
                key_finding=step.key_finding,
                duration_s=duration_s,
            )
        )
        needed = Event(
            type=EventType.INTERVENTION_NEEDED,
            plan_id=host.plan_id,
            step_id=step.id,
            tool=step.tool,
            msg=f"Step {step.id!r} needs a person: in its sub-plan {step.plan!r}, step "
            f"{inner_step!r} needs a person ({inner.kind if inner else 'condition'}).",
            expression=f"sub-plan {step.plan}, step {inner_step}: "
            f"{inner.expression if inner else ''}",
            output=output,
            kind="condition",
            intervention_id=new_intervention_id(),
        )
        intervene = getattr(host, "intervene", None)
        if intervene is not None:
            return await intervene(prepared, needed, output)
        await host.emit(needed)
        return StepResult(StepOutcome.INTERVENTION, output=output)
    return await complete_step(
        prepared, inputs, host, output, attempt=None, started=started, note="sub-plan"
    )


async def run_nested(
    parent: Any,
    prepared: PreparedStep,
    values: Mapping[str, Any],
    emit: Callable[[Event], Awaitable[None]],
    *,
    target: Any = None,
) -> ExecutionResult:
    """Run a sub-plan as a nested run of the engine; its `ExecutionResult`.

    Args:
        parent: The parent's run (`engine._run._Run`): its tools, worker
            bound and plan library are the sub-plan's.
        prepared: The sub-plan step (`prepared.subplan` set).
        values: The sub-plan's input values.
        emit: Delivers each of the sub-plan's events to the parent's stream;
            `parent_step_id` is set on those that do not have one yet (a
            deeper sub-plan's keep their own). Its `START` and `FINISH` are
            not delivered (every run has one `FINISH`, the parent's); the
            step's own events bracket the sub-plan's.
        target: Where the nested run's steps run (`_Run`'s target); `None`
            for in process. A Dask parent gives a Dask host sharing its client.

    Raises:
        asyncio.CancelledError: The parent was cancelled (the nested run
            emits its `FINISH` first).
    """
    from marimo_engine.engine._run import _Run
    from marimo_engine.engine.events import EventType

    resolved = prepared.subplan
    nested_library = parent.plans.at(resolved.base_dir)

    async def forward(event: Event) -> None:
        if event.type in (EventType.START, EventType.FINISH):
            return  # the step's own events bracket the sub-plan; its result has these
        if event.parent_step_id is None:
            event.parent_step_id = prepared.id
        await emit(event)

    nested = _Run(
        resolved.plan,
        parent.tools,
        max_workers=parent.max_workers,
        emit=forward,
        plans=nested_library,
        inputs=dict(values),
        run_id=parent.run_id,
        target=target,
    )
    nested.started = time.monotonic()
    await nested.main()
    return nested.fold.result(None)  # the parent's notebook holds the sub-plan's
