"""One run of one plan: validation, the scheduler, the events and the verdict.

`executor.execute_plan` (in process) and `live_run.run_plan_live` (in a live
kernel) both wrap a `_Run`; see `executor`'s docstring for what a run does.
A run differs between the two only in its **target**: how it makes the
plan's cells ready and how it starts one step (`_Target`). Everything else is
here once: `START`, validation and compilation, the scheduler
(`scheduler.schedule`), the event fold (`events.EventFold`) and `FINISH`.

In process, a step cell runs through marimo's cell executor and its call
`plan_run.step(...)` lands in `_InProcess.step`, a thin host of
`step.run_step`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from marimo_engine.engine._outputs import KeepOutputs, OutputKeeper, checked_keep_outputs
from marimo_engine.engine.events import ErrorInfo, Event, EventFold, EventType
from marimo_engine.engine.step import (
    StepOutcome,
    blocked_events,
    error_event,
    prepare_steps,
    run_step,
)
from marimo_engine.errors import EngineError, PlanValidationError, UsageError

if TYPE_CHECKING:
    from marimo_engine.engine._plan_cache import PreparedPlan
    from marimo_engine.engine._threads import WorkerPool
    from marimo_engine.engine.compiler import NotebookIR
    from marimo_engine.engine.durable import RunRecorder
    from marimo_engine.engine.events import ExecutionResult
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.engine.step import PreparedStep
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

EventCallback = Callable[[Event], Any]


class _Target(Protocol):
    """Where a run's steps run: in process, or in a live kernel."""

    concurrency: int | None

    async def prepare(self, run: _Run, plan: Plan, ir: NotebookIR) -> StepGraph:
        """Make the plan's cells ready; return the DAG to schedule.

        Raises:
            EngineError: The cells cannot be made ready (reported as the run's ERROR).
        """
        ...

    async def start(self, step_id: str) -> StepOutcome | None:
        """Run one step to its end; never raises but `CancelledError`."""
        ...

    async def blocked(self, step_id: str, dependency: str) -> None:
        """A step is skipped because `dependency` was."""
        ...

    async def close(self) -> None:
        """Release what `prepare` took (worker threads); never waits on a stuck tool."""
        ...


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
        target: _Target | None = None,
        recorder: RunRecorder | None = None,
        run_id: str | None = None,
        keep_outputs: KeepOutputs = "all",
        plans: Any = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        from marimo_engine.engine.durable import RunRecorder, new_run_id
        from marimo_engine.plans.subplans import as_library
        from marimo_engine.tools.registry import as_registry

        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise UsageError(
                f"max_workers must be a whole number of at least 1, got {max_workers!r}."
            )
        self.keep = checked_keep_outputs(keep_outputs)
        self.source = plan
        self.tools = as_registry(tools)
        # plan language 2: where sub-plan steps find their plans; the plan's input values
        self.plans = as_library(plans)
        self.given_inputs = inputs
        self.plan_inputs: dict[str, Any] | None = None  # resolved in `_prepare`: `$input.NAME`
        self.max_workers = max_workers
        self.target: _Target = target if target is not None else _InProcess(max_workers)
        self._emit_to = emit  # the stream to the consumer (trusted)
        self._on_event = on_event  # the caller's callback (may fail)
        self.plan_id = _plan_id_of(plan)
        self.run_id = run_id or new_run_id()
        # The journal and intervention hook (engine/durable.py); always one,
        # so approvals and `on_intervention` work without a journal too.
        self.recorder = recorder if recorder is not None else RunRecorder()
        self.recorder.bind(self.run_id, self.plan_id, plan, inputs)
        self.fold = EventFold()
        self.cancel_reason: str | None = None
        self.ir: NotebookIR | None = None
        self.plan: Plan | None = None
        self.cache_key: tuple[Any, ...] | None = None  # engine/_plan_cache.py
        self.cached: PreparedPlan | None = None
        self.started = time.monotonic()
        self.finished = False
        self.abandoned: list[str] = []  # steps whose worker was left running
        self._callback_failed = False

    # -- events -------------------------------------------------------------

    def emit(self, event: Event) -> Awaitable[None]:
        """Fold an event into the run's state and deliver it (the hosts' `emit`).

        Returns:
            What to await for the delivery: nothing is left to wait for when
            the run has no callback and no stream (`execute_plan_sync`
            without `on_event`), so then the event is journaled here and a
            finished awaitable comes back, not a coroutine per event.
        """
        self.fold.add(event)
        if self._on_event is None and self._emit_to is None:
            if event.run_id != self.run_id:
                event.run_id = self.run_id
            journal_failure = self.recorder.record(event)
            if journal_failure is not None:  # as `_deliver`: the event again, then the failure
                self.fold.add(journal_failure)
                self.recorder.record(event)
            return _DELIVERED
        return self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """Hand an event to the caller's callback, then to the stream.

        A callback that raises fails the run (not a step): it is called no
        more, and an `ERROR` saying so goes to the stream and the event log.
        The journal records the event first (write-ahead); a journal that
        fails adds one `ERROR` and the run stops.
        """
        if event.run_id != self.run_id:  # the step runtime's events come with it
            event.run_id = self.run_id
        journal_failure = self.recorder.record(event)
        if journal_failure is not None:
            self.fold.add(journal_failure)
            await self._deliver(event)
            event = journal_failure
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
                failure = Event(
                    type=EventType.ERROR, plan_id=self.plan_id, msg=info.message, error=info
                )
                self.fold.add(failure)
                if self._emit_to is not None:
                    await self._emit_to(event)
                    event = failure
        if self._emit_to is not None:
            await self._emit_to(event)

    @property
    def outputs(self) -> dict[str, Any]:
        """Step id to output of every completed step so far."""
        return self.fold.outputs

    @property
    def stopping(self) -> bool:
        """Whether no new step may start (an error, an intervention, a cancellation)."""
        return (
            self.fold.error is not None
            or self.fold.intervention is not None
            or self.cancel_reason is not None
        )

    async def sleep(self, seconds: float) -> None:
        """The retry backoff (the hosts' `sleep`)."""
        await asyncio.sleep(seconds)

    # -- the run ------------------------------------------------------------

    async def main(self) -> None:
        """Run the plan; always emits exactly one `FINISH` last.

        The objects that exist before the run are kept out of the cyclic
        collector's walks while it runs (`_gc.frozen_heap`): they are most of
        the process, and walking them again and again made long plans cost
        more per step than short ones.
        """
        from marimo_engine.engine._gc import frozen_heap

        with frozen_heap():
            await self._main()

    async def _main(self) -> None:
        self.started = time.monotonic()
        try:
            await self._emit(EventType.START, f"Plan {self.plan_id!r} started.")
            graph = await self._prepare()
            if graph is not None:
                from marimo_engine.engine.scheduler import schedule

                target = self.target
                await schedule(
                    graph,
                    target.start,
                    blocked=target.blocked,
                    stopping=lambda: self.stopping,
                    concurrency=target.concurrency,
                )
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                self.cancel_reason = "The run was cancelled."
            raise
        except BaseException as exc:  # an engine bug must still end in FINISH
            if self.fold.error is None:
                with contextlib.suppress(BaseException):
                    await self._emit(
                        EventType.ERROR,
                        f"The engine failed: {type(exc).__name__}: {exc}",
                        error=ErrorInfo.from_exception(exc),
                    )
            if not isinstance(exc, Exception):
                raise
        finally:
            with contextlib.suppress(BaseException):
                await self.target.close()
            await self._finish()

    async def _emit(self, type_: EventType, msg: str, **fields: Any) -> None:
        await self.emit(Event(type=type_, plan_id=self.plan_id, msg=msg, **fields))

    async def _prepare(self) -> StepGraph | None:
        from marimo_engine.engine import _plan_cache
        from marimo_engine.engine._gc import collector_paused, freeze_prepared
        from marimo_engine.engine._subplan import input_values
        from marimo_engine.engine.compiler import compile_checked_plan
        from marimo_engine.plans.validation import check_plan

        try:
            with collector_paused():  # builds long-lived objects only
                own_id = _own_id(self.source) is not None
                self.cache_key = _plan_cache.cache_key(self.source, self.tools) if own_id else None
                self.cached = _plan_cache.lookup(self.cache_key)  # validated and compiled before
                if self.cached is not None:
                    plan, self.ir = self.cached.plan, self.cached.ir
                else:
                    # every problem at once
                    plan = check_plan(self.source, self.tools, plans=self.plans)
                    if not own_id:
                        plan = plan.model_copy(update={"id": self.plan_id})  # START's id
                    self.ir = compile_checked_plan(plan, self.tools, plans=self.plans)
                self.plan = plan
            # plan language 2: the input values are this run's (cell globals), never cached
            self.plan_inputs = input_values(plan, self.given_inputs)
            # journaled before any step runs: a resume or rerun reads what this run read
            has_subplans = any(step.plan is not None for step in plan.steps)
            failure = self.recorder.record_plan_data(
                self.plan_inputs, self.plans if has_subplans else None
            )
            if failure is not None:
                await self.emit(failure)
                return None
            graph = await self.target.prepare(self, plan, self.ir)
            freeze_prepared()
            return graph
        except (PlanValidationError, UsageError) as exc:
            await self._emit(EventType.ERROR, str(exc), error=ErrorInfo.from_exception(exc))
            return None

    async def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        verdict = self.fold.verdict(cancelled=self.cancel_reason is not None)
        duration_s = time.monotonic() - self.started
        msg = f"Plan {self.plan_id!r} finished: {verdict.value} in {duration_s:.3f} s."
        if self.cancel_reason is not None:
            msg += f" {self.cancel_reason}"
        if self.abandoned:
            names = ", ".join(repr(s) for s in self.abandoned)
            msg += (
                f" {len(self.abandoned)} worker thread(s) abandoned, still running "
                f"the tool of step(s) {names}."
            )
        event = Event(
            type=EventType.FINISH,
            plan_id=self.plan_id,
            msg=msg,
            verdict=verdict,
            outputs=dict(self.fold.outputs),
            duration_s=duration_s,
            reason=self.cancel_reason,
            abandoned=list(self.abandoned) or None,
        )
        self.fold.add(event)
        await self._deliver(event)

    def result(self) -> ExecutionResult:
        """Build the `ExecutionResult` of a finished run."""
        from marimo_engine.engine.compiler import render_notebook

        ir = self.ir
        if ir is None:
            return self.fold.result(None)
        return self.fold.result(functools.partial(render_notebook, ir, self.given_inputs))


