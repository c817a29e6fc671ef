"""The live-notebook tools: sessions, code, cells, variables, dataframes, live plan runs.

Every tool but `list_sessions` and `open_notebook` takes `session`, the id
of the kernel session to act on, so several clients on several notebooks
never cross-talk. Calls go through `marimo_engine.live.client.LiveClient`;
its errors become tool errors (`_errors.tool_errors`), and a session that
is gone says to call `list_sessions` again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context  # resolved at run time: the SDK reads the hints
from pydantic import Field

from marimo_engine.errors import LiveError, UsageError
from marimo_engine.mcp_server._errors import session_is_gone, tool_errors
from marimo_engine.mcp_server._plans import (
    PlanArgument,
    PlanInputs,
    check_plan_argument,
    check_plan_inputs,
)
from marimo_engine.mcp_server._results import DEFAULT_MAX_OUTPUT_CHARS, collect_run, summarize_run

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from marimo_engine.live.client import LiveClient
    from marimo_engine.mcp_server._sessions import SessionTable
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["Session", "live_client", "register_live_tools"]

Session = Annotated[
    str,
    Field(
        description=(
            "The kernel session to act on: its id or its stable_id (which survives a browser "
            "reload), from list_sessions or open_notebook."
        )
    ),
]
CellTarget = Annotated[str, Field(description="The cell's id or name, from list_cells.")]


@asynccontextmanager
async def live_client(sessions: SessionTable, session: str) -> AsyncIterator[LiveClient]:
    """A `LiveClient` on the session a tool call names; errors in the block become tool errors.

    A session found gone (its server stopped, marimo forgot it) is dropped
    from the table, and the error says to call `list_sessions` again.

    Args:
        sessions: The server's session table.
        session: The id (or stable id) the call gave.

    Raises:
        ToolError: For any error in the block (`_errors.tool_errors`).
    """
    with tool_errors(session=session):
        known = await sessions.resolve(session)
        try:
            async with sessions.client(known) as client:
                yield client
        except LiveError as exc:
            if session_is_gone(exc):
                await sessions.forget(known.session_id)
            raise


def register_live_tools(server: MCPServer, sessions: SessionTable, registry: ToolRegistry) -> None:
    """Add the live-notebook tools to `server`.

    Args:
        server: The MCP server.
        sessions: The session table every call resolves its `session` in.
        registry: The tools `run_plan_live` may call (importable in the kernel).
    """

    def use(session: str) -> Any:
        return live_client(sessions, session)

    async def list_sessions() -> dict[str, Any]:
        with tool_errors():
            rows = await sessions.list()
        hint = (
            "Pass a session's id as 'session' to the other tools."
            if rows
            else "No session is open: call open_notebook with a notebook path."
        )
        return {"sessions": rows, "hint": hint}

    async def open_notebook(
        path: Annotated[
            str | None,
            Field(description="The notebook .py file (created when missing)."),
        ] = None,
        url: Annotated[
            str | None,
            Field(
                description=(
                    "A running marimo server to use instead of starting one, such as "
                    "'http://127.0.0.1:2718'; its session of the notebook is joined when a "
                    "browser already has one."
                )
            ),
        ] = None,
        token: Annotated[
            str | None, Field(description="That server's access token, if it has one.")
        ] = None,
        run_all: Annotated[
            bool, Field(description="Run every cell once the session is new.")
        ] = True,
    ) -> dict[str, Any]:
        with tool_errors():
            if path is None and url is None:
                raise UsageError("Give the notebook's path (and url= to use a running server).")
            known = await sessions.open(path, url=url, token=token, run_all=run_all)
            return {
                **known.describe(),
                "hint": (
                    "Use this session id in the other tools; a person can watch at "
                    "browser_url. close_notebook ends it."
                ),
            }

    async def close_notebook(session: Session) -> dict[str, Any]:
        with tool_errors(session=session):
            known = await sessions.forget(session)
            if known is None:
                known = await sessions.resolve(session)
                await sessions.forget(known.session_id)
            closed = known.opened_here
            return {
                "session": known.session_id,
                "closed": closed,
                "msg": (
                    "Closed the session and stopped the server this MCP server started for it."
                    if closed
                    else "Forgot the session; it was not opened here, so it stays open."
                ),
            }

    async def execute(
        session: Session,
        code: Annotated[str, Field(description="Python code; top-level await works.")],
        ctx: Context,
        timeout_s: Annotated[
            float | None,
            Field(gt=0, description="Interrupt the run after this many seconds."),
        ] = None,
    ) -> dict[str, Any]:
        chunks = 0

        async def forward(chunk: Any) -> None:
            nonlocal chunks
            chunks += 1
            await ctx.report_progress(float(chunks), None, f"{chunk.channel}: {chunk.text}")

        async with use(session) as client:
            result = await client.execute(code, on_output=forward, timeout_s=timeout_s)
        return {**result.model_dump(mode="json"), "output_text": result.output_text}

    async def list_cells(
        session: Session,
        max_output_chars: Annotated[
            int, Field(ge=0, description="Cut each cell's output and console text to this.")
        ] = 2000,
    ) -> dict[str, Any]:
        async with use(session) as client:
            cells = await client.cells(max_output_chars=max_output_chars)
        return {"cells": [c.model_dump(mode="json") for c in cells]}

    async def create_cell(
        session: Session,
        code: Annotated[str, Field(description="The cell's Python code.")],
        name: Annotated[str | None, Field(description="A name for the cell.")] = None,
        before: Annotated[str | None, Field(description="Put it before this cell.")] = None,
        after: Annotated[str | None, Field(description="Put it after this cell.")] = None,
        run: Annotated[bool, Field(description="Run it (and its descendants).")] = True,
    ) -> dict[str, Any]:
        async with use(session) as client:
            change = await client.create_cell(code, name=name, before=before, after=after, run=run)
        return change.model_dump(mode="json")

    async def edit_cell(
        session: Session,
        cell: CellTarget,
        code: Annotated[str | None, Field(description="The new code; omit to keep it.")] = None,
        name: Annotated[str | None, Field(description="A new name; omit to keep it.")] = None,
        run: Annotated[bool, Field(description="Run it (and its descendants).")] = True,
        force: Annotated[
            bool,
            Field(description="Overwrite even if the person changed the cell since you read it."),
        ] = False,
    ) -> dict[str, Any]:
        async with use(session) as client:
            change = await client.edit_cell(cell, code, name=name, run=run, force=force)
        return change.model_dump(mode="json")

    async def run_cells(
        session: Session,
        cells: Annotated[
            list[str], Field(min_length=1, description="Ids or names of the cells to run.")
        ],
    ) -> dict[str, Any]:
        from marimo_engine.live.protocol import RunCell

        async with use(session) as client:
            result = await client.apply([RunCell(target=c) for c in cells])
        return result.model_dump(mode="json")

    async def delete_cell(session: Session, cell: CellTarget) -> dict[str, Any]:
        async with use(session) as client:
            change = await client.delete_cell(cell)
        return change.model_dump(mode="json")

    async def describe(
        session: Session,
        name: Annotated[str, Field(description="The global holding a pandas or polars DataFrame.")],
        max_chars: Annotated[
            int, Field(ge=200, description="Budget of the description, in characters.")
        ] = 2000,
        max_rows: Annotated[int, Field(ge=0, description="Sample rows at most.")] = 5,
    ) -> dict[str, Any]:
        async with use(session) as client:
            description = await client.describe(name, max_chars=max_chars, max_rows=max_rows)
        return {**description.model_dump(mode="json"), "text": description.to_text()}

    async def variables(
        session: Session,
        max_repr_chars: Annotated[
            int, Field(ge=10, description="Cut each value's repr to this many characters.")
        ] = 120,
    ) -> dict[str, Any]:
        async with use(session) as client:
            found = await client.variables(max_repr_chars=max_repr_chars)
        return {"variables": [v.model_dump(mode="json") for v in found]}

    async def run_plan_live(
        session: Session,
        plan: PlanArgument,
        ctx: Context,
        max_output_chars: Annotated[
            int, Field(ge=100, description="Characters of JSON each output may take.")
        ] = DEFAULT_MAX_OUTPUT_CHARS,
        inputs: PlanInputs = None,
    ) -> dict[str, Any]:
        from marimo_engine.engine.live_run import run_plan_live as run_live

        with tool_errors():
            parsed = check_plan_argument(plan, registry)
            given = check_plan_inputs(parsed, inputs)
        async with use(session) as client:
            run = run_live(parsed, registry, client, inputs=given)
            await collect_run(run, total_steps=len(parsed.steps), report=ctx.report_progress)
        return summarize_run(run.result, max_output_chars=max_output_chars)

    add = server.add_tool
    add(
        list_sessions,
        description=(
            "List the open marimo kernel sessions this server can reach (the ones it opened, "
            "and those of running 'marimo edit' servers), with their ids, notebooks and URLs."
        ),
    )
    add(
        open_notebook,
        description=(
            "Open a notebook in a headless marimo session (no browser needed): starts "
            "'marimo edit --headless' on a free loopback port, or uses the server at 'url'. "
            "Returns the session id the other tools take, and a URL a person can open to watch."
        ),
    )
    add(
        close_notebook,
        description=(
            "Close a session this server opened (and stop the marimo server it started for "
            "it); a session opened elsewhere is only forgotten."
        ),
    )
    add(
        execute,
        description=(
            "Run Python code in the session's kernel (scratchpad: it sees the notebook's "
            "variables, and what it defines stays out of the notebook). stdout and stderr "
            "stream as progress notifications; returns success, the output as text, stdout, "
            "stderr and the error."
        ),
    )
    add(
        list_cells,
        description=(
            "List the notebook's cells in order: id, name, code, status, errors, and output "
            "and console as text. Read a cell here before editing it."
        ),
    )
    add(
        create_cell,
        description=(
            "Add a cell to the notebook (at the end, or before/after a cell) and run it; "
            "marimo re-runs what depends on it. Returns its id, status and errors."
        ),
    )
    add(
        edit_cell,
        description=(
            "Replace a cell's code and/or name and run it; marimo re-runs its descendants. "
            "Fails, changing nothing, when the person edited the cell since you last listed "
            "it: list_cells again and redo the edit."
        ),
    )
    add(
        run_cells,
        description="Run cells by id or name; marimo re-runs their descendants.",
    )
    add(
        delete_cell,
        description="Delete a cell by id or name (see list_cells); the variables it defined go.",
    )
    add(
        describe,
        description=(
            "Describe a pandas or polars DataFrame held in a variable, within a character "
            "budget: shape, columns with dtypes, and sample rows."
        ),
    )
    add(
        variables,
        description="List the variables the cells define, with type and a short repr.",
    )
    add(
        run_plan_live,
        description=(
            "Run a plan inside the live notebook, one cell per step, so the person sees each "
            "step's output appear. Each step event arrives as a progress notification; "
            "returns the verdict, key findings and outputs as run_plan does. Tools must be "
            "importable in the notebook's environment."
        ),
    )
