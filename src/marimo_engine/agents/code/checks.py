"""Checks a patch before it touches the notebook: syntax and marimo's graph rules.

The notebook as it would be after the patch is compiled with marimo's own
compiler (`marimo._ast.compiler.compile_cell`) and registered in marimo's
own dataflow graph (`marimo._runtime.dataflow.DirectedGraph`), so the rules
are marimo's: a global defined by two cells, and cycles between cells
(marimo docs, "Reactivity": "Global variable names must be unique").

Two repairs are made without asking the model, where they are certain:

- a name a patched cell defines that another cell also defines, and that no
  other cell reads, becomes private to the patched cell (`x` -> `_x`; marimo
  treats `_`-prefixed names as local to their cell);
- a conventional module alias that cells read but no cell defines (`mo`,
  `pd`, `np`, `alt`, `pl`, `plt`) gets an import cell at the top.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from marimo_engine.agents.code.patch import CellDeletion, CellEdit, NewCell, Patch

if TYPE_CHECKING:
    from marimo_engine.live.protocol import CellInfo

__all__ = [
    "ALIASES",
    "CheckOutcome",
    "CheckProblem",
    "DraftCell",
    "Repair",
    "check_patch",
    "draft_notebook",
    "free_cell_name",
    "import_cell_for",
    "make_private",
]

ALIASES: dict[str, str] = {
    "mo": "import marimo as mo",
    "pd": "import pandas as pd",
    "np": "import numpy as np",
    "alt": "import altair as alt",
    "pl": "import polars as pl",
    "plt": "import matplotlib.pyplot as plt",
}
"""Conventional aliases whose missing import is added without asking the model."""

IMPORT_CELL_NAME = "imports"
"""Name of the cell the missing-import repair creates (a suffix is added on a clash)."""

_BUILTINS = frozenset(dir(builtins))


@dataclass
class DraftCell:
    """One cell of the notebook as it would be after the patch.

    Attributes:
        key: The cell's id, or `"new:NAME"` for a cell the patch creates.
        name: The cell's name (`""` when unnamed).
        code: Its source after the patch.
        origin: `"kept"`, `"edited"` or `"created"`.
    """

    key: str
    name: str
    code: str
    origin: Literal["kept", "edited", "created"]


@dataclass(frozen=True)
class CheckProblem:
    """Why a patch cannot be applied as it is.

    Attributes:
        kind: `"syntax"`, `"graph"` (a marimo graph rule) or `"target"` (no such cell).
        cell: The cell's name or id.
        message: One line the model can act on.
    """

    kind: Literal["syntax", "graph", "target"]
    cell: str
    message: str

    def describe(self) -> str:
        """One line: `cell 'x': message`."""
        return f"cell {self.cell!r}: {self.message}"


@dataclass(frozen=True)
class Repair:
    """A change made to a patch (or the notebook) without a model call.

    Attributes:
        kind: `"private_name"` or `"missing_import"`.
        cell: The cell changed or created.
        detail: What was done, one line.
    """

    kind: Literal["private_name", "missing_import"]
    cell: str
    detail: str


@dataclass
class CheckOutcome:
    """The result of `check_patch`.

    Attributes:
        patch: The patch to apply (with repairs made), as pydantic models.
        problems: What is wrong; non-empty means the patch must go back to the model.
        repairs: The repairs made.
        draft: The notebook after the (repaired) patch.
    """

    patch: Patch
    problems: list[CheckProblem] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    draft: list[DraftCell] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the patch may be applied."""
        return not self.problems


def _find(cells: list[DraftCell], target: str) -> int | None:
    for index, cell in enumerate(cells):
        if target in (cell.key, cell.name) or cell.key == f"new:{target}":
            return index
    return None


