"""The code agent: a goal becomes marimo cells that run, are watched and fix themselves.

See docs/code-agent.md. Nothing heavy is imported here: pydantic-ai and
marimo load when an agent is built or a patch is checked.
"""

from __future__ import annotations

from marimo_engine.agents.code.agent import CodeAgent, CodeOptions, InterventionCallback
from marimo_engine.agents.code.checkpoints import (
    Checkpoint,
    NotebookMemory,
    UndoResult,
    undo_checkpoint,
)
from marimo_engine.agents.code.checks import CheckOutcome, CheckProblem, Repair, check_patch
from marimo_engine.agents.code.events import (
    ApprovalDecision,
    ApprovalRequest,
    CodeEvent,
    CodeEventType,
    CodeResult,
)
from marimo_engine.agents.code.monitor import CellError, ErrorClass, classify, gather_facts
from marimo_engine.agents.code.patch import CellDeletion, CellEdit, Finish, NewCell, Patch
from marimo_engine.agents.code.policy import Policy, PolicyFinding, scan_code

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "CellDeletion",
    "CellEdit",
    "CellError",
    "CheckOutcome",
    "CheckProblem",
    "Checkpoint",
    "CodeAgent",
    "CodeEvent",
    "CodeEventType",
    "CodeOptions",
    "CodeResult",
    "ErrorClass",
    "Finish",
    "InterventionCallback",
    "NewCell",
    "NotebookMemory",
    "Patch",
    "Policy",
    "PolicyFinding",
    "Repair",
    "UndoResult",
    "check_patch",
    "classify",
    "gather_facts",
    "scan_code",
    "undo_checkpoint",
]