# -- in process ------------------------------------------------------------------------------


class _Delivered:
    """An awaitable that is already done (`_Run.emit` with nobody to deliver to)."""

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())


_DELIVERED = _Delivered()


class _StepFailed(Exception):
    """Aborts a step cell whose step failed; the error is already recorded."""


class _StepNotStarted(Exception):
    """Aborts a step cell scheduled just before the run began to stop."""


@functools.cache
def _marimo_cell_executor() -> Any:
    """marimo's cell executor, resolved once: the lookup scans entry points (~4 ms).

    A run calls its `execute_cell_async` directly: marimo's `Evaluator` only
    wraps it in lifecycles, and a run has none (it was one coroutine and one
    `RunResult` more per step).
    """
    from marimo._runtime.executor.evaluator import resolve_executor

    return resolve_executor()


class RunHost:
    """The part of `step.run_step`'s host that is the same wherever a run's steps run.

    Events go to the run (`_Run.emit`: folded, journaled, delivered), retries
    wait on the loop, and the durable hooks are the run's `RunRecorder`'s.
    The in-process target and the Dask target (`dask_host.DaskTarget`) are
    such hosts; each sets `run` in its `prepare`.
    """

    run: _Run | None

    async def emit(self, event: Event) -> None:
        """Hand an event to the run."""
        assert self.run is not None
        await self.run.emit(event)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a retry's backoff) on the loop."""
        await asyncio.sleep(seconds)

    async def before_tool(self, prepared: PreparedStep, kwargs: Mapping[str, Any]) -> Any:
        """`run_step`'s durable hook (journal, reuse, approvals): `durable.RunRecorder`'s."""
        assert self.run is not None
        return await self.run.recorder.before_tool(prepared, kwargs, self)

    async def intervene(self, prepared: PreparedStep, needed: Event, output: Any) -> Any:
        """`run_step`'s hook for a true `intervention_if`: `durable.RunRecorder`'s."""
        assert self.run is not None
        return await self.run.recorder.intervene(prepared, needed, output, self)


