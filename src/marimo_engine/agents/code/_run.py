"""The state of one code agent run, and small helpers shared by its parts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.agents.code.events import CodeEvent, CodeEventType
from marimo_engine.agents.code.patch import CellEdit, Finish, NewCell, Patch
from marimo_engine.engine.events import Verdict
from marimo_engine.llm.usage import UsageTracker

if TYPE_CHECKING:
    from marimo_engine.agents.audit import AuditLog
    from marimo_engine.agents.code.checkpoints import Checkpoint, NotebookMemory
    from marimo_engine.agents.code.monitor import CellError
    from marimo_engine.live.client import LiveClient
    from marimo_engine.live.protocol import CellInfo

__all__ = ["CodeRun", "StopCode", "cell_label", "op_cells", "ops_text"]


class StopCode(Exception):
    """Ends the code agent's loop with a verdict, a reason and an error."""

    def __init__(
        self, reason: str, *, verdict: Verdict = Verdict.FAILURE, error: str | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.verdict = verdict
        self.error = error


@dataclass
class CodeRun:
    """The state of one code agent run, shared by the loop, the gate and the applier."""

    goal: str
    run_id: str
    client: LiveClient
    memory: NotebookMemory | None
    audit: AuditLog | None
    tracker: UsageTracker
    started: float
    workdir: Path
    data_columns: dict[str, list[str]]
    key: str = ""
    turn: int = 0
    history: list[Any] | None = None
    run_usage: Any = None
    seen: set[int] = field(default_factory=set)
    pending: list[CodeEvent] = field(default_factory=list)
    agent_written: dict[str, str] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    last_errors: dict[str, CellError] = field(default_factory=dict)
    fixes: dict[str, int] = field(default_factory=dict)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    accepted: tuple[Patch, list[CellInfo], list[Any]] | None = None
    rejections: int = 0
    answer: Finish | None = None
    deadline: float | None = None
    """The `time.monotonic()` at which the run's wall time ends (`None`: no bound)."""
    run_limit_s: float = 0.0
    """Seconds the last batch was allowed to run (for its timeout report)."""
    run: Any = None
    """pydantic-ai's `AgentRun` of the model turn under way, or `None`."""
    show: Callable[[], Awaitable[None]] | None = None
    """Hands the queued events to the run's reader and waits until it has taken them
    (set during a model turn): what a person is asked about is shown before the question."""

    def run_timeout(self, per_run_s: float) -> float:
        """Seconds a batch may run: `per_run_s`, cut to the wall time left (at least 1 s)."""
        if self.deadline is None:
            return per_run_s
        return max(min(per_run_s, self.deadline - time.monotonic()), 1.0)

    def record(self, kind: str, **fields: Any) -> None:
        """Write an audit record (with the turn), when there is an audit log."""
        if self.audit is not None:
            self.audit.write(kind, turn=self.turn, **fields)

    def emit(self, type_: CodeEventType, msg: str, **fields: Any) -> None:
        """Queue an event of the current turn."""
        self.pending.append(CodeEvent(type=type_, msg=msg, turn=self.turn, **fields))

    def drain(self) -> list[CodeEvent]:
        """Return the queued events and clear them."""
        events, self.pending = self.pending, []
        return events


def ops_text(patch: Patch) -> str:
    """A patch's operations in words: `create load, edit total`."""
    parts = []
    for op in patch.ops:
        if isinstance(op, NewCell):
            parts.append(f"create {op.name}")
        elif isinstance(op, CellEdit):
            parts.append(f"edit {op.target}")
        else:
            parts.append(f"delete {op.target}")
    return ", ".join(parts)


def op_cells(patch: Patch) -> list[str]:
    """The names or targets of a patch's operations."""
    return [op.name if isinstance(op, NewCell) else op.target for op in patch.ops]


def cell_label(cells: list[CellInfo], cell_id: str) -> str:
    """A cell's name, or its id when it has none (or is not in `cells`)."""
    for cell in cells:
        if cell.id == cell_id:
            return cell.name or cell.id
    return cell_id
