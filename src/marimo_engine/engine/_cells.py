"""marimo's compiled step cells, made cheap: compile one cell per shape, rename the rest.

Every step cell of a compiled plan has the same form::

    s3 = await plan_run.step("s3", s1, s2)

marimo's `compile_cell` parses it, walks the tree with its scoped visitor and
compiles it twice (~100-170 µs a cell on marimo 0.25.2), which was about half
of a plan's first run. Two step cells whose variable, step-id literal and
input names have the same lengths (in UTF-8 bytes) compile to the same
bytecode, line table and column table; they differ only in the names
(`co_names`) and the step id (`co_consts`). So marimo compiles one cell per
shape (with placeholder names of those lengths), and each step cell of that
shape is marimo's compiled result with the names put back: the same code
object marimo's compiler would give (equal as Python compares code objects,
line and column tables included, and with the cell's own file name), and the
same `defs`, `refs` and `variable_data`. A test compares both for many
shapes (tests/unit/engine/test_cells.py).

A cell whose names could collide with the placeholders' (a variable named
like the runner or `step`, a name used twice) is compiled by marimo as is.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["compile_step_cell", "compile_step_cells"]

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _placeholders(length: int) -> Iterator[str]:
    """Distinct identifiers of `length` ASCII letters (upper case: never a keyword but three)."""
    count = len(_LETTERS) ** length
    for number in range(count):
        digits = []
        for _ in range(length):
            number, digit = divmod(number, len(_LETTERS))
            digits.append(_LETTERS[digit])
        name = "".join(reversed(digits))
        if not keyword.iskeyword(name) and name not in ("None", "True", "False"):
            yield name


@functools.lru_cache(maxsize=1024)
def _template(runner: str, shape: tuple[int, ...], literal_bytes: int) -> Any:
    """marimo's compiled cell for one shape, with placeholder names.

    Args:
        runner: The runner's name the cells call.
        shape: Lengths of the variable, then of each input name.
        literal_bytes: UTF-8 length of the step id's string literal.

    Returns:
        `(cell, names, step_id)`: marimo's `CellImpl`, the placeholder names
        in `shape`'s order and the placeholder step id; `None` when one
        length has too few placeholders.
    """
    from marimo._ast.compiler import compile_cell

    from marimo_engine.engine.compiler import step_cell_code

    pools: dict[int, Iterator[str]] = {}
    names: list[str] = []
    for length in shape:
        pool = pools.setdefault(length, _placeholders(length))
        name = next(pool, None)
        while name is not None and name in (runner, "step"):
            name = next(pool, None)
        if name is None:
            return None
        names.append(name)
    step_id = "x" * (literal_bytes - 2)  # its repr: 'xx…x', as long as the literal
    code = step_cell_code(runner, names[0], repr(step_id), names[1:])
    cell = _without_tree(compile_cell(code, cell_id=names[0]))
    if cell.temporaries or cell.deleted_refs or cell.sql_refs or cell.markdown is not None:
        return None  # not the plain form the renaming below assumes
    return cell, tuple(names), step_id


def compile_step_cell(
    runner: str, variable: str, step_id: str, step_literal: str, refs: Sequence[str], cell_id: str
) -> Any:
    """Return marimo's compiled cell (`CellImpl`) of one step cell.

    Args:
        runner: The name the cell calls the runner by (`plan_run`).
        variable: The step's variable: what the cell defines.
        step_id: The step's id.
        step_literal: The step id as the cell's code writes it
            (`compiler.python_string(step_id)`).
        refs: The variables of the step's dependencies, in call order.
        cell_id: The cell's id (its code object's file name names it).

    Returns:
        A fresh `CellImpl`, as `marimo._ast.compiler.compile_cell` returns it
        for this code, except that its syntax tree is left empty (cells kept
        across runs would otherwise keep many small objects for the
        collector to walk).
    """
    from marimo_engine.engine.compiler import step_cell_code

    code = step_cell_code(runner, variable, step_literal, refs)
    return compile_step_cells(
        runner, [(code, variable, step_id, step_literal, tuple(refs), cell_id)]
    )[0]


def compile_step_cells(
    runner: str, cells: Sequence[tuple[str, str, str, str, tuple[str, ...], str]]
) -> list[Any]:
    """`compile_step_cell` for many cells: `(code, variable, step_id, literal, refs, cell_id)`.

    A cell whose `code` is not exactly the plain step-cell form for its
    pieces (`compiler.step_cell_code`) is compiled by marimo as written.

    Returns:
        The `CellImpl`s, in the order given.
    """
    from marimo._ast.compiler import cache, compile_cell, get_filename

    from marimo_engine.engine.compiler import step_cell_code

    marker = "\ufffe"
    head, _, tail = get_filename(marker).rpartition(marker)  # marimo's file name for a cell
    factories = _fresh_fields()
    compiled: list[Any] = []
    for code, variable, step_id, step_literal, refs, cell_id in cells:
        real = (variable, *refs)
        found = None
        plain = code == step_cell_code(runner, variable, step_literal, refs)
        if plain and len(set(real)) == len(real) and runner not in real and "step" not in real:
            shape = tuple(len(name) for name in real)
            found = _template(runner, shape, len(step_literal.encode("utf-8")))
        if found is None:
            compiled.append(_without_tree(compile_cell(code, cell_id=cell_id)))
            continue
        template, names, placeholder_id = found
        rename = dict(zip(names, real, strict=True))
        filename = head + cell_id + tail
        cache(filename, code)  # as marimo's compiler does: tracebacks show the line
        fields = dict(template.__dict__)
        fields.update(
            key=hash(code),
            code=code,
            defs={rename.get(n, n) for n in template.defs},
            refs={rename.get(n, n) for n in template.refs},
            variable_data={
                rename[name]: [_renamed(d, rename) for d in data]
                for name, data in template.variable_data.items()
            },
            body=_adapted(template.body, rename, placeholder_id, step_id, filename),
            last_expr=_adapted(template.last_expr, rename, placeholder_id, step_id, filename),
            cell_id=cell_id,
        )
        for name, factory in factories:
            fields[name] = factory()
        cell = object.__new__(type(template))  # a frozen dataclass: fill its fields directly
        cell.__dict__.update(fields)
        compiled.append(cell)
    return compiled


def _adapted(code: Any, rename: dict[str, str], placeholder: str, step_id: str, file: str) -> Any:
    """The template's code object with the cell's names, step id and file name."""
    return code.replace(
        co_names=tuple(rename.get(n, n) for n in code.co_names),
        co_consts=tuple(step_id if c == placeholder else c for c in code.co_consts),
        co_filename=file,
    )


def _renamed(data: Any, rename: dict[str, str]) -> Any:
    """A copy of a `VariableData` whose required names are the cell's.

    The copy `copy.copy` makes (the same fields, shallow), without its
    `__reduce_ex__` round trip, which was a third of the cost of a cell.
    """
    copied = object.__new__(type(data))
    copied.__dict__.update(data.__dict__)
    copied.required_refs = {rename.get(r, r) for r in data.required_refs}
    return copied


@functools.cache
def _fresh_fields() -> tuple[tuple[str, Any], ...]:
    """`CellImpl`'s fields that hold a cell's own mutable state: (name, factory) pairs.

    Those with a default factory (config, status, output, import workspace,
    closed-over temporaries), and the empty sets and dict a step cell's
    compile gives (`temporaries`, `deleted_refs`, `sql_refs`).
    """
    from marimo._ast.cell import CellImpl

    fresh = [
        (f.name, f.default_factory)
        for f in dataclasses.fields(CellImpl)
        if f.default_factory is not dataclasses.MISSING
    ]
    return (*fresh, ("temporaries", set), ("deleted_refs", set), ("sql_refs", dict))


@functools.cache
def _empty_module() -> Any:
    """One empty syntax tree shared by the cells (the executor never reads `mod`)."""
    import ast

    return ast.Module(body=[], type_ignores=[])


def _without_tree(cell: Any) -> Any:
    return dataclasses.replace(cell, mod=_empty_module())
