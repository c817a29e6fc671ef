"""The state of one planner agent run, shared by the planner and its model turns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.agents.audit import AuditLog
from marimo_engine.agents.events import AgentEvent, PlanAttempt
from marimo_engine.engine.events import Verdict
from marimo_engine.llm.usage import UsageTracker

if TYPE_CHECKING:
    from marimo_engine.engine.events import ExecutionResult

__all__ = ["RunState", "StopRun", "drain"]


class StopRun(Exception):
    """Ends the agent loop with a verdict and a reason."""

    def __init__(self, verdict: Verdict, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.error = error


@dataclass
class RunState:
    """Everything one agent run accumulates: plans, usage, history, pending events."""

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
    notified: set[str] = field(default_factory=set)
    ended: bool = False

    def record(self, kind: str, **fields: Any) -> None:
        """Write an audit record, when there is an audit log."""
        if self.audit is not None:
            self.audit.write(kind, **fields)


def drain(state: RunState) -> list[AgentEvent]:
    """Return the pending events and clear them."""
    events, state.pending = state.pending, []
    return events
