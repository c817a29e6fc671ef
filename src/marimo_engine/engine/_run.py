"""One run of one plan: scheduling, step semantics and event emission.

`executor.execute_plan` and `executor.execute_plan_sync` wrap a `_Run`; see
`executor`'s docstring for what a run does. This module holds the state of
one run and the scheduler that walks the plan's DAG.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import (
    ErrorInfo,
    Event,
    EventType,
    ExecutionResult,
    InterventionInfo,
    Verdict,
)
from marimo_engine.engine.runtime import (
    call_tool,
    call_with_retries,
    complete_message,
    evaluate_condition,
    failed_message,
    intervention_message,
    retry_message,
    skipped_message,
    started_message,
)
from marimo_engine.errors import EngineError, PlanValidationError, UsageError

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from marimo_engine.engine.compiler import NotebookIR
    from marimo_engine.plans.expressions import Expression
    from marimo_engine.plans.schema import Plan, Step
    from marimo_engine.tools.registry import ToolRegistry, ToolSpec

EventCallback = Callable[[Event], Any]


class _StepFailed(Exception):
    """Aborts a step cell whose step failed; the error is already recorded."""


class _StepNotStarted(Exception):
    """Aborts a step cell scheduled just before the run began to stop."""


@dataclass(frozen=True)
class _StepPlan:
    step: Step
    tool: ToolSpec
    run_if: Expression | None
    intervention_if: Expression | None
    converted_args: dict[str, Any]


@functools.lru_cache(maxsize=16_384)
def _compile_cell(code: str, cell_id: str) -> Any:
    """Compile one cell with marimo's compiler, memoised by code (as marimo keys cells)."""
    import ast
    import dataclasses

    from marimo._ast.compiler import compile_cell

    cell = compile_cell(code, cell_id=cell_id)
    # Keep the compiled code, not the syntax tree: cached trees are many small
    # objects that every full garbage collection would walk again.
    return dataclasses.replace(cell, mod=ast.Module(body=[], type_ignores=[]))


@functools.cache
def _marimo_evaluator_parts() -> tuple[Any, Any]:
    """marimo's cell executor, resolved once: the lookup scans entry points (~4 ms)."""
    from marimo._runtime.executor.evaluator import Evaluator, resolve_executor

    return Evaluator, resolve_executor()


class _EngineRunner:
    """Stands in for the notebook's `plan_run` while the engine runs the cells."""

    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    async def step(self, step_id: str, *inputs: Any) -> Any:
        return await self._run.run_step(step_id)


