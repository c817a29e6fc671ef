"""Kernel-side code the live bridge sends to `/api/kernel/execute`, built from templates.

Every call is a fixed template plus its arguments, passed as ONE JSON text
embedded with `repr()` (always a valid Python string literal) and decoded
with `json.loads` in the kernel: no value is ever pasted into code. The
code runs in marimo's scratchpad, drives `marimo._code_mode`, and writes one
reply line to stdout: a marker with a per-call nonce, then JSON
(`{"ok": true, "result": ...}` or `{"ok": false, "error_type", "message", ...}`).
`parse_reply` finds that line in the collected stdout.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

from marimo_engine.errors import UsageError

__all__ = ["MARKER_PREFIX", "TEMPLATE_NAMES", "new_marker", "parse_reply", "render", "strip_reply"]

MARKER_PREFIX = "\x1emarimo-engine-reply:"
"""Start of the reply line; a record separator makes a clash with user output unlikely."""

_PRELUDE = r"""
import json as _me_json
import sys as _me_sys


def _me_name(name):
    return "" if name in ("_", "__", None) else str(name)


def _me_clip(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _me_output_text(output, limit):
    if output is None:
        return None, None
    mimetype = str(getattr(output, "mimetype", "") or "")
    channel = str(getattr(output, "channel", "") or "")
    data = getattr(output, "data", None)
    if "marimo-error" in channel or isinstance(data, list):
        return None, None
    if isinstance(data, dict):  # a mimebundle: the plainest form it has
        for key in ("text/plain", "text/markdown", "text/html", *data):
            if key in data:
                mimetype, data = key, data[key]
                break
    text = _me_render_text(mimetype, data, limit)
    return (text or None), (mimetype or None)


def _me_written():
    # Code the agent last wrote into each cell, kept in the kernel process
    # (a restart forgets it): a cell whose code differs was written by the person.
    import types

    module = _me_sys.modules.get("_marimo_engine_agent")
    if module is None:
        module = types.ModuleType("_marimo_engine_agent")
        module.written = {}
        _me_sys.modules["_marimo_engine_agent"] = module
    return module.written


class PersonCellError(Exception):
    def __init__(self, cell_id, action):
        super().__init__(
            f"Cell {cell_id!r} holds code the person wrote (the agent did not write its "
            f"current code), so the agent will not {action} it by default"
        )
        self.cell_id = cell_id


def _me_status(cell):
    status = cell.status
    return None if status is None else str(status)


def _me_cell_info(cell, limit):
    output, mimetype = _me_output_text(cell.output, limit)
    console = "".join(str(o.data) for o in cell.console_outputs if isinstance(o.data, str))
    return {
        "id": str(cell.id),
        "name": _me_name(cell.name),
        "code": cell.code,
        "status": _me_status(cell),
        "errors": [e.msg for e in cell.errors],
        "output": output,
        "output_mimetype": mimetype,
        "console": _me_clip(console, limit),
    }


def _me_short_type(value):
    cls = type(value)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return module.split(".")[0] + "." + cls.__qualname__


def _me_short_repr(value, limit=120):
    import reprlib

    r = reprlib.Repr()
    r.maxstring = limit
    r.maxother = limit
    r.maxlist = r.maxtuple = r.maxset = r.maxdict = 8
    try:
        text = r.repr(value)
    except Exception as exc:
        text = "<repr failed: " + type(exc).__name__ + ">"
    return _me_clip(" ".join(text.split()), limit)
"""

_MAIN = r"""
try:
    import marimo._code_mode as _me_cm
except ImportError as _me_exc:
    _me_reply = {
        "ok": False,
        "error_type": "CodeModeUnavailable",
        "message": str(_me_exc),
    }
else:
    try:
        _me_reply = {"ok": True, "result": await _me_call(_me_cm, _me_json.loads(__ME_ARGS__))}
    except _me_cm.StaleCellError as _me_exc:
        _me_reply = {
            "ok": False,
            "error_type": "StaleCellError",
            "message": str(_me_exc),
            "cell_id": str(_me_exc.cell_id),
            "stale_cells": sorted(str(c) for c in _me_exc.stale_cells),
        }
    except Exception as _me_exc:
        _me_reply = {
            "ok": False,
            "error_type": type(_me_exc).__name__,
            "message": str(_me_exc.args[0]) if isinstance(_me_exc, KeyError) and _me_exc.args
            else str(_me_exc),
            "cell_id": str(getattr(_me_exc, "cell_id", "") or ""),
        }
_me_sys.stdout.write(__ME_MARKER__ + _me_json.dumps(_me_reply, default=str) + "\n")
_me_sys.stdout.flush()
"""

_BODIES: dict[str, str] = {
    "probe": r"""
async def _me_call(cm, args):
    import marimo

    ctx = cm.get_context()
    return {"marimo_version": marimo.__version__, "cells": len(ctx.cells)}
""",
    "cells": r"""
async def _me_call(cm, args):
    ctx = cm.get_context()
    return [_me_cell_info(cell, args["max_output_chars"]) for cell in ctx.cells]
""",
    "graph": r"""
async def _me_call(cm, args):
    ctx = cm.get_context()
    graph = ctx.graph
    names = {str(c.id): _me_name(c.name) for c in ctx.cells}
    order = [str(cid) for cid in ctx.cells.keys()]
    order += [str(cid) for cid in graph.cells if str(cid) not in order]
    nodes = []
    for cid in order:
        impl = graph.cells.get(cid)
        if impl is None:
            continue
        nodes.append({
            "cell_id": cid,
            "name": names.get(cid, ""),
            "defs": sorted(str(n) for n in impl.defs),
            "refs": sorted(str(n) for n in impl.refs),
            "parents": sorted(str(c) for c in graph.parents.get(cid, ())),
            "children": sorted(str(c) for c in graph.children.get(cid, ())),
            "ancestors": sorted(str(c) for c in graph.ancestors(cid)),
            "descendants": sorted(str(c) for c in graph.descendants(cid)),
        })
    return {"cells": nodes}
""",
    "variables": r"""
async def _me_call(cm, args):
    ctx = cm.get_context()
    graph = ctx.graph
    values = ctx.globals
    out = []
    order = [cid for cid in ctx.cells.keys() if cid in graph.cells]
    for cid in order:
        for name in sorted(graph.cells[cid].defs):
            if name not in values:
                continue
            value = values[name]
            out.append({
                "name": str(name),
                "type": _me_short_type(value),
                "repr": _me_short_repr(value, args["max_repr_chars"]),
                "cell_id": str(cid),
            })
    return out
""",
    "describe": r"""
async def _me_call(cm, args):
    ctx = cm.get_context()
    name = args["name"]
    if name not in ctx.globals:
        defined = sorted({str(n) for impl in ctx.graph.cells.values() for n in impl.defs})[:20]
        raise KeyError(
            f"No variable {name!r} in the kernel. Defined: {', '.join(defined) or 'none'}."
        )
    df = ctx.globals[name]
    module = type(df).__module__.split(".")[0]
    kind = type(df).__name__
    if module not in ("pandas", "polars") or kind not in ("DataFrame", "LazyFrame"):
        raise TypeError(
            f"{name!r} is of type {_me_short_type(df)}, not a pandas or polars DataFrame "
            "(or polars LazyFrame); use variables() for other values."
        )
    budget = args["max_chars"]
    cell_chars = args["max_cell_chars"]
    lazy = kind == "LazyFrame"

    def cell_value(value):
        # JSON types kept: numbers, booleans, null; NaN and infinities as strings.
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            try:
                value = value.item()
            except Exception:
                pass
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value != value:
                return "NaN"
            if value in (float("inf"), float("-inf")):
                return "Infinity" if value > 0 else "-Infinity"
            return value
        return _me_clip(value, cell_chars)

    def pandas_value(value):
        # pandas marks every missing value (None, NaN, NaT, NA) the same way: null.
        import pandas as _me_pd

        try:
            missing = bool(_me_pd.isna(value))
        except (TypeError, ValueError):
            missing = False
        return None if missing else cell_value(value)

    if lazy:  # the schema only: collecting could run an arbitrary query
        schema = df.collect_schema()
        columns = [{"name": str(c), "dtype": str(t), "null_count": None} for c, t in schema.items()]
        rows, raw_rows = None, []
    elif module == "pandas":
        nulls = df.isna().sum()
        columns = [
            {"name": str(c), "dtype": str(t), "null_count": int(nulls[c])}
            for c, t in df.dtypes.items()
        ]
        rows = int(df.shape[0])
        raw_rows = df.head(args["max_rows"]).to_dict("records")
    else:
        counts = df.null_count().row(0) if df.width else ()
        columns = [
            {"name": str(c), "dtype": str(t), "null_count": int(n)}
            for c, t, n in zip(df.columns, df.dtypes, counts)
        ]
        rows = int(df.height)
        raw_rows = df.head(args["max_rows"]).to_dicts()
    convert = pandas_value if module == "pandas" else cell_value
    sample = [{str(k): convert(v) for k, v in row.items()} for row in raw_rows]
    result = {
        "name": name,
        "library": module,
        "lazy": lazy,
        "shape": [rows, len(columns)],
        "columns": columns,
        "columns_truncated": False,
        "sample": sample,
        "max_chars": budget,
    }
    while len(_me_json.dumps(result, default=str)) > budget and result["sample"]:
        result["sample"] = result["sample"][:-1]
    while len(_me_json.dumps(result, default=str)) > budget and len(result["columns"]) > 1:
        result["columns"] = result["columns"][: max(1, len(result["columns"]) * 3 // 4)]
        result["columns_truncated"] = True
    return result
""",
    "plan_step": r"""
async def _me_call(cm, args):
    cell_id = args["cell_id"]
    async with cm.get_context(skip_staleness_check=True) as ctx:
        ctx.edit_cell(cell_id, disabled=False)
        ctx.run_cell(cell_id)
    after = cm.get_context()
    runner = after.globals.get(args["runner"])
    records = []
    if runner is not None and hasattr(runner, "records"):
        records = list(runner.records.get(args["step_id"], []))
    cell = after.cells[cell_id] if cell_id in after.cells else None
    return {
        "events": records,
        "status": _me_status(cell) if cell is not None else None,
        "errors": [e.msg for e in cell.errors] if cell is not None else [],
    }
""",
    "batch": r"""
def _me_resolve(ctx, target):
    resolve = getattr(ctx, "_resolve_target", None)
    if resolve is not None:
        return str(resolve(target))
    return str(ctx.cells[target].id)


def _me_guard(ctx, op, cid, action, force):
    # Refuse to change a cell whose code the agent did not write: the person
    # may be typing in it, and the browser sends typing only after a pause.
    if force or op.get("allow_person_cell"):
        return
    current = ctx.cells[cid].code if cid in ctx.cells else ""
    if current.strip() and _me_written().get(cid) != current:
        raise PersonCellError(cid, action)


async def _me_call(cm, args):
    ops = args["ops"]
    force = args["force"]
    touched = []
    wrote = {}
    async with cm.get_context(skip_staleness_check=force) as ctx:
        for op in ops:
            kind = op["op"]
            if kind == "create":
                cid = ctx.create_cell(
                    op["code"],
                    before=op.get("before"),
                    after=op.get("after"),
                    name=op.get("name"),
                    hide_code=op.get("hide_code", False),
                    disabled=op.get("disabled", False),
                )
                if op.get("run", True):
                    ctx.run_cell(cid)
                wrote[str(cid)] = op["code"]
                touched.append((kind, str(cid)))
            elif kind == "edit":
                cid = _me_resolve(ctx, op["target"])
                ctx.edit_cell(
                    op["target"],
                    code=op.get("code"),
                    name=op.get("name"),
                    disabled=op.get("disabled"),
                )  # marimo's own check first: changed since the agent read it
                if op.get("code") is not None:
                    _me_guard(ctx, op, cid, "edit", force)
                    wrote[cid] = op["code"]
                if op.get("run", True):
                    ctx.run_cell(cid)
                touched.append((kind, cid))
            elif kind == "delete":
                cid = _me_resolve(ctx, op["target"])
                _me_guard(ctx, op, cid, "delete", force)
                ctx.delete_cell(op["target"])
                wrote[cid] = None
                touched.append((kind, cid))
            elif kind == "move":
                cid = _me_resolve(ctx, op["target"])
                ctx.move_cell(op["target"], before=op.get("before"), after=op.get("after"))
                touched.append((kind, cid))
            elif kind == "run":
                cid = _me_resolve(ctx, op["target"])
                ctx.run_cell(op["target"])
                touched.append((kind, cid))
            elif kind == "set_ui_value":
                if op["name"] not in ctx.globals:
                    raise KeyError(f"No variable {op['name']!r} holds a UI element.")
                element = ctx.globals[op["name"]]
                if not hasattr(element, "_id"):
                    raise TypeError(
                        f"{op['name']!r} is of type {_me_short_type(element)}, "
                        "not a marimo UI element."
                    )
                ctx.set_ui_value(element, op.get("value"))
                touched.append((kind, None))
            else:
                raise ValueError(f"Unknown cell operation {kind!r}.")
    written = _me_written()
    for cid, code in wrote.items():
        if code is None:
            written.pop(cid, None)
        else:
            written[cid] = code
    after = cm.get_context()
    changes = []
    for kind, cid in touched:
        entry = {"op": kind, "cell_id": cid, "status": None, "errors": []}
        if cid is not None and cid in after.cells:
            cell = after.cells[cid]
            entry["status"] = _me_status(cell)
            entry["errors"] = [e.msg for e in cell.errors]
        changes.append(entry)
    return changes
""",
}

_PRELUDE += (Path(__file__).with_name("_output_text.py")).read_text(encoding="utf-8")

TEMPLATE_NAMES: tuple[str, ...] = tuple(sorted(_BODIES))
"""The templates `render` knows."""


def new_marker() -> str:
    """Return a fresh reply marker: `MARKER_PREFIX` plus a random 16-hex nonce and `:`."""
    return f"{MARKER_PREFIX}{secrets.token_hex(8)}:"


def render(name: str, args: dict[str, Any], *, marker: str) -> str:
    """Return the kernel code of one template call.

    Args:
        name: One of `TEMPLATE_NAMES`.
        args: The call's arguments; must be JSON-serialisable. They reach the
            kernel as one JSON text inside a `repr()` string literal.
        marker: The reply marker from `new_marker()`.

    Returns:
        Python source for `/api/kernel/execute`.

    Raises:
        UsageError: Unknown template, a marker not made by `new_marker`, or
            arguments that are not JSON.
    """
    body = _BODIES.get(name)
    if body is None:
        raise UsageError(f"Unknown template {name!r}. Known: {', '.join(TEMPLATE_NAMES)}.")
    nonce = marker.removeprefix(MARKER_PREFIX).removesuffix(":")
    if not marker.startswith(MARKER_PREFIX) or not nonce.isalnum():
        raise UsageError(f"Bad reply marker {marker!r}: make it with new_marker().")
    try:
        args_json = json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"Arguments of template {name!r} are not JSON: {exc}") from exc
    # One pass, so that a value containing a placeholder's name is never substituted.
    literals = {"__ME_ARGS__": repr(args_json), "__ME_MARKER__": repr(marker)}
    main = re.sub(r"__ME_ARGS__|__ME_MARKER__", lambda m: literals[m.group(0)], _MAIN)
    return _PRELUDE + body + main


def parse_reply(stdout: str, marker: str) -> dict[str, Any] | None:
    """Find and decode the reply line a template call wrote.

    Args:
        stdout: Everything the call wrote to stdout.
        marker: The marker the call was rendered with.

    Returns:
        The decoded reply (`{"ok": ...}`), or `None` when there is no reply
        line (the code was interrupted or failed before replying).
    """
    start = stdout.rfind(marker)
    if start < 0:
        return None
    end = stdout.find("\n", start)
    text = stdout[start + len(marker) : end if end >= 0 else len(stdout)]
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        return None
    return reply if isinstance(reply, dict) else None


def strip_reply(stdout: str, marker: str) -> str:
    """Return `stdout` without the reply line (what the cells and code mode printed)."""
    start = stdout.rfind(marker)
    if start < 0:
        return stdout
    end = stdout.find("\n", start)
    return stdout[:start] + (stdout[end + 1 :] if end >= 0 else "")
