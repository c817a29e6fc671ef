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

import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.agents import _prompts
from marimo_engine.agents._run import execute_to_result
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
from marimo_engine.errors import ModelConfigError, ModelError, UsageError
from marimo_engine.llm.usage import ModelLimits, UsageTracker, model_label

if TYPE_CHECKING:
    import os

    from pydantic_ai.models import Model

    from marimo_engine.engine.events import ExecutionResult
    from marimo_engine.plans.problems import Problem
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["InterventionCallback", "PlannerAgent", "PlannerOptions"]

InterventionCallback = Callable[
    [InterventionRequest], "InterventionDecision | Awaitable[InterventionDecision | None] | None"
]
"""Called when a run stops for a person; returns a decision (`None` means stop)."""

_MAX_AUDIT_TEXT = 4_000


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
        stream: Ask the model for streamed responses (server-sent events).
        max_workers: Passed to the engine: steps run at the same time
            (`None`: the engine's default).
    """

    max_repairs: int = 2
    max_replans: int = 1
    limits: ModelLimits = field(default_factory=ModelLimits)
    max_context_chars: int = 8_000
    stream: bool = False
    max_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_repairs", "max_replans"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 10:
                raise UsageError(f"PlannerOptions.{name} is {value!r}; use an integer 0 to 10.")
        if self.max_context_chars < 200:
            raise UsageError(
                f"PlannerOptions.max_context_chars is {self.max_context_chars!r}; use 200 or more."
            )


class _Stop(Exception):
    """Ends the agent loop with a verdict and a reason (internal)."""

    def __init__(self, verdict: Verdict, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.error = error


@dataclass
class _RunState:
    goal: str
    run_id: str
    started: float
    tracker: UsageTracker
    audit: AuditLog | None
    plans: list[PlanAttempt] = field(default_factory=list)
    execution: ExecutionResult | None = None
    replans: int = 0
    history: list[Any] | None = None
    run_usage: Any = None
    pending: list[AgentEvent] = field(default_factory=list)
    seen: dict[int, Any] = field(default_factory=dict)
    ended: bool = False

    def record(self, kind: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.write(kind, **fields)


class PlannerAgent:
    """Turns a goal in words into a plan, runs it, and replans on failure.

    Args:
        model: A model string (`"openai:gpt-4o-mini"`, see `marimo_engine.llm`)
            or a pydantic-ai `Model` (tests pass `FunctionModel`).
        tools: The tools plans may use: a `ToolRegistry` or a mapping of
            names to callables. Their JSON schemas are what the model sees.
        fallbacks: Models tried in order when the one before fails with a
            provider error or a rate limit.
        options: Repairs, replans, limits and budgets.
        on_intervention: Called when a run stops for a person (sync or async);
            `None` makes the agent return with `INTERVENTION_NEEDED`.
        audit_path: The JSON lines audit log to append to; `None` for none.
        env: Environment for keys and endpoints; `None` means `os.environ`.

    Raises:
        ModelConfigError: A model string is malformed, a provider has no key
            or endpoint, or a budget is set for a model that cannot be priced.
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
        from marimo_engine.llm.models import build_model, describe_model, is_priced
        from marimo_engine.tools.registry import as_registry

        self.options = options or PlannerOptions()
        self.tools = as_registry(tools)
        self.model = build_model(model, list(fallbacks), env=env)
        self.model_label = describe_model(self.model)
        if self.options.limits.budget_usd is not None and not is_priced(self.model):
            raise ModelConfigError(
                f"A budget of ${self.options.limits.budget_usd:g} is set but model "
                f"{self.model_label!r} has no known price; drop the budget or use a priced model."
            )
        self.on_intervention = on_intervention
        self.audit_path = audit_path
        self._agent = self._build_agent()

    def _build_agent(self) -> Any:
        from pydantic_ai import Agent, RunContext, StructuredDict, ToolOutput

        output = ToolOutput(
            StructuredDict(_prompts.plan_output_schema()),
            name=_prompts.OUTPUT_TOOL_NAME,
            description="Submit the plan (plan language version 1).",
            max_retries=self.options.max_repairs,
        )
        agent: Agent[Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any]] = Agent(
            self.model,
            output_type=output,
            instructions=_prompts.instructions(self.tools.schemas()),
            deps_type=object,  # the run's validate function, see _propose
            name="marimo-engine-planner",
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
        audit = None if self.audit_path is None else AuditLog(self.audit_path, run_id=run_id)
        state = _RunState(
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
                },
                context=_prompts.cut_json(context, self.options.max_context_chars),
            )
            stop: _Stop
            prompt = _prompts.goal_prompt(goal, context, self.options.max_context_chars)
            try:
                while True:
                    async with aclosing(self._propose(state, prompt)) as proposing:
                        async for event in proposing:
                            yield event
                    attempt = state.plans[-1]
                    async with aclosing(self._execute(state, attempt)) as running:
                        async for event in running:
                            yield event
                    next_prompt = await self._decide(state, attempt)
                    for event in _drain(state):
                        yield event
                    prompt = next_prompt
            except _Stop as exc:
                stop = exc
            for event in _drain(state):
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

    async def _propose(self, state: _RunState, prompt: str) -> AsyncIterator[AgentEvent]:
        """Ask the model for a plan until one is valid; leave it as `state.plans[-1]`."""
        from pydantic_ai import Agent, ModelRetry
        from pydantic_ai.exceptions import UnexpectedModelBehavior

        from marimo_engine.llm.errors import model_errors
        from marimo_engine.plans.validation import validate_plan

        accepted: list[PlanAttempt] = []
        round_start = len(state.plans)

        def validate(data: dict[str, Any]) -> dict[str, Any]:
            proposal = len(state.plans) + 1
            plan = dict(data)
            problems: list[Problem] = validate_plan(plan, self.tools)
            attempt = PlanAttempt(proposal=proposal, plan=plan, problems=list(problems))
            state.plans.append(attempt)
            n_steps = len(plan.get("steps") or [])
            state.record("plan_proposed", proposal=proposal, plan=plan)
            state.record(
                "validation",
                proposal=proposal,
                valid=not problems,
                problems=[p.model_dump(mode="json") for p in problems],
            )
            state.pending.append(
                AgentEvent(
                    type=AgentEventType.PLAN_PROPOSED,
                    msg=f"Plan {proposal} proposed: {n_steps} step(s)",
                    proposal=proposal,
                    replan=state.replans,
                    plan=plan,
                )
            )
            if problems:
                repairs_used = len(state.plans) - round_start
                state.pending.append(
                    AgentEvent(
                        type=AgentEventType.PLAN_REJECTED,
                        msg=f"Plan {proposal} rejected: {len(problems)} problem(s); "
                        + "; ".join(p.describe() for p in problems[:2]),
                        proposal=proposal,
                        replan=state.replans,
                        plan=plan,
                        problems=list(problems),
                    )
                )
                will_repair = repairs_used <= self.options.max_repairs
                state.record(
                    "decision",
                    decision="repair" if will_repair else "give_up",
                    proposal=proposal,
                    repairs_used=repairs_used,
                    max_repairs=self.options.max_repairs,
                )
                raise ModelRetry(_prompts.problems_report(problems))
            if not isinstance(plan.get("id"), str) or not plan["id"]:
                plan["id"] = f"plan-{uuid.uuid4().hex[:8]}"  # one id for events and audit
            accepted.append(attempt)
            return data

        run: Any = None
        try:
            with model_errors():
                async with self._agent.iter(
                    prompt,
                    deps=validate,
                    message_history=state.history,
                    usage=state.run_usage,
                    usage_limits=self.options.limits.to_usage_limits(),
                ) as run:
                    async for node in run:
                        self._record_responses(state, run)
                        self._observe(state, node, run)
                        for event in _drain(state):
                            yield event
                        if self.options.stream and Agent.is_model_request_node(node):
                            async with node.stream(run.ctx) as stream:
                                async for _ in stream:
                                    pass
                    assert run.result is not None
                    state.history = run.result.all_messages()
        except ModelError as exc:
            if run is not None:  # a response that crossed a limit still counts
                with contextlib.suppress(ModelError):
                    self._record_responses(state, run)
            rejected = len(state.plans) - round_start
            if isinstance(exc.__cause__, UnexpectedModelBehavior) and (
                rejected > self.options.max_repairs
            ):
                raise _Stop(
                    Verdict.FAILURE,
                    f"no valid plan after {self.options.max_repairs} repair(s)",
                    error=str(exc),
                ) from exc
            raise _Stop(Verdict.FAILURE, "model error", error=str(exc)) from exc
        finally:
            for event in _drain(state):
                yield event
        if not accepted:
            raise _Stop(Verdict.FAILURE, "the model submitted no plan")

    def _observe(self, state: _RunState, node: Any, run: Any) -> None:
        """Audit a model request before it is sent."""
        from pydantic_ai import Agent

        if Agent.is_model_request_node(node):
            request = node.request
            state.record(
                "model_request",
                model=self.model_label,
                messages_before=len(run.ctx.state.message_history),
                parts=[_part_summary(p) for p in request.parts],
            )
            state.pending.append(
                AgentEvent(
                    type=AgentEventType.PLANNING,
                    msg=f"Asking {self.model_label} for a plan",
                    replan=state.replans,
                )
            )

    def _record_responses(self, state: _RunState, run: Any) -> None:
        """Audit and count every model response not seen yet (each exactly once).

        Raises:
            ModelLimitError: The budget in US dollars is spent.
        """
        from pydantic_ai.messages import ModelResponse

        for message in run.ctx.state.message_history:
            if not isinstance(message, ModelResponse) or id(message) in state.seen:
                continue
            state.seen[id(message)] = message
            state.record(
                "model_response",
                model=model_label(message.provider_name, message.model_name),
                parts=[_part_summary(p) for p in message.parts],
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
                failed_attempts=[
                    {"model": model_label(a.provider_name, a.model_name), "error": a.error}
                    for a in (message.failed_attempts or ())
                ],
            )
            state.tracker.record(message)  # raises ModelLimitError past the budget

    async def _execute(self, state: _RunState, attempt: PlanAttempt) -> AsyncIterator[AgentEvent]:
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

    async def _decide(self, state: _RunState, attempt: PlanAttempt) -> str:
        """After a run: stop, or return the prompt of the next plan (a replan)."""
        result = state.execution
        assert result is not None
        opts = self.options
        if result.verdict is Verdict.SUCCESS:
            state.record("decision", decision="stop", verdict=result.verdict.value)
            raise _Stop(Verdict.SUCCESS, "succeeded")
        left = opts.max_replans - state.replans
        if result.verdict is Verdict.FAILURE:
            if left <= 0:
                state.record("decision", decision="stop", verdict="FAILURE", replans=state.replans)
                raise _Stop(Verdict.FAILURE, f"failed after {state.replans} replan(s)")
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
        raise _Stop(Verdict.INTERVENTION_NEEDED, reason)

    async def _ask_person(
        self, state: _RunState, attempt: PlanAttempt, result: ExecutionResult, left: int
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

    def _replan(self, state: _RunState, result: ExecutionResult, prompt: str, why: str) -> None:
        state.replans += 1
        state.record(
            "decision",
            decision="replan",
            replan=state.replans,
            verdict=result.verdict.value,
            why=why,
            prompt=prompt[:_MAX_AUDIT_TEXT],
        )
        state.pending.append(
            AgentEvent(
                type=AgentEventType.REPLAN,
                msg=f"Replan {state.replans} of {self.options.max_replans}: {why}",
                replan=state.replans,
                verdict=result.verdict,
            )
        )

    def _done(self, state: _RunState, stop: _Stop) -> AgentEvent:
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


def _drain(state: _RunState) -> list[AgentEvent]:
    events, state.pending = state.pending, []
    return events


def _step_of(result: ExecutionResult) -> str | None:
    return None if result.intervention is None else result.intervention.step_id


def _part_summary(part: Any) -> dict[str, Any]:
    """A short JSON summary of a message part, for the audit log."""
    summary: dict[str, Any] = {"part": getattr(part, "part_kind", type(part).__name__)}
    for name in ("tool_name", "model_name"):
        value = getattr(part, name, None)
        if value:
            summary[name] = value
    content = getattr(part, "content", None)
    if content is None and hasattr(part, "args"):
        content = part.args
    if content is not None:
        text = content if isinstance(content, str) else repr(content)
        summary["content"] = text[:_MAX_AUDIT_TEXT]
        if len(text) > _MAX_AUDIT_TEXT:
            summary["content_chars"] = len(text)
    return summary
