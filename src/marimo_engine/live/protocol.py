"""Typed bodies of the marimo endpoints and kernel replies the live bridge uses.

Wire facts (marimo 0.25, read from `marimo/_server/`):

- `GET /health` answers `{"status": "healthy"}` without authentication.
- `GET /api/sessions` answers `{session_id: {"session_id": stable_id,
  "filename": str | None, "path": str | None}}`: the outer key is the id a
  client sends as `Marimo-Session-Id`, the inner `session_id` is marimo's
  stable id (`sess-...`).
- `POST /api/kernel/execute` with `{"code": str}` and the header
  `Marimo-Session-Id` answers a `text/event-stream` of `stdout` and `stderr`
  events (`{"data": str}`) and one final `done` event
  (`{"success": bool, "output": {"mimetype": str, "data": str}}`).
  Closing the stream early interrupts the kernel run.
- Servers started with `--no-token` write one JSON file per server to
  `<marimo state dir>/servers/<host>_<port>.json` (`ServerInfo`).

Kernel replies (`CellInfo`, `GraphNode`, `VariableInfo`,
`DataFrameDescription`, `CellChange`) are what `templates` code prints back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchResult",
    "CellChange",
    "CellInfo",
    "CellOp",
    "ColumnInfo",
    "ConsoleChunk",
    "CreateCell",
    "DataFrameDescription",
    "DeleteCell",
    "EditCell",
    "ExecuteRequest",
    "ExecuteResult",
    "GraphNode",
    "MoveCell",
    "NotebookGraph",
    "RunCell",
    "SSEEvent",
    "SSEParser",
    "ServerInfo",
    "SessionInfo",
    "SetUIValue",
    "VariableInfo",
    "iter_sse_events",
    "parse_sessions",
]


class ServerInfo(BaseModel):
    """One running marimo server, as written to marimo's server registry.

    Attributes:
        server_id: `"host:port"`.
        pid: Process id of the server (the `marimo` Python process).
        host: The host it listens on, such as `"127.0.0.1"`.
        port: The TCP port.
        base_url: Path prefix of every route (`""` unless `--base-url`).
        started_at: ISO 8601 start time.
        version: marimo's version, such as `"0.25.2"`.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    server_id: str
    pid: int
    host: str
    port: int
    base_url: str = ""
    started_at: str = ""
    version: str = ""

    @property
    def url(self) -> str:
        """The server's root URL, such as `"http://127.0.0.1:2718"` (no trailing slash)."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.base_url.rstrip('/')}"


class SessionInfo(BaseModel):
    """One kernel session of a server (`GET /api/sessions`).

    Attributes:
        session_id: The id sent as `Marimo-Session-Id` (and used in `/ws?session_id=`).
        stable_id: marimo's stable id of the session (`"sess-..."`).
        filename: The notebook's file name, or `None` for an unsaved notebook.
        path: The notebook's absolute path, or `None`.
    """

    model_config = ConfigDict(frozen=True)

    session_id: str
    stable_id: str | None = None
    filename: str | None = None
    path: str | None = None


def parse_sessions(body: Any) -> list[SessionInfo]:
    """Parse the JSON body of `GET /api/sessions`.

    Args:
        body: The decoded JSON: a mapping of session id to
            `{"session_id", "filename", "path"}`.

    Returns:
        One `SessionInfo` per session, in the server's order.

    Raises:
        ValueError: The body is not such a mapping.
    """
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object of sessions, got {type(body).__name__}")
    sessions = []
    for key, info in body.items():
        if not isinstance(info, dict):
            raise ValueError(f"session {key!r}: expected a JSON object, got {info!r}")
        sessions.append(
            SessionInfo(
                session_id=str(key),
                stable_id=info.get("session_id"),
                filename=info.get("filename"),
                path=info.get("path"),
            )
        )
    return sessions


class ExecuteRequest(BaseModel):
    """Body of `POST /api/kernel/execute`.

    Attributes:
        code: Python source run in the kernel's scratchpad (top-level `await` allowed).
    """

    code: str


class SSEEvent(BaseModel):
    """One server-sent event.

    Attributes:
        event: The event name (`"stdout"`, `"stderr"`, `"done"`); `"message"` when unnamed.
        data: The event's data lines joined with `"\\n"`.
    """

    model_config = ConfigDict(frozen=True)

    event: str
    data: str


class SSEParser:
    """Groups lines of a `text/event-stream` into events (WHATWG HTML, "Server-sent events").

    Feed it the stream's lines one by one (the client reads them from a
    socket, `live._stream.aiter_sse`); `iter_sse_events` runs it over a list.
    Comment lines (`:`) and unknown fields are ignored.

    Attributes:
        dropped: Bytes dropped from the data lines of the event being read
            (lines the reader had to cut), reset when an event ends.
    """

    __slots__ = ("_data", "_event", "dropped")

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self.dropped = 0

    def feed(self, line: str | None, cut: int = 0) -> SSEEvent | None:
        """Take one line (without its line ending); return the event a blank line ends.

        Args:
            line: The line, or `None` when the stream ended (a last block
                without its blank line is returned if it has data).
            cut: Bytes the reader dropped from the line's start; only the
                line's tail is left, so its field name is gone: it is kept
                as data and counted in `dropped`.

        Returns:
            The event the line ended, or `None`.
        """
        if line is None:
            return self._take()
        if cut:
            self._data.append(line)
            self.dropped += cut
            return None
        if line == "":
            done = self._take()
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None

    def _take(self) -> SSEEvent | None:
        if not self._data:
            return None
        return SSEEvent(event=self._event, data="\n".join(self._data))


def iter_sse_events(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Group lines of a `text/event-stream` into events, with `SSEParser`.

    Args:
        lines: The stream's lines without their line endings.

    Yields:
        One `SSEEvent` per blank-line-terminated block that has data; a last
        block without its blank line is still yielded.
    """
    parser = SSEParser()
    for line in itertools.chain(lines, (None,)):
        if (event := parser.feed(line)) is not None:
            yield event


