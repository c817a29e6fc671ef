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
6. An object whose class has a `__jsonable__()` method becomes what that
   returns (a step output kept on a Dask worker: `engine.dask_host.RemoteOutput`
   gives the form this fallback computed on the worker).
7. Anything else becomes `{"__type__": "<module.Class>", "repr": repr(obj)}`,
   the repr cut to `MAX_REPR_CHARS` characters.

Nesting deeper than `MAX_DEPTH` is cut with the same repr form; a container
met again inside itself becomes `{"__type__": ..., "cycle": true}`; and after
`MAX_NODES` values the rest are cut to the repr form, so that no output,
self-referencing or huge, can make serialisation loop or run long.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_NODES", "MAX_REPR_CHARS", "MAX_ROWS", "to_jsonable"]

MAX_ROWS = 20
MAX_ITEMS = 10_000
MAX_REPR_CHARS = 2_000
MAX_DEPTH = 32
MAX_NODES = 100_000


def _text(text: str) -> str:
    """The text, with lone surrogates (which UTF-8 JSON cannot hold) replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


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


def _dataframe_form(
    obj: Any, records: list[dict[str, Any]], depth: int, conv: _Converter
) -> dict[str, Any]:
    return {
        "__type__": "DataFrame",
        "shape": [int(obj.shape[0]), int(obj.shape[1])],
        "columns": [str(c) for c in obj.columns],
        "dtypes": {str(c): str(t) for c, t in zip(obj.columns, obj.dtypes, strict=False)},
        "head": conv.convert(records, depth + 1),
    }


def to_jsonable(value: object) -> Any:
    """Return a JSON-compatible form of `value`, following the module's rules.

    Args:
        value: Any Python object, typically a step output.

    Returns:
        An object made only of `dict`, `list`, `str`, `int`, `float`, `bool`
        and `None`, which `json.dumps` accepts. Never raises.
    """
    return _Converter().convert(value, 0)


class _Converter:
    """One conversion: the containers on the current path and a node budget."""

    __slots__ = ("nodes", "path")

    def __init__(self) -> None:
        self.path: set[int] = set()
        self.nodes = 0

    def convert(self, value: object, depth: int) -> Any:
        self.nodes += 1
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, str):
            return _text(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if depth >= MAX_DEPTH or self.nodes > MAX_NODES:
            return _repr_form(value)
        if isinstance(value, Enum):
            return self.convert(value.value, depth + 1)
        if isinstance(value, _dt.datetime | _dt.date | _dt.time):
            return value.isoformat()
        if isinstance(value, bytes | bytearray):
            return {"__type__": "bytes", "size": len(value)}
        key = id(value)
        if key in self.path:
            return {"__type__": _type_name(value), "cycle": True}
        self.path.add(key)
        try:
            return self._container(value, depth)
        finally:
            self.path.discard(key)

    def _container(self, value: Any, depth: int) -> Any:
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return {f: self.convert(getattr(value, f), depth + 1) for f in value._fields}
        if isinstance(value, Mapping):
            return {self._key(k): self.convert(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)[:MAX_ITEMS]
            return [self.convert(v, depth + 1) for v in items]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: self.convert(getattr(value, f.name), depth + 1)
                for f in dataclasses.fields(value)
            }
        try:
            return _special_form(value, depth, self)
        except Exception:
            return _repr_form(value)

    def _key(self, key: object) -> str:
        return _text(key if isinstance(key, str) else str(key))


def _special_form(value: Any, depth: int, conv: _Converter) -> Any:
    module = type(value).__module__
    jsonable = getattr(type(value), "__jsonable__", None)
    if callable(jsonable):
        return conv.convert(jsonable(value), depth + 1)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and hasattr(type(value), "model_fields"):
        return conv.convert(model_dump(mode="python"), depth + 1)
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return _dataframe_form(value, value.head(MAX_ROWS).to_dict(orient="records"), depth, conv)
    if module.startswith("pandas") and type(value).__name__ == "Series":
        return conv.convert(value.head(MAX_ITEMS).to_dict(), depth + 1)
    if module.startswith("polars") and type(value).__name__ == "DataFrame":
        return _dataframe_form(value, value.head(MAX_ROWS).to_dicts(), depth, conv)
    if module.startswith("numpy") and hasattr(value, "tolist"):
        listed = value.tolist()
        if isinstance(listed, list) and len(listed) > MAX_ITEMS:
            listed = listed[:MAX_ITEMS]
        return conv.convert(listed, depth + 1)
    if module.startswith("pandas") and hasattr(value, "isoformat"):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return {"__type__": _type_name(value), "spec": conv.convert(to_dict(), depth + 1)}
    return _repr_form(value)
