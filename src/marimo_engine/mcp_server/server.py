"""Build the marimo-engine MCP server: tools, resources, and where new tools plug in.

`build_server()` returns an `mcp.server.mcpserver.MCPServer` (the official
MCP Python SDK) with:

- the plan tools (`_plans.register_plan_tools`): `list_tools`,
  `validate_plan`, `run_plan`, `export_notebook`;
- the live-notebook tools (`_live.register_live_tools`): `list_sessions`,
  `open_notebook`, `close_notebook`, `execute`, `list_cells`,
  `create_cell`, `edit_cell`, `run_cells`, `delete_cell`, `describe`,
  `variables`, `run_plan_live`;
- the durable-run tools (`_runs.register_run_tools`): `list_runs`,
  `show_run`, `resume_run` on the run journal (docs/runs.md); `run_plan`
  with `journal` records a run they can resume;
- the code agent (`_code.register_code_tools`): `code_goal` works toward a
  goal in a live session under the server's approval policy;
- resources: the plan-language reference, the JSON schemas of the tools a
  plan may call, and the example plans.

Extension point: each group of tools is a `ToolGroup`, a function
`(server, state) -> None` listed in `TOOL_GROUPS`, using `state` for what
the groups share (the tool registry, the session table, the code agent's
model and approval policy).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer

from marimo_engine.mcp_server._code import Approve, register_code_tools
from marimo_engine.mcp_server._docs import plan_language_reference
from marimo_engine.mcp_server._live import register_live_tools
from marimo_engine.mcp_server._plans import register_plan_tools
from marimo_engine.mcp_server._runs import register_run_tools
from marimo_engine.mcp_server._sessions import SessionTable
from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "EXAMPLE_URI",
    "PLAN_LANGUAGE_URI",
    "PLAN_SCHEMA_URI",
    "TOOLS_URI",
    "TOOL_GROUPS",
    "ServerState",
    "ToolGroup",
    "build_server",
]

PLAN_LANGUAGE_URI = "marimo-engine://docs/plan-language"
TOOLS_URI = "marimo-engine://tools/schemas"
PLAN_SCHEMA_URI = "marimo-engine://schemas/plan"
EXAMPLE_URI = "marimo-engine://examples/{name}"

INSTRUCTIONS = """\
marimo-engine runs JSON tool plans as real marimo notebooks and drives live marimo
notebooks. Plans: read the resource marimo-engine://docs/plan-language (its JSON
schema: marimo-engine://schemas/plan), call list_tools, write a plan, check it with
validate_plan, run it with run_plan (or export_notebook). run_plan with 'journal'
records the run; list_runs, show_run and resume_run go on with one that stopped for a
person or failed. Live notebooks:
list_sessions or open_notebook, then pass the session id to execute, list_cells,
create_cell, edit_cell, run_cells, delete_cell, describe, variables and run_plan_live;
code_goal has the code agent write, run and fix cells there until a goal is met.
An error says what to change; a session that is gone says to call list_sessions
again."""


@dataclass
class ServerState:
    """What the tool groups of one server share.

    Attributes:
        registry: The tools a plan may call.
        sessions: The live sessions this server opened or found.
        code_model: The code agent's model when a `code_goal` call names none.
        approve: The code agent's approval policy: `ask` (the person in the
            MCP client, through elicitation), `auto` or `deny`.
    """

    registry: ToolRegistry
    sessions: SessionTable
    code_model: str | None = None
    approve: Approve = "ask"


ToolGroup = Callable[[MCPServer, ServerState], None]
"""Adds a group of tools to the server; see the module docstring."""


def _plan_group(server: MCPServer, state: ServerState) -> None:
    register_plan_tools(server, state.registry)


def _live_group(server: MCPServer, state: ServerState) -> None:
    register_live_tools(server, state.sessions, state.registry)


def _runs_group(server: MCPServer, state: ServerState) -> None:
    register_run_tools(server, state.registry)


def _code_group(server: MCPServer, state: ServerState) -> None:
    register_code_tools(server, state.sessions, model=state.code_model, approve=state.approve)


TOOL_GROUPS: tuple[ToolGroup, ...] = (_plan_group, _runs_group, _live_group, _code_group)
"""The tool groups every server has, in order."""


def _add_resources(server: MCPServer, registry: ToolRegistry) -> None:
    @server.resource(
        PLAN_LANGUAGE_URI,
        name="plan-language",
        title="The plan language",
        description="How to write a plan: steps, args, $references, run_if, intervention_if.",
        mime_type="text/markdown",
    )
    def plan_language() -> str:
        return plan_language_reference()

    @server.resource(
        PLAN_SCHEMA_URI,
        name="plan-schema",
        title="The JSON schema of a plan",
        description="The plan language's JSON schema (draft 2020-12), as `marimo-engine schema` "
        "prints it.",
        mime_type="application/schema+json",
    )
    def plan_schema() -> str:
        from marimo_engine.plans.json_schema import published_plan_schema_text

        return published_plan_schema_text()

    @server.resource(
        TOOLS_URI,
        name="tool-schemas",
        title="Tools a plan may call",
        description="Each tool's name, description and JSON schema of its arguments.",
        mime_type="application/json",
    )
    def tool_schemas() -> str:
        return json.dumps(registry.schemas(), indent=2)

    @server.resource(
        EXAMPLE_URI,
        name="example-plan",
        title="An example plan",
        description=(
            "An example plan shipped with marimo-engine: seattle-weather, hull-check-7, "
            "oxygen-watch, breach-response, air-report."
        ),
        mime_type="application/json",
    )
    def example_plan(name: str) -> str:
        from mcp.server.mcpserver.exceptions import ResourceNotFoundError

        from marimo_engine.errors import UsageError
        from marimo_engine.examples import load_example

        try:
            return json.dumps(load_example(name), indent=2)
        except UsageError as exc:
            raise ResourceNotFoundError(str(exc)) from exc


def build_server(
    registry: ToolRegistry | None = None,
    *,
    sessions: SessionTable | None = None,
    groups: Sequence[ToolGroup] = TOOL_GROUPS,
    code_model: str | None = None,
    approve: Approve = "ask",
    **options: Any,
) -> tuple[MCPServer, ServerState]:
    """Return a new MCP server with marimo-engine's tools and resources, and its state.

    Args:
        registry: The tools plans may call; `None` takes the example and data
            tools (`cli.loading.default_registry()`).
        sessions: The live session table; `None` makes an empty one.
        groups: The tool groups to add (default: `TOOL_GROUPS`).
        code_model: The code agent's default model (`code_goal`).
        approve: The code agent's approval policy (`ServerState.approve`).
        **options: Passed to `MCPServer` (such as `log_level="WARNING"`).

    Returns:
        `(server, state)`. Close `state.sessions` (`close_all()`) when the
        server stops, so that the marimo servers it started stop too.
    """
    from marimo_engine import __version__

    if registry is None:
        from marimo_engine.cli.loading import default_registry

        registry = default_registry()
    if approve not in ("auto", "ask", "deny"):
        from marimo_engine.errors import UsageError

        raise UsageError(f"approve is {approve!r}; use ask, auto or deny.")
    state = ServerState(
        registry=registry,
        sessions=sessions or SessionTable(),
        code_model=code_model,
        approve=approve,
    )
    server: MCPServer = MCPServer(
        "marimo-engine",
        title="marimo-engine",
        instructions=INSTRUCTIONS,
        version=__version__,
        **options,
    )
    for group in groups:
        group(server, state)
    _add_resources(server, registry)
    return server, state