def draft_notebook(
    cells: list[CellInfo], patch: Patch
) -> tuple[list[DraftCell], list[CheckProblem]]:
    """Return the notebook as it would be after `patch`, and the targets that do not exist.

    Args:
        cells: The notebook's cells now, in order (`LiveClient.cells()`).
        patch: The patch.

    Returns:
        `(draft, problems)`; problems of kind `"target"` name cells that do not exist
        and names used twice.
    """
    draft = [DraftCell(c.id, c.name, c.code, "kept") for c in cells]
    problems: list[CheckProblem] = []
    known = ", ".join(c.name or c.key for c in draft) or "none"
    for op in patch.ops:
        if isinstance(op, NewCell):
            if _find(draft, op.name) is not None:
                problems.append(
                    CheckProblem(
                        "target",
                        op.name,
                        "a cell with this name exists; pick another name or edit that cell",
                    )
                )
                continue
            new = DraftCell(f"new:{op.name}", op.name, op.code, "created")
            if op.after is not None:
                index = _find(draft, op.after)
                if index is None:
                    problems.append(
                        CheckProblem(
                            "target",
                            op.name,
                            f"no cell {op.after!r} to put it after; cells: {known}",
                        )
                    )
                    continue
                draft.insert(index + 1, new)
            else:
                draft.append(new)
            continue
        index = _find(draft, op.target)
        if index is None:
            problems.append(CheckProblem("target", op.target, f"no such cell; cells: {known}"))
            continue
        if isinstance(op, CellEdit):
            cell = draft[index]
            cell.code = op.code
            cell.name = op.name or cell.name
            if cell.origin == "kept":
                cell.origin = "edited"
        elif isinstance(op, CellDeletion):
            del draft[index]
    return draft, problems


def _compile(cell: DraftCell) -> object:
    from marimo._ast.compiler import compile_cell

    return compile_cell(cell.code, cell_id=cell.key)  # type: ignore[arg-type]


def _graph_problems(
    draft: list[DraftCell], compiled: dict[str, object]
) -> tuple[dict[str, set[str]], list[CheckProblem]]:
    """Register the compiled cells in marimo's graph; return multiply-defined names and cycles."""
    from marimo._runtime.dataflow import DirectedGraph

    graph = DirectedGraph()
    for cell in draft:
        if cell.key in compiled:
            graph.register_cell(cell.key, compiled[cell.key])  # type: ignore[arg-type]
    names = {c.key: c.name or c.key for c in draft}
    multiply: dict[str, set[str]] = {}
    for name in graph.get_multiply_defined():
        multiply[name] = {str(k) for k in graph.get_defining_cells(name)}
    problems = []
    for cycle in graph.cycles:
        members = sorted({names.get(str(a), str(a)) for edge in cycle for a in edge})
        problems.append(
            CheckProblem(
                "graph",
                members[0],
                "cells " + ", ".join(repr(m) for m in members) + " read each other's names "
                "(a cycle); marimo cannot run them. Move the shared code into one cell.",
            )
        )
    return multiply, problems


