"""The execution monitor: each cell error gets a class, a recovery strategy and the facts for a fix.

`classify(cell)` reads a cell's status, error messages and traceback (from
`LiveClient.cells()`) and returns a `CellError` with its `ErrorClass`;
`gather_facts` then asks the kernel for what a fix needs (the real columns
of a dataframe for a missing column, the names in scope for an undefined
name, the dtypes of the data for a type or value error); `CellError.report()`
is the compact text the model is given: the cell, the traceback's last
frames, the facts and the strategy.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from marimo_engine.agents.code.checks import ALIASES

if TYPE_CHECKING:
    from marimo_engine.live.protocol import (
        CellInfo,
        DataFrameDescription,
        ExecuteResult,
        VariableInfo,
    )

__all__ = [
    "MODULE_PACKAGES",
    "STRATEGIES",
    "CellError",
    "ErrorClass",
    "FactSource",
    "classify",
    "defined_names",
    "gather_facts",
    "last_frames",
    "package_for",
    "timeout_error",
]


class ErrorClass(StrEnum):
    """The classes of cell error, each with its recovery strategy (`STRATEGIES`)."""

    SYNTAX = "syntax"
    GRAPH = "graph"
    UNDEFINED_NAME = "undefined_name"
    MISSING_MODULE = "missing_module"
    MISSING_KEY = "missing_key"
    DATA_VALUE = "data_value"
    TIMEOUT = "timeout"
    RESOURCE_LIMIT = "resource_limit"
    INTERRUPTED = "interrupted"
    OTHER = "other"


STRATEGIES: dict[ErrorClass, str] = {
    ErrorClass.SYNTAX: "Rewrite the cell so that it parses; the line is given.",
    ErrorClass.GRAPH: (
        "Each global may be defined by one cell only and cells may not read each other in a "
        "cycle: edit the cell that already defines the name, rename, or use a private _name."
    ),
    ErrorClass.UNDEFINED_NAME: (
        "Use a name that exists (names in scope are listed), define it in a cell, or import it. "
        "A conventional alias (mo, pd, np, alt, pl, plt) is imported for you."
    ),
    ErrorClass.MISSING_MODULE: (
        "The package is not installed: an install is proposed to the person; otherwise use a "
        "library that is installed."
    ),
    ErrorClass.MISSING_KEY: "Use one of the real columns or keys listed in the facts.",
    ErrorClass.DATA_VALUE: (
        "The data has another type or shape than the code assumes: read the dtypes in the facts "
        "and convert, filter or parse before the operation."
    ),
    ErrorClass.TIMEOUT: (
        "The cell ran longer than allowed and was interrupted: work on a sample, vectorise, or "
        "split the work into smaller cells."
    ),
    ErrorClass.RESOURCE_LIMIT: (
        "The cell hit a memory, CPU-time or process limit: process the data in chunks, select "
        "fewer columns, or sample."
    ),
    ErrorClass.INTERRUPTED: (
        "The run was interrupted (by a person or a limit); do not retry blindly."
    ),
    ErrorClass.OTHER: "Read the traceback and the facts, then fix the cell's code.",
}
"""The recovery strategy of each error class, as told to the model."""

MODULE_PACKAGES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "skimage": "scikit-image",
    "dateutil": "python-dateutil",
    "Bio": "biopython",
    "dotenv": "python-dotenv",
    "attr": "attrs",
    "sentence_transformers": "sentence-transformers",
}
"""Modules whose package on PyPI has another name."""

_MARIMO_CELL_FILE = re.compile(r"__marimo__cell_(\w+?)_\.py")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_NAME_ERROR = re.compile(r"name '(\w+)' is not defined")
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_SUBJECT_ATTR = re.compile(r"'(\w+)' object has no attribute '(\w+)'")

_KEY_TYPES = {"KeyError", "ColumnNotFoundError"}
_DATA_TYPES = {
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
    "IndexError",
    "AttributeError",
    "OverflowError",
    "ParserError",
    "ComputeError",
    "InvalidOperationError",
    "SchemaError",
    "ShapeError",
    "DuplicateError",
    "ConversionException",
    "BinderException",
    "InvalidInputException",
    "OutOfBoundsDatetime",
    "UnicodeDecodeError",
    "DtypeWarning",
    "ArrowInvalid",
    "ArrowTypeError",
    "IntCastingNaNError",
    "CatalogException",
}
_FRAME_TYPES = ("DataFrame", "LazyFrame", "Series")


class FactSource(Protocol):
    """Where facts come from: a `LiveClient` (or anything with these calls)."""

    async def variables(self) -> list[VariableInfo]: ...

    async def describe(self, name: str) -> DataFrameDescription: ...

    async def execute(self, code: str) -> ExecuteResult: ...


@dataclass
class CellError:
    """One failing cell, classified.

    Attributes:
        cell_id: The cell's id.
        cell_name: Its name (`""` when unnamed).
        code: Its source.
        error_class: The class.
        exception: The exception's type name, such as `"KeyError"` (`""` for graph errors).
        message: The error line, such as `"KeyError: 'b'"`.
        subject: What the error is about, when known: the undefined name, the
            missing module, the missing key.
        frames: The traceback's last frames, one line each, cell frames as `cell 'x' line N`.
        facts: What a fix needs, gathered from the kernel (`gather_facts`).
    """

    cell_id: str
    cell_name: str
    code: str
    error_class: ErrorClass
    exception: str
    message: str
    subject: str | None = None
    frames: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """`'name' (id)` or `'id'`."""
        return f"{self.cell_name!r} ({self.cell_id})" if self.cell_name else repr(self.cell_id)

    @property
    def signature(self) -> tuple[str, str, str]:
        """What makes two errors "the same": cell, class and message."""
        return (self.cell_id, self.error_class.value, self.message)

    @property
    def strategy(self) -> str:
        """The recovery strategy of the class."""
        return STRATEGIES[self.error_class]

    def report(self) -> str:
        """The compact report given to the model: cell, error, last frames, facts, strategy."""
        lines = [f"Cell {self.label} failed [{self.error_class.value}]: {self.message}"]
        if self.frames:
            lines.append("  last frames:")
            lines.extend(f"    {frame}" for frame in self.frames)
        for key, value in self.facts.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"  {key}: {text}")
        lines.append(f"  strategy: {self.strategy}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The error as plain JSON (for events and the audit log)."""
        return {
            "cell_id": self.cell_id,
            "cell_name": self.cell_name,
            "class": self.error_class.value,
            "exception": self.exception,
            "message": self.message,
            "subject": self.subject,
            "frames": self.frames,
            "facts": self.facts,
        }


