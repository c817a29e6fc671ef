"""Run a plan's compiled notebook with marimo's runtime, streaming events.

The run follows the plan language spec ("Running", "Events and results"):

1. The plan is validated; an invalid plan emits `START`, one `ERROR`
   (`PlanValidationError`, with every problem) and `FINISH` (`FAILURE`).
2. The plan is compiled (`compiler.compile_checked_plan`); each step cell is compiled
   by marimo's own compiler (`marimo._ast.compiler.compile_cell`, once per
   shape of cell: `_cells`) and the DAG is built from the cells' defs and refs
   (`graph.StepGraph`). A plan run before with the same tools skips steps 1
   and 2 (`_plan_cache`).
3. Steps whose dependencies are done run at the same time; list order decides
   who starts first. Each step cell runs through marimo's cell executor
   (`execute_cell_async`), as marimo's own script runner runs cells, in one
   globals dict.
   The cell's `plan_run.step(...)` call lands in this module's runner:
   coroutine tools run on the event loop, plain functions in a bounded
   worker pool (`max_workers`, default `DEFAULT_MAX_WORKERS`).
4. An error or an intervention stops new steps from starting; running ones
   finish. Every run ends with exactly one `FINISH` carrying the verdict and
   all outputs, also when the consumer stops iterating or the run is
   cancelled (verdict `FAILURE`, `reason` says so).

Events go through a bounded channel (an anyio memory object stream), so a
slow consumer slows the run instead of growing memory. `execute_plan`
returns a `PlanRun`: the stream of events, and the `ExecutionResult` once
the run finished, so no caller folds events into a result again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from marimo_engine.engine._outputs import KeepOutputs
from marimo_engine.engine._run import EventCallback, _Run
from marimo_engine.engine._threads import DEFAULT_MAX_WORKERS
from marimo_engine.engine.events import Event, ExecutionResult
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.engine.durable import InterventionCallback, RunRecorder
    from marimo_engine.engine.journal import Journal
    from marimo_engine.plans.schema import Plan
    from marimo_engine.plans.subplans import PlanLibrary
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "DEFAULT_EVENT_BUFFER",
    "DEFAULT_MAX_WORKERS",
    "PlanRun",
    "execute_plan",
    "execute_plan_sync",
]

DEFAULT_EVENT_BUFFER = 1024
"""Events the channel holds before a slow consumer makes the run wait."""


class PlanRun:
    """A run of a plan: an async iterator of its events that, once finished, holds its result.

    As pydantic-ai's `agent.iter()`: iterate it for the events as they
    happen, then read `result`::

        run = execute_plan(plan, tools)
        async for event in run:
            ...
        print(run.result.verdict)

    or `async with execute_plan(plan, tools) as run: ...` (leaving the block
    early stops the run, as `aclose()` does). The run starts at the first
    iteration.

    Attributes:
        plan_id: The plan's id (generated when the plan has none), as every
            event carries it.
    """

    def __init__(self, run: _Run, buffer_size: int) -> None:
        self._run = run
        self.plan_id = run.plan_id
        self._events = _stream(run, buffer_size)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop the run if it is still going (running steps are cancelled), then wait for `FINISH`.

        Interrupted worker threads get a short grace to end; ones still
        running (a tool blocked in C) are abandoned, not waited for. A run
        closed before its first iteration never starts (no events, no
        result); what it holds, a resumed run's journal lease, is let go.
        """
        self._run.recorder.abandon()  # does nothing once the run began
        await self._events.aclose()

    async def __aenter__(self) -> PlanRun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def finished(self) -> bool:
        """Whether the run has ended (`FINISH` was emitted)."""
        return self._run.finished

    @property
    def result(self) -> ExecutionResult:
        """The run's `ExecutionResult` (every event, the verdict, outputs, the notebook).

        Raises:
            UsageError: The run has not finished; iterate it to the end (or
                `aclose()` it) first.
        """
        if not self._run.finished:
            raise UsageError(
                "The run has not finished: iterate it to the end (or aclose() it) before "
                "reading its result."
            )
        return self._run.result()


async def _stream(run: _Run, buffer_size: int) -> AsyncIterator[Event]:
    """Run `run` in a task and yield its events through a bounded channel."""
    import anyio

    send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=buffer_size)

    async def deliver(event: Event) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await send.send(event)

    run._emit_to = deliver

    async def produce() -> None:
        try:
            await run.main()
        finally:
            send.close()

    producer = asyncio.create_task(produce(), name=f"marimo-engine run {run.plan_id}")
    try:
        async with receive:
            async for event in receive:
                yield event
    finally:
        receive.close()
        if not producer.done():
            run.cancel_reason = "The consumer stopped iterating; running steps were cancelled."
            producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


