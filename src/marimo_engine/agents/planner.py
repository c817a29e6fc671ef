"""The planner agent: goal -> plan -> validate (repair) -> run -> replan.

The model is a pydantic-ai agent whose structured output is the plan (an
output tool, `submit_plan`, whose schema is derived from `Plan`). The tool
schemas of the registry are in the instructions. A proposed plan is
checked with `validate_plan`; its problems go back to the model as JSON
(pydantic-ai's retry, the output tool's answer) at most `max_repairs`
times. A valid plan runs on the engine; on `FAILURE` the model gets the
error, the outputs so far (cut to a size budget) and the skipped steps,
and may propose a new plan, at most `max_replans` times. On
`INTERVENTION_NEEDED` the decision goes to the caller's callback; without
one, the agent returns.

The agent's events stream as an async iterator (`PlannerAgent.events`);
the last one is always `DONE`, carrying the `AgentResult`. Every model
request and response summary, plan, validation result, engine event and
decision is written to the audit log when one is given.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.agents import _prompts
from marimo_engine.agents._proposing import MAX_AUDIT_TEXT, Proposer
from marimo_engine.agents._run import execute_to_result
from marimo_engine.agents._state import RunState, StopRun, drain
from marimo_engine.agents.audit import AuditLog
from marimo_engine.agents.events import (
    AgentEvent,
    AgentEventType,
    AgentResult,
    InterventionDecision,
    InterventionRequest,
    PlanAttempt,
)
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import ModelConfigError, UsageError
from marimo_engine.llm.models import DEFAULT_TIMEOUT_S
from marimo_engine.llm.usage import ModelLimits, UsageTracker

if TYPE_CHECKING:
    import os

    from pydantic_ai.models import Model

    from marimo_engine.engine.events import ExecutionResult
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["InterventionCallback", "PlannerAgent", "PlannerOptions"]

InterventionCallback = Callable[
    [InterventionRequest], "InterventionDecision | Awaitable[InterventionDecision | None] | None"
]
"""Called when a run stops for a person; returns a decision (`None` means stop)."""


@dataclass(frozen=True)
class PlannerOptions:
    """How far the planner agent may go.

    Attributes:
        max_repairs: Times an invalid plan is sent back with its problems
            before the agent gives up (per proposal round), 0 to 10.
        max_replans: Times a failed (or intervened) run may be followed by a
            new plan, 0 to 10.
        limits: Model requests, tokens and US dollars allowed for the whole
            agent run (all proposals, repairs and replans).
        max_context_chars: Size budget, in characters of JSON, of the context
            given with the goal and of the outputs reported after a failure.
        stream: Ask the model for streamed responses (server-sent events);
            `MODEL_PROGRESS` events then say how much of the answer came.
        max_workers: Passed to the engine: steps run at the same time
            (`None`: the engine's default).
        timeout_s: Seconds one model request may take, from sending it to
            the last byte of the answer (a whole-request deadline, not a
            per-read one); past it the request fails as a provider error and
            the next fallback model is tried. Applies to every model, given
            as a string or as a pydantic-ai `Model`. `None` sets no deadline.
    """

    max_repairs: int = 2
    max_replans: int = 1
    limits: ModelLimits = field(default_factory=ModelLimits)
    max_context_chars: int = 8_000
    stream: bool = False
    max_workers: int | None = None
    timeout_s: float | None = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        for name in ("max_repairs", "max_replans"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 10:
                raise UsageError(f"PlannerOptions.{name} is {value!r}; use an integer 0 to 10.")
        if self.timeout_s is not None and not (
            isinstance(self.timeout_s, int | float) and self.timeout_s > 0
        ):
            raise UsageError(
                f"PlannerOptions.timeout_s is {self.timeout_s!r}; use a positive number of "
                "seconds or None."
            )
        if self.max_context_chars < 200:
            raise UsageError(
                f"PlannerOptions.max_context_chars is {self.max_context_chars!r}; use 200 or more."
            )


class PlannerAgent:
    """Turns a goal in words into a plan, runs it, and replans on failure.

    Args:
        model: A model string (`"openai:gpt-4o-mini"`, see `marimo_engine.llm`),
            `"replay:AUDIT.jsonl"` to answer from the model responses
            recorded in an audit log (`agents.replay`), or a pydantic-ai
            `Model` (tests pass `FunctionModel`).
        tools: The tools plans may use: a `ToolRegistry` or a mapping of
            names to callables. Their JSON schemas are what the model sees.
        fallbacks: Models tried in order when the one before fails with a
            provider error or a rate limit.
        options: Repairs, replans, limits and budgets.
        on_intervention: Called when a run stops for a person (sync or async);
            `None` makes the agent return with `INTERVENTION_NEEDED`.
        audit_path: The JSON lines audit log to append to; `None` for none.
        env: Environment for keys and endpoints; `None` means `os.environ`.
            Secret values in it (and in `os.environ`) are redacted from
            error messages and the audit log.

    Raises:
        ModelConfigError: A model string is malformed, a provider has no key
            or endpoint, a replayed audit log has no recorded responses, or
            a budget is set for a model that cannot be priced.
        UsageError: `tools` is not a registry or a mapping of callables.
    """

    def __init__(
        self,
        model: str | Model,
        tools: ToolRegistry | Mapping[str, Callable[..., Any]],
        *,
        fallbacks: tuple[str | Model, ...] | list[str | Model] = (),
        options: PlannerOptions | None = None,
        on_intervention: InterventionCallback | None = None,
        audit_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from marimo_engine.agents.replay import is_replay_model, replay_model
        from marimo_engine.llm.models import build_model, describe_model, is_priced
        from marimo_engine.llm.redaction import secret_values
        from marimo_engine.tools.registry import as_registry

        self.options = options or PlannerOptions()
        self.tools = as_registry(tools)
        chain = [replay_model(m) if is_replay_model(m) else m for m in (model, *fallbacks)]
        self.model = build_model(chain[0], chain[1:], env=env, timeout_s=self.options.timeout_s)
        self.model_label = describe_model(self.model)
        self.secrets = frozenset() if env is None else secret_values(env)
        if self.options.limits.budget_usd is not None and not is_priced(self.model):
            raise ModelConfigError(
                f"A budget of ${self.options.limits.budget_usd:g} is set but model "
                f"{self.model_label!r} has no known price; drop the budget or use a priced model."
            )
        self.on_intervention = on_intervention
        self.audit_path = audit_path
        self._proposer = Proposer(
            self._build_agent(), self.tools, self.options, self.model_label, self.secrets
        )

    def _build_agent(self) -> Any:
        from pydantic_ai import Agent, RunContext, StructuredDict, ToolOutput
        from pydantic_ai.settings import ModelSettings

        output = ToolOutput(
            StructuredDict(_prompts.plan_output_schema()),
            name=_prompts.OUTPUT_TOOL_NAME,
            description="Submit the plan (plan language version 2).",
            max_retries=self.options.max_repairs,
        )
        agent: Agent[Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any]] = Agent(
            self.model,
            output_type=output,
            instructions=_prompts.instructions(self.tools.schemas()),
            deps_type=object,  # the run's validate function, see _propose
            name="marimo-engine-planner",
            # The deadline for models passed in as instances too (built ones carry it already).
            model_settings=None
            if self.options.timeout_s is None
            else ModelSettings(request_timeout=self.options.timeout_s),
        )

        @agent.output_validator
        def _validate(ctx: RunContext[Any], data: dict[str, Any]) -> dict[str, Any]:
            return ctx.deps(data)

        return agent

    async def run(self, goal: str, *, context: object | None = None) -> AgentResult:
        """Run the agent to the end and return its result.

        Args:
            goal: The goal in words.
            context: Anything useful to plan with, such as `describe()`
                outputs of dataframes (JSON, cut to `max_context_chars`).

        Returns:
            The `AgentResult` carried by the `DONE` event.
        """
        result: AgentResult | None = None
        async with aclosing(self.events(goal, context=context)) as stream:
            async for event in stream:
                if event.type is AgentEventType.DONE:
                    result = event.result
        assert result is not None  # DONE is always last
        return result

    def run_sync(self, goal: str, *, context: object | None = None) -> AgentResult:
        """Blocking form of `run` (starts an event loop; not for use inside one).

        Args:
            goal: As for `run`.
            context: As for `run`.

        Returns:
            The `AgentResult`.
        """
        import anyio

        return anyio.run(lambda: self.run(goal, context=context))

    async def events(
        self, goal: str, *, context: object | None = None
    ) -> AsyncIterator[AgentEvent]:
        """Run the agent, streaming its events; the last one is `DONE` with the result.

        Args:
            goal: The goal in words.
            context: As for `run`.

        Yields:
            `AgentEvent`s: planning, proposals, rejections, acceptance, the
            engine's events, replans, interventions, and `DONE`.

        Raises:
            UsageError: `goal` is empty, or the audit log cannot be opened.
        """
        if not goal or not goal.strip():
            raise UsageError("The goal is empty; say in words what the plan should achieve.")
        import anyio
        from pydantic_ai.usage import RunUsage

        run_id = f"agent-{uuid.uuid4().hex[:8]}"
        audit = (
            None
            if self.audit_path is None
            else AuditLog(self.audit_path, run_id=run_id, secrets=self.secrets)
        )
        state = RunState(
            goal=goal,
            run_id=run_id,
            started=time.monotonic(),
            tracker=UsageTracker(self.options.limits.budget_usd),
            audit=audit,
            run_usage=RunUsage(),
        )
        try:
            state.record(
                "run_start",
                goal=goal,
                model=self.model_label,
                tools=[s["name"] for s in self.tools.schemas()],
                options={
                    "max_repairs": self.options.max_repairs,
                    "max_replans": self.options.max_replans,
                    "limits": vars(self.options.limits),
                    "stream": self.options.stream,
                    "timeout_s": self.options.timeout_s,
                },
                context=_prompts.cut_json(context, self.options.max_context_chars),
            )
            stop: StopRun
            prompt = _prompts.goal_prompt(goal, context, self.options.max_context_chars)
            try:
                while True:
                    async with aclosing(self._proposer.propose(state, prompt)) as proposing:
                        async for event in proposing:
                            yield event
                    attempt = state.plans[-1]
                    async with aclosing(self._execute(state, attempt)) as running:
                        async for event in running:
                            yield event
                    next_prompt = await self._decide(state, attempt)
                    for event in drain(state):
                        yield event
                    prompt = next_prompt
            except StopRun as exc:
                stop = exc
            for event in drain(state):
                yield event
            yield self._done(state, stop)
        except BaseException as exc:  # closed early, cancelled, or a bug: the log says so
            if not state.ended:
                early = isinstance(exc, GeneratorExit | anyio.get_cancelled_exc_class())
                state.record(
                    "run_end",
                    verdict=Verdict.FAILURE.value,
                    stop_reason="interrupted" if early else "crashed",
                    error=None if early else f"{type(exc).__name__}: {exc}",
                    plans=len(state.plans),
                    usage=state.tracker.report().to_json(),
                )
            raise
        finally:
            if audit is not None:
                audit.close()

    async def _execute(self, state: RunState, attempt: PlanAttempt) -> AsyncIterator[AgentEvent]:
        """Run the accepted plan on the engine, streaming its events."""
        state.record("plan_accepted", proposal=attempt.proposal, plan=attempt.plan)
        yield AgentEvent(
            type=AgentEventType.PLAN_ACCEPTED,
            msg=f"Plan {attempt.proposal} accepted; running it",
            proposal=attempt.proposal,
            replan=state.replans,
            plan=attempt.plan,
        )
        result_box: list[ExecutionResult] = []
        async with aclosing(
            execute_to_result(
                attempt.plan, self.tools, result_box, max_workers=self.options.max_workers
            )
        ) as events:
            async for event in events:
                state.record("engine_event", event=event.model_dump(mode="json", exclude_none=True))
                yield AgentEvent(
                    type=AgentEventType.ENGINE_EVENT,
                    msg=event.msg,
                    proposal=attempt.proposal,
                    replan=state.replans,
                    event=event,
                )
        result = result_box[0]
        state.execution = result
        state.plans[-1] = PlanAttempt(
            proposal=attempt.proposal, plan=attempt.plan, problems=[], execution=result
        )

    async def _decide(self, state: RunState, attempt: PlanAttempt) -> str:
        """After a run: stop, or return the prompt of the next plan (a replan)."""
        result = state.execution
        assert result is not None
        opts = self.options
        if result.verdict is Verdict.SUCCESS:
            state.record("decision", decision="stop", verdict=result.verdict.value)
            raise StopRun(Verdict.SUCCESS, "succeeded")
        left = opts.max_replans - state.replans
        if result.verdict is Verdict.FAILURE:
            if left <= 0:
                state.record("decision", decision="stop", verdict="FAILURE", replans=state.replans)
                raise StopRun(Verdict.FAILURE, f"failed after {state.replans} replan(s)")
            prompt = _prompts.failure_report(attempt.plan, result, opts.max_context_chars)
            self._replan(state, result, prompt, "the run failed")
            return prompt
        # INTERVENTION_NEEDED
        decision = await self._ask_person(state, attempt, result, left)
        state.pending.append(
            AgentEvent(
                type=AgentEventType.INTERVENTION,
                msg=f"Intervention at step {_step_of(result)!r}: {decision.action}",
                replan=state.replans,
                verdict=result.verdict,
                decision=decision.action,
            )
        )
        if decision.action == "replan" and left > 0:
            prompt = _prompts.intervention_report(result, decision.note, opts.max_context_chars)
            self._replan(state, result, prompt, "a person asked for a new plan")
            return prompt
        reason = "stopped for a person"
        if decision.action == "replan":
            reason = f"stopped for a person; no replan left after {state.replans}"
        raise StopRun(Verdict.INTERVENTION_NEEDED, reason)

    async def _ask_person(
        self, state: RunState, attempt: PlanAttempt, result: ExecutionResult, left: int
    ) -> InterventionDecision:
        if self.on_intervention is None:
            state.record(
                "decision", decision="stop", verdict=result.verdict.value, by="no callback"
            )
            return InterventionDecision(action="stop")
        request = InterventionRequest(
            goal=state.goal, plan=attempt.plan, result=result, replans_left=left
        )
        answer = self.on_intervention(request)
        if inspect.isawaitable(answer):
            answer = await answer
        decision = answer if isinstance(answer, InterventionDecision) else None
        if answer is not None and decision is None:
            raise UsageError(
                f"The intervention callback returned {answer!r}; return an "
                "InterventionDecision or None."
            )
        decision = decision or InterventionDecision(action="stop")
        state.record(
            "decision",
            decision=decision.action,
            note=decision.note,
            verdict=result.verdict.value,
            by="callback",
        )
        return decision

    def _replan(self, state: RunState, result: ExecutionResult, prompt: str, why: str) -> None:
        state.replans += 1
        state.record(
            "decision",
            decision="replan",
            replan=state.replans,
            verdict=result.verdict.value,
            why=why,
            prompt=prompt[:MAX_AUDIT_TEXT],
        )
        state.pending.append(
            AgentEvent(
                type=AgentEventType.REPLAN,
                msg=f"Replan {state.replans} of {self.options.max_replans}: {why}",
                replan=state.replans,
                verdict=result.verdict,
            )
        )

    def _done(self, state: RunState, stop: StopRun) -> AgentEvent:
        result = AgentResult(
            goal=state.goal,
            verdict=stop.verdict,
            plans=list(state.plans),
            execution=state.execution,
            usage=state.tracker.report(),
            stop_reason=stop.reason,
            error=stop.error,
            duration_s=time.monotonic() - state.started,
        )
        state.record(
            "run_end",
            verdict=result.verdict.value,
            stop_reason=result.stop_reason,
            error=result.error,
            plans=len(result.plans),
            usage=result.usage.to_json(),
        )
        state.ended = True
        msg = f"Done: {result.verdict.value} ({result.stop_reason})"
        if result.error:
            msg += f": {result.error}"
        return AgentEvent(
            type=AgentEventType.DONE,
            msg=msg,
            replan=state.replans,
            verdict=result.verdict,
            usage=result.usage.to_json(),
            result=result,
        )


def _step_of(result: ExecutionResult) -> str | None:
    return None if result.intervention is None else result.intervention.step_id
