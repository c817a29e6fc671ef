"""Durable runs: the journal hook of the one step runtime, resume, re-run, approvals.

A `RunRecorder` rides on every in-process run (`_run._Run.recorder`). It
sees each event before the consumer does and writes it to the journal
(`journal.Journal`, write-ahead), and it is the step runtime's
`before_tool`/`intervene` hook (`step.run_step`):

- **reuse**: a step whose output the journal holds (resume: the same run;
  rerun: the parent run, when the input fingerprint is unchanged) is not
  run again: `STEP_COMPLETE` carries the journaled output and
  `reused_from`. The fingerprint covers the plan inputs the step reads
  (`$input.NAME` anywhere in it) and a sub-plan step's plan.
- **plan data**: the run's plan input values (after defaults) and the
  sub-plans it resolved are journaled before its first step, so `resume_run`
  and `rerun` run with them without being given them again.
- **approval**: a step with `requires_approval` (the step's or its tool's)
  stops the run with `INTERVENTION_NEEDED` of kind `approval` before its
  tool is called, unless `on_intervention` answers at once or the run
  was resumed with `approve`.
- **intervention**: an `intervention_if` that is true asks `on_intervention`
  first; only an unanswered one stops the run.

Guarantees (docs/runs.md): a step that completed is never run again in the
same run (exactly once); a step that was running when the process died runs
again on resume (at least once).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import ErrorInfo, Event, EventType, InterventionInfo
from marimo_engine.engine.step import (
    StepOutcome,
    StepResult,
    approval_event,
    complete_message,
    needs_approval,
    skipped_message,
)
from marimo_engine.errors import EngineError, UsageError

if TYPE_CHECKING:
    from marimo_engine.engine._outputs import KeepOutputs
    from marimo_engine.engine.executor import PlanRun
    from marimo_engine.engine.journal import Journal, RunRecord
    from marimo_engine.engine.step import PreparedStep, StepHost
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "Decision",
    "DecisionError",
    "InterventionRejectedError",
    "RunRecorder",
    "list_runs",
    "new_run_id",
    "rerun",
    "resume_run",
]

_log = logging.getLogger(__name__)


class InterventionRejectedError(EngineError):
    """A person rejected the run at an intervention (its `ERROR`'s type)."""


@dataclass(frozen=True)
class Decision:
    """A person's answer to an intervention.

    Build one with `Decision.approve()`, `Decision.reject(reason)` or
    `Decision.answer(value)`.

    Attributes:
        action: `approve`, `reject` or `answer`.
        reason: `reject`: why (shown in the error or the skip).
        value: `answer`: the value; it becomes the step's output.
    """

    action: str
    reason: str | None = None
    value: Any = None

    @classmethod
    def approve(cls) -> Decision:
        """Go on: run the step (approval) or keep its output (condition)."""
        return cls("approve")

    @classmethod
    def reject(cls, reason: str | None = None) -> Decision:
        """Stop: skip the step and its dependents (approval) or fail the run (condition)."""
        return cls("reject", reason=reason)

    @classmethod
    def answer(cls, value: Any) -> Decision:
        """Hand `value` to the run as the step's output (condition only)."""
        return cls("answer", value=value)


class DecisionError(UsageError):
    """A resume's decision does not fit what the run waits for (`resume_run`).

    The message says what is wrong in the engine's terms (approve, reject,
    answer); an interface adds how its user gives a decision (a CLI flag, a
    tool argument) from `accepted`, without rewriting the message.

    Attributes:
        run_id: The run.
        accepted: The decisions the run takes now, a subset of
            `("approve", "reject", "answer")` in that order; empty when it
            takes none (resume it without a decision).
    """

    def __init__(self, message: str, *, run_id: str, accepted: Sequence[str]) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.accepted = tuple(accepted)

    def choices(self, words: Mapping[str, str]) -> str:
        """The accepted decisions in an interface's words: `"A, B or C"`.

        Args:
            words: Each decision (`approve`, `reject`, `answer`) to how the
                interface's user gives it, e.g. `{"approve": "--approve"}`.

        Returns:
            The words of `accepted` joined with commas and a final "or";
            empty when nothing is accepted.
        """
        return _either([words.get(action, action) for action in self.accepted])


def _either(said: Sequence[str]) -> str:
    """`"a, b or c"`; `"a"` for one; empty for none."""
    if len(said) < 2:
        return "".join(said)
    return ", ".join(said[:-1]) + " or " + said[-1]


_DECISIONS = ("approve", "reject", "answer")

InterventionCallback = Callable[[InterventionInfo], Any]
"""`on_intervention(info)` returns a `Decision` (or an awaitable of one); `None` stops the run."""


def new_run_id() -> str:
    """A new run id: UTC time then 8 random hex characters (`20261202T115700-1a2b3c4d`)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class RunRecorder:
    """The journal and intervention hook of one run (module docstring).

    Args:
        journal: Where to record, or `None` for no journal.
        on_intervention: A callback that may answer interventions without
            ending the run.
        resume_token: The lease token when resuming (the run exists).
        reuse: Step id to `(output, source run id, fingerprint)` of outputs
            that are not computed again.
        match_fingerprints: Reuse only when the fingerprint is unchanged (rerun).
        decision: The person's answer to `pending` (resume).
        pending: The intervention the resumed run stopped at.
        parent_run_id: The run a rerun started from.
    """

    def __init__(
        self,
        journal: Journal | None = None,
        *,
        on_intervention: InterventionCallback | None = None,
        resume_token: str | None = None,
        reuse: Mapping[str, tuple[Any, str, str | None]] | None = None,
        match_fingerprints: bool = False,
        decision: Decision | None = None,
        pending: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.journal = journal
        self.on_intervention = on_intervention
        self.token = resume_token
        self.resuming = resume_token is not None
        self.reuse = dict(reuse or {})
        self.match_fingerprints = match_fingerprints
        self.decision = decision
        self.pending_in = dict(pending) if pending else None
        self.parent_run_id = parent_run_id
        self.run_id = ""
        self.plan_id = ""
        self.plan_source: Any = None
        self.failed: BaseException | None = None
        self.owns_journal = False  # closed after FINISH (resume_run/rerun opened it)
        self.began = False  # the run emitted START: its FINISH will release what it holds
        self.status_before: str | None = None  # a resumed run's status, put back by `abandon`
        self.given_inputs: Mapping[str, Any] | None = None  # journaled with the run (`bind`)
        self.input_summaries: frozenset[str] = frozenset()  # inputs that are `unstored` summaries
        self._input_names: dict[str, tuple[str, ...]] = {}  # step id to the inputs it reads
        self._pending: dict[str, Any] | None = None
        self._approved: set[str] = set()
        self._fingerprints: dict[str, str] = {}  # kept on reused outputs: a rerun of a rerun

    def bind(
        self,
        run_id: str,
        plan_id: str,
        plan_source: Any,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Attach to a run (called by `_Run`); `inputs` are the plan input values it was given."""
        self.run_id, self.plan_id, self.plan_source = run_id, plan_id, plan_source
        self.given_inputs = inputs
        pending = self.pending_in
        decision = self.decision
        approved = decision is not None and decision.action == "approve"
        if pending is not None and approved and pending.get("kind") == "approval":
            self._approved.add(pending["step_id"])

    # -- the journal ----------------------------------------------------------------

    def _write_step(self, step_id: str, **fields: Any) -> None:
        if self.journal is not None and self.token is not None and self.failed is None:
            self.journal.write_step(self.run_id, self.token, step_id, **fields)

    def _write_run(self, **fields: Any) -> None:
        if self.journal is not None and self.token is not None and self.failed is None:
            self.journal.write_run(self.run_id, self.token, **fields)

    def record(self, event: Event) -> Event | None:
        """Write what `event` says to the journal, before anyone else sees it.

        Returns:
            `None`, or once, when the journal failed, an `ERROR` event to add
            (the run then ends in `FAILURE`; journaling stops). Never raises.
        """
        if event.type is EventType.START:
            self.began = True
        if self.journal is None or self.failed is not None:
            return None
        if event.parent_step_id is not None or (
            event.item is not None and event.type in (EventType.STEP_SKIPPED, EventType.STEP_RETRY)
        ):
            # plan language 2: a sub-plan's events and one item's skip or retry are not
            # the step's; the journal holds the step (resuming runs a sub-plan step again).
            return None
        try:
            self._record(event)
        except Exception as exc:
            if event.type is EventType.FINISH:  # nothing may follow FINISH
                self.failed = exc
                _log.warning("The run journal failed on FINISH: %s", exc)
                return None
            return self._failure(exc)
        return None

    def _failure(self, exc: Exception) -> Event:
        """The `ERROR` that stops the run when the journal failed; journaling stops."""
        self.failed = exc
        message = f"The run journal failed, the run stops: {exc}"
        return Event(
            type=EventType.ERROR,
            plan_id=self.plan_id,
            run_id=self.run_id,
            msg=message,
            error=ErrorInfo(type=type(exc).__name__, message=message),
        )

    def record_plan_data(self, inputs: Mapping[str, Any] | None, plans: Any) -> Event | None:
        """Journal the run's resolved plan input values and the sub-plans it resolved.

        Called once the plan is read, before any step runs (`_Run._prepare`);
        writes nothing when there is neither.

        Args:
            inputs: Input name to the value steps read as `$input.NAME`
                (given, else the default), or `None` for a plan without inputs.
            plans: The run's `PlanLibrary` (what validation resolved is in it).

        Returns:
            `None`, or, when the journal failed, the `ERROR` event that stops
            the run (as `record`). Never raises.
        """
        if self.journal is None or self.token is None or self.failed is not None:
            return None
        fields: dict[str, Any] = {}
        try:
            if inputs:
                from marimo_engine.engine._journal_codec import encode_values

                fields["inputs"] = encode_values(inputs, self.input_summaries)
            subplans = plans.to_json() if plans is not None else None
            if subplans is not None:
                fields["subplans"] = subplans
            if fields:
                self._write_run(**fields)
        except Exception as exc:
            return self._failure(exc)
        return None

    def _record(self, event: Event) -> None:
        from marimo_engine.engine._journal_codec import encode_output
        from marimo_engine.engine.journal import plan_text

        kind = event.type
        sid = event.step_id
        journal = self.journal
        assert journal is not None
        if kind is EventType.START:
            if self.token is None:
                given = None
                if self.given_inputs:  # resolved once the plan is read (`record_plan_data`)
                    from marimo_engine.engine._journal_codec import encode_values

                    given = encode_values(self.given_inputs, self.input_summaries)
                self.token = journal.create_run(
                    self.run_id,
                    self.plan_id,
                    plan_text(self.plan_source),
                    parent_run_id=self.parent_run_id,
                    inputs=given,
                )
            else:
                self._write_run(pending=None, error=None)
        elif kind is EventType.STEP_COMPLETE and sid is not None:
            if event.reused_from == self.run_id and sid not in self._replaced:
                return  # the journal holds it already
            fmt, data = encode_output(event.output)
            self._write_step(
                sid,
                tool=event.tool,
                status="completed",
                attempt=event.attempt or 0,
                duration_s=event.duration_s,
                output_format=fmt,
                output=data,
                error=None,
                reused_from=event.reused_from,
                fingerprint=self._fingerprints.get(sid),
            )
        elif kind is EventType.STEP_SKIPPED and sid is not None:
            self._write_step(sid, tool=event.tool, status="skipped", reason=event.reason)
        elif kind is EventType.STEP_RETRY and sid is not None:
            # `status` too: the upsert's INSERT half must satisfy NOT NULL before
            # SQLite and PostgreSQL see the conflict that makes it an UPDATE.
            self._write_step(sid, status="running", attempt=event.attempt or 0)
        elif kind is EventType.ERROR:
            error = {"type": event.error.type if event.error else "Error", "message": event.msg}
            if event.error is not None:
                error["message"] = event.error.message
                if event.error.traceback:
                    error["traceback"] = event.error.traceback
            if sid is not None:
                self._write_step(
                    sid,
                    tool=event.tool,
                    status="failed",
                    error=error,
                    attempt=event.attempt or 0,
                    duration_s=event.duration_s,
                )
            else:
                self._write_run(error=error)
        elif kind is EventType.INTERVENTION_NEEDED and sid is not None:
            self._pending = {
                "intervention_id": event.intervention_id,
                "kind": event.kind or "condition",
                "step_id": sid,
                "expression": event.expression,
                "args": _jsonable(event.args),
                "output": _jsonable(event.output),
            }
            if event.kind == "approval":
                self._write_step(sid, tool=event.tool, status="intervention")
            self._write_run(pending=self._pending)
        elif kind is EventType.FINISH:
            verdict = event.verdict.value if event.verdict else "FAILURE"
            pending = self._pending if verdict == "INTERVENTION_NEEDED" else None
            self._write_run(status=verdict, duration_s=event.duration_s, pending=pending)
            if self.token is not None:
                journal.release(self.run_id, self.token)
            if self.owns_journal:
                journal.close()

    _replaced: frozenset[str] | set[str] = frozenset()

    def abandon(self) -> None:
        """Let go of what a run that will never start holds: the resume lease, our journal.

        For a `PlanRun` closed before its first iteration (`executor.PlanRun.aclose`):
        the journaled run is left as it was (its status put back, a pending
        intervention still to be answered) and another process may resume
        it at once, not only after the lease expires. Does nothing once the
        run began (its `FINISH` does this). Never raises.
        """
        if self.began or self.journal is None:
            return
        journal, self.journal = self.journal, None  # nothing more is written
        try:
            if self.token is not None:
                if self.status_before is not None:  # taking the lease marked it running
                    journal.write_run(self.run_id, self.token, status=self.status_before)
                journal.release(self.run_id, self.token)
        except Exception as exc:  # the lease then expires on its own
            _log.warning("Could not release the lease of run %r: %s", self.run_id, exc)
        finally:
            self.token = None
            if self.owns_journal:
                with contextlib.suppress(Exception):
                    journal.close()

    # -- the step runtime's hooks ----------------------------------------------------

    async def before_tool(
        self, prepared: PreparedStep, kwargs: Mapping[str, Any], host: StepHost
    ) -> StepResult | None:
        """`run_step`'s hook before the tool is called (module docstring).

        Returns:
            `None` to call the tool, or how the step ended without calling it.
        """
        if (
            not (prepared.approval or self.reuse or self.match_fingerprints)
            and self.journal is None
        ):
            return None  # nothing to record, reuse or ask: the common case, kept cheap
        step = prepared.step
        sid = step.id
        fp: str | None = None
        if self.journal is not None or self.match_fingerprints:
            fp = self._fingerprint(prepared, kwargs, host)
        if fp is not None:
            self._fingerprints[sid] = fp
        reused = self.reuse.get(sid)
        if reused is not None and (not self.match_fingerprints or reused[2] == fp):
            return await self._reused(prepared, reused, host)
        if needs_approval(prepared) and sid not in self._approved:
            pending = self.pending_in
            if (
                pending is not None
                and pending.get("step_id") == sid
                and self.decision is not None
                and self.decision.action == "reject"
            ):
                return await self._skip_rejected(prepared, self.decision.reason, host)
            needed = approval_event(host.plan_id, prepared, kwargs)
            decision = await self._ask(needed)
            if decision is None:
                await host.emit(needed)
                return StepResult(StepOutcome.INTERVENTION)
            if decision.action == "reject":
                return await self._skip_rejected(prepared, decision.reason, host)
            if decision.action != "approve":
                raise UsageError("An approval is answered with approve or reject, not an answer.")
        self._write_step(
            sid,
            tool=step.tool,
            status="running",
            fingerprint=fp,
            started_at=time.time(),
            attempt=1,
            error=None,
            start=True,
        )
        return None

    def _fingerprint(self, prepared: PreparedStep, kwargs: Mapping[str, Any], host: Any) -> str:
        """The step's input fingerprint (`_journal_codec.fingerprint`).

        Over its tool and resolved args, plus the plan input values it reads
        anywhere (`run_if`, `intervention_if`, a map step's args as written),
        under the name `$input` (no argument has it), and for a sub-plan step
        its plan as resolved: a rerun with a changed input or sub-plan runs
        the steps that see it again.
        """
        from marimo_engine.engine._journal_codec import fingerprint

        step = prepared.step
        args = kwargs
        plan_inputs = getattr(host, "plan_inputs", None)
        if plan_inputs:
            names = self._input_names.get(step.id)
            if names is None:
                from marimo_engine.plans.references import find_references

                found = find_references(step.model_dump(exclude={"id", "description"}))
                names = tuple(sorted({r.path[0] for r in found if r.step_id == "input" and r.path}))
                self._input_names[step.id] = names
            if names:
                read = {name: plan_inputs.get(name) for name in names}
                args = {**kwargs, "$input": read}
        if step.tool is not None:
            return fingerprint(step.tool, args)
        subplan = prepared.subplan
        source = subplan.plan.model_dump_json(exclude_defaults=True) if subplan else ""
        return fingerprint(f"plan:{step.plan}", {**args, "$plan": source})

    async def intervene(
        self, prepared: PreparedStep, needed: Event, output: Any, host: StepHost
    ) -> StepResult:
        """`run_step`'s hook when an `intervention_if` is true: ask, else stop the run."""
        decision = await self._ask(needed)
        if decision is None:
            await host.emit(needed)
            return StepResult(StepOutcome.INTERVENTION, output=output)
        return await self._apply(prepared, decision, output, host)

    async def _ask(self, needed: Event) -> Decision | None:
        if self.on_intervention is None:
            return None
        info = InterventionInfo(
            step_id=needed.step_id or "",
            expression=needed.expression or "",
            output=needed.output,
            intervention_id=needed.intervention_id,
            kind=needed.kind or "condition",
            args=needed.args,
        )
        decision = self.on_intervention(info)
        if inspect.isawaitable(decision):
            decision = await decision
        if decision is not None and not isinstance(decision, Decision):
            raise UsageError(
                f"on_intervention returned {type(decision).__name__}; return a Decision or None."
            )
        return decision

    async def _apply(
        self, prepared: PreparedStep, decision: Decision, output: Any, host: StepHost
    ) -> StepResult:
        """A condition intervention answered: go on, fail, or take the answer as output."""
        step = prepared.step
        if decision.action == "approve":
            return StepResult(StepOutcome.COMPLETED, output=output)
        if decision.action == "reject":
            error = InterventionRejectedError(
                f"A person rejected the run at step {step.id!r}"
                + (f": {decision.reason}" if decision.reason else ".")
            )
            from marimo_engine.engine.step import error_event

            await host.emit(error_event(host.plan_id, step, error))
            return StepResult(StepOutcome.FAILED, error=error)
        self._replaced = {*self._replaced, step.id}
        await host.emit(
            Event(
                type=EventType.STEP_COMPLETE,
                plan_id=host.plan_id,
                step_id=step.id,
                tool=step.tool,
                msg=f"Step {step.id!r}: its output is a person's answer.",
                output=decision.value,
                key_finding=step.key_finding,
            )
        )
        return StepResult(StepOutcome.COMPLETED, output=decision.value)

    async def _reused(
        self, prepared: PreparedStep, reused: tuple[Any, str, str | None], host: StepHost
    ) -> StepResult:
        step = prepared.step
        output, source, _ = reused
        pending = self.pending_in
        decision = self.decision
        if (
            pending is not None
            and pending.get("step_id") == step.id
            and pending.get("kind") == "condition"
            and decision is not None
            and decision.action != "approve"
        ):
            await host.emit(_reused_event(host.plan_id, step, output, source))
            return await self._apply(prepared, decision, output, host)
        await host.emit(_reused_event(host.plan_id, step, output, source))
        return StepResult(StepOutcome.COMPLETED, output=output)

    async def _skip_rejected(
        self, prepared: PreparedStep, reason: str | None, host: StepHost
    ) -> StepResult:
        step = prepared.step
        why = "a person rejected it" + (f": {reason}" if reason else "")
        await host.emit(
            Event(
                type=EventType.STEP_SKIPPED,
                plan_id=host.plan_id,
                step_id=step.id,
                tool=step.tool,
                msg=skipped_message(step.id, why),
                reason=why,
            )
        )
        return StepResult(StepOutcome.SKIPPED)


def _reused_event(plan_id: str, step: Any, output: Any, source: str) -> Event:
    return Event(
        type=EventType.STEP_COMPLETE,
        plan_id=plan_id,
        step_id=step.id,
        tool=step.tool,
        msg=complete_message(step.id, 0.0, step.key_finding).replace(
            " completed in 0.000 s", f" completed earlier (run {source}); output from the journal"
        ),
        output=output,
        key_finding=step.key_finding,
        attempt=0,
        duration_s=0.0,
        reused_from=source,
    )


def _jsonable(value: Any) -> Any:
    from marimo_engine._json import to_jsonable

    return to_jsonable(value)


# -- resume, rerun, list ---------------------------------------------------------------------


def journaled_plan(record: RunRecord) -> Any:
    """The plan data of a journaled run, with the id the run gave it."""
    import json

    try:
        data = json.loads(record.plan)
    except ValueError:
        return record.plan
    if isinstance(data, dict) and not data.get("id"):
        data["id"] = record.plan_id
    return data


def _load_outputs(journal: Journal, run_id: str) -> dict[str, tuple[Any, str, str | None]]:
    from marimo_engine.engine._journal_codec import decode_output

    found: dict[str, tuple[Any, str, str | None]] = {}
    for sid, (fp, fmt, data) in journal.outputs(run_id).items():
        if fmt is None or data is None:
            continue
        found[sid] = (decode_output(fmt, data), run_id, fp)
    return found


def resume_run(
    run_id: str,
    tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None = None,
    *,
    journal: Journal | str | None = None,
    decision: Decision | None = None,
    intervention_id: str | None = None,
    max_workers: int | None = None,
    on_event: Callable[[Event], Any] | None = None,
    on_intervention: InterventionCallback | None = None,
    plans: Any = None,
    inputs: Mapping[str, Any] | None = None,
    keep_outputs: KeepOutputs = "all",
) -> PlanRun:
    """Go on with a run that stopped for a person, failed, or died (docs/runs.md).

    Completed steps are not run again (their outputs come from the journal);
    every other step runs (a step that was running when the process died
    runs again). It runs with the plan input values and the sub-plans the
    journal holds for the run: the ones it started with.

    Args:
        run_id: The run.
        tools: The tools, as for `execute_plan`.
        journal: The journal (`journal.open_journal`'s argument; `None`:
            `$MARIMO_ENGINE_JOURNAL` or the default file).
        decision: The answer to the pending intervention; required when one
            is pending.
        intervention_id: When given, must name the pending intervention
            (else the answer is stale and refused).
        max_workers: As for `execute_plan`.
        on_event: As for `execute_plan`.
        on_intervention: As for `execute_plan`.
        plans: Where sub-plan steps find plans the journal does not hold
            (a run journaled by an earlier version), as for `execute_plan`;
            the journaled sub-plans come first. `None`: the usual rule.
        inputs: Not needed: the journaled values are used. Given, each must
            equal the journaled value (a resumed run continues the same
            run); a value the journal could not store (`unstored`) is taken
            from here instead of its summary. For a run journaled by an
            earlier version (no values), these are the run's inputs.
        keep_outputs: As for `execute_plan` (docs/engine.md, "Memory").

    Returns:
        A `PlanRun` with the same `run_id`.

    Raises:
        DecisionError: A decision is missing, is not one the pending
            intervention takes, or is given while nothing is pending; its
            `accepted` says what the run takes, for an interface's hint.
        UsageError: No such run, it succeeded already, `intervention_id`
            is stale, or `inputs` differs from the journaled values.
        RunBusyError: Another live process is running or resuming it.
        JournalError: The journal cannot be read.
    """
    from marimo_engine.engine.journal import open_journal

    store = open_journal(journal if journal is not None else None)
    try:
        record, decision = _check_resume(store, run_id, tools, decision, intervention_id)
        run_inputs, summaries = _resume_inputs(record, inputs)
        library = _journaled_plans(record, plans)
        token = store.acquire(run_id)
    except BaseException:
        if store is not journal:  # ours, and nothing will use it
            store.close()
        raise
    try:
        reuse = _load_outputs(store, run_id)
    except BaseException:
        store.release(run_id, token)
        if store is not journal:
            store.close()
        raise
    recorder = RunRecorder(
        store,
        on_intervention=on_intervention,
        resume_token=token,
        reuse=reuse,
        decision=decision,
        pending=record.pending,
    )
    recorder.owns_journal = store is not journal
    recorder.status_before = record.status
    recorder.input_summaries = summaries
    return _plan_run(
        journaled_plan(record),
        tools,
        recorder,
        run_id,
        max_workers,
        on_event,
        library,
        run_inputs,
        keep_outputs,
    )


def journaled_inputs(record: RunRecord) -> tuple[dict[str, Any] | None, list[str]]:
    """The plan input values a run was journaled with, and which of them are summaries.

    Returns:
        `(values, unstored)`: input name to value (after defaults), or
        `None` when the journal holds none (a plan without inputs, or a run
        journaled by an earlier version); the names whose value could not be
        stored and is its JSON summary (`_journal_codec`, format `unstored`).

    Raises:
        JournalError: The journaled values cannot be read.
    """
    if record.inputs is None:
        return None, []
    from marimo_engine.engine._journal_codec import decode_values
    from marimo_engine.engine.journal import JournalError

    try:
        return decode_values(record.inputs)
    except Exception as exc:
        raise JournalError(
            f"The input values of run {record.run_id!r} cannot be read from the journal "
            f"({type(exc).__name__}: {exc}); start the plan again with its inputs."
        ) from exc


def _warn_unstored(record: RunRecord, names: Collection[str]) -> None:
    if names:
        _log.warning(
            "Run %r: the input(s) %s could not be stored in the journal; the run gets their "
            "JSON summary. Pass inputs= with the value(s) to use them.",
            record.run_id,
            ", ".join(repr(n) for n in names),
        )


def _resume_inputs(
    record: RunRecord, given: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, frozenset[str]]:
    """The input values a resumed run runs with: the journaled ones (`resume_run`).

    Returns:
        `(values, summaries)`: input name to value (`None`: none journaled,
        `given` as is), and the names whose value is still the summary of
        one the journal could not store (not in `given`).

    Raises:
        UsageError: `given` names an input whose value differs from the journaled one.
    """
    from marimo_engine.engine._journal_codec import same_value

    values, unstored = journaled_inputs(record)
    if values is None:
        return (dict(given) if given is not None else None), frozenset()
    for name, value in (given or {}).items():
        if name in unstored:
            values[name] = value  # the real value, where the journal has only a summary
        elif name not in values:
            listed = ", ".join(repr(n) for n in values) or "none"
            raise UsageError(
                f"Run {record.run_id!r} has no input {name!r} (its inputs: {listed}); resume "
                "without inputs=: the run's values are in the journal."
            )
        elif not same_value(value, values[name]):
            was = repr(values[name])
            raise UsageError(
                f"Run {record.run_id!r} ran with input {name!r} = {_short(was)}, not "
                f"{_short(repr(value))}: a resume continues the same run; resume without "
                "inputs=, or use rerun to run it with other inputs."
            )
    summaries = frozenset(n for n in unstored if n not in (given or {}))
    _warn_unstored(record, summaries)
    return values, summaries


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _journaled_plans(record: RunRecord, plans: Any) -> Any:
    """The run's `PlanLibrary`: the journaled sub-plans, then `plans` for others.

    Raises:
        JournalError: The journaled sub-plans cannot be read.
    """
    if record.subplans is None:
        return plans
    from marimo_engine.engine.journal import JournalError
    from marimo_engine.plans.subplans import PlanLibrary, as_library

    try:
        return PlanLibrary.from_json(record.subplans, as_library(plans).given)
    except UsageError:
        raise
    except Exception as exc:
        raise JournalError(
            f"The sub-plans of run {record.run_id!r} cannot be read from the journal "
            f"({type(exc).__name__}: {exc}); pass plans= to rerun it."
        ) from exc


def _check_resume(
    store: Journal,
    run_id: str,
    tools: Any,
    decision: Decision | None,
    intervention_id: str | None,
) -> tuple[RunRecord, Decision | None]:
    """The run's record and the decision to resume it with (an answer validated).

    Raises:
        UsageError, DecisionError: As `resume_run` says.
    """
    record = store.get_run(run_id, steps=False)
    if record is None:
        raise UsageError(f"No run {run_id!r} in the journal {store.location}.")
    if record.status == "SUCCESS":
        raise UsageError(
            f"Run {run_id!r} finished with SUCCESS; nothing to resume (use rerun to run it again)."
        )
    pending = record.pending
    if pending is None and (decision is not None or intervention_id is not None):
        raise DecisionError(
            f"Run {run_id!r} is not waiting for a person; resume it without a decision.",
            run_id=run_id,
            accepted=(),
        )
    if pending is not None:
        step = pending.get("step_id")
        # An approval is answered with approve or reject; a condition also takes an answer.
        accepted = ("approve", "reject") if pending.get("kind") == "approval" else _DECISIONS
        if intervention_id is not None and intervention_id != pending.get("intervention_id"):
            raise UsageError(
                f"Intervention {intervention_id!r} is stale: run {run_id!r} waits for "
                f"{pending.get('intervention_id')!r} (step {step!r})."
            )
        if decision is None:
            raise DecisionError(
                f"Run {run_id!r} waits for a person at step {step!r} (intervention "
                f"{pending.get('intervention_id')}) and needs a decision: {_either(accepted)}.",
                run_id=run_id,
                accepted=accepted,
            )
        if decision.action not in accepted:
            raise DecisionError(
                f"Step {step!r} waits for an approval, which takes approve or reject, "
                f"not {decision.action}.",
                run_id=run_id,
                accepted=accepted,
            )
        if decision.action == "answer":
            decision = Decision.answer(
                check_answer(record, str(pending.get("step_id")), decision.value, tools)
            )
    return record, decision


def check_answer(record: RunRecord, step_id: str, value: Any, tools: Any) -> Any:
    """Validate a person's answer against the output type the step's tool declares.

    The tool's return annotation is the schema the step declares (the same
    one `tools --json` shows as its `returns`); without one, any JSON is
    taken.

    Returns:
        The value as pydantic validated it (a model's fields coerced as in a
        tool call).

    Raises:
        UsageError: The answer does not fit; the message says how.
    """
    import typing

    from pydantic import TypeAdapter, ValidationError

    from marimo_engine.tools.registry import as_registry

    plan = journaled_plan(record)
    steps = plan.get("steps", []) if isinstance(plan, dict) else []
    tool = next(
        (s.get("tool") for s in steps if isinstance(s, dict) and s.get("id") == step_id), None
    )
    spec = as_registry(tools).get(tool) if tool else None
    if spec is None:
        return value
    try:
        annotation = typing.get_type_hints(spec.function).get("return")
    except Exception:  # an annotation that does not resolve: nothing to check against
        return value
    if annotation is None or annotation is typing.Any:
        return value
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the value"
        raise UsageError(
            f"The answer does not fit the output of step {step_id!r} (tool {tool!r}): "
            f"{where}: {first.get('msg')}."
        ) from exc
    except Exception:  # a type pydantic cannot check
        return value


def _plan_run(
    plan: Any,
    tools: Any,
    recorder: RunRecorder,
    run_id: str,
    max_workers: int | None,
    on_event: Callable[[Event], Any] | None,
    plans: Any = None,
    inputs: Mapping[str, Any] | None = None,
    keep_outputs: KeepOutputs = "all",
) -> PlanRun:
    from marimo_engine.engine._run import _Run
    from marimo_engine.engine.executor import DEFAULT_EVENT_BUFFER, PlanRun

    run = _Run(
        plan,
        tools,
        max_workers=max_workers,
        emit=None,
        on_event=on_event,
        recorder=recorder,
        run_id=run_id,
        plans=plans,
        inputs=inputs,
        keep_outputs=keep_outputs,
    )
    return PlanRun(run, DEFAULT_EVENT_BUFFER)


def rerun(
    run_id: str,
    tools: ToolRegistry | Mapping[str, Callable[..., Any]] | None = None,
    *,
    plan: Any = None,
    changes: Mapping[str, Any] | None = None,
    journal: Journal | str | None = None,
    new_run_id_: str | None = None,
    max_workers: int | None = None,
    on_event: Callable[[Event], Any] | None = None,
    on_intervention: InterventionCallback | None = None,
    plans: Any = None,
    inputs: Mapping[str, Any] | None = None,
    keep_outputs: KeepOutputs = "all",
) -> PlanRun:
    """Start a new run linked to `run_id` that runs only what changed (marimo's reactive rule).

    A step runs again when its input fingerprint (tool name, resolved
    arguments, the plan input values it reads, a sub-plan step's plan)
    differs from the old run's, or the old run has no output for it; its
    dependents then see new inputs and run again too. Every other step's
    output is taken from the old run. The new run has the old run's plan
    input values and sub-plans unless `inputs`/`plans` change them.

    Args:
        run_id: The old run.
        tools: The tools.
        plan: A changed plan (any form `execute_plan` takes), or `None` for
            the old run's plan.
        changes: `"STEP.args.NAME"` to a new value, applied to the plan.
        journal: The journal, as for `resume_run`.
        new_run_id_: The new run's id (default: a fresh one).
        max_workers: As for `execute_plan`.
        on_event: As for `execute_plan`.
        on_intervention: As for `execute_plan`.
        plans: Where sub-plan steps find their plans, as for `execute_plan`:
            given, it replaces the journaled sub-plans (a changed sub-plan
            runs again); `None`: the old run's, then the usual rule.
        inputs: Input name to a new value, over the old run's values (those
            the plan still declares); the steps reading a changed one run
            again. `None`: the old run's values.
        keep_outputs: As for `execute_plan` (docs/engine.md, "Memory").

    Returns:
        A `PlanRun` of the new run (its journal record names `run_id` as parent).

    Raises:
        UsageError: No such run, or a change names no step or argument.
        JournalError: The old run's values or sub-plans cannot be read.
    """
    import json

    from marimo_engine.engine.journal import open_journal

    store = open_journal(journal)
    try:
        record = store.get_run(run_id, steps=False)
        if record is None:
            raise UsageError(f"No run {run_id!r} in the journal {store.location}.")
        source: Any = journaled_plan(record) if plan is None else plan
        if changes:
            if isinstance(source, str):
                source = json.loads(source)
            elif not isinstance(source, Mapping):
                source = json.loads(source.model_dump_json())
            source = apply_changes(dict(source), changes)
        old_inputs, unstored = journaled_inputs(record)
        run_inputs: dict[str, Any] | None = dict(inputs) if inputs is not None else None
        summaries: frozenset[str] = frozenset()
        if old_inputs is not None:
            declared = _declared_inputs(source)
            kept = {k: v for k, v in old_inputs.items() if declared is None or k in declared}
            run_inputs = {**kept, **(inputs or {})}
            summaries = frozenset(n for n in unstored if n in kept and n not in (inputs or {}))
            _warn_unstored(record, summaries)
        library = plans if plans is not None else _journaled_plans(record, None)
        reuse = _load_outputs(store, run_id)
    except BaseException:
        if store is not journal:  # ours, and nothing will use it
            store.close()
        raise
    recorder = RunRecorder(
        store,
        on_intervention=on_intervention,
        reuse=reuse,
        match_fingerprints=True,
        parent_run_id=run_id,
    )
    recorder.owns_journal = store is not journal
    recorder.input_summaries = summaries
    return _plan_run(
        source,
        tools,
        recorder,
        new_run_id_ or new_run_id(),
        max_workers,
        on_event,
        library,
        run_inputs,
        keep_outputs,
    )


def _declared_inputs(source: Any) -> set[str] | None:
    """The input names a plan (any form `execute_plan` takes) declares; `None` if unreadable."""
    import json

    data: Any = source
    if isinstance(source, str | bytes):
        try:
            data = json.loads(source)
        except ValueError:
            return None
    declared = data.get("inputs") if isinstance(data, Mapping) else getattr(data, "inputs", None)
    if declared is None:
        return set()
    return set(declared) if isinstance(declared, Mapping) else None


def apply_changes(plan: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of plan data with `STEP.args.NAME` set to each new value.

    Raises:
        UsageError: A key is not of the form `STEP.args.NAME` or names no step.
    """
    import copy

    plan = copy.deepcopy(plan)
    steps = {s.get("id"): s for s in plan.get("steps", []) if isinstance(s, dict)}
    for key, value in changes.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or parts[1] != "args" or not parts[2]:
            raise UsageError(
                f"Change {key!r} names no argument: write STEP.args.NAME, e.g. fetch.args.city."
            )
        step = steps.get(parts[0])
        if step is None:
            raise UsageError(f"Change {key!r}: the plan has no step {parts[0]!r}.")
        step.setdefault("args", {})[parts[2]] = value
    return plan


def list_runs(journal: Journal | str | None = None, *, limit: int = 50) -> list[RunRecord]:
    """The newest runs in the journal, newest first.

    Args:
        journal: As for `resume_run`.
        limit: Most runs returned.

    Returns:
        `journal.RunRecord`s without their steps (`Journal.get_run` has them).
    """
    from marimo_engine.engine.journal import Journal, open_journal

    if isinstance(journal, Journal):  # the caller's: it stays open
        return journal.list_runs(limit)
    with open_journal(journal) as opened:  # ours: closed once read
        return opened.list_runs(limit)