def last_frames(console: str, names: dict[str, str] | None = None, keep: int = 3) -> list[str]:
    """Return the last frames of the last traceback in a cell's console text.

    Args:
        console: The cell's console output (marimo writes tracebacks there).
        names: Cell id to name, to label marimo's cell files.
        keep: Frames to keep, counted from the end.

    Returns:
        One line per frame, such as `"cell 'load' line 2: df = pd.read_csv(path)"`
        or `"pandas/core/frame.py line 4330 in __getitem__: indexer = ..."`.
    """
    names = names or {}
    start = console.rfind("Traceback (most recent call last):")
    if start < 0:
        return []
    lines = console[start:].splitlines()
    frames: list[str] = []
    index = 1
    while index < len(lines):
        match = _FRAME.match(lines[index])
        if match:
            source = ""
            if index + 1 < len(lines) and not _FRAME.match(lines[index + 1]):
                nxt = lines[index + 1].strip()
                if nxt and not set(nxt) <= set("^~ "):
                    source = nxt
            file, line, func = match["file"], match["line"], match["func"] or ""
            cell = _MARIMO_CELL_FILE.search(file)
            if cell:
                cell_id = cell.group(1)
                label = names.get(cell_id) or cell_id
                where = f"cell {label!r} line {line}"
            else:
                short = file.split("site-packages/")[-1]
                where = f"{short} line {line}" + (f" in {func}" if func else "")
            frames.append(f"{where}: {source}" if source else where)
        index += 1
    return frames[-keep:]


def _exception_of(message: str) -> str:
    head = message.split(":", 1)[0].strip()
    return head.split(".")[-1] if head.replace(".", "").replace("_", "").isalnum() else ""