class ConsoleChunk(BaseModel):
    """A piece of console output streamed while code runs in the kernel.

    Attributes:
        channel: `"stdout"` or `"stderr"`.
        text: The text, as written (not split into lines).
    """

    model_config = ConfigDict(frozen=True)

    channel: Literal["stdout", "stderr"]
    text: str


class ExecuteResult(BaseModel):
    """What one `LiveClient.execute()` call produced.

    Attributes:
        success: `False` when the code, or a cell it ran, raised.
        output: The scratchpad's last expression rendered as text (`""` when
            there is none or on failure).
        output_mimetype: The mimetype of `output`, such as `"text/plain"`.
        stdout: Everything written to stdout, in order.
        stderr: Everything written to stderr, in order (tracebacks included).
        error: On failure, the error text (the stderr tracebacks); `None` on success.
        duration_s: Seconds from request to `done`, on a monotonic clock.
        stdout_dropped_chars: Characters of stdout dropped from the start to
            keep the client's memory bounded (`LiveClient.max_output_chars`);
            `stdout` is the tail.
        stderr_dropped_chars: The same for stderr.
    """

    success: bool
    output: str = ""
    output_mimetype: str = "text/plain"
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    duration_s: float = 0.0
    stdout_dropped_chars: int = 0
    stderr_dropped_chars: int = 0

    @property
    def output_text(self) -> str:
        """`output` as LLM-sized plain text: HTML stripped, tables and charts summarised.

        A table becomes its shape, columns and first rows; a Vega-Lite chart
        (altair) its title, mark, encodings and row count; see `_output_text`.
        """
        from marimo_engine.live._output_text import _me_render_text

        return _me_render_text(self.output_mimetype, self.output, 1_000_000)


# --- kernel replies ---------------------------------------------------------


class CellInfo(BaseModel):
    """One cell of the live notebook, with its runtime state.

    Attributes:
        id: marimo's cell id, stable across moves (such as `"Hbol"`).
        name: The cell's name, `""` when unnamed.
        code: The cell's source.
        status: marimo's synthesized status: `"idle"`, `"exception"`,
            `"stale"`, `"cancelled"`, `"interrupted"`, `"marimo-error"`,
            `"disabled"`, `"queued"`, `"running"`; `None` for an empty cell.
        errors: One message per error (runtime exception or graph error).
        output: The cell's last displayed output as text (HTML stripped,
            truncated), or `None` when it has none.
        output_mimetype: The mimetype the output had, or `None`.
        console: The cell's last stdout and stderr, as text.
    """

    id: str
    name: str = ""
    code: str = ""
    status: str | None = None
    errors: list[str] = Field(default_factory=list)
    output: str | None = None
    output_mimetype: str | None = None
    console: str = ""


