"""What a compiled notebook prints when it runs as a script (`python notebook.py`).

Under `python notebook.py` marimo runs the cells and shows nothing, so the
standalone `StepRunner` reports here: one line per step as it ends (the
engine's event messages: completed, skipped, failed, needs a person) and,
when the script ends, a line for each step that never ran and the verdict.
Steps that never ran are those whose cells marimo did not run because a
dependency was skipped (skipped too, as under the engine) or stopped for a
person or failed (not run). In `marimo edit` and other modes nothing is
printed: the cells' outputs show the same.

The verdict follows the engine's rules: `FAILURE` if a step failed (or a
step did not run for another reason), else `INTERVENTION_NEEDED` if a step
needs a person, else `SUCCESS`.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Mapping

__all__ = ["ScriptReport"]

COMPLETED, SKIPPED, FAILED, INTERVENTION = "completed", "skipped", "failed", "intervention"
_BLOCKED = {FAILED: "failed", INTERVENTION: "needs a person"}


class ScriptReport:
    """Step outcomes and the verdict of a notebook run as a script, printed to stdout.

    Args:
        plan_id: The plan's id.
        dependencies: Step id to the ids it depends on, in plan order.
    """

    def __init__(self, plan_id: str, dependencies: Mapping[str, tuple[str, ...]]) -> None:
        self.plan_id = plan_id
        self.dependencies = dependencies
        self.outcomes: dict[str, str] = {}
        self.started = time.monotonic()
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

    def record(self, step_id: str, outcome: str, line: str) -> None:
        """Record how a step ended and print `line` (one of the engine's step messages)."""
        if step_id in self.outcomes:
            return
        self.outcomes[step_id] = outcome
        if self.enabled:
            print(line, flush=True)

    def finish(self) -> None:
        """Print a line per step that never ran, then the verdict line."""
        outcomes = dict(self.outcomes)
        lines: dict[str, str] = {}
        for step_id in self._ready_order():
            if step_id in outcomes:
                continue
            deps = self.dependencies[step_id]
            skipped = next((d for d in deps if outcomes.get(d) == SKIPPED), None)
            blocked = next((d for d in deps if outcomes.get(d) not in (COMPLETED, SKIPPED)), None)
            if skipped is not None and blocked is None:
                outcomes[step_id] = SKIPPED
                lines[step_id] = f"Step {step_id!r} skipped: dependency {skipped!r} was skipped."
            else:
                outcomes[step_id] = "not run"
                why = _BLOCKED.get(outcomes.get(blocked, ""), "was not run") if blocked else ""
                reason = f"step {blocked!r} {why}" if blocked else "the script stopped first"
                lines[step_id] = f"Step {step_id!r} was not run: {reason}."
        for step_id in self.dependencies:  # plan order
            if step_id in lines:
                print(lines[step_id])
        values = set(outcomes.values())
        if FAILED in values:
            verdict = "FAILURE"
        elif INTERVENTION in values:  # the steps after it wait for a person
            verdict = "INTERVENTION_NEEDED"
        elif "not run" in values:
            verdict = "FAILURE"
        else:
            verdict = "SUCCESS"
        duration_s = time.monotonic() - self.started
        print(f"Plan {self.plan_id!r} finished: {verdict} in {duration_s:.3f} s.", flush=True)

    def _ready_order(self) -> list[str]:
        """Step ids with dependencies first (Kahn's algorithm; plan order breaks ties)."""
        waiting = {s: len(deps) for s, deps in self.dependencies.items()}
        dependents: dict[str, list[str]] = {s: [] for s in self.dependencies}
        for step_id, deps in self.dependencies.items():
            for dep in deps:
                dependents[dep].append(step_id)
        order = [s for s, n in waiting.items() if n == 0]
        for step_id in order:  # grows while it is walked
            for dependent in dependents[step_id]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    order.append(dependent)
        return order
