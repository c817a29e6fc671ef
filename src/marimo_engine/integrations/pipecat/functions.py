"""`PlanFunctions`: the functions a Pipecat LLM calls to run plans and answer their questions.

Two functions (docs/pipecat.md):

- `run_plan(plan_name | plan, changes?)`: validates the plan (problems go
  back to the LLM as the result, so it can fix the plan), runs it with the
  engine, speaks progress while it runs, and returns the verdict, a short
  summary and the key findings.
- `answer_intervention(decision, intervention_id?, reason?, value?)`: the
  person's answer to the question a step asked; the run goes on.

A run is cut into **segments**, one per function call. A call lasts until
the run finishes or a step needs a person; then the call returns
`status: waiting_for_person` with the question, which is spoken once the
LLM's context holds that result. The person answers in their own words; the
LLM turns that into `answer_intervention`, whose call resumes the paused run
(the engine's `on_intervention` callback was waiting for it) and lasts until
the next stop. So every call is an ordinary synchronous Pipecat function
call (`cancel_on_interruption=True`):

- the person interrupting the bot while a call runs cancels the call, and
  with it the run (Pipecat cancels the handler; the handler cancels the run,
  which ends with its one `FINISH`); while the run waits for the person,
  their speech is the answer, not an interruption of anything;
- the call ending (`EndFrame`, `CancelFrame`) cancels any run left, through
  the handlers' `_pipecat_cleanup`, which the LLM service awaits at teardown;
- a question nobody answers within `answer_timeout_s` ends the run as
  `INTERVENTION_NEEDED`; with a `journal`, a later answer resumes it there
  (`durable.resume_run`), else the LLM is told to run the plan again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import EventType, ExecutionResult, Verdict
from marimo_engine.errors import EngineError, UsageError
from marimo_engine.integrations.pipecat import _results, _schemas
from marimo_engine.integrations.pipecat._results import DECISIONS
from marimo_engine.integrations.pipecat.frames import (
    PlanEventFrame,
    PlanProgressFrame,
    PlanQuestionFrame,
)
from marimo_engine.integrations.speech import (
    DEFAULT_SPEECH_INTERVAL_S,
    PlanWords,
    SpeechPacer,
)

if TYPE_CHECKING:
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.services.llm_service import FunctionCallParams, LLMService

    from marimo_engine.engine.durable import Decision
    from marimo_engine.engine.events import Event, InterventionInfo
    from marimo_engine.engine.executor import PlanRun
    from marimo_engine.engine.journal import Journal
    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["DECISIONS", "DEFAULT_ANSWER_TIMEOUT_S", "PlanFunctions"]

_log = logging.getLogger("marimo_engine.integrations.pipecat")

DEFAULT_ANSWER_TIMEOUT_S = 120.0
"""Seconds a question waits for the person before the run ends as `INTERVENTION_NEEDED`."""


@dataclass
class _Question:
    info: InterventionInfo
    text: str
    answer: asyncio.Future[Decision | None]
    spoken: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Segment:
    """What ends a function call: a question for the person, or the finished run."""

    question: _Question | None = None
    result: ExecutionResult | None = None


@dataclass
class _Run:
    """One plan run driven in a background task, across function calls."""

    plan: Plan
    words: PlanWords
    pacer: SpeechPacer
    segments: asyncio.Queue[_Segment] = field(default_factory=asyncio.Queue)
    ask_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    run_id: str | None = None
    question: _Question | None = None
    unanswered: _Question | None = None  # the question that timed out
    result: ExecutionResult | None = None
    flush_task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


class _Handler:
    """A function handler Pipecat calls; carries the teardown hook `_pipecat_cleanup`."""

    def __init__(self, function: Callable[[FunctionCallParams], Any], cleanup: Any) -> None:
        self._function = function
        self._pipecat_cleanup = cleanup

    async def __call__(self, params: FunctionCallParams) -> None:
        await self._function(params)


class PlanFunctions:
    """`run_plan` and `answer_intervention` for a Pipecat LLM service (module docstring).

    One instance serves one conversation (one bot session): it runs one plan
    at a time.

        functions = PlanFunctions(example_registry(), plans={"hull-check": plan})
        context = LLMContext(messages, tools=functions.tools_schema())  # handlers included
        # or: functions.register(llm); LLMContext(messages, tools=functions.tools_schema())

    Args:
        tools: The tools plans may call: a `ToolRegistry` or a mapping of
            names to callables.
        plans: Plans the LLM may run by name (`plan_name`), name to plan (a
            dict, JSON text or `Plan`). With none, the LLM writes the plan.
        speech_interval_s: Least seconds between two spoken progress
            sentences (`speech.SpeechPacer`); `0` speaks every sentence.
        answer_timeout_s: Seconds a question waits for the person's answer,
            from when it was spoken, before the run ends as
            `INTERVENTION_NEEDED`.
        journal: Record runs (`execute_plan`'s `journal`: a path, a URL,
            `True`): a run whose question timed out can then be answered
            later, and resumed (`marimo-engine resume` works too).
        max_workers: As for `execute_plan`.
        on_event: Called with every engine event (plain or coroutine
            function); also pushed as `PlanEventFrame`s. Errors it raises are
            logged, never raised into the run.
        clock: Seconds on a monotonic clock, for pacing speech; a test may
            pass its own (the timer still waits real seconds until the
            sentence is due on it).
        run_function_name: The name the LLM calls to run a plan.
        answer_function_name: The name the LLM calls to answer a question.

    Raises:
        UsageError: A bad argument (negative seconds, a plan that is not a
            plan source).
    """

    def __init__(
        self,
        tools: ToolRegistry | Mapping[str, Callable[..., Any]],
        *,
        plans: Mapping[str, Any] | None = None,
        speech_interval_s: float = DEFAULT_SPEECH_INTERVAL_S,
        answer_timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S,
        journal: Journal | str | bool | None = None,
        max_workers: int | None = None,
        on_event: Callable[[Event], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        run_function_name: str = "run_plan",
        answer_function_name: str = "answer_intervention",
    ) -> None:
        from marimo_engine.tools.registry import as_registry

        if not speech_interval_s >= 0:
            raise UsageError(f"speech_interval_s {speech_interval_s!r} must be 0 or more seconds.")
        if not answer_timeout_s > 0:
            raise UsageError(f"answer_timeout_s {answer_timeout_s!r} must be more than 0 seconds.")
        self.registry = as_registry(tools)
        self.plans = dict(plans or {})
        self.speech_interval_s = float(speech_interval_s)
        self.answer_timeout_s = float(answer_timeout_s)
        self.journal = journal
        self.max_workers = max_workers
        self.on_event = on_event
        self.clock = clock
        self.run_function_name = run_function_name
        self.answer_function_name = answer_function_name
        self._llm: LLMService | None = None
        self._run: _Run | None = None
        self.run_handler = _Handler(self._run_plan, self.aclose)
        self.answer_handler = _Handler(self._answer_intervention, self.aclose)

    # -- what the LLM sees -------------------------------------------------------------

    def function_schemas(self) -> list[FunctionSchema]:
        """The two `FunctionSchema`s, each carrying its handler (Pipecat registers it itself).

        Returns:
            `[run_plan, answer_intervention]` (named as configured); their
            descriptions list the known plans and the tools a plan may call.
        """
        return _schemas.function_schemas(self)

    def tools_schema(self) -> ToolsSchema:
        """A `ToolsSchema` of `function_schemas()`, for `LLMContext(tools=...)`."""
        from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema

        return ToolsSchema(standard_tools=self.function_schemas())

    def register(self, llm: LLMService) -> None:
        """Register both handlers on `llm` (`llm.register_function`), cancelled on interruption."""
        llm.register_function(self.run_function_name, self.run_handler)
        llm.register_function(self.answer_function_name, self.answer_handler)

    # -- the handlers -------------------------------------------------------------------

    async def _run_plan(self, params: FunctionCallParams) -> None:
        self._llm = params.llm
        active = self._run
        if active is not None and not active.done:
            waiting = " and waits for the person's answer" if active.question else ""
            await params.result_callback(
                _results.failure(
                    f"A plan is already running{waiting}; one plan runs at a time. Answer it "
                    f"with {self.answer_function_name} (decision 'cancel' stops it)."
                )
            )
            return
        try:
            plan = self._plan(params.arguments)
        except _Invalid as invalid:
            await params.result_callback(_results.invalid_plan(invalid.problems))
            return
        except EngineError as exc:
            await params.result_callback(_results.failure(str(exc)))
            return
        self._start(plan, lambda run: self._execute(plan, run))
        await self._deliver(params)

    async def _answer_intervention(self, params: FunctionCallParams) -> None:
        self._llm = params.llm
        try:
            decision = _results.decision_of(params.arguments)
        except UsageError as exc:
            await params.result_callback(_results.failure(str(exc)))
            return
        active = self._run
        wanted = params.arguments.get("intervention_id")
        question = active.question if active is not None else None
        if active is None or (question is None and active.unanswered is None):
            await params.result_callback(
                _results.failure("No plan is waiting for an answer; nothing to answer.")
            )
            return
        if question is None:
            await self._answer_late(params, active, decision, wanted)
            return
        info = question.info
        if wanted and wanted != info.intervention_id:
            await params.result_callback(
                _results.failure(
                    f"intervention_id {wanted!r} is not the open question; the open one is "
                    f"{info.intervention_id!r}: {question.text}"
                )
            )
            return
        if decision is None:  # cancel
            await self._cancel(active)
        elif info.kind == "approval" and decision.action == "answer":
            await params.result_callback(
                _results.failure("This question asks for approval: decide approve or reject.")
            )
            return
        elif not question.answer.done():
            question.answer.set_result(decision)
        await self._deliver(params)

    async def _answer_late(
        self, params: FunctionCallParams, active: _Run, decision: Decision | None, wanted: Any
    ) -> None:
        """An answer after the question timed out: resume from the journal, or explain."""
        info = active.unanswered.info if active.unanswered else None
        if decision is None or not self.journal or info is None or active.run_id is None:
            result = self._finished(active) if active.result else {}
            again = "" if decision is None else " Run the plan again to continue."
            result.update(
                status="error",
                message=(
                    f"The question timed out after {self.answer_timeout_s:g} s and the run "
                    f"already ended as needing a person.{again}"
                ),
            )
            await params.result_callback(result)
            return
        from marimo_engine.engine.durable import resume_run

        run_id, plan = active.run_id, active.plan
        try:
            resumed = resume_run(
                run_id,
                self.registry,
                journal=self.journal if not isinstance(self.journal, bool) else None,
                decision=decision,
                intervention_id=wanted or info.intervention_id,
                max_workers=self.max_workers,
                on_event=self._on_event,
                on_intervention=self._ask,
            )
        except EngineError as exc:
            await params.result_callback(_results.failure(str(exc)))
            return
        self._start(plan, lambda run: _drain(resumed, run), resumed=True)
        await self._deliver(params)

    # -- one run --------------------------------------------------------------------------

    def _plan(self, arguments: Mapping[str, Any]) -> Plan:
        """The plan a `run_plan` call names, validated; raises `_Invalid` with the problems."""
        from marimo_engine.engine.durable import apply_changes
        from marimo_engine.plans.schema import load_plan
        from marimo_engine.plans.validation import validate_plan

        name, given = arguments.get("plan_name"), arguments.get("plan")
        if (name is None) == (given is None):
            known = ", ".join(repr(n) for n in sorted(self.plans)) or "none"
            raise UsageError(f"Give either plan_name (known plans: {known}) or plan, not both.")
        if name is not None:
            if name not in self.plans:
                known = ", ".join(repr(n) for n in sorted(self.plans)) or "none"
                raise UsageError(f"There is no plan named {name!r}. Known plans: {known}.")
            given = self.plans[name]
        data = given
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                message = f"The plan is not valid JSON ({exc}); pass it as an object."
                raise UsageError(message) from exc
        elif hasattr(data, "model_dump"):
            data = data.model_dump(mode="json", exclude_none=True)
        changes = arguments.get("changes") or {}
        if not isinstance(changes, Mapping) or not isinstance(data, Mapping):
            raise UsageError('changes must be an object: {"STEP.args.NAME": value}.')
        if changes:
            data = apply_changes(dict(data), changes)
        problems = validate_plan(data, self.registry)
        if problems:
            raise _Invalid(problems)
        return load_plan(data)

    def _start(self, plan: Plan, drive: Callable[[_Run], Any], *, resumed: bool = False) -> None:
        words = PlanWords(plan, resumed=resumed)
        run = _Run(plan=plan, words=words, pacer=SpeechPacer(self.speech_interval_s))
        self._run = run

        async def main() -> None:
            try:
                await drive(run)
            finally:
                run.segments.put_nowait(_Segment(result=run.result))

        run.task = asyncio.create_task(main(), name=f"marimo-engine voice run {plan.id}")

    async def _execute(self, plan: Plan, run: _Run) -> None:
        from marimo_engine.engine.executor import execute_plan

        plan_run = execute_plan(
            plan,
            self.registry,
            max_workers=self.max_workers,
            on_event=self._on_event,
            on_intervention=self._ask,
            journal=self.journal,
        )
        await _drain(plan_run, run)

    async def _deliver(self, params: FunctionCallParams) -> None:
        """Wait for the run's next stop and hand it to the LLM; cancelled: cancel the run."""
        from pipecat.frames.frames import FunctionCallResultProperties

        run = self._run
        assert run is not None
        try:
            segment = await run.segments.get()
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(run))
            raise
        question = segment.question
        if question is None:
            await params.result_callback(self._finished(run))
            return

        async def speak_question() -> None:
            info = question.info
            await self._push(
                PlanQuestionFrame(
                    text=question.text,
                    run_id=run.run_id,
                    intervention_id=info.intervention_id,
                    step_id=info.step_id,
                    kind=info.kind,
                )
            )
            question.spoken.set()

        # The question is spoken once the LLM's context holds this result, so
        # the person's answer never reaches the LLM before the question does.
        await params.result_callback(
            _results.waiting(run.words, run.run_id, question.info, question.text),
            properties=FunctionCallResultProperties(
                run_llm=False, on_context_updated=speak_question
            ),
        )

    async def _ask(self, info: InterventionInfo) -> Decision | None:
        """The engine's `on_intervention`: ask the person, wait for the answer or the timeout."""
        run = self._run
        assert run is not None
        async with run.ask_lock:
            await self._flush(run)
            loop = asyncio.get_running_loop()
            question = _Question(info, run.words.question(info), loop.create_future())
            run.question = question
            run.segments.put_nowait(_Segment(question=question))
            try:
                return await self._answer_of(question)
            except TimeoutError:
                run.unanswered = question
                label = run.words.label(info.step_id)
                await self._push(
                    PlanProgressFrame(
                        text=f"No answer came, so {run.words.title} stopped at {label}.",
                        run_id=run.run_id,
                    )
                )
                return None
            finally:
                run.question = None

    async def _answer_of(self, question: _Question) -> Decision | None:
        """The person's answer; `answer_timeout_s` counts from when the question was spoken.

        Raises:
            TimeoutError: No answer within `answer_timeout_s` of the question
                being spoken, or the question was not spoken within that time
                either (a pipeline without an assistant context aggregator).
        """
        answer = question.answer
        spoken = asyncio.ensure_future(question.spoken.wait())
        try:
            await asyncio.wait(
                {spoken, answer},
                timeout=self.answer_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            spoken.cancel()
        if answer.done():
            return answer.result()
        if not question.spoken.is_set():
            raise TimeoutError
        return await asyncio.wait_for(answer, self.answer_timeout_s)

    async def _cancel(self, run: _Run) -> None:
        """Cancel the run (its `FINISH` is emitted) and wait until it ended."""
        task = run.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def aclose(self) -> None:
        """Cancel the run in progress, if any (the pipeline's teardown calls this)."""
        if self._run is not None:
            await self._cancel(self._run)

    # -- events, speech, frames ---------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        run = self._run
        if run is None:
            return
        run.run_id = event.run_id or run.run_id
        await self._push(PlanEventFrame(event=event))
        if self.on_event is not None:
            try:
                outcome = self.on_event(event)
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception:
                _log.exception("on_event raised on %s; the run goes on", event.type.value)
        if event.type is EventType.FINISH:
            run.pacer.drop()  # the LLM speaks the result next
            if run.flush_task is not None:
                run.flush_task.cancel()
            return
        utterance = run.words.utterance(event)
        if utterance is None:
            return
        sentence = run.pacer.offer(utterance, self.clock())
        if sentence is not None:
            await self._push(PlanProgressFrame(text=sentence, run_id=run.run_id))
        elif run.flush_task is None or run.flush_task.done():
            run.flush_task = asyncio.create_task(self._flush_later(run))

    async def _flush_later(self, run: _Run) -> None:
        due = run.pacer.due_at
        if due is not None:
            await asyncio.sleep(max(0.0, due - self.clock()))
        await self._flush(run)

    async def _flush(self, run: _Run) -> None:
        sentence = run.pacer.flush(self.clock())
        if sentence is not None:
            await self._push(PlanProgressFrame(text=sentence, run_id=run.run_id))

    async def _push(self, frame: Any) -> None:
        llm = self._llm
        if llm is None:
            return
        try:
            await llm.push_frame(frame)
        except Exception:
            _log.exception("Could not push %s into the pipeline", type(frame).__name__)

    def _finished(self, run: _Run) -> dict[str, Any]:
        result = run.result
        if result is None:
            return _results.failure("The run ended without a result.")
        note = None
        if result.verdict is Verdict.INTERVENTION_NEEDED and run.unanswered is not None:
            note = f"No answer came within {self.answer_timeout_s:g} s."
            if self.journal:
                note += f" An answer now resumes run {result.run_id}."
        return _results.finished(run.words, result, note=note)


class _Invalid(Exception):
    """A plan with problems (what `run_plan` returns instead of running it)."""

    def __init__(self, problems: list[Any]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


async def _drain(plan_run: PlanRun, run: _Run) -> None:
    """Iterate a plan run to its end (events go to `on_event`), keeping its result on `run`."""
    try:
        async with plan_run:
            async for _ in plan_run:
                pass
    finally:
        with contextlib.suppress(EngineError):
            run.result = plan_run.result
