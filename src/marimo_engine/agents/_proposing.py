"""One proposal round of the planner: ask the model for a plan until one is valid.

The model is a pydantic-ai `Agent` whose output tool (`submit_plan`) takes the
plan. The output validator (registered in `PlannerAgent._build_agent`) calls
the round's `validate` function, passed as the run's `deps`: it checks the
plan with `validate_plan` and, on problems, raises `ModelRetry` with the
problems as JSON, so pydantic-ai sends them back to the model as the answer
to its `submit_plan` call, at most `max_repairs` times.

With `stream`, the answer is read as it arrives and `MODEL_PROGRESS` events
say how much came so far, at most every `PROGRESS_INTERVAL_S` seconds and
once when the answer is complete.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
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

__all__ = ["CHARS_PER_TOKEN", "MAX_AUDIT_TEXT", "PROGRESS_INTERVAL_S", "Proposer", "part_summary"]

MAX_AUDIT_TEXT = 4_000
"""Characters of a message part kept in an audit record's part summaries."""

PROGRESS_INTERVAL_S = 0.25
"""Seconds between two `MODEL_PROGRESS` events of one streamed answer, at least."""

CHARS_PER_TOKEN = 4
"""Characters per token when estimating the tokens of an answer still arriving."""


class Proposer:
    """Runs proposal rounds with one pydantic-ai agent.

    Args:
        agent: The pydantic-ai `Agent` (output tool `submit_plan`, validator
            delegating to `deps`).
        tools: The registry plans are validated against.
        options: The planner's options (repairs, limits, streaming).
        model_label: The model's name for events and the audit log.
        secrets: Values redacted from model error messages (keys of the
            environment the models were built from).
    """

    def __init__(
        self,
        agent: Any,
        tools: ToolRegistry,
        options: PlannerOptions,
        model_label: str,
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        self.agent = agent
        self.tools = tools
        self.options = options
        self.model_label = model_label
        self.secrets = secrets

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
            with model_errors(self.secrets):
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
                            async with aclosing(self.stream_answer(state, node, run)) as progress:
                                async for event in progress:
                                    yield event
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

    async def stream_answer(
        self, state: RunState, node: Any, run: Any
    ) -> AsyncIterator[AgentEvent]:
        """Read a streamed answer, yielding `MODEL_PROGRESS` events as it arrives."""
        from pydantic_ai.messages import PartDeltaEvent, PartStartEvent

        started = last = time.monotonic()
        chars = 0
        async with node.stream(run.ctx) as stream:
            async for event in stream:
                if isinstance(event, PartDeltaEvent | PartStartEvent):
                    chars += _chars_of(event)
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL_S:
                    last = now
                    yield self._progress(state, chars, stream, now - started)
            yield self._progress(state, chars, stream, time.monotonic() - started, done=True)

    def _progress(
        self, state: RunState, chars: int, stream: Any, elapsed_s: float, *, done: bool = False
    ) -> AgentEvent:
        response = getattr(stream, "response", None)  # this answer so far, not the whole run
        reported = int(getattr(getattr(response, "usage", None), "output_tokens", 0) or 0)
        estimated = not reported
        tokens = math.ceil(chars / CHARS_PER_TOKEN) if estimated else reported
        approx = "~" if estimated else ""
        so_far = "answered" if done else "answering"
        how_much = f"{approx}{tokens} tokens" + ("" if done else " so far")
        return AgentEvent(
            type=AgentEventType.MODEL_PROGRESS,
            msg=f"{self.model_label} {so_far}: {how_much} ({chars} characters, {elapsed_s:.1f} s)",
            replan=state.replans,
            progress={
                "chars": chars,
                "tokens": tokens,
                "tokens_estimated": estimated,
                "elapsed_s": round(elapsed_s, 3),
                "done": done,
            },
        )

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
        from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse

        for message in run.ctx.state.message_history:
            if not isinstance(message, ModelResponse) or id(message) in state.seen:
                continue
            state.seen[id(message)] = message
            label = model_label(message.provider_name, message.model_name)
            state.record(
                "model_response",
                model=label,
                parts=[part_summary(p) for p in message.parts],
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
                failed_attempts=[
                    {"model": model_label(a.provider_name, a.model_name), "error": a.error}
                    for a in (message.failed_attempts or ())
                ],
                # The whole answer as pydantic-ai's JSON: what `replay:` answers with.
                response=ModelMessagesTypeAdapter.dump_python([message], mode="json")[0],
            )
            self._notice_unmeasured(state, message, label)
            state.tracker.record(message)  # raises ModelLimitError past the budget

    def _notice_unmeasured(self, state: RunState, message: Any, label: str) -> None:
        """Say once per model that token limits cannot be enforced when it reports no usage."""
        limits = self.options.limits
        has_token_limits = any(
            v is not None
            for v in (
                limits.input_tokens_limit,
                limits.output_tokens_limit,
                limits.total_tokens_limit,
            )
        )
        if not has_token_limits or not message.usage.unmeasured_requests:
            return
        if label in state.notified:
            return
        state.notified.add(label)
        msg = (
            f"Model {label!r} reports no token usage, so the token limit (--max-tokens) cannot "
            "be enforced for it; the request limit (--max-requests) still applies."
        )
        state.record("notice", notice="token_limit_unenforceable", model=label, msg=msg)
        state.pending.append(AgentEvent(type=AgentEventType.NOTICE, msg=msg, replan=state.replans))


def _chars_of(event: Any) -> int:
    """Characters of text or tool arguments a stream event adds to the answer."""
    part = getattr(event, "delta", None) or getattr(event, "part", None)
    for name in ("content_delta", "args_delta", "content", "args"):
        value = getattr(part, name, None)
        if isinstance(value, str):
            return len(value)
        if isinstance(value, dict):
            return len(repr(value))
    return 0


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
