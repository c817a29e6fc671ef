"""The step-cell compile cache gives what marimo's own compiler gives, cell for cell."""

from __future__ import annotations

import asyncio
import linecache

import pytest
from marimo._ast.compiler import compile_cell, get_filename

from marimo_engine.engine._cells import compile_step_cell
from marimo_engine.engine.compiler import python_string, step_cell_code

CASES = [
    # (variable, step id, refs)
    ("s1", "s1", ()),
    ("s2", "s2", ("s1",)),
    ("s3", "s3", ("s1", "s2")),
    ("s9", "s9", ("s1", "s2")),  # same shape as s3: served from the cache
    ("fetch_data", "fetch-data", ()),
    ("join", "join", tuple(f"w{i}" for i in range(40))),  # more names than letters
    ("x", "x", tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ")),  # 36 one-letter inputs
    ("step_1x", "1x", ("a_b", "a_b_2")),
    ("caf", "café ✓", ("s1",)),  # a non-ASCII id: its literal is longer in bytes
    ("q", 'it\'s "quoted"\n', ("s1",)),  # escapes in the literal
    ("step", "step", ("s1",)),  # the variable is named like the runner's method
    ("A", "A", ("B",)),  # names that look like the placeholders
    ("AA", "AA", ("AB", "AC")),
]


def _expected(runner: str, variable: str, step_id: str, refs: tuple[str, ...], cell_id: str):
    code = step_cell_code(runner, variable, python_string(step_id), refs)
    return compile_cell(code, cell_id=cell_id)


@pytest.mark.parametrize(("variable", "step_id", "refs"), CASES)
@pytest.mark.parametrize("runner", ["plan_run", "plan_run_1a2b3c"])
def test_compiled_cell_equals_marimos_own(
    runner: str, variable: str, step_id: str, refs: tuple[str, ...]
) -> None:
    cell_id = f"{variable}_cell"
    got = compile_step_cell(runner, variable, step_id, python_string(step_id), refs, cell_id)
    want = _expected(runner, variable, step_id, refs, cell_id)
    assert got.code == want.code
    assert got.key == want.key
    assert got.cell_id == want.cell_id
    assert got.defs == want.defs == {variable}
    assert got.refs == want.refs
    assert got.temporaries == want.temporaries
    assert got.deleted_refs == want.deleted_refs
    assert got.variable_data == want.variable_data
    assert got.language == want.language
    assert got.sql_refs == want.sql_refs
    assert got.closed_over_temporaries == want.closed_over_temporaries
    assert got.import_workspace == want.import_workspace
    assert got.config == want.config
    assert got.markdown == want.markdown
    # The same code objects: bytecode, names, constants, line and column tables.
    for mine, theirs in ((got.body, want.body), (got.last_expr, want.last_expr)):
        assert mine == theirs
        assert mine.co_names == theirs.co_names
        assert mine.co_consts == theirs.co_consts
        assert mine.co_filename == theirs.co_filename == get_filename(cell_id)
        assert list(mine.co_positions()) == list(theirs.co_positions())
    assert linecache.getline(get_filename(cell_id), 1).rstrip("\n") == got.code


def test_each_cell_is_a_fresh_object() -> None:
    """Cells of one shape share no mutable state (marimo sets status on cells)."""
    a = compile_step_cell("plan_run", "s1", "s1", "'s1'", (), "s1")
    b = compile_step_cell("plan_run", "s2", "s2", "'s2'", (), "s2")
    assert a is not b
    assert a.defs is not b.defs and a.config is not b.config and a._status is not b._status


def test_compiled_cell_runs_and_calls_the_runner() -> None:
    calls = []

    class Runner:
        async def step(self, step_id: str, *inputs: object) -> object:
            calls.append((step_id, inputs))
            return f"out-{step_id}"

    cell = compile_step_cell("plan_run", "s2", "s 2", "'s 2'", ("s1",), "s2")
    glbls = {"plan_run": Runner(), "s1": 41}
    asyncio.run(eval(cell.body, glbls))
    assert glbls["s2"] == "out-s 2"
    assert calls == [("s 2", (41,))]


def test_a_cell_not_in_the_plain_form_is_compiled_as_written() -> None:
    """A step cell with more in its call (a keyword argument) is marimo's own compile of it."""
    from marimo_engine.engine._cells import compile_step_cells

    code = "s2 = await plan_run.step('s2', s1, extra=extra)"
    (got,) = compile_step_cells("plan_run", [(code, "s2", "s2", "'s2'", ("s1",), "s2")])
    want = compile_cell(code, cell_id="s2")
    assert got.code == code
    assert got.refs == want.refs == {"plan_run", "s1", "extra"}
    assert got.body == want.body


def test_a_cell_passing_plan_inputs_is_compiled_by_marimo_as_written() -> None:
    """Not the plain form: marimo's compiler, with `plan_inputs` among the refs."""
    from marimo_engine.engine._cells import compile_step_cells
    from marimo_engine.engine.compiler import INPUTS_NAME

    refs = ("s1", INPUTS_NAME)
    code = step_cell_code("plan_run", "s2", python_string("s2"), ("s1",), inputs=True)
    assert code.endswith(", s1, plan_inputs=plan_inputs)")
    (got,) = compile_step_cells("plan_run", [(code, "s2", "s2", python_string("s2"), refs, "c")])
    want = compile_cell(code, cell_id="c")
    assert got.code == want.code and got.body == want.body
    assert got.defs == want.defs == {"s2"}
    assert got.refs == want.refs and {"s1", INPUTS_NAME} <= got.refs