def execute_plan(
    plan: Plan | Mapping[str, Any] | str,
    tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None = None,
    *,
    max_workers: int | None = None,
    buffer_size: int = DEFAULT_EVENT_BUFFER,
    on_event: EventCallback | None = None,
    journal: Journal | str | os.PathLike[str] | bool | None = None,
    run_id: str | None = None,
    on_intervention: InterventionCallback | None = None,
    keep_outputs: KeepOutputs = "all",
    plans: PlanLibrary | Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    executor: str | Any | None = None,
    gather: bool | Collection[str] = (),
) -> PlanRun:
    """Run a plan; iterate the returned run for its events as they happen.

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of tool names to callables
            (plain or coroutine functions).
        max_workers: Largest number of plain-function tools running at once
            in worker threads; `None` takes `DEFAULT_MAX_WORKERS` (128, for
            I/O-bound tools; threads start only as calls need them). Pass
            about the number of cores for CPU-bound plain tools.
        buffer_size: Events held for a slow consumer before the run waits.
        on_event: Called with every event, `FINISH` included, also when the
            consumer stops iterating early (then `FINISH` reaches only this
            callback). May be a coroutine function. If it raises, it is
            not called again and the run fails with an `ERROR` saying so.
        journal: Where to record the run so it can be resumed
            (docs/runs.md): a `Journal`, a file path, a `postgresql://` URL,
            `True` for `$MARIMO_ENGINE_JOURNAL` or the default file; `None`
            (default) or `False` records nothing.
        run_id: The run's id (default: a fresh one); every event carries it.
        keep_outputs: Which outputs the run holds (docs/engine.md, "Memory").
            `"all"` (default): every completed step's output, to the end, as
            the spec's `FINISH` carries them. `"needed"`: an output is
            released as soon as the last step reading it has ended (at once
            for a step no step reads), unless the step is a key finding; a
            list of step ids is `"needed"` that also keeps those steps'
            outputs. Released outputs leave `outputs`, the `FINISH` event
            and the result's copies of their `STEP_COMPLETE` events; the
            result names them in `released`. In process only: with a Dask
            `executor` outputs stay on the workers (`gather`).
        on_intervention: Called with an `InterventionInfo` when a step needs a
            person (an approval, a true `intervention_if`); returning a
            `durable.Decision` answers it and the run goes on, `None` stops
            the run with `INTERVENTION_NEEDED`. May be a coroutine function.
        plans: Where sub-plan steps find their plans (`plans.subplans.PlanLibrary`,
            or a mapping of names to plans); `None`: the example plans and plan
            files relative to the current directory.
        inputs: Values of the plan's `inputs` (input name to value); inputs
            not given take their defaults. A required one missing is an `ERROR`.
        executor: Where tool steps run: `None` or `"inprocess"` (here);
            `"dask"` (a `distributed.LocalCluster` started for the run);
            `"dask://HOST:PORT"` (a running Dask scheduler); or a
            `distributed.Client` (docs/dask.md, `engine.dask_host`).
        gather: On Dask, ids of the steps whose outputs come back to this
            process whole (key findings always do), or `True` for all; the
            others stay on the workers and events carry their summaries
            (`dask_host.RemoteOutput`). Ignored in process.

    Returns:
        A `PlanRun`: an async iterator of `Event`s, `START` first and
        `FINISH` last (see the spec, "Running"), whose `result` is the
        `ExecutionResult` once it finished.

    Raises:
        UsageError: `max_workers` is less than 1; `keep_outputs` is not one
            of its forms; `executor` is not one of the forms above, or names
            Dask without `distributed` installed; `journal` with a Dask
            executor (outputs stay on the workers). An invalid plan does not
            raise: it yields `START`, an `ERROR` with the problems, `FINISH`.

    Stopping early (`break` then `aclose()`, leaving `async with`, cancelling
    the consumer) cancels the running steps and interrupts their worker
    threads before `aclose()` returns. A worker that does not stop within a
    short grace (a tool blocked in C) is abandoned and named in `FINISH`
    (`abandoned`), never waited for.
    """
    run = _new_run(
        plan,
        tools,
        max_workers=max_workers,
        on_event=on_event,
        journal=journal,
        run_id=run_id,
        on_intervention=on_intervention,
        keep_outputs=keep_outputs,
        plans=plans,
        inputs=inputs,
        executor=executor,
        gather=gather,
    )
    return PlanRun(run, buffer_size)