class _InProcess(RunHost):
    """The in-process target: the compiled cells run through marimo's cell executor here.

    Also the host of `step.run_step` for the run's steps, and what the cells
    find as `plan_run` in their globals.
    """

    concurrency = None

    def __init__(self, max_workers: int | None) -> None:
        self.max_workers = max_workers
        self.pool: WorkerPool | None = None
        self.run: _Run | None = None
        self.plan_id = ""
        self.run_id: str | None = None
        self._prepared: dict[str, PreparedStep] = {}
        self._cells: dict[str, Any] = {}
        self._glbls: dict[str, Any] = {}
        self._variables: Mapping[str, str] = {}
        self._execute_cell: Any = None  # marimo's executor's `execute_cell_async`
        self._outcomes: dict[str, StepOutcome] = {}
        self._not_started: set[str] = set()
        self._keeper: OutputKeeper | None = None  # keep_outputs other than "all"
        self.plan_inputs: dict[str, Any] | None = None

    async def prepare(self, run: _Run, plan: Plan, ir: NotebookIR) -> StepGraph:
        from marimo_engine.engine import _plan_cache
        from marimo_engine.engine._gc import collector_paused
        from marimo_engine.engine._threads import WorkerPool
        from marimo_engine.engine.compiler import INPUTS_NAME
        from marimo_engine.engine.graph import StepGraph

        self.run = run
        self.plan_id = run.plan_id
        self.run_id = run.run_id  # put on the step runtime's events as they are made
        self.plan_inputs = run.plan_inputs
        cached = run.cached
        if cached is not None:
            self._prepared, self._cells, graph = cached.prepared, cached.cells, cached.graph
        else:
            registry = run.tools
            with collector_paused():  # builds long-lived objects only
                tools = {name: registry.get(name) for name in plan.tool_names}
                subplans = {
                    s.id: run.plans.resolve(s.plan) for s in plan.steps if s.plan is not None
                }
                self._prepared = prepare_steps(
                    plan, tools, dependencies=ir.dependencies, subplans=subplans
                )
                self._cells = cells = _compile_step_cells(ir)
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
            _plan_cache.store(  # not a plan with sub-plan steps (_plan_cache.store)
                run.cache_key,
                _plan_cache.PreparedPlan(plan, ir, self._cells, self._prepared, graph),
            )
        self._glbls = {
            "__name__": "__marimo_engine__",
            "plan_run": self,
            INPUTS_NAME: self.plan_inputs,
        }
        self._variables = ir.variables
        if run.keep is not None:
            self._keeper = OutputKeeper(plan, graph, run.keep, self._release)
        else:  # every output kept: the scheduler calls `_start` itself, one coroutine less a step
            self.start = self._start  # type: ignore[method-assign]
        self.emit = run.emit  # type: ignore[method-assign]  # the run's, one coroutine less an event
        self._execute_cell = _marimo_cell_executor().execute_cell_async
        self.pool = WorkerPool(self.max_workers)
        return graph

    # the rest of the host interface of `step.run_step` (`RunHost` has the common part)

    async def run_subplan(self, prepared: PreparedStep, values: Mapping[str, Any]) -> Any:
        """`run_step`'s hook for a sub-plan step: a nested run (`_subplan.run_nested`)."""
        from marimo_engine.engine._subplan import run_nested

        assert self.run is not None
        return await run_nested(self.run, prepared, values, self.emit)

    async def step(self, step_id: str, *inputs: Any, plan_inputs: Any = None) -> Any:
        """What a step cell's `plan_run.step(...)` calls: run the step, return its output.

        `plan_inputs` is what a cell of a plan with inputs passes; in process
        the run's own input values are used (`self.plan_inputs`).
        """
        run = self.run
        assert run is not None
        if run.stopping:  # an error or intervention came after this cell was scheduled
            self._not_started.add(step_id)
            raise _StepNotStarted(step_id)
        result = await run_step(self._prepared[step_id], run.outputs, self)
        self._outcomes[step_id] = result.outcome
        if result.outcome is StepOutcome.FAILED:
            raise _StepFailed(step_id)
        return result.output

    # the target interface

    async def start(self, step_id: str) -> StepOutcome | None:
        outcome = await self._start(step_id)
        if self._keeper is not None and outcome is not None:
            self._keeper.ended(step_id, outcome)
        return outcome

    def _release(self, step_id: str) -> None:
        """Drop a completed step's output everywhere the run holds it (`_outputs.OutputKeeper`)."""
        run = self.run
        if run is None or step_id not in run.fold.outputs:
            return
        run.fold.release(step_id)
        self._glbls.pop(self._variables.get(step_id, step_id), None)
        run.recorder.reuse.pop(step_id, None)  # a journaled output, when resuming

    async def _start(self, step_id: str) -> StepOutcome | None:
        try:
            try:
                await self._execute_cell(self._cells[step_id], self._glbls)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # marimo's MarimoRuntimeException: the cause is the cell's
                cause = exc.__cause__ or exc
                if not isinstance(cause, _StepFailed | _StepNotStarted):
                    return await self._fail(step_id, cause)  # outside run_step
            if step_id in self._not_started:
                return None
            if step_id not in self._outcomes:
                return await self._fail(
                    step_id, EngineError(f"The cell of step {step_id!r} ended without running it.")
                )
            return self._outcomes[step_id]
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # never leave a task with an unread exception
            if step_id in self._outcomes:
                return self._outcomes[step_id]
            return await self._fail(step_id, exc)

    async def _fail(self, step_id: str, exc: BaseException) -> StepOutcome:
        self._outcomes[step_id] = StepOutcome.FAILED
        await self.emit(error_event(self.plan_id, self._prepared[step_id].step, exc))
        return StepOutcome.FAILED

    async def blocked(self, step_id: str, dependency: str) -> None:
        self._glbls[self._variables.get(step_id, step_id)] = None
        for event in blocked_events(self.plan_id, self._prepared[step_id].step, dependency):
            await self.emit(event)
        if self._keeper is not None:
            self._keeper.ended(step_id, StepOutcome.SKIPPED)

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            if self.run is not None:
                self.run.abandoned = pool.abandoned()
            pool.shutdown()  # never waits for an abandoned worker
        # The cells' globals hold this host (`plan_run`) and every output: let
        # go, so that refcounting frees the run without waiting for the collector.
        self._glbls.clear()
        self._cells = {}
        self._execute_cell = None
        self.__dict__.pop("start", None)  # bound methods of this host and of the run
        self.__dict__.pop("emit", None)
        self.run = None  # and the run holds this target: no cycle is left


def _compile_step_cells(ir: NotebookIR) -> dict[str, Any]:
    """Step id to marimo's compiled cell of each step cell (`_cells.compile_step_cells`)."""
    from marimo_engine.engine._cells import compile_step_cells
    from marimo_engine.engine.compiler import RUNNER_NAME, python_string

    cells = ir.step_cells
    compiled = compile_step_cells(
        RUNNER_NAME,
        [(c.code, c.name, sid, python_string(sid), c.refs, c.name) for sid, c in cells.items()],
    )
    return dict(zip(cells, compiled, strict=True))


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
