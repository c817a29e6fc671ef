"""Which tries of a run on Dask go to the cluster before their dependencies end.

In a chain `s1 -> s2 -> s3`, the driver would learn that `s1` ended, start
`s2` (`step.run_step`) and only then submit its try: one trip from the
cluster to the driver and back per step, which Dask's own chained futures
(`f = client.submit(g, f)`) do not pay. So when `s1`'s try is submitted,
`s2`'s is submitted too, **ahead**, as a task taking `s1`'s future, and so
on down the chain; the scheduler then starts each try when the one before
it ends, and the driver only reads their reports. The step semantics do not
move: `run_step` still runs each step on the driver, in the same order and
with the same events, and its try is the one already submitted
(`DaskTarget.call_tool` takes it up).

A try may go ahead only where that cannot change what happens:

- the step itself has nothing to decide before its tool is called: no
  `run_if`, no approval, no `timeout_s` (its clock starts when `run_step`
  calls the tool), a tool the workers can load, and `args` whose references
  are whole (`"$s1"`, no path and no text around it: nothing to resolve);
  nor an `intervention_if`, which its try evaluates beside its output over
  outputs that must be known when it is submitted;
- each of its dependencies has completed, or has a try on the cluster
  whose success means it completes (`may_lead`): no `intervention_if`, no
  output contract, no `retries`, no `timeout_s` (a deadline the driver
  keeps could fail a try that succeeded on its worker), and not a map or
  sub-plan step (no one try of theirs is their output). Such a try that
  fails holds `NO_OUTPUT`, or is cancelled with its dependents, and the
  try submitted ahead then does not call its tool (`_dask_tasks.call`);
  the run stops on that failure, as in process, and the step never starts;
- the run is not stopping, and no journaled output is reused (a resumed
  run decides per step whether to call the tool).

When the run stops (an error or an intervention elsewhere), the workers are
told that no try of the run submitted ahead starts any more
(`_dask_tasks.stop_ahead`), and they answer which ones did start: those
steps ran, so the driver reports them as running steps that finish
(`STEP_START`, then `STEP_COMPLETE` or `ERROR`) before `FINISH`; the others
are cancelled without a trace. A cancelled run interrupts them as any
running try.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from marimo_engine.engine.step import PreparedStep
    from marimo_engine.plans.references import Template

__all__ = ["AheadTry", "LookAhead", "templates"]


@dataclass(slots=True)
class AheadTry:
    """A try submitted ahead that its step has not taken up yet.

    Attributes:
        token: The try's token (its report and its interruption name it).
        waiter: Resolves to the try's report `(kind, payload)`.
    """

    token: str
    waiter: asyncio.Future[tuple[str, Any]]


@dataclass
class LookAhead:
    """The state of a run's tries submitted ahead (module docstring).

    Attributes:
        outputs: The run's outputs on the driver (`DaskTarget._outputs`): a
            step there completed.
        parents: Step id to the ids of the steps it depends on.
        children: Step id to the ids of the steps that depend on it.
        may_follow: Steps whose try may go ahead of their dependencies' end.
        may_lead: Steps whose try, once submitted, means they complete if it succeeds.
        inflight: Step id to its try's Dask future, for `may_lead` steps whose
            try was submitted and which have not ended.
        tries: Step id to its try submitted ahead, not taken up yet.
        started: Steps that the run started (`run_step`).
        used: Whether a try went ahead in this run.
        stopped: Whether the workers were told the run stopped.
    """

    outputs: Mapping[str, Any]
    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    may_follow: frozenset[str]
    may_lead: frozenset[str]
    inflight: dict[str, Any] = field(default_factory=dict)
    tries: dict[str, AheadTry] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    used: bool = False
    stopped: bool = False

    @classmethod
    def of(
        cls,
        prepared: Mapping[str, PreparedStep],
        outputs: Mapping[str, Any],
        parents: Mapping[str, tuple[str, ...]],
        children: Mapping[str, tuple[str, ...]],
        *,
        loadable: Mapping[str, Any],
        enabled: bool,
    ) -> LookAhead:
        """The look-ahead of a plan's steps.

        Args:
            prepared: Step id to its prepared step.
            outputs: The run's outputs on the driver (kept, not copied).
            parents: Step id to its dependencies (`ir.dependencies`).
            children: Step id to its dependents.
            loadable: Tool name to its `ToolRef`, for tools the workers can load.
            enabled: `False` to submit every try when its step starts (a
                resumed run that reuses journaled outputs).
        """
        from marimo_engine.engine.step import needs_approval

        follow: set[str] = set()
        lead: set[str] = set()
        for sid, p in prepared.items() if enabled else ():
            step = p.step
            if (
                p.intervention_if is None
                and p.contract is None
                and step.retries == 0
                and step.timeout_s is None
                and step.map is None  # its tries are its items', not its output
                and step.plan is None
            ):
                lead.add(sid)
            if (
                p.tool is not None
                and step.tool in loadable
                and p.run_if is None
                and p.intervention_if is None
                and step.timeout_s is None
                and step.markdown is None
                and step.map is None
                and step.plan is None
                and not needs_approval(p)
                and _whole_references_only(step.args)
            ):
                follow.add(sid)
        return cls(outputs, parents, children, frozenset(follow), frozenset(lead))

    def submitted(self, step_id: str, future: Any) -> list[str]:
        """A try of `step_id` went to the cluster; the steps whose try may follow it now.

        The caller submits the returned steps' tries (reading `inputs`).

        Args:
            step_id: The step.
            future: Its try's Dask future.
        """
        if step_id not in self.may_lead or self.stopped:
            return []
        self.inflight[step_id] = future
        return [c for c in self.children[step_id] if self._may_go(c)]

    def _may_go(self, step_id: str) -> bool:
        return (
            step_id in self.may_follow
            and step_id not in self.tries
            and step_id not in self.started
            and all(p in self.inflight or p in self.outputs for p in self.parents[step_id])
        )

    def inputs(self, step_id: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """What a try submitted ahead reads: `(values by step id, futures it waits for)`.

        The values are the completed dependencies' outputs (a `RemoteOutput`,
        or a value held here) and, for the others, their tries' futures.
        """
        values: dict[str, Any] = {}
        after: list[Any] = []
        for p in self.parents[step_id]:
            if p in self.outputs:
                values[p] = self.outputs[p]
            else:
                values[p] = future = self.inflight[p]
                after.append(future)
        return values, tuple(after)

    def ended(self, step_id: str) -> None:
        """A step ended (its try is no longer in flight)."""
        self.inflight.pop(step_id, None)


def _whole_references_only(args: Any) -> bool:
    """Whether every reference in `args` is a whole one (`"$s1"`): nothing to resolve."""
    return all(
        template is not None
        and (
            not template.references
            or (template.is_whole and not any(r.path for r in template.references))
        )
        for template in templates(args)
    )


def templates(args: Any) -> Iterator[Template | None]:
    """The parsed template of each string with a `$` in `args` (`None`: it does not parse).

    Args:
        args: A step's `args`: strings, and lists, tuples and dicts of them.
    """
    from marimo_engine.plans.references import parse_template

    if isinstance(args, str):
        if "$" in args:
            try:
                yield parse_template(args)
            except Exception:
                yield None
    elif isinstance(args, Mapping):
        for value in args.values():
            yield from templates(value)
    elif isinstance(args, list | tuple):
        for value in args:
            yield from templates(value)