def _new_run(
    plan: Any,
    tools: Any,
    *,
    journal: Any,
    on_intervention: InterventionCallback | None,
    executor: Any,
    gather: Any,
    **options: Any,
) -> _Run:
    """The `_Run` of `execute_plan` and `execute_plan_sync` (their arguments, as they say).

    Raises:
        UsageError: As `execute_plan` says (`executor`, `journal` with Dask).
    """
    return _Run(
        plan,
        tools,
        emit=None,
        recorder=_recorder(journal, on_intervention),
        target=_target(executor, gather, journal),
        **options,
    )


def _target(executor: Any, gather: Any, journal: Any) -> Any:
    """The run's target for `executor` (`None`: in process); see `dask_host.dask_target`."""
    if executor is None or executor == "inprocess":
        return None
    from marimo_engine.engine.dask_host import dask_target

    target = dask_target(executor, gather=gather)
    if target is not None and journal is not None and journal is not False:
        raise UsageError(
            "A run on Dask keeps step outputs on the workers, so it cannot be journaled here: "
            "drop journal= or run in process."
        )
    return target


def _recorder(journal: Any, on_intervention: InterventionCallback | None) -> RunRecorder | None:
    """The durable hook of a new run (`durable.RunRecorder`), or `None` for the plain one."""
    if (journal is None or journal is False) and on_intervention is None:
        return None
    from marimo_engine.engine.durable import RunRecorder
    from marimo_engine.engine.journal import Journal, open_journal

    store = None
    if journal is not None and journal is not False:
        store = open_journal(None if journal is True else journal)
    recorder = RunRecorder(store, on_intervention=on_intervention)
    recorder.owns_journal = store is not None and not isinstance(journal, Journal)
    return recorder


def execute_plan_sync(
    plan: Plan | Mapping[str, Any] | str,
    tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None = None,
    *,
    max_workers: int | None = None,
    on_event: EventCallback | None = None,
    journal: Journal | str | os.PathLike[str] | bool | None = None,
    run_id: str | None = None,
    on_intervention: InterventionCallback | None = None,
    keep_outputs: KeepOutputs = "all",
    plans: PlanLibrary | Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    executor: str | Any | None = None,
    gather: bool | Collection[str] = (),
) -> ExecutionResult:
    """Run a plan to the end and return its result (blocks).

    Args:
        plan: A `Plan`, a dict or a JSON string.
        tools: A `ToolRegistry` or a mapping of tool names to callables.
        max_workers: As for `execute_plan`.
        on_event: Called with every event as it happens (a plain function).
            If it raises, it is not called again and the run fails with an
            `ERROR` saying so (the steps themselves are not blamed).
        journal: As for `execute_plan`.
        run_id: As for `execute_plan`.
        on_intervention: As for `execute_plan`.
        keep_outputs: As for `execute_plan`.
        plans: As for `execute_plan`.
        inputs: As for `execute_plan`.
        executor: As for `execute_plan`.
        gather: As for `execute_plan`.

    Returns:
        The `ExecutionResult`, including every event and the notebook source.

    Raises:
        UsageError: As for `execute_plan`. An invalid plan does not
            raise: the result's verdict is `FAILURE` with the problems in
            `result.error.problems`.

    Called from a thread with a running event loop (a notebook, an async
    app), the run happens on a fresh loop in a helper thread.
    """
    run = _new_run(
        plan,
        tools,
        max_workers=max_workers,
        on_event=on_event,
        journal=journal,
        run_id=run_id,
        on_intervention=on_intervention,
        keep_outputs=keep_outputs,
        plans=plans,
        inputs=inputs,
        executor=executor,
        gather=gather,
    )
    return run_sync(run)


def run_sync(run: _Run) -> ExecutionResult:
    """Run `run` to its end, on a fresh loop in a helper thread when one is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        # Outside the `except` block: a tool's exception must not carry
        # "RuntimeError: no running event loop" as its context in tracebacks.
        asyncio.run(run.main())
        return run.result()

    failure: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(run.main())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=in_thread, name="marimo-engine-sync-run")
    worker.start()
    worker.join()
    if failure and not run.finished:
        raise failure[0]
    return run.result()
