"""Review and undo: every turn that changed the notebook is a checkpoint; memory per notebook.

A `Checkpoint` holds the notebook's cells (id, name, code, in order) before
and after one turn. `Checkpoint.diff()` says which cells were added, edited
(before and after) and deleted; `undo_ops` computes the one atomic batch
that puts those cells back as they were: cells the turn created are
deleted, edited cells get their old code and name, deleted cells are
created again where they were.

`NotebookMemory` is the per-notebook state file: the goals asked, the
decisions taken, the edits a person rejected and the checkpoints. It lives
in the state directory (`$XDG_STATE_HOME/marimo-engine/notebooks/`, else
`~/.local/state/marimo-engine/notebooks/`), one JSON file per notebook,
written with temp file + rename so that a crash never leaves half a file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.live.protocol import CellInfo

__all__ = [
    "CellSnapshot",
    "Checkpoint",
    "NotebookMemory",
    "UndoResult",
    "memory_path",
    "snapshot",
    "state_dir",
    "undo_checkpoint",
    "undo_ops",
]

MAX_MEMORY_ITEMS = 50
"""Goals, decisions and rejected edits kept per notebook (the oldest are dropped)."""


@dataclass(frozen=True)
class CellSnapshot:
    """A cell as it was: id, name and code."""

    id: str
    name: str
    code: str


def snapshot(cells: list[CellInfo]) -> list[CellSnapshot]:
    """Return the cells' ids, names and code, in notebook order."""
    return [CellSnapshot(c.id, c.name, c.code) for c in cells]


@dataclass
class Checkpoint:
    """One turn that changed the notebook.

    Attributes:
        turn: The turn's number in its run (1, 2 ...).
        run_id: The agent run.
        goal: The run's goal.
        summary: The patch's summary line (and repairs made).
        before: The cells before the turn, in order.
        after: The cells after the turn (and its repairs), in order.
        ts: Unix seconds when the turn ended.
        undone: Whether the checkpoint was undone.
    """

    turn: int
    run_id: str
    goal: str
    summary: str
    before: list[CellSnapshot]
    after: list[CellSnapshot]
    ts: float = field(default_factory=time.time)
    undone: bool = False

    @property
    def created(self) -> list[str]:
        """Ids of the cells the turn added."""
        old = {c.id for c in self.before}
        return [c.id for c in self.after if c.id not in old]

    @property
    def deleted(self) -> list[str]:
        """Ids of the cells the turn deleted."""
        new = {c.id for c in self.after}
        return [c.id for c in self.before if c.id not in new]

    @property
    def edited(self) -> list[str]:
        """Ids of the cells whose code or name the turn changed."""
        old = {c.id: c for c in self.before}
        return [
            c.id
            for c in self.after
            if c.id in old and (old[c.id].code, old[c.id].name) != (c.code, c.name)
        ]

    @property
    def changed(self) -> bool:
        """Whether the turn changed anything."""
        return bool(self.created or self.deleted or self.edited)

    def diff(self) -> dict[str, Any]:
        """The turn's changes as JSON: added, edited (before and after) and deleted cells."""
        old = {c.id: c for c in self.before}
        new = {c.id: c for c in self.after}
        return {
            "turn": self.turn,
            "summary": self.summary,
            "added": [asdict(new[i]) for i in self.created],
            "edited": [
                {
                    "id": i,
                    "name": new[i].name,
                    "before": old[i].code,
                    "after": new[i].code,
                    "name_before": old[i].name,
                }
                for i in self.edited
            ],
            "deleted": [asdict(old[i]) for i in self.deleted],
        }

    def diff_text(self) -> str:
        """The turn's changes as a unified diff per cell, for a terminal."""
        old = {c.id: c for c in self.before}
        new = {c.id: c for c in self.after}
        parts = [f"turn {self.turn}: {self.summary}".rstrip(": ")]
        for cell_id in self.created:
            cell = new[cell_id]
            parts.append(f"+ added cell {cell.name or cell_id!r}")
            parts.extend(f"+ {line}" for line in cell.code.splitlines())
        for cell_id in self.edited:
            label = new[cell_id].name or cell_id
            parts.append(f"~ edited cell {label!r}")
            parts.extend(
                line.rstrip("\n")
                for line in difflib.unified_diff(
                    old[cell_id].code.splitlines(),
                    new[cell_id].code.splitlines(),
                    "before",
                    "after",
                    lineterm="",
                )
            )
        for cell_id in self.deleted:
            cell = old[cell_id]
            parts.append(f"- deleted cell {cell.name or cell_id!r}")
            parts.extend(f"- {line}" for line in cell.code.splitlines())
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as plain JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """Read a checkpoint written by `to_json`."""
        values = dict(data)
        values["before"] = [CellSnapshot(**c) for c in values["before"]]
        values["after"] = [CellSnapshot(**c) for c in values["after"]]
        return cls(**values)