class GraphNode(BaseModel):
    """One cell in the notebook's dataflow graph.

    Attributes:
        cell_id: The cell's id.
        name: The cell's name, `""` when unnamed.
        defs: Global names the cell defines, sorted.
        refs: Global names the cell reads, sorted.
        parents: Ids of cells it reads from directly.
        children: Ids of cells that read from it directly.
        ancestors: Ids of every cell it depends on, transitively.
        descendants: Ids of every cell that depends on it, transitively
            (what re-runs when it changes).
    """

    cell_id: str
    name: str = ""
    defs: list[str] = Field(default_factory=list)
    refs: list[str] = Field(default_factory=list)
    parents: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    ancestors: list[str] = Field(default_factory=list)
    descendants: list[str] = Field(default_factory=list)


class NotebookGraph(BaseModel):
    """The notebook's dataflow graph, cells in notebook order.

    Attributes:
        cells: One node per cell registered in the graph.
    """

    cells: list[GraphNode] = Field(default_factory=list)

    def node(self, cell_id: str) -> GraphNode:
        """Return the node of a cell by id or name.

        Raises:
            KeyError: No such cell; the message lists the ids that exist.
        """
        for node in self.cells:
            if cell_id in (node.cell_id, node.name):
                return node
        known = ", ".join(repr(n.cell_id) for n in self.cells)
        raise KeyError(f"No cell {cell_id!r} in the graph. Known cells: {known}.")


class VariableInfo(BaseModel):
    """A global variable defined by a cell.

    Attributes:
        name: The variable's name.
        type: Its type's qualified name, such as `"int"` or `"pandas.DataFrame"`.
        repr: A short `repr` (at most about 120 characters).
        cell_id: The id of the cell that defines it.
    """

    name: str
    type: str
    repr: str
    cell_id: str | None = None


class ColumnInfo(BaseModel):
    """A dataframe column.

    Attributes:
        name: The column's name.
        dtype: Its dtype as the library prints it.
        null_count: Missing values in it (pandas: NaN, None and NaT; polars:
            nulls, not NaN); `None` for a lazy frame, whose data is not read.
    """

    name: str
    dtype: str
    null_count: int | None = None


class DataFrameDescription(BaseModel):
    """What an LLM needs to know about a dataframe, within a character budget.

    Attributes:
        name: The variable's name.
        library: `"pandas"` or `"polars"`.
        lazy: Whether it is a polars `LazyFrame`: then only its schema is
            described (nothing is collected), `shape[0]` is `None` and
            there is no sample.
        shape: `(rows, columns)`; rows is `None` for a lazy frame.
        columns: Names, dtypes and null counts, possibly cut to fit the budget.
        columns_truncated: Whether some columns were left out of `columns`.
        sample: The first rows as records of column to value, JSON types
            kept (numbers, booleans, `None` for a missing value); a float NaN
            is `"NaN"`, infinities `"Infinity"`/`"-Infinity"`; other values
            are short strings.
        max_chars: The budget the description was built for (characters of JSON).
    """

    name: str
    library: Literal["pandas", "polars"]
    lazy: bool = False
    shape: tuple[int | None, int]
    columns: list[ColumnInfo] = Field(default_factory=list)
    columns_truncated: bool = False
    sample: list[dict[str, Any]] = Field(default_factory=list)
    max_chars: int = 2000

    def to_text(self) -> str:
        """Return a compact plain-text rendering for a prompt."""
        rows, cols = self.shape
        kind = "LazyFrame" if self.lazy else "DataFrame"
        size = f"{rows} rows" if rows is not None else "rows unknown (lazy, not collected)"
        lines = [f"{self.name}: {self.library} {kind}, {size} x {cols} columns"]

        def column(c: ColumnInfo) -> str:
            nulls = f", {c.null_count} null" if c.null_count else ""
            return f"{c.name} ({c.dtype}{nulls})"

        lines.append(
            "columns: "
            + ", ".join(column(c) for c in self.columns)
            + (", ..." if self.columns_truncated else "")
        )
        if self.sample:
            lines.append(f"first {len(self.sample)} rows:")
            lines.extend(json.dumps(row, ensure_ascii=False) for row in self.sample)
        return "\n".join(lines)


