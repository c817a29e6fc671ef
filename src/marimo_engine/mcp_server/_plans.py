"""The plan tools: `list_tools`, `validate_plan`, `run_plan`, `export_notebook`.

Each is registered on an `MCPServer` by `register_plan_tools`, with a
description written for a model to read. Plans run with the engine in this
process (`engine.executor.execute_plan`, consumed as an async iterator of
events), each event reported as an MCP progress notification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context  # resolved at run time: the SDK reads the hints
from pydantic import Field

from marimo_engine.errors import UsageError
from marimo_engine.mcp_server._errors import ToolError, problems_message, tool_errors
from marimo_engine.mcp_server._results import DEFAULT_MAX_OUTPUT_CHARS, collect_run, summarize_run

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from marimo_engine.plans.schema import Plan
    from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "PlanArgument",
    "PlanInputs",
    "check_plan_argument",
    "check_plan_inputs",
    "read_plan_argument",
    "register_plan_tools",
]

PlanArgument = Annotated[
    dict[str, Any] | str,
    Field(
        description=(
            "The plan: a JSON object with 'steps' (read the resource "
            "marimo-engine://docs/plan-language for the language), or a string: JSON text, "
            "'example:NAME' for a plan shipped with marimo-engine (such as "
            "'example:seattle-weather'), or the path of a .json file."
        )
    ),
]

PlanInputs = Annotated[
    dict[str, Any] | None,
    Field(
        description=(
            "The plan's input values, by input name (a plan with 'inputs' reads them as "
            "$input.NAME); an input not given takes its default."
        )
    ),
]


def check_plan_inputs(plan: Any, inputs: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check a tool call's `inputs` against the plan's before it runs (`_subplan.input_values`).

    Returns:
        `inputs`, or `None` when empty.

    Raises:
        UsageError: A required input is missing or a name is not an input of
            the plan (the tool call is an error; nothing runs).
    """
    from marimo_engine.engine._subplan import input_values

    input_values(plan, inputs, how="inputs: {{{name!r}: ...}}")
    return inputs or None


MaxOutputChars = Annotated[
    int,
    Field(
        ge=100,
        description="Characters of JSON each step output may take in the result before it is cut.",
    ),
]


def read_plan_argument(plan: dict[str, Any] | str) -> Any:
    """Return the plan JSON a `plan` argument names, not yet validated.

    Args:
        plan: A JSON object, JSON text, `"example:NAME"` or a `.json` path.

    Returns:
        The parsed JSON (validation reports a wrong shape).

    Raises:
        UsageError: Unreadable file, unknown example, or text that is not JSON.
    """
    if not isinstance(plan, str):
        return plan
    text = plan.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"The plan text is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}. Pass the plan as a JSON object instead of a string."
            ) from exc
    if text in ("", "-"):
        raise UsageError(
            "Give the plan as a JSON object, JSON text, 'example:NAME' or the path of a .json file."
        )
    from marimo_engine.cli.loading import read_plan

    return read_plan(text).data


def check_plan_argument(plan: dict[str, Any] | str, registry: ToolRegistry) -> Plan:
    """Return the parsed plan, or raise `ToolError` listing every problem (nothing runs)."""
    from marimo_engine.plans.schema import load_plan
    from marimo_engine.plans.validation import validate_plan

    data = read_plan_argument(plan)
    problems = validate_plan(data, registry)
    if problems:
        raise ToolError(problems_message(problems))
    return load_plan(data)


def _write_notebook(path: str, source: str) -> str:
    from marimo_engine.cli.output import write_text_atomic

    target = Path(path).expanduser()
    if not target.resolve().parent.is_dir():
        raise UsageError(
            f"Cannot write the notebook to {path!r}: folder {str(target.parent)!r} does not "
            "exist; create it or choose another path."
        )
    if target.is_dir():
        raise UsageError(f"Cannot write the notebook to {path!r}: it is a directory.")
    return str(write_text_atomic(target, source).resolve())


