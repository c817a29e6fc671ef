"""`keep_outputs`: which step outputs a run holds, and releasing the rest when no step needs them.

With `keep_outputs="needed"` an output is released as soon as the last step
that reads it (its children in the DAG, `plans.dependencies.step_dependencies`:
`map`, `args`, `run_if`, `intervention_if`, `depends_on`, `expect`, a markdown
step's text) has ended, however it ended; an output no step reads is
released when its step completes. Key findings and the step ids the caller
asked for are kept. Releasing is the host's business (`OutputKeeper.release`
is called with the step id): the in-process run drops the output from the
run's outputs, the cells' globals, the journal's reuse table and its copy of
the `STEP_COMPLETE` event (docs/engine.md, "Memory").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from marimo_engine.engine.step import StepOutcome
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.engine.graph import StepGraph
    from marimo_engine.plans.schema import Plan

__all__ = ["KeepOutputs", "OutputKeeper", "checked_keep_outputs"]

KeepOutputs = Literal["all", "needed"] | Iterable[str]
"""`keep_outputs`: `"all"`, `"needed"`, or step ids to keep on top of `"needed"`."""


def checked_keep_outputs(keep: Any) -> frozenset[str] | None:
    """`keep_outputs` checked: `None` for "all", else the step ids kept besides key findings.

    Raises:
        UsageError: Neither "all", "needed" nor an iterable of step ids.
    """
    if keep == "all":
        return None
    if keep == "needed":
        return frozenset()
    if isinstance(keep, str | bytes) or not isinstance(keep, Iterable):
        raise UsageError(
            f'keep_outputs must be "all", "needed" or a list of step ids, got {keep!r}.'
        )
    ids = list(keep)
    if not all(isinstance(i, str) for i in ids):
        raise UsageError(f"keep_outputs must list step ids as strings, got {ids!r}.")
    return frozenset(ids)


class OutputKeeper:
    """Counts each step's readers still to end and releases outputs no one will read.

    Args:
        plan: The plan run.
        graph: Its DAG.
        asked: Step ids whose outputs the caller keeps (`checked_keep_outputs`).
        release: Called with a step id whose output is to be let go (only
            for steps that are not kept; the callee ignores steps without
            an output).

    Raises:
        UsageError: `asked` names a step the plan does not have.
    """

    __slots__ = ("_kept", "_parents", "_readers", "_release")

    def __init__(
        self,
        plan: Plan,
        graph: StepGraph,
        asked: frozenset[str],
        release: Callable[[str], Any],
    ) -> None:
        unknown = sorted(asked - set(plan.step_ids))
        if unknown:
            known = ", ".join(repr(s) for s in plan.step_ids[:20])
            raise UsageError(
                f"keep_outputs names step(s) {', '.join(map(repr, unknown))} that the plan "
                f"does not have. Known steps: {known}."
            )
        self._kept = asked | {s.id for s in plan.steps if s.key_finding}
        self._readers = {sid: len(children) for sid, children in graph.children.items()}
        self._parents: Mapping[str, tuple[str, ...]] = graph.parents
        self._release = release

    def ended(self, step_id: str, outcome: StepOutcome) -> None:
        """A step ended (completed, failed, skipped, stopped for a person).

        Its parents' outputs whose last reader it was are released, and its
        own output when it completed and no step reads it.
        """
        readers = self._readers
        for parent in self._parents[step_id]:
            readers[parent] -= 1
            if readers[parent] == 0 and parent not in self._kept:
                self._release(parent)
        mine = outcome is StepOutcome.COMPLETED and readers[step_id] == 0
        if mine and step_id not in self._kept:
            self._release(step_id)