# --- cell operations (a batch is applied atomically) ------------------------


class CreateCell(BaseModel):
    """Create a cell (at the end, or before/after another cell).

    Attributes:
        code: The new cell's source.
        name: A Python identifier naming the cell, or `None`.
        before: Id or name of the cell to insert before (exclusive with `after`).
        after: Id or name of the cell to insert after.
        run: Whether to run it (and, reactively, what depends on it).
        hide_code: Whether the browser shows the cell's code collapsed.
        disabled: Whether marimo must not run it (until enabled again).
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["create"] = "create"
    code: str
    name: str | None = None
    before: str | None = None
    after: str | None = None
    run: bool = True
    hide_code: bool = False
    disabled: bool = False


class EditCell(BaseModel):
    """Change a cell's code and/or name; marimo refuses if it changed since last read.

    Attributes:
        target: Id or name of the cell.
        code: The new source, or `None` to keep it.
        name: A new name, or `None` to keep it.
        run: Whether to run it (and its descendants) afterwards.
        disabled: Disable (`True`) or enable (`False`) the cell; `None` keeps it.
        allow_person_cell: Change the code of a cell whose current code the
            agent did not write (the person's). Off by default: marimo cannot
            tell that someone is typing in a cell (the browser sends typing
            only after a pause), so such an edit could drop what they type.
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["edit"] = "edit"
    target: str
    code: str | None = None
    name: str | None = None
    run: bool = True
    disabled: bool | None = None
    allow_person_cell: bool = False


class DeleteCell(BaseModel):
    """Delete a cell (its definitions are removed from the kernel).

    Attributes:
        target: Id or name of the cell.
        allow_person_cell: Delete a cell whose current code the agent did not
            write (see `EditCell.allow_person_cell`).
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["delete"] = "delete"
    target: str
    allow_person_cell: bool = False


class MoveCell(BaseModel):
    """Move a cell before or after another one (order only, nothing re-runs)."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["move"] = "move"
    target: str
    before: str | None = None
    after: str | None = None


class RunCell(BaseModel):
    """Run a cell, and reactively the cells that depend on it."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["run"] = "run"
    target: str


class SetUIValue(BaseModel):
    """Set the value of a UI element held in a global, as if the person moved it.

    Attributes:
        name: The global variable holding the element, such as `"slider"`.
        value: The new value, in the element's own type (a number for a slider).
    """

    model_config = ConfigDict(extra="forbid")

    op: Literal["set_ui_value"] = "set_ui_value"
    name: str
    value: Any = None


CellOp = Annotated[
    CreateCell | EditCell | DeleteCell | MoveCell | RunCell | SetUIValue,
    Field(discriminator="op"),
]


class CellChange(BaseModel):
    """What one operation of a batch did.

    Attributes:
        op: The operation's kind.
        cell_id: The cell it acted on (the new id for `create`), or `None`
            for `set_ui_value`.
        status: The cell's status after the batch, or `None` when deleted.
        errors: The cell's error messages after the batch.
    """

    op: str
    cell_id: str | None = None
    status: str | None = None
    errors: list[str] = Field(default_factory=list)


class BatchResult(BaseModel):
    """The outcome of an atomic batch of cell operations.

    Attributes:
        changes: One entry per operation, in order.
        execution: The underlying kernel run: console output of the cells
            that ran (tracebacks in `stderr`) and `success=False` when one raised.
    """

    changes: list[CellChange] = Field(default_factory=list)
    execution: ExecuteResult

    @property
    def cell_ids(self) -> list[str]:
        """Ids of the cells acted on, in operation order (`None`s left out)."""
        return [c.cell_id for c in self.changes if c.cell_id is not None]
