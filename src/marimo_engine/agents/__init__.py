"""Agents: the planner (goal -> plan -> run -> replan) and its audit log.

Nothing heavy is imported here: pydantic-ai loads when an agent is built.
"""

from __future__ import annotations

from marimo_engine.agents.audit import AUDIT_KINDS, AuditLog, AuditRecords, read_audit_log
from marimo_engine.agents.events import (
    AgentEvent,
    AgentEventType,
    AgentResult,
    InterventionDecision,
    InterventionRequest,
    PlanAttempt,
)
from marimo_engine.agents.planner import InterventionCallback, PlannerAgent, PlannerOptions

__all__ = [
    "AUDIT_KINDS",
    "AgentEvent",
    "AgentEventType",
    "AgentResult",
    "AuditLog",
    "AuditRecords",
    "InterventionCallback",
    "InterventionDecision",
    "InterventionRequest",
    "PlanAttempt",
    "PlannerAgent",
    "PlannerOptions",
    "read_audit_log",
]
