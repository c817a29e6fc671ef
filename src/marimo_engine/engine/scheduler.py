"""The one scheduler: which step starts when, for the in-process run and the live run.

The rules (plan language spec, "Running"):

- A step starts once every step it depends on has ended; among ready
  steps, plan list order decides who starts first.
- A step whose dependency was skipped is skipped without running
  (`blocked`); its own dependents are then skipped the same way.
- After an error or an intervention (`stopping()` turns true) no new step
  starts; running steps finish.
- At most `concurrency` steps run at once (`None`: no bound here; plain
  functions are bounded by the worker pool). A live kernel runs one cell at a
  time, so the live run passes 1.

What "start a step" means is the caller's (`start`): evaluate the step's cell
in process, or run its cell in a live kernel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from marimo_engine.engine.step import StepOutcome

if TYPE_CHECKING:
    from marimo_engine.engine.graph import StepGraph

__all__ = ["schedule"]


async def schedule(
    graph: StepGraph,
    start: Callable[[str], Awaitable[StepOutcome | None]],
    *,
    blocked: Callable[[str, str], Awaitable[None]],
    stopping: Callable[[], bool],
    concurrency: int | None = None,
) -> None:
    """Walk the DAG, starting each step when it is ready.

    Steps run in **workers** (asyncio tasks). When a worker's step ends, the
    worker releases the step's children and takes the first ready one
    itself; only the other ready steps get tasks of their own. So a chain
    runs in one task, and no step's end waits for a central loop to wake up:
    the work per step is the same however many steps are in flight.

    Args:
        graph: The plan's step DAG.
        start: Runs one step to its end and returns how it ended (`None`: it
            never started because the run was stopping). Must not raise.
        blocked: Called as `blocked(step_id, skipped_dependency)` for a step
            skipped because a dependency was skipped (it emits the events).
        stopping: Whether the run stops starting new steps.
        concurrency: Most steps running at once, or `None`.

    Raises:
        asyncio.CancelledError: The run was cancelled; running steps are
            cancelled and awaited first.
        BaseException: What `blocked` raised (after the running steps ended).
    """
    from marimo_engine.engine.graph import ReadyQueue

    loop = asyncio.get_running_loop()
    ready = ReadyQueue(graph)
    parents = graph.parents
    skipped: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()
    finished: asyncio.Future[None] = loop.create_future()
    workers = 0  # workers running a step or taking the next one

    async def take() -> str | None:
        """The next step for the calling worker; other ready steps get new workers."""
        nonlocal workers
        mine: str | None = None
        while ready and not stopping():
            if mine is not None and concurrency is not None and workers >= concurrency:
                break
            sid = ready.pop()
            blocked_by = next((p for p in parents[sid] if p in skipped), None) if skipped else None
            if blocked_by is not None:
                await blocked(sid, blocked_by)
                skipped.add(sid)
                ready.release(sid)
            elif mine is None:
                mine = sid
            else:
                workers += 1
                tasks.add(loop.create_task(work(sid), name=f"marimo-engine step {sid}"))
        return mine

    async def work(sid: str | None) -> None:
        nonlocal workers
        try:
            if sid is None:
                sid = await take()
            while sid is not None:
                outcome = await start(sid)
                if outcome is StepOutcome.SKIPPED:
                    skipped.add(sid)
                    ready.release(sid)
                elif outcome is StepOutcome.COMPLETED:
                    ready.release(sid)
                sid = await take()
        except BaseException as exc:
            if not finished.done() and not isinstance(exc, asyncio.CancelledError):
                finished.set_exception(exc)
            raise
        finally:
            # The worker leaves the set itself: a done callback per task was a
            # loop callback more per step.
            tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            workers -= 1
            if workers == 0 and not finished.done():
                finished.set_result(None)

    workers += 1
    tasks.add(loop.create_task(work(None)))  # takes up the steps ready at the start
    try:
        await finished
    except BaseException:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
