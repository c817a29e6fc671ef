"""Pydantic's validation errors of a plan, translated into the plan language's problems.

`load_plan` validates with pydantic; this module turns each error into a
`Problem` whose code, `step_id`, `field` and one-line message follow
`docs/plan-language.md` ("Reading a plan"): `invalid_id` for step ids,
`invalid_plan` for everything else, the field relative to the step when
its id is readable.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from marimo_engine.plans.problems import Problem, ProblemCode
from marimo_engine.plans.schema import Plan, Step, readable_step_id

__all__ = ["plan_problem", "problems_from_validation_error", "show"]


def plan_problem(message: str, field: str | None = None) -> Problem:
    """An `invalid_plan` problem of the plan as a whole."""
    return Problem(step_id=None, field=field, code=ProblemCode.INVALID_PLAN, message=message)


_PLAN_FIELDS = tuple(Plan.model_fields)
_STEP_FIELDS = tuple(info.alias or name for name, info in Step.model_fields.items())
"""The step's fields as a plan spells them (`"schema"`, not the attribute `output_schema`)."""

_EXPECTED = {
    "plan.id": "a non-empty string (or absent, to generate one)",
    "plan.name": "a string",
    "plan.steps": "a list of at least one step object",
    "id": "a string of 1-64 characters of A-Z a-z 0-9 _ -",
    "tool": "a tool name: 1-64 characters of A-Z a-z 0-9 _ -",
    "description": "a string",
    "args": "an object of keyword arguments",
    "run_if": "an expression in a string",
    "intervention_if": "an expression in a string",
    "key_finding": "true or false",
    "requires_approval": "true or false",
    "depends_on": "a list of step ids",
    "timeout_s": "a number of seconds greater than 0",
    "retries": "an integer from 0 to 10",
    # plan language 2: map and sub-plans
    "map": "a reference to a list in a string, such as '$s1.files'",
    "map_concurrency": "an integer of at least 1",
    "map_errors": "'fail' or 'collect'",
    "plan": "the name of a plan or the path of a plan file, in a string",
    "output": "true or false",
    "plan.inputs": "an object of input names to {description, default, required}",
    # plan language 2: contracts and markdown steps
    "expect": "a list of expressions, each in a string",
    "schema": "a JSON schema (an object)",
    "markdown": "a string of markdown text",
}


def problems_from_validation_error(exc: ValidationError, data: object) -> list[Problem]:
    """Translate pydantic's errors for a plan into the spec's problems.

    Args:
        exc: The error raised by `Plan.model_validate(data)`.
        data: The input that was validated (used to read step ids).

    Returns:
        One `Problem` per pydantic error, in pydantic's order; see
        `load_plan` for the codes and fields.
    """
    from marimo_engine.plans.document import has_lone_surrogate

    return [
        _problem_from_error(error, data)
        for error in exc.errors()
        # A key that is not Unicode text is reported by `document_problems`.
        if not any(isinstance(part, str) and has_lone_surrogate(part) for part in error["loc"])
    ]


def _type_word(value: object) -> str:
    names = {
        dict: "an object",
        list: "a list",
        tuple: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def show(value: object) -> str:
    """A value as messages quote it: `'abc' (a string)`, `an object`; at most 60 characters."""
    text = repr(value) if isinstance(value, str | int | float | bool | type(None)) else ""
    if len(text) > 60:
        text = text[:57] + "..."
    word = _type_word(value)
    return f"{text} ({word})" if text else word


def _readable_step_id(data: object, index: object) -> str | None:
    if not isinstance(data, Mapping) or not isinstance(index, int):
        return None
    steps = data.get("steps")
    if not isinstance(steps, list | tuple) or not 0 <= index < len(steps):
        return None
    return readable_step_id(steps[index])


def _suggest_id(value: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", value if isinstance(value, str) else "").strip("_-")
    return text[:64] or "s1"


def _problem_from_error(error: Any, data: object) -> Problem:
    loc = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    value = error.get("input")
    if not loc:
        return plan_problem(
            f"A plan must be an object with a 'steps' list; got {show(value)}. "
            'Write {"steps": [{"id": "s1", "tool": "..."}]}.'
        )
    if loc[0] != "steps" or len(loc) == 1:
        return _plan_level_problem(loc, kind, value)
    index = loc[1]
    if len(loc) == 2:
        return plan_problem(
            f"The step at index {index} must be an object with at least 'id' and 'tool'; "
            f"got {show(value)}.",
            field=f"steps.{index}",
        )
    step_field = ".".join(str(part) for part in loc[2:])
    step_id = _readable_step_id(data, index)
    where = f"Step {step_id!r}" if step_id is not None else f"The step at index {index}"
    field = step_field if step_id is not None else f"steps.{index}.{step_field}"
    name = str(loc[2])
    if kind == "extra_forbidden":
        return Problem(
            step_id=step_id,
            field=field,
            code=ProblemCode.INVALID_PLAN,
            message=_unknown_field_message(where, name, _STEP_FIELDS),
        )
    if name == "id":
        if kind == "missing":
            message = f"{where} has no 'id'; add one such as 's{index + 1}' (ids are unique)."
        else:
            message = (
                f"{where} has the id {show(value)}; a step id must be 1-64 characters "
                f"of A-Z a-z 0-9 _ -, such as {_suggest_id(value)!r}."
            )
        return Problem(step_id=None, field=field, code=ProblemCode.INVALID_ID, message=message)
    if name == "args" and len(loc) > 3:
        message = f"{where}: 'args' keys must be strings (argument names); got the key {value!r}."
        field = "args" if step_id is not None else f"steps.{index}.args"
    elif kind == "missing":
        message = f"{where} has no {name!r}; add it: {_EXPECTED.get(name, 'a value')}."
    else:
        expected = _EXPECTED.get(name, "a valid value")
        if len(loc) > 3 and name == "depends_on":
            expected = "a step id (a string)"
        message = f"{where}: {step_field!r} must be {expected}; got {show(value)}."
    return Problem(step_id=step_id, field=field, code=ProblemCode.INVALID_PLAN, message=message)


def _plan_level_problem(loc: tuple[Any, ...], kind: str, value: object) -> Problem:
    name = str(loc[0])
    field = ".".join(str(part) for part in loc)
    if kind == "extra_forbidden" and name == "inputs" and len(loc) == 3:
        from marimo_engine.plans.schema import PlanInput

        where = f"The plan's input {str(loc[1])!r}"
        allowed = tuple(PlanInput.model_fields)
        return plan_problem(_unknown_field_message(where, str(loc[2]), allowed), field=field)
    if kind == "extra_forbidden":
        return plan_problem(_unknown_field_message("The plan", name, _PLAN_FIELDS), field=field)
    if name == "steps" and kind == "missing":
        return plan_problem(
            "The plan has no 'steps'; add a list with at least one step "
            '({"id": "s1", "tool": "..."}).',
            field="steps",
        )
    if name == "steps" and kind == "too_short":
        return plan_problem(
            "The plan's 'steps' list is empty; add at least one step.", field="steps"
        )
    expected = _EXPECTED.get(f"plan.{name}", "a valid value")
    return plan_problem(f"The plan's {name!r} must be {expected}; got {show(value)}.", field)


def _unknown_field_message(where: str, name: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(a) for a in allowed)
    return f"{where} has an unknown field {name!r}.{hint} Allowed fields: {listed}."
