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
    """
    from marimo_engine.engine.graph import ReadyQueue

    ready = ReadyQueue(graph)
    release = ready.release
    done: asyncio.Queue[tuple[str, StepOutcome | None]] = asyncio.Queue()
    running: dict[str, asyncio.Task[None]] = {}
    skipped: set[str] = set()

    async def run_one(sid: str) -> None:
        outcome: StepOutcome | None = None
        try:
            outcome = await start(sid)
        finally:
            done.put_nowait((sid, outcome))

    try:
        while ready or running:
            while ready and not stopping() and (concurrency is None or len(running) < concurrency):
                sid = ready.pop()
                blocked_by = next((p for p in graph.parents[sid] if p in skipped), None)
                if blocked_by is not None:
                    await blocked(sid, blocked_by)
                    skipped.add(sid)
                    release(sid)
                    continue
                running[sid] = asyncio.create_task(run_one(sid), name=f"marimo-engine step {sid}")
            if not running:
                break
            sid, outcome = await done.get()
            running.pop(sid, None)
            if outcome is StepOutcome.SKIPPED:
                skipped.add(sid)
                release(sid)
            elif outcome is StepOutcome.COMPLETED:
                release(sid)
    except asyncio.CancelledError:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        raise
