"""What a live plan run's cells call inside the person's kernel (see `live.plan_run`).

`run_plan_live` adds one setup cell that builds a `LiveStepRunner` under a
fresh name, and one cell per step in the compiler's form::

    s3 = await plan_run_1a2b3c.step("s3", s1, s2)

The runner applies the plan language's step semantics with the engine's
own building blocks (`engine.runtime.call_with_retries`,
`evaluate_condition`, `plans.references.resolve_value`) and records each
step's events as JSON, which the client reads back after the step's cell
ran. The cell shows the step's output, a "skipped" note, or the
intervention callout, as a compiled notebook does.

This module is imported in the kernel: nothing heavy at module level.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from typing import Any

__all__ = ["LiveStepRunner"]


def _import_tool(module: str, qualname: str) -> Any:
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


class LiveStepRunner:
    """Runs a plan's steps in a live kernel, one cell per step, recording events.

    Args:
        spec_json: JSON text of `{"plan": <plan as JSON>, "tools": {name:
            [module, qualname]}}`; each tool is imported by module path.

    Attributes:
        plan: The parsed plan.
        tools: Tool name to callable (`None` when its import failed).
        import_errors: Tool name to the import error's message.
        outputs: Step id to the output of each completed step (Python objects).
        records: Step id to that step's events, as JSON objects (`Event` fields).
    """

    def __init__(self, spec_json: str) -> None:
        from marimo_engine.plans.dependencies import step_dependencies
        from marimo_engine.plans.expressions import parse_expression
        from marimo_engine.plans.schema import load_plan

        spec = json.loads(spec_json)
        self.plan = load_plan(spec["plan"])
        self.tools: dict[str, Any] = {}
        self.import_errors: dict[str, str] = {}
        for name, (module, qualname) in spec["tools"].items():
            try:
                self.tools[name] = _import_tool(module, qualname)
            except Exception as exc:  # reported on the step that needs it
                self.tools[name] = None
                self.import_errors[name] = f"{type(exc).__name__}: {exc}"
        self.dependencies = step_dependencies(self.plan)
        self.run_if = {s.id: parse_expression(s.run_if) for s in self.plan.steps if s.run_if}
        self.intervention_if = {
            s.id: parse_expression(s.intervention_if) for s in self.plan.steps if s.intervention_if
        }
        self.outputs: dict[str, Any] = {}
        self.records: dict[str, list[dict[str, Any]]] = {}

    def _record(self, type_: str, msg: str, step_id: str, **fields: Any) -> None:
        from marimo_engine.engine.events import Event

        step = self.plan.step(step_id)
        event = Event(
            type=type_, plan_id=self.plan.id, step_id=step_id, tool=step.tool, msg=msg, **fields
        )  # type: ignore[arg-type]
        self.records.setdefault(step_id, []).append(event.model_dump(mode="json"))

    def _fail(
        self, step_id: str, exc: BaseException, *, attempt: int | None, started: float
    ) -> None:
        from marimo_engine.engine import runtime as rt
        from marimo_engine.engine.events import ErrorInfo

        info = ErrorInfo.from_exception(exc, step_id=step_id)
        self._record(
            "ERROR",
            rt.failed_message(step_id, info.type, info.message),
            step_id,
            error=info,
            attempt=attempt,
            duration_s=time.monotonic() - started,
        )

    async def step(self, step_id: str, *inputs: Any) -> Any:
        """Run one step in its cell and return its output (the cell's variable).

        Args:
            step_id: The step's id.
            *inputs: Outputs of its dependencies, in `step_dependencies` order
                (passed so that marimo's graph holds the plan's edges).

        Returns:
            The tool's output.

        Raises:
            MarimoStopError: Through `mo.stop`: `run_if` was false, or
                `intervention_if` was true (a person must decide).
            BaseException: What the tool raised once no retry was left.
        """
        import marimo as mo

        from marimo_engine.engine import runtime as rt
        from marimo_engine.engine.runtime import call_with_retries, evaluate_condition
        from marimo_engine.plans.references import resolve_value

        self.records[step_id] = []
        step = self.plan.step(step_id)
        started = time.monotonic()
        outputs = dict(self.outputs)
        outputs.update(zip(self.dependencies[step_id], inputs, strict=False))
        self._record("STEP_START", rt.started_message(step), step_id)
        try:
            condition = self.run_if.get(step_id)
            if condition is not None and not evaluate_condition(condition, outputs):
                reason = f"run_if is false: {step.run_if}"
                self._record(
                    "STEP_SKIPPED",
                    rt.skipped_message(step_id, reason),
                    step_id,
                    reason=reason,
                    expression=step.run_if,
                )
                skipped = True
            else:
                skipped = False
                kwargs = resolve_value(step.args, outputs) if step.args else {}
                tool = self.tools.get(step.tool)
                if tool is None:
                    why = self.import_errors.get(step.tool, "it is not in the tools given")
                    raise LookupError(
                        f"Tool {step.tool!r} cannot be imported in this kernel ({why}); "
                        "install its package in the notebook's environment."
                    )
                if step.args:  # literals as the types validation checked them against
                    from marimo_engine.tools.registry import build_tool_spec

                    kwargs.update(build_tool_spec(tool, name=step.tool).convert_literals(step.args))
        except Exception as exc:
            self._fail(step_id, exc, attempt=None, started=started)
            raise
        if skipped:
            rt.stop_skipped(step_id, step.run_if)

        is_async = inspect.iscoroutinefunction(tool)

        async def in_thread(function: Any, arguments: dict[str, Any]) -> Any:
            return await asyncio.to_thread(function, **arguments)

        def start() -> Any:
            return rt.call_tool(tool, kwargs, is_async=is_async, run_in_thread=in_thread)

        def on_retry(attempt: int, error: BaseException) -> None:
            from marimo_engine.engine.events import ErrorInfo

            self._record(
                "STEP_RETRY",
                rt.retry_message(step_id, error, attempt, step.retries),
                step_id,
                attempt=attempt,
                error=ErrorInfo.from_exception(error, step_id=step_id),
            )

        try:
            output, tries = await call_with_retries(
                start, retries=step.retries, timeout_s=step.timeout_s, on_retry=on_retry
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(step_id, exc, attempt=step.retries + 1, started=started)
            raise
        self.outputs[step_id] = output
        duration_s = time.monotonic() - started
        self._record(
            "STEP_COMPLETE",
            rt.complete_message(step_id, duration_s, step.key_finding),
            step_id,
            output=output,
            key_finding=step.key_finding,
            attempt=tries,
            duration_s=duration_s,
        )
        check = self.intervention_if.get(step_id)
        if check is not None:
            try:
                needed = evaluate_condition(check, {**outputs, step_id: output})
            except Exception as exc:
                self._fail(step_id, exc, attempt=None, started=started)
                raise
            if needed:
                self._record(
                    "INTERVENTION_NEEDED",
                    rt.intervention_message(step_id, step.intervention_if),
                    step_id,
                    expression=step.intervention_if,
                    output=output,
                )
                rt.stop_for_person(step_id, step.intervention_if, output)
        mo.output.replace(output)
        return output