class _Run:
    """One execution of one plan: state, scheduling and event emission."""

    def __init__(
        self,
        plan: Plan | Mapping[str, Any] | str,
        tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None,
        *,
        max_workers: int | None,
        emit: Callable[[Event], Any] | None,
        on_event: EventCallback | None = None,
    ) -> None:
        from marimo_engine.tools.registry import as_registry

        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise UsageError(
                f"max_workers must be a whole number of at least 1, got {max_workers!r}."
            )
        self.source = plan
        self.tools = as_registry(tools)
        self.max_workers = max_workers
        self._emit_to = emit  # the stream to the consumer (trusted)
        self._on_event = on_event  # the caller's callback (may fail)
        self.plan_id = _plan_id_of(plan)
        self.events: list[Event] = []
        self.outputs: dict[str, Any] = {}
        self.error: ErrorInfo | None = None
        self.intervention: InterventionInfo | None = None
        self.cancel_reason: str | None = None
        self.ir: NotebookIR | None = None
        self.started = time.monotonic()
        self.finished = False
        self._steps: dict[str, _StepPlan] = {}
        self._skipped_by_condition: set[str] = set()
        self._failed: set[str] = set()
        self._not_started: set[str] = set()
        self._callback_failed = False
        self._pool: Any = None

    # -- events -------------------------------------------------------------

    async def emit(
        self, type_: EventType, msg: str, step_id: str | None = None, **fields: Any
    ) -> None:
        tool = fields.pop("tool", None)
        if tool is None and step_id is not None and step_id in self._steps:
            tool = self._steps[step_id].step.tool
        event = Event(
            type=type_, plan_id=self.plan_id, step_id=step_id, tool=tool, msg=msg, **fields
        )
        self.events.append(event)
        await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """Hand an event to the caller's callback, then to the stream.

        A callback that raises fails the run (not a step): it is called no
        more, and an `ERROR` saying so goes to the stream and the event log.
        """
        if self._on_event is not None and not self._callback_failed:
            try:
                result = self._on_event(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._callback_failed = True
                info = ErrorInfo(
                    type=type(exc).__name__,
                    message=f"the on_event callback raised on a {event.type.value} event: {exc}",
                )
                if self.error is None:
                    self.error = info
                failure = Event(
                    type=EventType.ERROR, plan_id=self.plan_id, msg=info.message, error=info
                )
                self.events.append(failure)
                if self._emit_to is not None:
                    await self._emit_to(event)
                    event = failure
        if self._emit_to is not None:
            await self._emit_to(event)

    @property
    def stopping(self) -> bool:
        return (
            self.error is not None
            or self.intervention is not None
            or self.cancel_reason is not None
        )

    # -- the run ------------------------------------------------------------

    async def main(self) -> None:
        """Run the plan; always emits exactly one `FINISH` last."""
        self.started = time.monotonic()
        try:
            await self.emit(EventType.START, f"Plan {self.plan_id!r} started.")
            prepared = await self._prepare()
            if prepared is not None:
                await self._schedule(*prepared)
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                self.cancel_reason = "The run was cancelled."
            raise
        except BaseException as exc:  # an engine bug must still end in FINISH
            if self.error is None:
                self.error = ErrorInfo.from_exception(exc)
                with contextlib.suppress(BaseException):
                    await self.emit(
                        EventType.ERROR,
                        f"The engine failed: {type(exc).__name__}: {exc}",
                        error=self.error,
                    )
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._finish()

    async def _prepare(self) -> tuple[Any, dict[str, Any], dict[str, Any]] | None:
        from marimo_engine.engine.compiler import compile_checked_plan
        from marimo_engine.engine.graph import StepGraph
        from marimo_engine.plans.validation import check_plan

        try:
            registry = self.tools
            plan = check_plan(self.source, registry)  # every problem at once
            if _own_id(self.source) is None:
                plan = plan.model_copy(update={"id": self.plan_id})  # the id START carried
            self.ir = compile_checked_plan(plan, registry)
        except PlanValidationError as exc:
            self.error = ErrorInfo.from_exception(exc)
            await self.emit(EventType.ERROR, str(exc), error=self.error)
            return None
        ir = self.ir
        from marimo_engine.plans.expressions import parse_expression

        for step in plan.steps:
            spec = registry.get(step.tool)
            self._steps[step.id] = _StepPlan(
                step=step,
                tool=spec,
                converted_args=spec.convert_literals(step.args) if step.args else {},
                run_if=parse_expression(step.run_if) if step.run_if else None,
                intervention_if=parse_expression(step.intervention_if)
                if step.intervention_if
                else None,
            )
        cells = {sid: _compile_cell(cell.code, cell.name) for sid, cell in ir.step_cells.items()}
        graph = StepGraph.from_cells(
            plan.step_ids,
            defs={sid: c.defs for sid, c in cells.items()},
            refs={sid: c.refs for sid, c in cells.items()},
        )
        for sid in plan.step_ids:  # marimo's graph must be the plan's graph
            if set(graph.parents[sid]) != set(ir.dependencies[sid]):
                raise AssertionError(
                    f"marimo's analysis of step {sid!r} gives parents {graph.parents[sid]}, "
                    f"but the plan says {ir.dependencies[sid]}."
                )
        glbls: dict[str, Any] = {"__name__": "__marimo_engine__", "plan_run": _EngineRunner(self)}
        return graph, cells, glbls

    async def _schedule(self, graph: Any, cells: dict[str, Any], glbls: dict[str, Any]) -> None:
        from marimo_engine.engine._threads import WorkerPool

        evaluator_class, cell_executor = _marimo_evaluator_parts()
        evaluator = evaluator_class(executor=cell_executor, lifecycles=[])
        self._pool = WorkerPool(self.max_workers)
        waiting = {sid: len(ps) for sid, ps in graph.parents.items()}
        ready = [(graph.index[sid], sid) for sid, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        done: asyncio.Queue[str] = asyncio.Queue()
        running: dict[str, asyncio.Task[Any]] = {}
        skipped: set[str] = set()
        variables = self.ir.variables if self.ir is not None else {}

        def release(sid: str) -> None:
            for child in graph.children[sid]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (graph.index[child], child))

        async def run_cell(sid: str) -> None:
            try:
                result = await evaluator.evaluate(cells[sid], glbls)
                exc = result.exception
                if isinstance(exc, asyncio.CancelledError):
                    raise exc
                cause = None if exc is None else (exc.__cause__ or exc)
                if cause is not None and not isinstance(cause, _StepFailed | _StepNotStarted):
                    await self._fail(sid, cause, attempt=None, started=None)  # outside run_step
                elif not self._has_ended(sid):
                    await self._fail(
                        sid,
                        EngineError(f"The cell of step {sid!r} ended without running the step."),
                        attempt=None,
                        started=None,
                    )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # never leave a task with an unread exception
                if not self._has_ended(sid):
                    await self._fail(sid, exc, attempt=None, started=None)
            finally:
                done.put_nowait(sid)

        try:
            while ready or running:
                while ready and not self.stopping:
                    _, sid = heapq.heappop(ready)
                    blocked_by = next((p for p in graph.parents[sid] if p in skipped), None)
                    if blocked_by is not None:
                        await self.emit(EventType.STEP_START, f"Step {sid!r} taken up.", sid)
                        skipped.add(sid)
                        glbls[variables.get(sid, sid)] = None
                        reason = f"dependency {blocked_by!r} was skipped"
                        await self.emit(
                            EventType.STEP_SKIPPED,
                            skipped_message(sid, reason),
                            sid,
                            reason=reason,
                        )
                        release(sid)
                        continue
                    running[sid] = asyncio.create_task(
                        run_cell(sid), name=f"marimo-engine step {sid}"
                    )
                if not running:
                    break
                sid = await done.get()
                running.pop(sid, None)
                if sid in self.outputs or sid in self._skipped_by_condition:
                    if sid in self._skipped_by_condition:
                        skipped.add(sid)
                    release(sid)
        except asyncio.CancelledError:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            raise
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                await _shutdown_pool(pool)

    def _has_ended(self, step_id: str) -> bool:
        """Whether the step completed, was skipped, failed, or was never started."""
        return (
            step_id in self.outputs
            or step_id in self._skipped_by_condition
            or step_id in self._failed
            or step_id in self._not_started
        )

    async def run_step(self, step_id: str) -> Any:
        """Run one step (called from its cell); returns the output for the cell's variable."""
        from marimo_engine.plans.references import resolve_value

        if self.stopping:  # an error or intervention came after this cell was scheduled
            self._not_started.add(step_id)
            raise _StepNotStarted(step_id)
        planned = self._steps[step_id]
        step = planned.step
        started = time.monotonic()
        await self.emit(
            EventType.STEP_START,
            started_message(step),
            step_id,
        )
        try:
            if planned.run_if is not None and not evaluate_condition(planned.run_if, self.outputs):
                self._skipped_by_condition.add(step_id)
                reason = f"run_if is false: {step.run_if}"
                await self.emit(
                    EventType.STEP_SKIPPED,
                    skipped_message(step_id, reason),
                    step_id,
                    reason=reason,
                    expression=step.run_if,
                )
                return None
            kwargs = resolve_value(step.args, self.outputs) if step.args else {}
            kwargs.update(planned.converted_args)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            await self._fail(step_id, exc, attempt=None, started=started)
            raise _StepFailed(step_id) from None

        tool = planned.tool
        pool = self._pool

        def start() -> Any:
            return call_tool(tool.function, kwargs, is_async=tool.is_async, run_in_thread=pool.run)

        async def on_retry(attempt: int, error: BaseException) -> None:
            _log.debug("Step %r will retry after: %r", step_id, error, exc_info=error)
            await self.emit(
                EventType.STEP_RETRY,
                retry_message(step_id, error, attempt, step.retries),
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
            await self._fail(step_id, exc, attempt=step.retries + 1, started=started)
            raise _StepFailed(step_id) from None

        self.outputs[step_id] = output
        duration_s = time.monotonic() - started
        await self.emit(
            EventType.STEP_COMPLETE,
            complete_message(step_id, duration_s, step.key_finding),
            step_id,
            output=output,
            key_finding=step.key_finding,
            attempt=tries,
            duration_s=duration_s,
        )
        if planned.intervention_if is not None:
            try:
                needed = evaluate_condition(planned.intervention_if, self.outputs)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self._fail(step_id, exc, attempt=None, started=started)
                raise _StepFailed(step_id) from None
            if needed and self.intervention is None:
                self.intervention = InterventionInfo(
                    step_id=step_id, expression=step.intervention_if or "", output=output
                )
                await self.emit(
                    EventType.INTERVENTION_NEEDED,
                    intervention_message(step_id, step.intervention_if),
                    step_id,
                    expression=step.intervention_if,
                    output=output,
                )
        return output

    async def _fail(
        self, step_id: str, exc: BaseException, *, attempt: int | None, started: float | None
    ) -> None:
        info = ErrorInfo.from_exception(exc, step_id=step_id)
        # The event carries type and message; the traceback goes to the log
        # (`marimo-engine --debug` shows it).
        _log.debug("Step %r failed: %s", step_id, info.type, exc_info=exc)
        self._failed.add(step_id)
        if self.error is None:
            self.error = info
        duration_s = None if started is None else time.monotonic() - started
        await self.emit(
            EventType.ERROR,
            failed_message(step_id, info.type, info.message),
            step_id,
            error=info,
            attempt=attempt,
            duration_s=duration_s,
        )

    async def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.error is not None or self.cancel_reason is not None:
            verdict = Verdict.FAILURE
        elif self.intervention is not None:
            verdict = Verdict.INTERVENTION_NEEDED
        else:
            verdict = Verdict.SUCCESS
        duration_s = time.monotonic() - self.started
        msg = f"Plan {self.plan_id!r} finished: {verdict.value} in {duration_s:.3f} s."
        if self.cancel_reason is not None:
            msg += f" {self.cancel_reason}"
        event = Event(
            type=EventType.FINISH,
            plan_id=self.plan_id,
            msg=msg,
            verdict=verdict,
            outputs=dict(self.outputs),
            duration_s=duration_s,
            reason=self.cancel_reason,
        )
        self.events.append(event)
        await self._deliver(event)

    def result(self) -> ExecutionResult:
        """Build the `ExecutionResult` of a finished run."""
        from marimo_engine.engine.compiler import render_notebook

        notebook = render_notebook(self.ir) if self.ir is not None else None
        return ExecutionResult.from_events(self.events, notebook)


async def _shutdown_pool(pool: Any) -> None:
    """Join the worker threads in the loop's default executor, not blocking the loop."""
    if pool.is_idle:
        pool.shutdown()  # idle workers exit at once: joining them does not block
        return
    await asyncio.shield(asyncio.to_thread(pool.shutdown))


def _own_id(plan: Any) -> str | None:
    import json

    candidate: Any = None
    if isinstance(plan, Mapping):
        candidate = plan.get("id")
    elif isinstance(plan, str | bytes):
        with contextlib.suppress(ValueError, TypeError):
            data = json.loads(plan)
            if isinstance(data, dict):
                candidate = data.get("id")
    else:
        candidate = getattr(plan, "id", None)
    return candidate if isinstance(candidate, str) and candidate else None


def _plan_id_of(plan: Any) -> str:
    """The plan's own id, or a generated one, known before validation so START carries it."""
    return _own_id(plan) or f"plan-{uuid.uuid4().hex[:8]}"
