"""How the run journal stores step outputs, and the input fingerprint of a step.

Output formats (the `format` column of a step record; docs/runs.md):

- `json`: the value is JSON (`None`, `bool`, `int`, finite `float`, `str`,
  lists and string-keyed dicts of those, nested) and comes back equal. Stored
  as UTF-8 JSON text.
- `arrow`: a pandas or polars `DataFrame`, or a pyarrow `Table`. Stored as an
  Arrow IPC stream (pyarrow); read back as the same kind of frame.
- `pickle`: anything else (a tuple, a datetime, a numpy array, a model).
  Reading a pickle runs code chosen by whoever wrote it, so **only you
  (the user whose state directory holds the journal, or whoever can write
  the PostgreSQL database) may write the journal**: the SQLite file is
  created with mode 0600 in a 0700 directory. A value pickle cannot hold
  (a lock, a generator) is stored as `unstored`: its JSON summary
  (`_json.to_jsonable`); a run resumed from it gets that summary, and
  `runs show` says so.

The fingerprint of a step is `sha256` over the tool name and the resolved
arguments, each argument encoded as above (sorted by name), so two calls with
equal JSON arguments or equal dataframes have the same fingerprint.

A run's plan input values (`encode_values`) are encoded one by one in the
same formats and kept together as one JSON object, so one value that cannot
be stored leaves the others whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "decode_output",
    "decode_values",
    "encode_output",
    "encode_values",
    "fingerprint",
    "same_value",
]

JSON = "json"
ARROW = "arrow"
PICKLE = "pickle"
UNSTORED = "unstored"


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | str):
        return True
    if type(value) is int:
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_is_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _frame_kind(value: Any) -> str | None:
    module = type(value).__module__.split(".", 1)[0]
    name = type(value).__name__
    if module == "pandas" and name == "DataFrame":
        return "pandas"
    if module == "polars" and name == "DataFrame":
        return "polars"
    if module == "pyarrow" and name == "Table":
        return "pyarrow"
    return None


def encode_output(value: Any) -> tuple[str, bytes]:
    """Encode a step output for the journal.

    Args:
        value: What the tool returned.

    Returns:
        `(format, data)`: format one of `json`, `arrow`, `pickle`, `unstored`
        (module docstring), data the bytes to store.
    """
    if _is_json(value):
        return JSON, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    kind = _frame_kind(value)
    if kind is not None:
        import pyarrow as pa

        if kind == "pandas":
            table = pa.Table.from_pandas(value)
        elif kind == "polars":
            table = value.to_arrow()
        else:
            table = value
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"marimo_engine.frame": kind.encode()}
        )
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return ARROW, sink.getvalue()
    import pickle

    try:
        return PICKLE, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        from marimo_engine._json import to_jsonable

        return UNSTORED, json.dumps(to_jsonable(value), ensure_ascii=False).encode()


def decode_output(fmt: str, data: bytes) -> Any:
    """Decode what `encode_output` stored.

    Args:
        fmt: The stored format.
        data: The stored bytes.

    Returns:
        The value (for `unstored`, its JSON summary).

    Raises:
        ValueError: An unknown format (a journal written by a newer version).
    """
    if fmt in (JSON, UNSTORED):
        return json.loads(data.decode())
    if fmt == ARROW:
        import pyarrow as pa

        table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
        kind = (table.schema.metadata or {}).get(b"marimo_engine.frame", b"pyarrow").decode()
        if kind == "pandas":
            return table.to_pandas()
        if kind == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table
    if fmt == PICKLE:
        import pickle

        return pickle.loads(data)  # the journal is the user's own (module docstring)
    raise ValueError(f"unknown output format {fmt!r} in the journal (written by a newer version?)")


def fingerprint(tool: str, args: Mapping[str, Any]) -> str:
    """The input fingerprint of a step: sha256 hex of the tool name and resolved args.

    Args:
        tool: The tool's name.
        args: The keyword arguments the tool is called with.

    Returns:
        64 hex characters.
    """
    digest = hashlib.sha256()
    digest.update(tool.encode())
    for name in sorted(args):
        fmt, data = encode_output(args[name])
        for part in (name.encode(), fmt.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def encode_values(values: Mapping[str, Any], summaries: Collection[str] = ()) -> str:
    """Encode named values (a run's plan inputs) for the journal, each as `encode_output` does.

    Args:
        values: Name to value.
        summaries: Names whose value is already the JSON summary of one that
            could not be stored (read back from the journal): they stay
            `unstored`, so whoever reads them next is told so again.

    Returns:
        JSON text: name to `{"format": F, "value": V}` for `json` and
        `unstored` (V the value or its summary, readable as is), or to
        `{"format": F, "data": B}` for `arrow` and `pickle` (B the bytes in
        base64).
    """
    import base64

    encoded: dict[str, Any] = {}
    for name, value in values.items():
        if name in summaries:
            encoded[name] = {"format": UNSTORED, "value": value}
            continue
        fmt, data = encode_output(value)
        if fmt in (JSON, UNSTORED):
            encoded[name] = {"format": fmt, "value": json.loads(data.decode())}
        else:
            encoded[name] = {"format": fmt, "data": base64.b64encode(data).decode("ascii")}
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def decode_values(text: str) -> tuple[dict[str, Any], list[str]]:
    """Decode what `encode_values` stored.

    Args:
        text: The stored JSON text.

    Returns:
        `(values, unstored)`: name to value (an `unstored` one as its JSON
        summary), and the names of the `unstored` values, in stored order.

    Raises:
        ValueError: The text is not what `encode_values` writes, or a value
            has an unknown format (a journal written by a newer version).
    """
    import base64

    encoded = json.loads(text)
    if not isinstance(encoded, dict):
        raise ValueError("the journaled input values are not a JSON object")
    values: dict[str, Any] = {}
    unstored: list[str] = []
    for name, item in encoded.items():
        fmt = item["format"]
        if fmt in (JSON, UNSTORED):
            values[name] = item["value"]
            if fmt == UNSTORED:
                unstored.append(name)
        else:
            values[name] = decode_output(fmt, base64.b64decode(item["data"]))
    return values, unstored


def same_value(a: Any, b: Any) -> bool:
    """Whether two values are stored the same (equal encodings; no `==` on frames)."""
    return encode_output(a) == encode_output(b)
