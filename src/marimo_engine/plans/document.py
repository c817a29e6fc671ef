"""Checks of a plan document as a whole: how deep it nests, and whether its text is Unicode.

These run before the fields of a plan are read (`load_plan`), on the parsed
JSON (or the dict, or the `Plan` object), and report `invalid_plan`
problems (`docs/plan-language.md`, "Limits"):

- **Nesting.** A field's value (for `args`, each argument's value) may nest
  lists and objects at most `MAX_VALUE_DEPTH` (100) levels deep. Deeper
  values are rejected with the field named; the walk never recurses, so
  even a value nested a million levels deep is a problem, not a crash.
- **Lone surrogates.** JSON can spell a string that is not Unicode text
  (`"\\ud800"`, half of a surrogate pair). Such a string cannot be written as
  UTF-8: not into events, the journal, the notebook file or a terminal. Every
  string of the plan, object keys included, is checked, and the field that
  holds one is named.

Both checks are linear in the size of the plan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from marimo_engine.plans.problems import Problem, ProblemCode
from marimo_engine.plans.references import MAX_VALUE_DEPTH
from marimo_engine.plans.schema import readable_step_id

__all__ = [
    "MAX_VALUE_DEPTH",
    "document_problems",
    "has_lone_surrogate",
    "step_fields_with_problems",
]

_MAX_PATH_SHOWN = 8
"""Path segments shown in a field before it is shortened with `…`."""


def has_lone_surrogate(text: str) -> bool:
    """Return whether `text` holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot encode."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def document_problems(data: object) -> list[Problem]:
    """Return the nesting and text problems of a plan document.

    Args:
        data: The parsed plan: a mapping (the JSON object), or a `Plan`
            (its steps may be mappings or `Step` objects). Anything else has
            no such problems (the schema reports its type).

    Returns:
        One `invalid_plan` problem per value nested deeper than
        `MAX_VALUE_DEPTH` and per string (or object key) holding a lone
        surrogate. A problem in a step whose id is readable carries that
        `step_id` and a `field` relative to the step (`"args.a"`);
        otherwise `field` is dotted from the plan (`"steps.3.tool"`), as
        `load_plan` does.
    """
    problems: list[Problem] = []
    for step_id, base, path, kind in _findings(data):
        problems.append(_problem(step_id, base, path, kind))
    return problems


def step_fields_with_problems(step: object) -> set[str]:
    """Return the names of a raw step's fields that hold a nesting or text problem.

    Args:
        step: A step as written in the plan (a mapping), or a `Step`.

    Returns:
        Field names such as `{"args", "description"}`; empty when the step
        has none. Validation leaves these fields out when it checks the rest
        of a step that did not parse.
    """
    return {base[0] for _, base, _, _ in _step_findings(step, None, None)}


# --- the walk ------------------------------------------------------------------

_Finding = tuple[str | None, tuple[str, ...], tuple[str, ...], str]
"""(step id, base field path, full path, "depth" or "surrogate")."""


def _fields(value: object) -> Mapping[Any, Any] | None:
    if isinstance(value, Mapping):
        return value
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:  # a Plan or Step object: its fields, without a copy
        return {name: getattr(value, name) for name in fields}
    return None


def _findings(data: object) -> Iterator[_Finding]:
    plan = _fields(data)
    if plan is None:
        return
    for key, value in plan.items():
        if isinstance(key, str) and has_lone_surrogate(key):
            yield None, (key,), (key,), "surrogate"
        if key == "steps" and isinstance(value, list | tuple):
            for index, step in enumerate(value):
                yield from _step_findings(step, readable_step_id(step), f"steps.{index}")
        else:
            yield from _value_findings(value, None, (str(key),))


def _step_findings(step: object, step_id: str | None, prefix: str | None) -> Iterator[_Finding]:
    """Findings of one step; paths are relative to the step when `step_id` or `prefix` is `None`."""
    where = () if step_id is not None or prefix is None else (prefix,)
    fields = _fields(step)
    if fields is None:
        yield from _value_findings(step, None, where)
        return
    for key, value in fields.items():
        name = str(key)
        if isinstance(key, str) and has_lone_surrogate(key):
            yield step_id, (*where, name), (*where, name), "surrogate"
        if key == "args" and isinstance(value, Mapping):
            for arg, arg_value in value.items():
                base = (*where, "args", str(arg))
                if isinstance(arg, str) and has_lone_surrogate(arg):
                    yield step_id, base, base, "surrogate"
                yield from _value_findings(arg_value, step_id, base)
        else:
            yield from _value_findings(value, step_id, (*where, name))


def _value_findings(
    value: object, step_id: str | None, base: tuple[str, ...]
) -> Iterator[_Finding]:
    """Walk one value iteratively (no recursion), down to `MAX_VALUE_DEPTH` levels."""
    stack: list[tuple[object, tuple[str, ...], int]] = [(value, base, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item):
                yield step_id, base, path, "surrogate"
            continue
        if isinstance(item, Mapping):
            children = [(str(k), k, v) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            children = [(str(i), None, v) for i, v in enumerate(item)]
        else:
            continue
        if depth >= MAX_VALUE_DEPTH:
            yield step_id, base, path, "depth"
            continue
        for name, key, child in reversed(children):
            if isinstance(key, str) and has_lone_surrogate(key):
                yield step_id, base, (*path, name), "surrogate"
            stack.append((child, (*path, name), depth + 1))


def _dotted(path: tuple[str, ...]) -> str:
    if len(path) > _MAX_PATH_SHOWN:
        path = (
            *path[: _MAX_PATH_SHOWN - 2],
            f"…({len(path) - _MAX_PATH_SHOWN + 1} more)",
            path[-1],
        )
    return ".".join(_escaped(part) for part in path)


def _escaped(text: str) -> str:
    """`text` with lone surrogates written as `\\udxxx` (so that it is valid UTF-8)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _problem(
    step_id: str | None, base: tuple[str, ...], path: tuple[str, ...], kind: str
) -> Problem:
    where = f"Step {step_id!r}: " if step_id is not None else "The plan's "
    if kind == "depth":
        message = (
            f"{where}'{_dotted(base)}' holds lists and objects nested deeper than "
            f"{MAX_VALUE_DEPTH} levels; flatten it (pass a table as a list of rows, or a path "
            "to a file)."
        )
        return Problem(
            step_id=step_id, field=_dotted(base), code=ProblemCode.INVALID_PLAN, message=message
        )
    message = (
        f"{where}'{_dotted(path)}' holds a lone surrogate (a \\ud800-\\udfff escape without "
        "its pair), which is not Unicode text and cannot be written as UTF-8; remove it or "
        "write the whole character (a pair such as \\ud83d\\ude00, or the character itself)."
    )
    return Problem(
        step_id=step_id, field=_dotted(path), code=ProblemCode.INVALID_PLAN, message=message
    )
