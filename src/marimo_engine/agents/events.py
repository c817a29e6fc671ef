"""The planner agent's own events, streamed around the engine's, and its result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from marimo_engine._json import to_jsonable
from marimo_engine.engine.events import Event, ExecutionResult, Verdict
from marimo_engine.plans.problems import Problem

if TYPE_CHECKING:
    from marimo_engine.llm.usage import UsageReport

__all__ = [
    "AgentEvent",
    "AgentEventType",
    "AgentResult",
    "InterventionDecision",
    "InterventionRequest",
    "PlanAttempt",
]


class AgentEventType(StrEnum):
    """The kinds of event the planner agent emits.

    `PLANNING`: a model request is about to be sent. `MODEL_PROGRESS`: a
    streamed answer is arriving (`progress` says how much; a few a second at
    most, and one when the answer is complete). `NOTICE`: something the
    person should know once, such as a token limit that cannot be enforced
    because the model reports no usage. `PLAN_PROPOSED`: the
    model returned a plan. `PLAN_REJECTED`: it has problems (sent back to the
    model). `PLAN_ACCEPTED`: it is valid and is about to run. `ENGINE_EVENT`:
    an event of the run, carried in `event`. `REPLAN`: the run failed (or a
    person asked for a new plan) and the model is asked again.
    `INTERVENTION`: a run stopped for a person and the decision was taken.
    `DONE`: the last event, with the verdict and the result.
    """

    PLANNING = "PLANNING"
    MODEL_PROGRESS = "MODEL_PROGRESS"
    NOTICE = "NOTICE"
    PLAN_PROPOSED = "PLAN_PROPOSED"
    PLAN_REJECTED = "PLAN_REJECTED"
    PLAN_ACCEPTED = "PLAN_ACCEPTED"
    ENGINE_EVENT = "ENGINE_EVENT"
    REPLAN = "REPLAN"
    INTERVENTION = "INTERVENTION"
    DONE = "DONE"


class AgentEvent(BaseModel):
    """One thing the planner agent did.

    Attributes:
        type: The kind of event.
        msg: One human-readable line.
        timestamp: Unix seconds.
        proposal: `PLAN_*`: the number of the proposal in this agent run (1, 2 ...).
        replan: The number of replans so far (0 for the first plan).
        plan: `PLAN_PROPOSED`, `PLAN_REJECTED`, `PLAN_ACCEPTED`: the plan as
            JSON (as the model wrote it).
        problems: `PLAN_REJECTED`: the problems sent back to the model.
        event: `ENGINE_EVENT`: the engine's event.
        verdict: `DONE`, `REPLAN`, `INTERVENTION`: the verdict of the last run,
            or `None` when no plan ran.
        decision: `INTERVENTION`: `"stop"` or `"replan"`.
        usage: `DONE`: the usage report as JSON (`UsageReport.to_json()`).
        progress: `MODEL_PROGRESS`: `{"chars": N, "tokens": T,
            "tokens_estimated": bool, "elapsed_s": S}`: characters of the
            answer received so far, output tokens (as the provider reported
            them, else estimated at 4 characters a token), and seconds since
            the request was sent.
        result: `DONE`: the agent's result (not serialised).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: AgentEventType
    msg: str = ""
    timestamp: float = Field(default_factory=time.time)
    proposal: int | None = None
    replan: int = 0
    plan: dict[str, Any] | None = None
    problems: list[Problem] | None = None
    event: Event | None = None
    verdict: Verdict | None = None
    decision: str | None = None
    usage: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    result: Any = Field(default=None, exclude=True)

    @field_serializer("plan", when_used="json")
    def _serialize_plan(self, value: dict[str, Any] | None) -> Any:
        return to_jsonable(value)

    def to_json_line(self) -> str:
        """Return the event as one line of JSON, without fields that are `None`.

        The engine's event inside an `ENGINE_EVENT` is written as the engine
        writes it (`Event.to_json`), so `agent --json` and `run --json` agree.
        """
        import json

        data = self.model_dump(mode="json", exclude_none=True, exclude={"event"})
        if self.event is not None:
            data["event"] = self.event.to_json()
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class InterventionRequest:
    """What the caller's intervention callback is given.

    Attributes:
        goal: The agent's goal.
        plan: The plan that stopped.
        result: The engine's result; `result.intervention` says which step,
            which expression and which output.
        replans_left: How many more replans `"replan"` may still use.
    """

    goal: str
    plan: dict[str, Any]
    result: ExecutionResult
    replans_left: int


@dataclass(frozen=True)
class InterventionDecision:
    """The caller's answer to an intervention.

    Attributes:
        action: `"stop"` ends the agent run with the verdict
            `INTERVENTION_NEEDED`; `"replan"` asks the model for a new plan,
            with `note` (counts as a replan).
        note: What the person decided, in words, handed to the model.
    """

    action: Literal["stop", "replan"]
    note: str = ""


@dataclass(frozen=True)
class PlanAttempt:
    """One plan the model proposed.

    Attributes:
        proposal: Its number in the agent run (1, 2 ...).
        plan: The plan as the model wrote it (JSON).
        problems: The validation problems; empty when it was accepted.
        execution: The engine's result when it ran, else `None`.
    """

    proposal: int
    plan: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    execution: ExecutionResult | None = None

    @property
    def is_accepted(self) -> bool:
        """Whether the plan was valid (and ran)."""
        return not self.problems


@dataclass
class AgentResult:
    """Everything a planner agent run produced.

    Attributes:
        goal: The goal in words.
        verdict: `SUCCESS`, `FAILURE` (including no valid plan, a model
            error and a usage limit) or `INTERVENTION_NEEDED`.
        plans: Every plan tried, in order, accepted or not.
        execution: The engine's result of the last plan that ran, or `None`.
        usage: Tokens and cost per model.
        stop_reason: Why the run ended, one line (such as `"succeeded"`,
            `"no valid plan after 2 repairs"`, `"failed after 1 replan"`).
        error: A model or provider error that ended the run, one line, or `None`.
        duration_s: Seconds from start to end (monotonic clock).
    """

    goal: str
    verdict: Verdict
    plans: list[PlanAttempt]
    execution: ExecutionResult | None
    usage: UsageReport
    stop_reason: str
    error: str | None = None
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        """Whether the verdict is `SUCCESS`."""
        return self.verdict is Verdict.SUCCESS

    def to_json(self) -> dict[str, Any]:
        """Return the result as plain JSON (outputs through `to_jsonable`)."""
        return {
            "goal": self.goal,
            "verdict": self.verdict.value,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "duration_s": self.duration_s,
            "plans": [
                {
                    "proposal": p.proposal,
                    "plan": to_jsonable(p.plan),
                    "problems": [q.model_dump(mode="json") for q in p.problems],
                    "verdict": None if p.execution is None else p.execution.verdict.value,
                }
                for p in self.plans
            ],
            "execution": None
            if self.execution is None
            else self.execution.model_dump(mode="json", exclude={"events"}),
            "usage": self.usage.to_json(),
        }
