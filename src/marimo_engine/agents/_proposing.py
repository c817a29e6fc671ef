"""One proposal round of the planner: ask the model for a plan until one is valid.

The model is a pydantic-ai `Agent` whose output tool (`submit_plan`) takes the
plan. The output validator (registered in `PlannerAgent._build_agent`) calls
the round's `validate` function, passed as the run's `deps`: it checks the
plan with `validate_plan` and, on problems, raises `ModelRetry` with the
problems as JSON, so pydantic-ai sends them back to the model as the answer
to its `submit_plan` call, at most `max_repairs` times.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from marimo_engine.agents import _prompts
from marimo_engine.agents._state import RunState, StopRun, drain
from marimo_engine.agents.events import AgentEvent, AgentEventType, PlanAttempt
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import ModelError
from marimo_engine.llm.usage import model_label

if TYPE_CHECKING:
    from marimo_engine.agents.planner import PlannerOptions
    from marimo_engine.plans.problems import Problem
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["MAX_AUDIT_TEXT", "Proposer", "part_summary"]

MAX_AUDIT_TEXT = 4_000
"""Characters of a message part kept in an audit record."""


class Proposer:
    """Runs proposal rounds with one pydantic-ai agent.

    Args:
        agent: The pydantic-ai `Agent` (output tool `submit_plan`, validator
            delegating to `deps`).
        tools: The registry plans are validated against.
        options: The planner's options (repairs, limits, streaming).
        model_label: The model's name for events and the audit log.
    """

    def __init__(
        self, agent: Any, tools: ToolRegistry, options: PlannerOptions, model_label: str
    ) -> None:
        self.agent = agent
        self.tools = tools
        self.options = options
        self.model_label = model_label

    async def propose(self, state: RunState, prompt: str) -> AsyncIterator[AgentEvent]:
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
                async with self.agent.iter(
                    prompt,
                    deps=validate,
                    message_history=state.history,
                    usage=state.run_usage,
                    usage_limits=self.options.limits.to_usage_limits(),
                ) as run:
                    async for node in run:
                        self.record_responses(state, run)
                        self.observe(state, node, run)
                        for event in drain(state):
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
                    self.record_responses(state, run)
            rejected = len(state.plans) - round_start
            if isinstance(exc.__cause__, UnexpectedModelBehavior) and (
                rejected > self.options.max_repairs
            ):
                raise StopRun(
                    Verdict.FAILURE,
                    f"no valid plan after {self.options.max_repairs} repair(s)",
                    error=str(exc),
                ) from exc
            raise StopRun(Verdict.FAILURE, "model error", error=str(exc)) from exc
        finally:
            for event in drain(state):
                yield event
        if not accepted:
            raise StopRun(Verdict.FAILURE, "the model submitted no plan")

    def observe(self, state: RunState, node: Any, run: Any) -> None:
        """Audit a model request before it is sent."""
        from pydantic_ai import Agent

        if Agent.is_model_request_node(node):
            request = node.request
            state.record(
                "model_request",
                model=self.model_label,
                messages_before=len(run.ctx.state.message_history),
                parts=[part_summary(p) for p in request.parts],
            )
            state.pending.append(
                AgentEvent(
                    type=AgentEventType.PLANNING,
                    msg=f"Asking {self.model_label} for a plan",
                    replan=state.replans,
                )
            )

    def record_responses(self, state: RunState, run: Any) -> None:
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
                parts=[part_summary(p) for p in message.parts],
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
                failed_attempts=[
                    {"model": model_label(a.provider_name, a.model_name), "error": a.error}
                    for a in (message.failed_attempts or ())
                ],
            )
            state.tracker.record(message)  # raises ModelLimitError past the budget


def part_summary(part: Any) -> dict[str, Any]:
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
        summary["content"] = text[:MAX_AUDIT_TEXT]
        if len(text) > MAX_AUDIT_TEXT:
            summary["content_chars"] = len(text)
    return summary
