"""marimo-engine inside a marimo kernel: run JSON tool plans and describe data from code.

This module is marimo-engine's `marimo.agent.capability` (marimo's code
mode lists it in `help(marimo._code_mode)`). Use it from a cell or the
scratchpad of a running notebook; top-level `await` works there.

Plans. A plan is JSON: steps that call tools, with `$step.path` references
between them (`plan_language()` returns the full reference)::

    import marimo_engine.capability as me

    me.tools()                                  # tools a step may call, with JSON schemas
    plan = me.example("seattle-weather")        # or write one: {"steps": [...]}
    me.validate(plan)                           # [] when valid, else problems to fix
    result = await me.run(plan)                 # ExecutionResult
    result.verdict, result.key_findings, result.outputs["s1"]
    source = me.notebook(plan)                  # the plan as a marimo notebook (.py)

More tools: pass module paths or `.py` files, `me.run(plan, tools=["mypkg.tools"])`;
their functions are then callable by plans as well.

Data. `me.describe(df)` returns a short text about a pandas (or polars)
DataFrame for a model's context, within `max_chars`: shape, each column's
dtype, missing values and summary statistics, then sample rows::

    print(me.describe(df, max_chars=1500))

From outside the kernel, the same things are MCP tools: `marimo-engine mcp`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.engine.events import ExecutionResult
    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["describe", "example", "notebook", "plan_language", "run", "tools", "validate"]


def _registry(modules: Sequence[str]) -> ToolRegistry:
    from marimo_engine.cli.loading import load_tools

    return load_tools(list(modules)).registry


def tools(modules: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Return the tools a plan may call: `{"name", "description", "parameters"}` each.

    Args:
        modules: More tool modules (module paths or `.py` files); the example
            and data tools are always there.

    Raises:
        UsageError: A module cannot be imported or has no tools.
    """
    return _registry(modules).schemas()


def example(name: str) -> dict[str, Any]:
    """Return an example plan shipped with marimo-engine, such as `"seattle-weather"`.

    Raises:
        UsageError: No such example; the message lists them.
    """
    from marimo_engine.examples import load_example

    return load_example(name)


def plan_language() -> str:
    """Return the plan-language reference (Markdown): fields, references, expressions."""
    from marimo_engine.mcp_server._docs import plan_language_reference

    return plan_language_reference()


def validate(plan: dict[str, Any] | str, tools: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Check a plan without running it.

    Args:
        plan: The plan as a dict or JSON text.
        tools: More tool modules, as for `tools()`.

    Returns:
        Every problem as `{"step_id", "field", "code", "message"}`; `[]` when valid.
    """
    from marimo_engine.plans.validation import validate_plan

    return [p.model_dump(mode="json") for p in validate_plan(plan, _registry(tools))]


async def run(
    plan: dict[str, Any] | str,
    tools: Sequence[str] = (),
    *,
    max_workers: int | None = None,
) -> ExecutionResult:
    """Run a plan with the engine and return its result (`await me.run(plan)`).

    Args:
        plan: The plan as a dict or JSON text.
        tools: More tool modules, as for `tools()`.
        max_workers: Plain-function tools running at once; `None` takes the engine's default.

    Returns:
        The `ExecutionResult`: `verdict`, `outputs` (the tools' own objects),
        `key_findings`, `skipped`, `error` (with `problems` for an invalid
        plan), `events` and `notebook`.
    """
    from marimo_engine.engine.executor import execute_plan

    # The run's own result: the plan validated and compiled once, and the
    # notebook rendered from that compilation when read (none for an invalid plan).
    async with execute_plan(plan, _registry(tools), max_workers=max_workers) as run:
        async for _ in run:
            pass
    return run.result


def notebook(plan: dict[str, Any] | str, tools: Sequence[str] = ()) -> str:
    """Return the marimo notebook source (`.py`) of a plan, without running it.

    Raises:
        PlanValidationError: The plan has problems (`.problems` lists them).
    """
    from marimo_engine.engine.compiler import plan_to_notebook

    return plan_to_notebook(plan, _registry(tools))


def describe(frame: Any, *, max_chars: int = 2000, max_rows: int = 5) -> str:
    """Describe a DataFrame for a model's context, in at most `max_chars` characters.

    Args:
        frame: A pandas DataFrame, or a polars one (converted with `to_pandas()`).
        max_chars: Budget of the returned text; sample rows go first, then
            column statistics, until it fits (the header always stays).
        max_rows: Sample rows at most.

    Returns:
        Lines: the shape; per column its dtype, missing count and summary
        statistics (`marimo_engine.tools.data.describe_table`); then sample
        rows as JSON.

    Raises:
        TypeError: `frame` is not a pandas or polars DataFrame.
    """
    from marimo_engine._json import to_jsonable
    from marimo_engine.tools.data import describe_table

    library = type(frame).__module__.split(".")[0]
    if library == "polars" and hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    info = describe_table(frame)
    header = f"{library} DataFrame: {info['rows']} rows x {info['columns']} columns"
    columns = [
        f"- {name} ({dtype}, {info['missing'][name]} missing): "
        + json.dumps(to_jsonable(info["summary"][name]), ensure_ascii=False)
        for name, dtype in info["column_types"].items()
    ]
    rows = [
        json.dumps(to_jsonable(row), ensure_ascii=False, default=str)
        for row in frame.head(max_rows).to_dict("records")
    ]

    def text() -> str:
        parts = [header, "columns:", *columns]
        if rows:
            parts += [f"first {len(rows)} rows:", *rows]
        return "\n".join(parts)

    while len(text()) > max_chars and rows:
        rows.pop()
    while len(text()) > max_chars and columns:
        columns.pop()
    result = text()
    note = f"\n({info['columns'] - len(columns)} more columns not shown)"
    if len(columns) < info["columns"] and len(result) + len(note) <= max_chars:
        result += note
    return result[:max_chars]