def _local_uses(tree: ast.AST, name: str) -> bool:
    """Whether `name` is bound inside a function, lambda, class or comprehension of the cell."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    comps = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    for node in ast.walk(tree):
        if isinstance(node, scopes + comps):
            for inner in ast.walk(node):
                if inner is node:
                    continue
                if isinstance(inner, ast.arg) and inner.arg == name:
                    return True
                if (
                    isinstance(inner, ast.Name)
                    and inner.id == name
                    and not isinstance(inner.ctx, ast.Load)
                ):
                    return True
                if isinstance(inner, (ast.Global, ast.Nonlocal)) and name in inner.names:
                    return True
    return False


def make_private(code: str, name: str) -> str | None:
    """Rename the global `name` to `_name` throughout a cell's code.

    Args:
        code: The cell's source.
        name: A global the cell defines with plain assignments (or `def`/`class`).

    Returns:
        The new source, or `None` when the rename is not certain: the name
        is also bound in an inner scope, defined by an import, or `_name`
        is already used.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    private = f"_{name}"
    lines = code.splitlines(keepends=True)
    spots: list[tuple[int, int, int]] = []  # (line index, byte column, length)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id == private:
                return None
            if node.id == name:
                spots.append((node.lineno - 1, node.col_offset, len(name)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[0]) == name:
                    return None
        elif (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name == name
        ):
            line = lines[node.lineno - 1].encode()
            keyword_at = line.find(b"def " if not isinstance(node, ast.ClassDef) else b"class ")
            start = line.find(name.encode(), max(keyword_at, 0))
            if start < 0:
                return None
            spots.append((node.lineno - 1, start, len(name)))
    if not spots or _local_uses(tree, name):
        return None
    encoded = [line.encode() for line in lines]
    for row, col, length in sorted(spots, reverse=True):
        line = encoded[row]
        encoded[row] = line[:col] + private.encode() + line[col + length :]
    return b"".join(encoded).decode()


def import_cell_for(draft: list[DraftCell], compiled: dict[str, object]) -> str | None:
    """Return the code of an import cell for conventional aliases read but defined nowhere.

    Args:
        draft: The notebook's cells.
        compiled: Their compiled `CellImpl`s by key (cells that did not compile left out).

    Returns:
        Such as `"import marimo as mo\\nimport pandas as pd"`, or `None` when nothing is missing.
    """
    defined: set[str] = set()
    read: set[str] = set()
    for impl in compiled.values():
        defined |= set(impl.defs)  # type: ignore[attr-defined]
        read |= set(impl.refs)  # type: ignore[attr-defined]
    missing = [alias for alias in ALIASES if alias in read and alias not in defined]
    if not missing:
        return None
    return "\n".join(ALIASES[alias] for alias in missing)


def free_cell_name(cells: Iterable[DraftCell | CellInfo], base: str) -> str:
    """Return `base`, or `base_2`, `base_3` ..., whichever no cell is named yet."""
    taken = {c.name for c in cells}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def check_patch(cells: list[CellInfo], patch: Patch) -> CheckOutcome:
    """Check a patch against the notebook and make the certain repairs.

    Args:
        cells: The notebook's cells now, in order.
        patch: The model's patch.

    Returns:
        A `CheckOutcome`: the (repaired) patch, the problems left (syntax
        errors, marimo graph rules, unknown cells) and the repairs made.
    """
    from marimo_engine.agents.code.patch import CellEdit as _Edit

    ops = list(patch.ops)
    repairs: list[Repair] = []
    for _ in range(3):  # repairs change the draft: check again, a bounded number of times
        current = Patch(ops=ops, summary=patch.summary)
        draft, problems = draft_notebook(cells, current)
        compiled: dict[str, object] = {}
        for cell in draft:
            try:
                compiled[cell.key] = _compile(cell)
            except SyntaxError as exc:
                if cell.origin != "kept":
                    where = f"line {exc.lineno}: " if exc.lineno else ""
                    problems.append(
                        CheckProblem("syntax", cell.name or cell.key, f"{where}{exc.msg}")
                    )
        if problems:
            return CheckOutcome(current, problems, repairs, draft)
        multiply, graph_problems = _graph_problems(draft, compiled)
        changed = False
        for name, keys in sorted(multiply.items()):
            patched = [c for c in draft if c.key in keys and c.origin != "kept"]
            others = [c for c in draft if c.key not in keys and c.key in compiled]
            read_elsewhere = any(name in compiled[c.key].refs for c in others)  # type: ignore[attr-defined]
            fixed = False
            if patched and not read_elsewhere:
                for cell in patched:
                    new_code = make_private(cell.code, name)
                    if new_code is None:
                        continue
                    for index, op in enumerate(ops):
                        label = op.name if isinstance(op, NewCell) else getattr(op, "target", "")
                        if isinstance(op, (NewCell, _Edit)) and (
                            label in (cell.name, cell.key) or f"new:{label}" == cell.key
                        ):
                            ops[index] = op.model_copy(update={"code": new_code})
                            repairs.append(
                                Repair(
                                    "private_name",
                                    cell.name or cell.key,
                                    f"{name!r} is also defined by another cell and read only "
                                    f"here: renamed to '_{name}'",
                                )
                            )
                            fixed = changed = True
                            break
                    if fixed:
                        break
            if not fixed:
                owners = sorted(c.name or c.key for c in draft if c.key in keys)
                graph_problems.append(
                    CheckProblem(
                        "graph",
                        (patched[0].name or patched[0].key) if patched else owners[0],
                        f"{name!r} would be defined by several cells ("
                        + ", ".join(repr(o) for o in owners)
                        + "); marimo allows one. Edit the existing cell, use another name, "
                        f"or make it private ('_{name}') if only this cell reads it.",
                    )
                )
        if changed:
            continue
        if graph_problems:
            return CheckOutcome(current, graph_problems, repairs, draft)
        imports = import_cell_for(draft, compiled)
        if imports is not None:
            name = free_cell_name(draft, IMPORT_CELL_NAME)
            # marimo runs cells in dependency order, so the import cell may go at the end.
            ops.insert(0, NewCell(name=name, code=imports))
            repairs.append(
                Repair("missing_import", name, f"added {imports.replace(chr(10), '; ')!r}")
            )
            continue
        return CheckOutcome(current, [], repairs, draft)
    current = Patch(ops=ops, summary=patch.summary)
    draft, _ = draft_notebook(cells, current)
    return CheckOutcome(current, [], repairs, draft)


def is_builtin(name: str) -> bool:
    """Whether `name` is a Python builtin (never an undefined notebook name)."""
    return name in _BUILTINS
