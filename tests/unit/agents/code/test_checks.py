"""Patch checks with marimo's own compiler and graph, and the certain repairs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marimo_engine.agents.code.checks import check_patch, make_private
from marimo_engine.agents.code.patch import CellDeletion, CellEdit, NewCell, Patch
from marimo_engine.live.protocol import CellInfo

CELLS = [
    CellInfo(id="a1", name="load", code="import pandas as pd\ndf = pd.DataFrame({'x': [1]})"),
    CellInfo(id="b2", name="total", code="total = df['x'].sum()"),
    CellInfo(id="c3", name="", code="tmp = 3"),
]


def test_a_valid_patch_passes_unchanged() -> None:
    patch = Patch(ops=[NewCell(name="double", code="double = total * 2")])
    outcome = check_patch(CELLS, patch)
    assert outcome.ok and not outcome.repairs
    assert outcome.patch == patch
    assert [c.name for c in outcome.draft][-1] == "double"


def test_syntax_errors_name_the_cell_and_line() -> None:
    outcome = check_patch(CELLS, Patch(ops=[NewCell(name="bad", code="x = 1\ny = (")]))
    assert not outcome.ok
    (problem,) = outcome.problems
    assert (problem.kind, problem.cell) == ("syntax", "bad")
    assert problem.message.startswith("line 2:")


def test_a_name_read_by_another_cell_is_a_graph_problem() -> None:
    outcome = check_patch(CELLS, Patch(ops=[NewCell(name="again", code="df = 1")]))
    (problem,) = outcome.problems
    assert problem.kind == "graph" and "'df' would be defined by several cells" in problem.message


def test_a_name_only_used_in_its_cell_becomes_private() -> None:
    code = "tmp = [1, 2]\nresult = sum(tmp)"
    outcome = check_patch(CELLS, Patch(ops=[NewCell(name="mine", code=code)]))
    assert outcome.ok
    assert outcome.patch.ops[0].code == "_tmp = [1, 2]\nresult = sum(_tmp)"
    assert [r.kind for r in outcome.repairs] == ["private_name"]


def test_cycles_are_refused() -> None:
    patch = Patch(ops=[NewCell(name="p", code="p_val = q_val + 1"),
                       NewCell(name="q", code="q_val = p_val + 1")])  # fmt: skip
    outcome = check_patch(CELLS, patch)
    assert [p.kind for p in outcome.problems] == ["graph"]
    assert "cycle" in outcome.problems[0].message


def test_a_missing_conventional_import_is_added() -> None:
    outcome = check_patch(CELLS, Patch(ops=[NewCell(name="show", code="mo.md('hi')")]))
    assert outcome.ok
    first = outcome.patch.ops[0]
    assert isinstance(first, NewCell) and first.code == "import marimo as mo"
    assert [r.kind for r in outcome.repairs] == ["missing_import"]


def test_edits_and_deletions_are_drafted_and_unknown_targets_refused() -> None:
    patch = Patch(ops=[CellEdit(target="total", code="total = 5"), CellDeletion(target="c3")])
    outcome = check_patch(CELLS, patch)
    assert outcome.ok
    assert [(c.key, c.origin) for c in outcome.draft] == [("a1", "kept"), ("b2", "edited")]
    missing = check_patch(CELLS, Patch(ops=[CellDeletion(target="nope")]))
    assert missing.problems[0].kind == "target" and "load" in missing.problems[0].message


def test_deleting_a_definer_leaves_readers_checked() -> None:
    # Deleting `load` leaves `total` reading `df`: marimo allows that (a NameError at run time).
    outcome = check_patch(CELLS, Patch(ops=[CellDeletion(target="load")]))
    assert outcome.ok


def test_cell_names_must_be_identifiers() -> None:
    with pytest.raises(ValidationError, match="Python identifier"):
        NewCell(name="my cell", code="x = 1")
    with pytest.raises(ValidationError):
        Patch(ops=[])


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = 1\nprint(x)", "_x = 1\nprint(_x)"),
        ("def x():\n    return 1\ny = x()", "def _x():\n    return 1\ny = _x()"),
        ("x = 1\nz = obj.x + x", "_x = 1\nz = obj.x + _x"),
        ("x = 1\nf = lambda x: x", None),  # bound again in an inner scope
        ("import x", None),  # defined by an import
        ("x = 1\n_x = 2", None),  # the private name is taken
        ("s = 'é'; x = 1; y = x", "s = 'é'; _x = 1; y = _x"),  # byte offsets
    ],
)
def test_make_private(code: str, expected: str | None) -> None:
    assert make_private(code, "x") == expected
