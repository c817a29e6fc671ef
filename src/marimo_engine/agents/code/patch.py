"""What the code agent's model writes: a patch of cell operations, or a finish.

The model answers every turn through one of two output tools (pydantic-ai
structured output): `apply_patch` with a `Patch` (create, edit and delete
cells, each with its code and a name), or `finish` with a `Finish` (the
answer and the cells that hold it). A patch is checked (`checks.py`,
`policy.py`) and then applied as one atomic batch through the live bridge.
"""

from __future__ import annotations

import keyword
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CellDeletion", "CellEdit", "Finish", "NewCell", "Patch", "PatchOp", "check_cell_name"]


def check_cell_name(name: str) -> str:
    """Return `name` when it is a valid marimo cell name, else raise `ValueError`.

    marimo cell names are Python identifiers that are not keywords (a cell is
    a function in the notebook file, `def name(...)`).
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"cell name {name!r} must be a Python identifier such as 'load_data'")
    return name


class NewCell(BaseModel):
    """Create a cell.

    Attributes:
        op: `"create"`.
        name: The cell's name, a Python identifier (`load_data`); unique in the notebook.
        code: The cell's Python source. Globals it defines are visible to
            other cells; names starting with `_` stay private to the cell.
        after: Id or name of the cell to put it after; `None` appends it.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["create"] = "create"
    name: str
    code: str
    after: str | None = None

    _check_name = field_validator("name")(check_cell_name)


class CellEdit(BaseModel):
    """Replace a cell's code (and optionally its name).

    Attributes:
        op: `"edit"`.
        target: Id or name of the cell.
        code: The whole new source of the cell.
        name: A new name, or `None` to keep the current one.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["edit"] = "edit"
    target: str
    code: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else check_cell_name(value)


class CellDeletion(BaseModel):
    """Delete a cell.

    Attributes:
        op: `"delete"`.
        target: Id or name of the cell.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["delete"] = "delete"
    target: str


PatchOp = Annotated[NewCell | CellEdit | CellDeletion, Field(discriminator="op")]
"""One cell operation of a patch."""


class Patch(BaseModel):
    """Cell operations applied together (all or none), then run with their descendants.

    Attributes:
        ops: The operations, in order (at least one).
        summary: One line saying what the patch does and why.
    """

    model_config = ConfigDict(extra="forbid")

    ops: list[PatchOp] = Field(min_length=1)
    summary: str = ""


class Finish(BaseModel):
    """Declare the goal met.

    Attributes:
        answer: A short answer to the goal, from numbers the cells computed.
        cells: Names (or ids) of the cells that hold the answer.
    """

    model_config = ConfigDict(extra="forbid")

    answer: str
    cells: list[str] = Field(default_factory=list)
