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


def test_undo_finds_the_cells_of_a_reopened_notebook_by_name_and_code() -> None:
    # marimo gives cells new ids each time the file is opened: a checkpoint kept from the
    # agent's session must still undo on the next session of the same notebook.
    fresh = {"b": "K1", "d": "K2", "n": "K3"}
    reopened = [CellInfo(id=fresh[s.id], name=s.name, code=s.code) for s in AFTER]
    ops, notes = undo_ops(checkpoint(), reopened)
    assert notes == []
    assert ops == [
        DeleteCell(target="K3"),
        EditCell(target="K1", code="y = x + 1", name="second"),
        CreateCell(code="x = 1", name="first", before="K1"),
        CreateCell(code="z = 3", name=None, after="K1"),
    ]


def test_undo_says_when_it_also_takes_back_a_later_change() -> None:
    changed = [*AFTER[:2], CellSnapshot("n", "new", "v = y * 3  # the person's tweak")]
    ops, notes = undo_ops(checkpoint(), as_cells(changed))
    assert DeleteCell(target="n") in ops
    assert notes == ["cell 'new' was changed after turn 2; that later change is undone too"]


def test_undo_in_a_later_session_does_not_trust_ids_marimo_gave_again() -> None:
    # marimo's ids are given by position when a file is opened: the id of the cell the
    # turn deleted ('vblA', third) now names the cell the turn created.
    cp = Checkpoint(
        turn=1, run_id="r", goal="g", summary="s", session="http://a#s1",
        before=[CellSnapshot("Hbol", "base", "b = 1"), CellSnapshot("vblA", "note", "n = 1")],
        after=[CellSnapshot("Hbol", "base", "b = 1"), CellSnapshot("kEoh", "extra", "e = 1")],
    )  # fmt: skip
    reopened = [CellInfo(id="Hbol", name="base", code="b = 1"),
                CellInfo(id="vblA", name="extra", code="e = 1")]  # fmt: skip
    ops, notes = undo_ops(cp, reopened, "http://a#s2")
    assert notes == []
    assert ops == [DeleteCell(target="vblA"), CreateCell(code="n = 1", name="note", after="Hbol")]


def test_undo_in_the_turns_own_session_follows_ids_through_a_persons_edit() -> None:
    cp = Checkpoint(
        turn=1, run_id="r", goal="g", summary="s", session="http://a#s1",
        before=[CellSnapshot("a", "", "x = 1")],
        after=[CellSnapshot("a", "", "x = 1"), CellSnapshot("q", "", "y = 2")],
    )  # fmt: skip
    now = [CellInfo(id="a", name="", code="x = 1"), CellInfo(id="q", name="", code="y = 3")]
    ops, notes = undo_ops(cp, now, "http://a#s1")
    assert ops == [DeleteCell(target="q")]
    assert notes == ["cell 'q' was changed after turn 1; that later change is undone too"]
    # in another session the changed, unnamed cell cannot be told from a person's: left alone
    ops, notes = undo_ops(cp, now, "http://a#s2")
    assert ops == [] and notes == ["cell q that turn 1 added is already gone"]