def register_plan_tools(server: MCPServer, registry: ToolRegistry) -> None:
    """Add `list_tools`, `validate_plan`, `run_plan` and `export_notebook` to `server`.

    Args:
        server: The MCP server.
        registry: The tools plans may call.
    """

    async def list_tools() -> dict[str, Any]:
        with tool_errors():
            return {"tools": registry.schemas()}

    async def validate_plan(plan: PlanArgument) -> dict[str, Any]:
        from marimo_engine.plans.validation import validate_plan as check

        with tool_errors():
            problems = check(read_plan_argument(plan), registry)
            return {
                "valid": not problems,
                "problems": [p.model_dump(mode="json") for p in problems],
            }

    async def run_plan(
        plan: PlanArgument,
        ctx: Context,
        notebook_path: Annotated[
            str | None,
            Field(description="Also write the run's marimo notebook (.py) to this path."),
        ] = None,
        max_workers: Annotated[
            int | None,
            Field(
                ge=1, description="Threads for plain-function tools at once (default: engine's)."
            ),
        ] = None,
        max_output_chars: MaxOutputChars = DEFAULT_MAX_OUTPUT_CHARS,
        journal: Annotated[
            str | bool | None,
            Field(
                description=(
                    "Record the run in a run journal so that resume_run can go on with it "
                    "after an intervention, a failure or a crash: an SQLite file path, a "
                    "postgresql:// URL, or true for the default journal ($MARIMO_ENGINE_JOURNAL, "
                    "else the one 'marimo-engine run' uses). Default: not recorded."
                )
            ),
        ] = None,
        inputs: PlanInputs = None,
    ) -> dict[str, Any]:
        from marimo_engine.engine.executor import execute_plan

        with tool_errors():
            parsed = check_plan_argument(plan, registry)
            run = execute_plan(
                parsed,
                registry,
                max_workers=max_workers,
                journal=journal or None,
                inputs=check_plan_inputs(parsed, inputs),
            )
            await collect_run(run, total_steps=len(parsed.steps), report=ctx.report_progress)
            result = run.result  # the run's own result: events, verdict, its notebook
            summary = summarize_run(result, max_output_chars=max_output_chars)
            if notebook_path and result.notebook is not None:
                summary["notebook_path"] = _write_notebook(notebook_path, result.notebook)
            return summary

    async def export_notebook(
        plan: PlanArgument,
        path: Annotated[
            str | None,
            Field(description="Write the notebook here (.py); without it the source is returned."),
        ] = None,
    ) -> dict[str, Any]:
        from marimo_engine.engine.compiler import plan_to_notebook

        with tool_errors():
            parsed = check_plan_argument(plan, registry)
            source = plan_to_notebook(parsed, registry)
            if path:
                written = _write_notebook(path, source)
                return {
                    "path": written,
                    "steps": len(parsed.steps),
                    "hint": f"open it with: marimo edit {written}",
                }
            return {"notebook": source, "steps": len(parsed.steps)}

    server.add_tool(
        list_tools,
        description=(
            "List the tools a plan's steps may call, each with its description and the JSON "
            "schema of its arguments. Call this before writing a plan."
        ),
    )
    server.add_tool(
        validate_plan,
        description=(
            "Check a plan without running it. Returns {'valid', 'problems'}: every problem "
            "at once, each with step_id, field, code and a message saying what to change."
        ),
    )
    server.add_tool(
        run_plan,
        description=(
            "Run a plan with marimo-engine (compiled to a marimo notebook, independent steps "
            "at the same time). Each step event arrives as a progress notification. With "
            "'journal' the run is recorded and its run_id can be passed to show_run and "
            "resume_run (a step that needs a person stops the run until then). Returns "
            "the run_id, the verdict (SUCCESS, FAILURE or INTERVENTION_NEEDED), the key findings, "
            "skipped steps, the first error, each step's state, and the outputs (cut to "
            "max_output_chars each). An invalid plan runs nothing and returns its problems "
            "as an error."
        ),
    )
    server.add_tool(
        export_notebook,
        description=(
            "Compile a plan to a marimo notebook without running it: the .py source, or "
            "written to 'path'. The notebook opens with 'marimo edit' and runs with "
            "'python notebook.py'."
        ),
    )
