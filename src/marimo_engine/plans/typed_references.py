"""Typed references: a `$step.path` checked against the JSON schema of the step's output.

The rules are `docs/plan-language.md`'s ("Typed references"). Where the
output's type is declared (a tool's return annotation, a JSON schema given
at registration, a step's own `schema`, a markdown step's text), every path
segment of a reference must exist in it:

- an object schema with `properties` names its fields: another name is an
  `unknown_field` (with close names); `additionalProperties` as a schema
  (a `dict[str, float]`) allows any key; a closed object (`false`, or only
  `properties` as pydantic writes a model, dataclass or `TypedDict`) does not;
- an array schema is indexed by digits (`$s1.sections.0`); a tuple
  (`prefixItems`) up to its length;
- a string, number, boolean or null has no fields;
- a union (`anyOf`, `oneOf`) allows a segment that any branch allows;
- anything else (`{}`, a schema without a type) is not checked further.

A whole reference passed as an argument (`"o2_level": "$s2.level"`) must
also fit the parameter's type: when the JSON types the two schemas allow
have nothing in common (a string for a number), it is a `type_mismatch`.
`integer` and `number` are taken to fit each other.

Everything here works on JSON schemas only: `plans` knows no tools (the
registry hands its schemas in through `ToolCatalog`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Walk", "json_types", "walk_schema"]

_MAX_LISTED = 12
"""Up to this many field names are listed in an `unknown_field` message."""

_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


@dataclass(frozen=True, slots=True)
class Walk:
    """Where a reference's path leads in an output schema.

    Attributes:
        schema: The schema of the value the path names, or `None` when it is
            not known (the walk reached a part that is not declared).
        segment: The first segment that does not exist, or `None`.
        position: Its index in the path (0 for the first segment after the step id).
        message: Why it does not exist, ending with the names that do (and
            close ones); `None` when the path exists or is not known.
    """

    schema: Mapping[str, Any] | None
    segment: str | None = None
    position: int | None = None
    message: str | None = None


def walk_schema(root: Mapping[str, Any], path: tuple[str, ...]) -> Walk:
    """Follow `path` through `root`, an output's JSON schema.

    Args:
        root: The JSON schema of a step's output (local `$ref`s to `#/$defs/...`
            are followed).
        path: The reference's path segments, such as `("sections", "0", "breach")`.

    Returns:
        A `Walk`: the schema reached, or the first segment that does not exist
        with a message naming the fields that do.
    """
    schema: Mapping[str, Any] | None = _deref(root, root)
    for position, segment in enumerate(path):
        if schema is None:
            return Walk(None)
        step = _follow(root, schema, segment)
        if isinstance(step, str):
            return Walk(None, segment, position, step)
        schema = step
    return Walk(schema)


def json_types(root: Mapping[str, Any], schema: Mapping[str, Any] | None) -> frozenset[str] | None:
    """Return the JSON types a schema allows, or `None` when it does not say.

    Args:
        root: The document `schema` belongs to (for `$ref`s).
        schema: A schema reached by `walk_schema`, or `None`.

    Returns:
        Type names (`"string"`, `"number"`, ...; `"integer"` counts as
        `"number"` too), or `None` when any part of the schema allows anything.
    """
    schema = None if schema is None else _deref(root, schema)
    if schema is None:
        return None
    branches = _branches(schema)
    if branches is not None:
        found: set[str] = set()
        for branch in branches:
            types = json_types(root, branch)
            if types is None:
                return None
            found |= types
        return frozenset(found)
    kind = schema.get("type")
    names = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else None
    if names is None:
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            return frozenset(_type_of(value) for value in values) or None
        if "properties" in schema:
            return frozenset({"object"})
        return None
    found = {name for name in names if name in _JSON_TYPES}
    if "integer" in found:
        found.add("number")
    return frozenset(found) or None


def _type_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _deref(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Follow local `$ref`s (`#/$defs/Name`); `None` for one that cannot be followed."""
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema:
        ref = schema["$ref"]
        seen += 1
        if not isinstance(ref, str) or not ref.startswith("#/") or seen > 32:
            return None
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                return None
            target = target[part]
        schema = target
    return schema if isinstance(schema, Mapping) else None


def _branches(schema: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return [option for option in options if isinstance(option, Mapping)]
    return None


def _follow(root: Mapping[str, Any], schema: Mapping[str, Any], segment: str) -> Any:
    """The schema `segment` leads to, `None` when unknown, or a message when it does not exist."""
    branches = _branches(schema)
    if branches is not None:
        reached: list[Mapping[str, Any]] = []
        messages: list[str] = []
        for branch in branches:
            branch = _deref(root, branch)
            if branch is None:
                return None
            if json_types(root, branch) == {"null"}:
                continue  # `X | None`: a path into it follows X
            step = _follow(root, branch, segment)
            if step is None:
                return None
            if isinstance(step, str):
                messages.append(step)
            else:
                reached.append(step)
        if not reached:
            return messages[0] if messages else None
        return reached[0] if len(reached) == 1 else {"anyOf": reached}
    types = json_types(root, schema)
    if types is None:
        return None
    if "object" in types:
        return _follow_object(root, schema, segment)
    if "array" in types:
        return _follow_array(root, schema, segment)
    word = "a text" if types == {"string"} else "a " + " or ".join(sorted(types))
    return f"is {word}, which has no fields"


def _follow_object(root: Mapping[str, Any], schema: Mapping[str, Any], segment: str) -> Any:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    if segment in properties:
        target = properties[segment]
        return _deref(root, target) if isinstance(target, Mapping) else None
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return _deref(root, extra)
    patterns = schema.get("patternProperties")
    if extra is True or patterns or not properties:
        return None  # open: any key may exist
    names = list(properties)
    close = difflib.get_close_matches(segment, names, n=3, cutoff=0.6)
    hint = ("Did you mean " + " or ".join(repr(c) for c in close) + "? ") if close else ""
    listed = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        listed += f", … ({len(names)} in all)"
    return f"has no field {segment!r}. {hint}Its fields: {listed}"


def _follow_array(root: Mapping[str, Any], schema: Mapping[str, Any], segment: str) -> Any:
    if not segment.isdigit():
        return f"is a list, indexed by number ('.0', '.1', ...), so it has no field {segment!r}"
    index = int(segment)
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        if index < len(prefix):
            item = prefix[index]
            return _deref(root, item) if isinstance(item, Mapping) else None
        if schema.get("items") is False:
            return f"is a list of {len(prefix)} items, so it has no item {index}"
    items = schema.get("items")
    return _deref(root, items) if isinstance(items, Mapping) else None