def undo_ops(checkpoint: Checkpoint, current: list[CellInfo]) -> tuple[list[Any], list[str]]:
    """Return the cell operations that undo a checkpoint on the notebook as it is now.

    Args:
        checkpoint: The turn to undo.
        current: The notebook's cells now.

    Returns:
        `(ops, notes)`: live-bridge operations for one atomic batch, and notes
        on what cannot be restored (a cell the turn created that is gone already).
    """
    from marimo_engine.live.protocol import CreateCell, DeleteCell, EditCell

    now = {c.id: c for c in current}
    ops: list[Any] = []
    notes: list[str] = []
    for cell_id in checkpoint.created:
        if cell_id in now:
            ops.append(DeleteCell(target=cell_id))
        else:
            notes.append(f"cell {cell_id} that turn {checkpoint.turn} added is already gone")
    old = {c.id: c for c in checkpoint.before}
    for cell_id in checkpoint.edited:
        if cell_id in now:
            ops.append(
                EditCell(target=cell_id, code=old[cell_id].code, name=old[cell_id].name or None)
            )
        else:
            notes.append(f"cell {cell_id} that turn {checkpoint.turn} edited was deleted since")
    created = set(checkpoint.created)
    survivors = [c.id for c in checkpoint.before if c.id in now and c.id not in created]
    deleted = set(checkpoint.deleted)
    # Deleted cells come back where they were: after the nearest surviving cell
    # before them (a run after one anchor is created in reverse, each right after
    # it), or, at the top, before the first survivor.
    groups: dict[str | None, list[CellSnapshot]] = {}
    anchor: str | None = None
    for cell in checkpoint.before:
        if cell.id in deleted:
            groups.setdefault(anchor, []).append(cell)
        elif cell.id in now:
            anchor = cell.id
    for anchor_id, cells in groups.items():
        if anchor_id is not None:
            for cell in reversed(cells):
                ops.append(CreateCell(code=cell.code, name=cell.name or None, after=anchor_id))
        elif survivors:
            for cell in cells:
                ops.append(CreateCell(code=cell.code, name=cell.name or None, before=survivors[0]))
        else:
            ops.extend(CreateCell(code=c.code, name=c.name or None) for c in cells)
    return ops, notes