def classify(cell: CellInfo, names: dict[str, str] | None = None) -> CellError | None:
    """Put a cell's error in a class.

    Args:
        cell: The cell as read with `LiveClient.cells()`.
        names: Cell id to name, for labelling traceback frames.

    Returns:
        The `CellError`, or `None` when the cell has no error.
    """
    status = cell.status or ""
    if not cell.errors and status not in ("exception", "marimo-error", "interrupted"):
        return None
    message = (cell.errors[0] if cell.errors else "").strip()
    names = {**(names or {}), **({cell.id: cell.name} if cell.name else {})}
    frames = last_frames(cell.console, names)
    if not message:
        tail = [ln for ln in cell.console.strip().splitlines() if ln.strip()]
        message = tail[-1].strip() if tail else f"the cell ended with status {status!r}"
    exception = _exception_of(message)
    error_class, subject = _class_of(status, exception, message, cell.console)
    return CellError(
        cell_id=cell.id,
        cell_name=cell.name,
        code=cell.code,
        error_class=error_class,
        exception=exception,
        message=" ".join(message.split())[:300],
        subject=subject,
        frames=frames,
    )


def _class_of(
    status: str, exception: str, message: str, console: str
) -> tuple[ErrorClass, str | None]:
    lowered = message.lower()
    if exception in ("SyntaxError", "IndentationError", "TabError"):
        return ErrorClass.SYNTAX, None
    if status == "marimo-error" or any(
        marker in lowered
        for marker in ("redefines variables", "multiply-defined", "in a cycle", "cycle", "nonlocal")
    ):
        return ErrorClass.GRAPH, (_QUOTED.findall(message) or [None])[0]
    if exception in ("KeyboardInterrupt", "MarimoInterrupt") or status == "interrupted":
        return ErrorClass.INTERRUPTED, None
    if exception in ("MemoryError", "RecursionError") or "cannot allocate memory" in lowered:
        return ErrorClass.RESOURCE_LIMIT, None
    if exception == "BlockingIOError" or "resource temporarily unavailable" in lowered:
        return ErrorClass.RESOURCE_LIMIT, None
    if exception in ("NameError", "UnboundLocalError"):
        found = _NAME_ERROR.search(message) or re.search(r"'(\w+)'", message)
        return ErrorClass.UNDEFINED_NAME, found.group(1) if found else None
    if exception == "ModuleNotFoundError" or (
        exception == "ImportError" and "No module" in message
    ):
        found = _NO_MODULE.search(message)
        return ErrorClass.MISSING_MODULE, found.group(1) if found else None
    if exception in _KEY_TYPES or "not in index" in lowered or "are in the [columns]" in lowered:
        found = _QUOTED.findall(message)
        return ErrorClass.MISSING_KEY, found[0] if found else None
    if exception == "AttributeError":
        found = _SUBJECT_ATTR.search(message)
        if found and found.group(1) in _FRAME_TYPES:
            return ErrorClass.MISSING_KEY, found.group(2)
    if exception == "TimeoutError" or "timed out" in lowered:
        return ErrorClass.TIMEOUT, None
    if exception in _DATA_TYPES or (
        exception.endswith(("Exception", "Error"))
        and any(pkg in console for pkg in ("pandas/", "polars/", "numpy/", "duckdb", "pyarrow/"))
    ):
        return ErrorClass.DATA_VALUE, None
    return ErrorClass.OTHER, None


def timeout_error(cell_id: str, cell_name: str, code: str, timeout_s: float) -> CellError:
    """The error of a cell whose run was interrupted after `timeout_s` seconds."""
    return CellError(
        cell_id=cell_id,
        cell_name=cell_name,
        code=code,
        error_class=ErrorClass.TIMEOUT,
        exception="TimeoutError",
        message=f"the run took longer than {timeout_s:g} s and was interrupted",
        facts={"time limit": f"{timeout_s:g} s per turn's run"},
    )


def package_for(module: str) -> str:
    """Return the PyPI package that provides `module` (top-level name; see `MODULE_PACKAGES`)."""
    top = module.split(".")[0]
    return MODULE_PACKAGES.get(top, top.replace("_", "-"))


