"""`Problem`: one finding of plan validation, plain JSON for people and models.

The codes and fields come from the plan language spec ("Validation") in
`docs/plan-language.md`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Problem", "ProblemCode"]


class ProblemCode(StrEnum):
    """The closed set of problem codes of the plan language spec ("Validation")."""

    INVALID_PLAN = "invalid_plan"
    INVALID_ID = "invalid_id"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_TOOL = "unknown_tool"
    UNKNOWN_REFERENCE = "unknown_reference"
    SELF_REFERENCE = "self_reference"
    CYCLE = "cycle"
    INVALID_EXPRESSION = "invalid_expression"
    INVALID_ARGS = "invalid_args"
    # plan language 2: map and sub-plans
    INVALID_MAP = "invalid_map"
    ITEM_OUTSIDE_MAP = "item_outside_map"
    UNKNOWN_INPUT = "unknown_input"
    UNKNOWN_PLAN = "unknown_plan"
    RECURSIVE_PLAN = "recursive_plan"
    # plan language 2: contracts and markdown steps
    INVALID_SCHEMA = "invalid_schema"
    UNKNOWN_FIELD = "unknown_field"
    TYPE_MISMATCH = "type_mismatch"


class Problem(BaseModel):
    """One thing wrong with a plan, with a message that says what to change.

    Attributes:
        step_id: The step the problem is in, or `None` for the plan as a whole.
        field: The field, dotted for nested places (`"args.o2_level"`,
            `"steps.2.timeout_s"`), or `None`.
        code: One of `ProblemCode`.
        message: One line: what is wrong, where, and what to do instead.
    """

    model_config = ConfigDict(frozen=True)

    step_id: str | None = Field(
        default=None, description="Step the problem is in; null for the plan."
    )
    field: str | None = Field(
        default=None, description="Offending field, dotted for nested places."
    )
    code: ProblemCode
    message: str

    @field_validator("step_id", "field", "message")
    @classmethod
    def _utf8_text(cls, value: str | None) -> str | None:
        """Write lone surrogates as `\\udxxx`, so that a problem always serialises as UTF-8.

        A plan can spell text that is not Unicode (`"\\ud800"` in JSON); a
        problem about it quotes or names it, and must still reach the person
        or model as JSON (`docs/plan-language.md`, "Limits").
        """
        if value is None or value.isascii():
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8")

    def describe(self) -> str:
        """Return a one-line human form: `step 's3', field 'run_if': message`."""
        where = []
        if self.step_id is not None:
            where.append(f"step {self.step_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message
