"""How a tool's signature, type hints and docstring become its schema.

Private to `marimo_engine.tools`: `registry.build_tool_spec` is the one caller.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.json_schema import GenerateJsonSchema

__all__ = [
    "ToolSchemaGenerator",
    "import_path_of",
    "is_async_callable",
    "parameters_schema",
    "parse_docstring",
    "returns_schema",
    "type_hints",
    "type_name",
]

_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ARGS_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments"}
_ARG_ENTRY = re.compile(
    r"^\*{0,2}(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$"
)


class ToolSchemaGenerator(GenerateJsonSchema):
    """Leaves out what has no JSON form (an arbitrary class, a default object)."""

    ignored_warning_kinds: typing.ClassVar[set[str]] = {  # type: ignore[misc]
        "non-serializable-default",
        "skipped-choice",
    }

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
        return {}


def parameters_schema(model: type[BaseModel], accepts_kwargs: bool) -> dict[str, Any]:
    raw = model.model_json_schema(schema_generator=ToolSchemaGenerator)
    properties = raw.get("properties", {})
    for prop in properties.values():
        prop.pop("title", None)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if raw.get("required"):
        schema["required"] = raw["required"]
    schema["additionalProperties"] = accepts_kwargs
    if "$defs" in raw:
        schema["$defs"] = raw["$defs"]
    return schema


def returns_schema(annotation: Any, model_name: str) -> dict[str, Any] | None:
    if annotation is None or annotation is type(None):
        return None
    from pydantic import TypeAdapter

    try:
        adapter = TypeAdapter(annotation, config=None)
        return adapter.json_schema(schema_generator=ToolSchemaGenerator, mode="serialization")
    except Exception:
        try:
            model = create_model(
                f"{model_name}_returns",
                __config__=ConfigDict(arbitrary_types_allowed=True),
                value=(annotation, ...),
            )
            schema = model.model_json_schema(
                schema_generator=ToolSchemaGenerator, mode="serialization"
            )
        except Exception:
            return None
        value = schema.get("properties", {}).get("value")
        if not value:
            return None
        value.pop("title", None)
        if "$defs" in schema:
            value["$defs"] = schema["$defs"]
        return value


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Return the evaluated type hints of a tool, by parameter name (and `"return"`).

    Partials are read through to the function they wrap, callable objects
    through their `__call__`. An annotation that names something not
    reachable from the function's module (a class local to a test, say) is
    left out, so that the parameter is taken as `Any`; the others are kept.
    """
    target: Any = function
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004 - a callable object
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    annotations = getattr(target, "__annotations__", None) or {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    hints: dict[str, Any] = {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            hints[key] = value
            continue
        try:
            hints[key] = eval(value, dict(namespace))  # what get_type_hints does, one by one
        except Exception:
            continue
    return hints


def is_async_callable(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - a callable object
    return (
        call is not None and not inspect.isroutine(function) and inspect.iscoroutinefunction(call)
    )


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Return the summary (first paragraph) and the `Args:` descriptions by name.

    `doc` is cleaned by `inspect.getdoc`, so Google-style section headers
    (`Args:`, `Returns:`, ...) sit at column 0 and entries are indented.
    """
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    in_summary = True
    entry_indent: int | None = None
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(line) if indent == 0 else None
        if header:
            section, in_summary, entry_indent, current = header.group(1), False, None, None
            continue
        if in_summary:
            if stripped:
                summary_lines.append(stripped)
                continue
            in_summary = False
        if section not in _ARGS_SECTIONS or not stripped:
            continue
        if indent == 0:
            section = None  # prose after the section ends it
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_ENTRY.match(stripped)
        if indent <= entry_indent and match:
            current = match.group("name")
            args[current] = match.group("text").strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary_lines), args


def type_name(annotation: Any) -> str:
    if annotation is Any:
        return "any value"
    if typing.get_origin(annotation) is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])  # constraints show in the detail
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def import_path_of(function: Callable[..., Any]) -> tuple[str, str] | None:
    module_name = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    if module_name == "__main__" or "<locals>" in qualname or "<lambda>" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    # `==` covers a classmethod, whose bound method is made anew on each access.
    if obj is function or (inspect.ismethod(function) and obj == function):
        return module_name, qualname
    return None


_JSON_NATIVE: frozenset[Any] = frozenset({str, int, float, bool, type(None), dict, list, object})


def needs_conversion(annotation: Any) -> bool:
    """Whether a JSON value must be converted to give a parameter its annotated type.

    `False` for JSON's own types (`str`, `int`, `float`, `bool`, `None`,
    `list`, `dict`, `Any`, unannotated) and for lists, dicts, unions,
    `Literal`s and `Annotated` of those; `True` for anything else (a
    dataclass, a pydantic model, an `Enum`, a `tuple`, a `date`, ...).
    """
    if annotation is Any or annotation is inspect.Parameter.empty or annotation in _JSON_NATIVE:
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    if origin is typing.Annotated:
        return needs_conversion(typing.get_args(annotation)[0])
    if origin in (list, dict, typing.Union, types.UnionType):
        return any(needs_conversion(arg) for arg in typing.get_args(annotation))
    return True
