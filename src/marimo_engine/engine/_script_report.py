"""What a compiled notebook prints when it runs as a script (`python notebook.py`).

Under `python notebook.py` marimo runs the cells and shows nothing, so the
standalone `StepRunner` reports here, from its events: one line per step as
it ends (the event's message: completed, skipped, failed, needs a person,
and retries) and, when the script ends, a line for each step that never ran
and the verdict. A step marimo did not run because a dependency was skipped
is skipped too, as under the engine (its `STEP_START`/`STEP_SKIPPED` events
are emitted then, with the engine's reason); one whose dependency failed or
stopped for a person, or that the run's stop held back, was not run. In
`marimo edit` and other modes nothing is printed: the cells' outputs show
the same.

The verdict is the event fold's (`EventFold.verdict`: `FAILURE` after an
error, else `INTERVENTION_NEEDED` after an intervention, else `SUCCESS`),
and `FAILURE` when a step did not run for another reason.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event, EventFold
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.plans.schema import Plan

__all__ = ["ScriptReport"]

_PRINTED = frozenset(
    {"STEP_COMPLETE", "STEP_SKIPPED", "STEP_RETRY", "ERROR", "INTERVENTION_NEEDED"}
)


class ScriptReport:
    """Step outcomes and the verdict of a notebook run as a script, printed to stdout.

    Args:
        plan: The plan.
        graph: Its step DAG.
        fold: The runner's event fold (what happened so far).
        emit: Records an event as the runner does (sync), for the steps a
            skip blocked, emitted when the script ends.
    """

    def __init__(
        self, plan: Plan, graph: StepGraph, fold: EventFold, emit: Callable[[Event], None]
    ) -> None:
        self.plan = plan
        self.graph = graph
        self.fold = fold
        self.emit = emit
        self.started = time.monotonic()
        self.held_back_by: str | None = None  # the step whose failure stopped the run
        self._enabled: bool | None = None

    @property
    def enabled(self) -> bool:
        """Whether the notebook runs as a script (decided once, on first use)."""
        if self._enabled is None:
            import marimo as mo

            self._enabled = mo.app_meta().mode == "script"
            if self._enabled:
                atexit.register(self.finish)
        return self._enabled

    def show(self, event: Event) -> None:
        """Print an event's message if it tells how a step ended (script runs only)."""
        if event.type in _PRINTED and self.enabled:
            print(event.msg, flush=True)

    def finish(self) -> None:
        """Report the steps that never ran, then print the verdict line."""
        from marimo_engine.engine.step import blocked_events

        ended: dict[str, str] = {}
        for event in self.fold.events:
            if event.step_id is not None and event.type in _ENDINGS:
                ended[event.step_id] = _ENDINGS[event.type]
        not_run: list[str] = []
        for step_id in self.graph.ready_order():
            if step_id in ended:
                continue
            parents = self.graph.parents[step_id]
            skipped = next((p for p in parents if ended.get(p) == "skipped"), None)
            done = ("completed", "skipped")
            blocked = next((p for p in parents if ended.get(p) not in done), None)
            if skipped is not None and blocked is None:
                ended[step_id] = "skipped"
                for event in blocked_events(self.plan.id, self.plan.step(step_id), skipped):
                    self.emit(event)
                continue
            ended[step_id] = "not run"
            culprit = blocked or self.held_back_by
            why = _WHY.get(ended.get(culprit or "", ""), "was not run")
            reason = f"step {culprit!r} {why}" if culprit else "the script stopped first"
            not_run.append(f"Step {step_id!r} was not run: {reason}.")
        for line in not_run:
            print(line)
        from marimo_engine.engine.events import Verdict

        verdict = self.fold.verdict()
        if not_run and verdict is Verdict.SUCCESS:
            verdict = Verdict.FAILURE
        duration_s = time.monotonic() - self.started
        print(f"Plan {self.plan.id!r} finished: {verdict.value} in {duration_s:.3f} s.", flush=True)


_ENDINGS = {  # event type (a StrEnum, so its value is the key) -> how the step ended
    "STEP_COMPLETE": "completed",
    "STEP_SKIPPED": "skipped",
    "ERROR": "failed",
    "INTERVENTION_NEEDED": "intervention",
}
_WHY = {"failed": "failed", "intervention": "needs a person"}