def state_dir() -> Path:
    """The state folder: `$XDG_STATE_HOME/marimo-engine`, else `~/.local/state/marimo-engine`."""
    base = os.environ.get("XDG_STATE_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".local" / "state"
    return root / "marimo-engine"


def memory_path(key: str, directory: Path | None = None) -> Path:
    """The memory file of a notebook.

    Args:
        key: The notebook's absolute path (or `url#session` for a session with no file).
        directory: Where memory files live; `None` means `state_dir()/notebooks`.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = Path(key).stem if "#" not in key else "session"
    return (directory or state_dir() / "notebooks") / f"{stem}-{digest}.json"


@dataclass
class NotebookMemory:
    """What the code agent remembers about one notebook across goals.

    Attributes:
        key: The notebook's absolute path, or `url#session`.
        path: The JSON file it is kept in.
        goals: `{"goal", "ts", "verdict", "answer"}` per goal asked.
        decisions: `{"ts", "goal", "decision"}`: what was decided and why.
        rejected: `{"ts", "goal", "reason", "patch"}`: edits a person (or the policy) refused.
        checkpoints: Every turn that changed the notebook, oldest first.
    """

    key: str
    path: Path
    goals: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @classmethod
    def load(cls, key: str, directory: Path | None = None) -> NotebookMemory:
        """Read the memory of a notebook; an empty one when there is none yet.

        Raises:
            UsageError: The file exists but is not a memory file (the message names it).
        """
        path = memory_path(key, directory)
        if not path.exists():
            return cls(key=key, path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                key=key,
                path=path,
                goals=list(data.get("goals", [])),
                decisions=list(data.get("decisions", [])),
                rejected=list(data.get("rejected", [])),
                checkpoints=[Checkpoint.from_json(c) for c in data.get("checkpoints", [])],
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UsageError(
                f"The code agent's memory file {str(path)!r} cannot be read ({exc}); "
                "move it away to start afresh."
            ) from exc

    def save(self) -> None:
        """Write the file atomically (temp file in the same folder, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for name in ("goals", "decisions", "rejected"):
            setattr(self, name, getattr(self, name)[-MAX_MEMORY_ITEMS:])
        data = {
            "key": self.key,
            "goals": self.goals,
            "decisions": self.decisions,
            "rejected": self.rejected,
            "checkpoints": [c.to_json() for c in self.checkpoints[-MAX_MEMORY_ITEMS:]],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".memory-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def last_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint not undone yet, or `None`."""
        for checkpoint in reversed(self.checkpoints):
            if not checkpoint.undone:
                return checkpoint
        return None

    def prompt_text(self, max_chars: int = 3000) -> str:
        """What the model is told about earlier goals on this notebook, cut to `max_chars`."""
        lines: list[str] = []
        for goal in self.goals[-10:]:
            answer = f" -> {goal.get('answer')}" if goal.get("answer") else ""
            lines.append(f"- goal: {goal['goal']} [{goal.get('verdict', '?')}]{answer}")
        for decision in self.decisions[-10:]:
            lines.append(f"- decision: {decision['decision']}")
        for rejected in self.rejected[-10:]:
            lines.append(f"- rejected by a person or the policy: {rejected['reason']}")
        undone = [c for c in self.checkpoints if c.undone][-5:]
        for checkpoint in undone:
            lines.append(f"- a person undid: {checkpoint.summary or f'turn {checkpoint.turn}'}")
        text = "\n".join(lines)
        return text[-max_chars:]


@dataclass
class UndoResult:
    """What `undo_checkpoint` did.

    Attributes:
        turn: The turn undone.
        ops: The operations applied, as JSON.
        notes: What could not be restored (cells gone since).
        cells: The notebook's cells after the undo (id, name, code).
    """

    turn: int
    ops: list[dict[str, Any]]
    notes: list[str]
    cells: list[CellSnapshot]


async def undo_checkpoint(
    client: Any,
    checkpoint: Checkpoint,
    *,
    memory: NotebookMemory | None = None,
    audit: Any = None,
) -> UndoResult:
    """Undo one turn on a live session: one atomic batch through the live bridge.

    Cells the turn created are deleted, edited cells get their old code and
    name back (overwriting later changes: `force=True`), deleted cells are
    created again in their old place, and the cells re-run.

    Args:
        client: A `LiveClient` on the notebook's session.
        checkpoint: The turn to undo (from `CodeResult.checkpoints` or
            `NotebookMemory.checkpoints`).
        memory: The notebook's memory; the checkpoint is marked undone there and saved.
        audit: An `AuditLog` to write the `undo` record to, or `None`.

    Returns:
        An `UndoResult`.

    Raises:
        UsageError: The checkpoint was undone already.
        LiveError: The session failed or marimo refused the batch.
    """
    if checkpoint.undone:
        raise UsageError(f"Turn {checkpoint.turn} of run {checkpoint.run_id} is already undone.")
    current = await client.cells()
    ops, notes = undo_ops(checkpoint, current)
    if ops:
        await client.apply(ops, force=True)
    after = snapshot(await client.cells())
    checkpoint.undone = True
    if audit is not None:
        audit.write(
            "undo",
            turn=checkpoint.turn,
            undone_run_id=checkpoint.run_id,
            ops=[op.model_dump(mode="json") for op in ops],
            notes=notes,
        )
    if memory is not None:
        for stored in memory.checkpoints:
            if (stored.run_id, stored.turn) == (checkpoint.run_id, checkpoint.turn):
                stored.undone = True
        memory.save()
    return UndoResult(
        turn=checkpoint.turn,
        ops=[op.model_dump(mode="json") for op in ops],
        notes=notes,
        cells=after,
    )