def _referenced_names(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    seen: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            seen.setdefault(node.id, None)
    return list(seen)


def _subscripted(code: str, key: str) -> list[str]:
    """Names subscripted with `key` (`df['key']`, `df[['key']]`) or read as `df.key`."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if (
                key in {c.value for c in ast.walk(node.slice) if isinstance(c, ast.Constant)}
                and node.value.id not in found
            ):
                found.append(node.value.id)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == key
            and isinstance(node.value, ast.Name)
        ):
            found.append(node.value.id)
    return found


def _is_frame(variable: VariableInfo) -> bool:
    return any(variable.type.endswith(t) for t in ("DataFrame", "LazyFrame"))


async def _columns(source: FactSource, name: str) -> list[str] | None:
    from marimo_engine.errors import LiveError

    try:
        description = await source.describe(name)
    except LiveError:
        return None
    return [c.name for c in description.columns]


async def _keys(source: FactSource, name: str) -> list[str] | None:
    from marimo_engine.errors import LiveError

    if not name.isidentifier():
        return None
    code = (
        "import json as _me_json\n"
        f"print(_me_json.dumps(sorted(map(str, {name}.keys()))[:100]) "
        f"if hasattr({name}, 'keys') else 'null')"
    )
    try:
        result = await source.execute(code)
    except LiveError:
        return None
    if not result.success:
        return None
    try:
        value = json.loads(result.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None
    return value if isinstance(value, list) else None


async def gather_facts(
    error: CellError,
    source: FactSource,
    *,
    cells: list[CellInfo] | None = None,
    data_columns: dict[str, list[str]] | None = None,
    limits: str | None = None,
) -> CellError:
    """Fill `error.facts` with what a fix needs, asking the kernel.

    Args:
        error: The classified error (changed in place and returned).
        source: The kernel (`LiveClient`).
        cells: The notebook's cells, for the names they define.
        data_columns: Columns of the data files given to the agent, by file
            name: the facts when the dataframe never came to exist.
        limits: The sandbox's limits, in words, for resource-limit errors.

    Returns:
        `error`, with `facts` set. Facts that cannot be had are left out;
        kernel errors while gathering never raise.
    """
    from marimo_engine.errors import LiveError

    try:
        variables = await source.variables()
    except LiveError:
        variables = []
    by_name = {v.name: v for v in variables}
    referenced = _referenced_names(error.code)
    facts = error.facts
    if error.error_class is ErrorClass.UNDEFINED_NAME:
        scope = set(by_name)
        for cell in cells or []:
            scope |= defined_names(cell.code)
        names = sorted(n for n in scope if not n.startswith("_"))
        facts["names in scope"] = ", ".join(names) if names else "(none)"
        if error.subject:
            close = difflib.get_close_matches(error.subject, names, n=3, cutoff=0.6)
            if close:
                facts["did you mean"] = ", ".join(close)
            if error.subject in ALIASES:
                facts["import"] = ALIASES[error.subject]
    elif error.error_class is ErrorClass.MISSING_MODULE and error.subject:
        facts["module"] = error.subject
        facts["package"] = package_for(error.subject)
    elif error.error_class is ErrorClass.MISSING_KEY:
        key = error.subject or ""
        owners = _subscripted(error.code, key) if key else []
        owners += [n for n in referenced if n in by_name and n not in owners]
        for name in owners:
            variable = by_name.get(name)
            if variable is None:
                continue
            values = (
                await _columns(source, name) if _is_frame(variable) else await _keys(source, name)
            )
            if values is None:
                continue
            label = "columns" if _is_frame(variable) else "keys"
            facts[f"{name} {label}"] = ", ".join(values[:60]) + (" ..." if len(values) > 60 else "")
            close = difflib.get_close_matches(key, values, n=3, cutoff=0.5) if key else []
            if close:
                facts["did you mean"] = ", ".join(close)
            break
        else:
            for file, columns in (data_columns or {}).items():
                facts[f"columns of {file}"] = ", ".join(columns[:60])
                close = difflib.get_close_matches(key, columns, n=3, cutoff=0.5) if key else []
                if close:
                    facts["did you mean"] = ", ".join(close)
    elif error.error_class is ErrorClass.DATA_VALUE or error.error_class is ErrorClass.OTHER:
        for name in referenced:
            variable = by_name.get(name)
            if variable is None or variable.type in ("module", "function", "builtin_function"):
                continue
            if _is_frame(variable):
                try:
                    description = await source.describe(name)
                except LiveError:
                    continue
                facts[f"{name} dtypes"] = ", ".join(
                    f"{c.name}: {c.dtype}" for c in description.columns[:40]
                )
            else:
                facts[f"{name}"] = f"{variable.type} = {variable.repr}"
        if not facts and data_columns:
            for file, columns in data_columns.items():
                facts[f"columns of {file}"] = ", ".join(columns[:60])
    elif error.error_class is ErrorClass.RESOURCE_LIMIT and limits:
        facts["limits"] = limits
    return error


def defined_names(code: str) -> set[str]:
    """The globals a cell's code binds at its top level (not names local to its functions)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack: list[ast.AST] = list(tree.body)
    while stack:  # top-level bindings only: inner scopes' names are local
        node = stack.pop()
        if isinstance(node, scopes):
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names
