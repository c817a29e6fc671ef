"""Checkpoints: diffs, the undo batch, and the per-notebook memory file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marimo_engine.agents.code.checkpoints import (
    CellSnapshot,
    Checkpoint,
    NotebookMemory,
    undo_ops,
)
from marimo_engine.errors import UsageError
from marimo_engine.live.protocol import CellInfo, CreateCell, DeleteCell, EditCell

BEFORE = [
    CellSnapshot("a", "first", "x = 1"),
    CellSnapshot("b", "second", "y = x + 1"),
    CellSnapshot("c", "", "z = 3"),
    CellSnapshot("d", "fourth", "w = 4"),
]
AFTER = [
    CellSnapshot("b", "second", "y = x + 2"),
    CellSnapshot("d", "fourth", "w = 4"),
    CellSnapshot("n", "new", "v = y * 2"),
]


def checkpoint() -> Checkpoint:
    return Checkpoint(turn=2, run_id="code-1", goal="g", summary="rework", before=BEFORE,
                      after=AFTER)  # fmt: skip


def as_cells(snapshots: list[CellSnapshot]) -> list[CellInfo]:
    return [CellInfo(id=s.id, name=s.name, code=s.code) for s in snapshots]


def test_the_diff_lists_added_edited_and_deleted_cells() -> None:
    cp = checkpoint()
    assert (cp.created, cp.edited, cp.deleted) == (["n"], ["b"], ["a", "c"])
    diff = cp.diff()
    assert diff["edited"][0]["before"] == "y = x + 1" and diff["edited"][0]["after"] == "y = x + 2"
    text = cp.diff_text()
    assert "+ added cell 'new'" in text and "- deleted cell 'first'" in text
    assert "-y = x + 1" in text and "+y = x + 2" in text


def test_undo_ops_put_cells_back_in_their_place() -> None:
    ops, notes = undo_ops(checkpoint(), as_cells(AFTER))
    assert notes == []
    assert ops == [
        DeleteCell(target="n"),
        EditCell(target="b", code="y = x + 1", name="second"),
        CreateCell(code="x = 1", name="first", before="b"),  # was first: before the first survivor
        CreateCell(code="z = 3", name=None, after="b"),  # was after 'second'
    ]


def test_undo_notes_cells_gone_since() -> None:
    ops, notes = undo_ops(checkpoint(), as_cells(AFTER[:2]))
    assert DeleteCell(target="n") not in ops
    assert notes == ["cell n that turn 2 added is already gone"]


def test_memory_round_trips_and_feeds_the_prompt(tmp_path: Path) -> None:
    memory = NotebookMemory.load("/work/nb.py", tmp_path)
    memory.goals.append({"goal": "sum it", "verdict": "SUCCESS", "answer": "6"})
    memory.rejected.append({"reason": "cell 'x': imports 'requests' [network: ask]"})
    saved = checkpoint()
    memory.checkpoints.append(saved)
    memory.save()
    again = NotebookMemory.load("/work/nb.py", tmp_path)
    assert again.last_checkpoint() == saved
    text = again.prompt_text()
    assert "goal: sum it [SUCCESS] -> 6" in text and "requests" in text
    assert [p.name for p in tmp_path.iterdir()] == [memory.path.name]  # no temp file left
    again.checkpoints[0].undone = True
    assert again.last_checkpoint() is None


def test_a_broken_memory_file_is_a_clear_error(tmp_path: Path) -> None:
    memory = NotebookMemory.load("/work/nb.py", tmp_path)
    memory.path.write_text(json.dumps({"checkpoints": [{"turn": 1}]}))
    with pytest.raises(UsageError, match="move it away"):
        NotebookMemory.load("/work/nb.py", tmp_path)
