"""The documented JSON fallback for step outputs that are not JSON.

Events and results carry step outputs as the Python objects the tools
returned. When they are serialised (`model_dump(mode="json")`,
`model_dump_json()`), each output goes through `to_jsonable`:

1. `None`, `bool`, `int`, `str` stay as they are; a finite `float` too, while
   NaN and infinities become `null` (JSON has no such numbers).
2. Mappings become objects (keys through `str()`), lists/tuples/sets become
   arrays, recursively; a named tuple becomes an object of its fields.
3. A pydantic model is dumped in JSON mode; a dataclass becomes an object of
   its fields; `datetime`/`date`/`time` become ISO 8601 strings; `Enum`
   members their value; `bytes` a `{"__type__": "bytes", "size": N}` object.
4. A pandas or polars dataframe becomes `{"__type__": "DataFrame", "shape":
   [rows, columns], "columns": [...], "dtypes": {...}, "head": [first
   `MAX_ROWS` rows as records]}`; a numpy scalar its Python value; a numpy
   array its list (up to `MAX_ITEMS` items).
5. An object with `to_dict()` (an Altair chart, say) becomes
   `{"__type__": "<module.Class>", "spec": obj.to_dict()}` when that works.
6. Anything else becomes `{"__type__": "<module.Class>", "repr": repr(obj)}`,
   the repr cut to `MAX_REPR_CHARS` characters.

Nesting deeper than `MAX_DEPTH` is cut with the same repr form, so that a
self-referencing object cannot loop.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_REPR_CHARS", "MAX_ROWS", "to_jsonable"]

MAX_ROWS = 20
MAX_ITEMS = 10_000
MAX_REPR_CHARS = 2_000
MAX_DEPTH = 32


def _type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _repr_form(obj: object) -> dict[str, Any]:
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ must not break serialisation
        text = f"<unrepresentable: {type(exc).__name__}>"
    if len(text) > MAX_REPR_CHARS:
        text = text[:MAX_REPR_CHARS] + "…"
    return {"__type__": _type_name(obj), "repr": text}


def _dataframe_form(obj: Any, records: list[dict[str, Any]], depth: int) -> dict[str, Any]:
    return {
        "__type__": "DataFrame",
        "shape": [int(obj.shape[0]), int(obj.shape[1])],
        "columns": [str(c) for c in obj.columns],
        "dtypes": {str(c): str(t) for c, t in zip(obj.columns, obj.dtypes, strict=False)},
        "head": to_jsonable(records, depth + 1),
    }


def to_jsonable(value: object, depth: int = 0) -> Any:
    """Return a JSON-compatible form of `value`, following the module's rules.

    Args:
        value: Any Python object, typically a step output.
        depth: Current nesting depth; callers leave it at 0.

    Returns:
        An object made only of `dict`, `list`, `str`, `int`, `float`, `bool`
        and `None`, which `json.dumps` accepts. Never raises.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return _repr_form(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value, depth + 1)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return {"__type__": "bytes", "size": len(value)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {f: to_jsonable(getattr(value, f), depth + 1) for f in value._fields}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)[:MAX_ITEMS]
        return [to_jsonable(v, depth + 1) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name), depth + 1)
            for f in dataclasses.fields(value)
        }
    try:
        return _special_form(value, depth)
    except Exception:
        return _repr_form(value)


def _special_form(value: Any, depth: int) -> Any:
    module = type(value).__module__
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and hasattr(type(value), "model_fields"):
        return to_jsonable(model_dump(mode="python"), depth + 1)
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return _dataframe_form(value, value.head(MAX_ROWS).to_dict(orient="records"), depth)
    if module.startswith("pandas") and type(value).__name__ == "Series":
        return to_jsonable(value.head(MAX_ITEMS).to_dict(), depth + 1)
    if module.startswith("polars") and type(value).__name__ == "DataFrame":
        return _dataframe_form(value, value.head(MAX_ROWS).to_dicts(), depth)
    if module.startswith("numpy"):
        if hasattr(value, "tolist"):
            listed = value.tolist()
            if isinstance(listed, list) and len(listed) > MAX_ITEMS:
                listed = listed[:MAX_ITEMS]
            return to_jsonable(listed, depth + 1)
    if module.startswith("pandas") and hasattr(value, "isoformat"):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return {"__type__": _type_name(value), "spec": to_jsonable(to_dict(), depth + 1)}
    return _repr_form(value)
