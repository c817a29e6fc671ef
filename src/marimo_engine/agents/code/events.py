"""The code agent's events, approval requests and result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from marimo_engine.engine.events import Verdict

if TYPE_CHECKING:
    from marimo_engine.agents.code.checkpoints import Checkpoint
    from marimo_engine.agents.code.patch import Patch
    from marimo_engine.agents.code.policy import PolicyFinding
    from marimo_engine.llm.usage import UsageReport

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "CodeEvent",
    "CodeEventType",
    "CodeResult",
]


class CodeEventType(StrEnum):
    """What the code agent did.

    `START`: the run began (the notebook and model are named). `TURN`: a model
    request is about to go. `PATCH_PROPOSED`: the model wrote a patch.
    `PATCH_REJECTED`: a check, the policy or a person refused it (the reason
    goes back to the model). `APPROVAL`: a person (or `--approve`) decided.
    `REPAIR`: a change made without a model call. `APPLIED`: a patch was
    applied and its cells ran. `CELL_ERROR`: a cell failed (classified).
    `INSTALL`: a package install ran. `FINISHED`: the model declared the goal
    met. `DONE`: the last event, with the verdict and the result.
    """

    START = "START"
    TURN = "TURN"
    PATCH_PROPOSED = "PATCH_PROPOSED"
    PATCH_REJECTED = "PATCH_REJECTED"
    APPROVAL = "APPROVAL"
    REPAIR = "REPAIR"
    APPLIED = "APPLIED"
    CELL_ERROR = "CELL_ERROR"
    INSTALL = "INSTALL"
    FINISHED = "FINISHED"
    DONE = "DONE"


class CodeEvent(BaseModel):
    """One thing the code agent did.

    Attributes:
        type: The kind of event.
        msg: One human-readable line.
        timestamp: Unix seconds.
        turn: The turn it belongs to (0 before the first).
        cells: Names (or ids) of the cells concerned.
        errors: `CELL_ERROR`, `APPLIED`: the classified errors as JSON.
        data: Anything else of the event (the patch, the findings, the diff).
        verdict: `DONE`: the run's verdict.
        usage: `DONE`: the usage report as JSON.
        result: `DONE`: the `CodeResult` (not serialised).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: CodeEventType
    msg: str = ""
    timestamp: float = Field(default_factory=time.time)
    turn: int = 0
    cells: list[str] = Field(default_factory=list)
    errors: list[dict[str, Any]] | None = None
    data: dict[str, Any] | None = None
    verdict: Verdict | None = None
    usage: dict[str, Any] | None = None
    result: Any = Field(default=None, exclude=True)

    def to_json_line(self) -> str:
        """The event as one line of JSON, without fields that are `None`."""
        return self.model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class ApprovalRequest:
    """What the `on_intervention` callback is asked.

    Attributes:
        kind: `"policy"` (a patch with findings whose action is `ask`) or
            `"install"` (a package install for a missing module).
        goal: The run's goal.
        turn: The turn.
        findings: `"policy"`: what the policy found.
        patch: `"policy"`: the patch (as it would be applied).
        package: `"install"`: the package to install.
        module: `"install"`: the module that was missing.
    """

    kind: Literal["policy", "install"]
    goal: str
    turn: int
    findings: tuple[PolicyFinding, ...] = ()
    patch: Patch | None = None
    package: str | None = None
    module: str | None = None

    def describe(self) -> str:
        """The question in words, for a terminal prompt."""
        if self.kind == "install":
            return f"Install package {self.package!r} (module {self.module!r} is missing)?"
        return "Apply this patch? " + "; ".join(f.describe() for f in self.findings)

    def patch_lines(self) -> list[str]:
        """The patch a person is asked about, as lines to show: `--- OP NAME`, then its code.

        Returns:
            One `--- create NAME` (or `edit`, `delete`) line per operation,
            each followed by its code indented four spaces; empty without a patch.
        """
        lines: list[str] = []
        for op in self.patch.ops if self.patch is not None else ():
            code = getattr(op, "code", None)
            label = getattr(op, "name", None) or getattr(op, "target", "")
            lines.append(f"--- {op.op} {label}")
            if code:
                lines.extend(f"    {line}" for line in code.splitlines())
        return lines


@dataclass(frozen=True)
class ApprovalDecision:
    """A person's answer to an `ApprovalRequest`.

    Attributes:
        approve: Whether to go ahead.
        note: Why, in words; given to the model when refused.
    """

    approve: bool
    note: str = ""


@dataclass
class CodeResult:
    """Everything a code agent run produced.

    Attributes:
        goal: The goal.
        verdict: `SUCCESS` when the model declared the goal met with working
            cells; `FAILURE` otherwise (a limit, the same error twice, a model error).
        answer: The model's answer, or `None`.
        answer_cells: The cells the model said hold the answer.
        turns: Model turns taken.
        checkpoints: The turns that changed the notebook.
        errors: The cell errors left at the end, as JSON.
        usage: Tokens and cost per model.
        stop_reason: Why the run ended, one line.
        error: A model or bridge error that ended the run, or `None`.
        duration_s: Seconds from start to end (monotonic clock).
        notebook: The notebook's absolute path, or `url#session` when it has no file.
        url: The server the session ran on.
    """

    goal: str
    verdict: Verdict
    answer: str | None
    answer_cells: list[str]
    turns: int
    checkpoints: list[Checkpoint]
    errors: list[dict[str, Any]]
    usage: UsageReport
    stop_reason: str
    error: str | None = None
    duration_s: float = 0.0
    notebook: str | None = None
    url: str | None = None
    repairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Whether the verdict is `SUCCESS`."""
        return self.verdict is Verdict.SUCCESS

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON."""
        return {
            "goal": self.goal,
            "verdict": self.verdict.value,
            "answer": self.answer,
            "answer_cells": self.answer_cells,
            "turns": self.turns,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "duration_s": self.duration_s,
            "notebook": self.notebook,
            "url": self.url,
            "checkpoints": [c.diff() for c in self.checkpoints],
            "repairs": self.repairs,
            "errors": self.errors,
            "usage": self.usage.to_json(),
        }
