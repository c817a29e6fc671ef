"""The durable-run tools: `list_runs`, `show_run`, `resume_run` (docs/runs.md).

Registered on an `MCPServer` by `register_run_tools`. They read and resume
runs in the run journal, the same way and with the same JSON shapes as the
CLI's `runs --json`, `runs show --json` and `resume` (`cli/runs.py` holds
the shared code). A resumed run streams each event as an MCP progress
notification, as `run_plan` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context  # resolved at run time: the SDK reads the hints
from pydantic import Field

from marimo_engine._json import to_jsonable
from marimo_engine.errors import UsageError
from marimo_engine.mcp_server._errors import ToolError, tool_errors
from marimo_engine.mcp_server._results import DEFAULT_MAX_OUTPUT_CHARS, collect_run, summarize_run

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from marimo_engine.tools.registry import ToolRegistry

__all__ = ["JournalArgument", "register_run_tools"]

JournalArgument = Annotated[
    str | None,
    Field(
        description=(
            "The run journal: an SQLite file path or a postgresql:// URL. Default: "
            "$MARIMO_ENGINE_JOURNAL, else ~/.local/state/marimo-engine/journal.sqlite3 "
            "(the journal 'marimo-engine run' uses)."
        )
    ),
]

RunId = Annotated[str, Field(description="The run's id, as list_runs or run_plan return it.")]


def _decision(action: str | None, reason: str | None, answer: Any) -> Any:
    """The `durable.Decision` a `resume_run` call asks for; `ToolError` on a bad combination."""
    from marimo_engine.engine.durable import Decision

    if reason is not None and action != "reject":
        raise ToolError("'reason' goes with decision 'reject'; drop it or set decision='reject'.")
    if answer is not None and action != "answer":
        raise ToolError("'answer' goes with decision 'answer'; set decision='answer'.")
    if action == "approve":
        return Decision.approve()
    if action == "reject":
        return Decision.reject(reason)
    if action == "answer":
        if answer is None:
            raise ToolError(
                "decision 'answer' needs 'answer': the JSON value of the step's output."
            )
        return Decision.answer(answer)
    return None


_DECISION_ARGUMENTS = {
    "approve": "decision='approve'",
    "reject": "decision='reject'",
    "answer": "decision='answer' with 'answer'",
}
"""How `resume_run` takes each decision (`DecisionError.choices`)."""


def register_run_tools(server: MCPServer, registry: ToolRegistry) -> None:
    """Add `list_runs`, `show_run` and `resume_run` to `server`.

    Args:
        server: The MCP server.
        registry: The tools a resumed run may call (the same as `run_plan`'s).
    """

    async def list_runs(
        journal: JournalArgument = None,
        limit: Annotated[int, Field(ge=1, description="Most runs listed, newest first.")] = 50,
    ) -> dict[str, Any]:
        from marimo_engine.cli.runs import run_row
        from marimo_engine.engine.journal import open_journal

        def read() -> dict[str, Any]:
            with open_journal(journal) as store:
                records = store.list_runs(limit)
                return {"journal": store.location, "runs": [run_row(r) for r in records]}

        with tool_errors():
            return to_jsonable(await anyio.to_thread.run_sync(read))

    async def show_run(run_id: RunId, journal: JournalArgument = None) -> dict[str, Any]:
        from marimo_engine.cli.runs import read_run, run_json

        with tool_errors():
            record, summaries = await anyio.to_thread.run_sync(read_run, journal, run_id)
            return to_jsonable(run_json(record, summaries))

    async def resume_run(
        run_id: RunId,
        ctx: Context,
        decision: Annotated[
            Literal["approve", "reject", "answer"] | None,
            Field(
                description=(
                    "The answer to the pending intervention (show_run's 'pending'): "
                    "'approve' goes on; 'reject' ends the run as FAILURE (an approval: "
                    "skips the step and its dependents); 'answer' hands 'answer' to the run "
                    "as the step's output (a condition only). Leave out for a run that "
                    "failed or was killed with nothing pending."
                )
            ),
        ] = None,
        intervention_id: Annotated[
            str | None,
            Field(
                description=(
                    "The pending intervention's id (show_run's pending.intervention_id); a "
                    "stale one is refused, so an answer never lands on another question."
                )
            ),
        ] = None,
        reason: Annotated[str | None, Field(description="Why, with decision 'reject'.")] = None,
        answer: Annotated[
            Any,
            Field(
                description=(
                    "The step's output, with decision 'answer': any JSON value (checked "
                    "against the output type the step's tool declares)."
                )
            ),
        ] = None,
        journal: JournalArgument = None,
        max_workers: Annotated[
            int | None,
            Field(
                ge=1, description="Threads for plain-function tools at once (default: engine's)."
            ),
        ] = None,
        max_output_chars: Annotated[
            int,
            Field(
                ge=100,
                description="Characters of JSON each step output may take in the result.",
            ),
        ] = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> dict[str, Any]:
        from marimo_engine.engine import durable
        from marimo_engine.engine.journal import open_journal

        with tool_errors():
            chosen = _decision(decision, reason, answer)

            def start() -> tuple[Any, int]:
                # Journal reads and the lease are blocking I/O (SQLite may wait on a lock).
                with open_journal(journal) as store:
                    record = store.get_run(run_id, steps=False)
                    if record is None:
                        raise UsageError(
                            f"No run {run_id!r} in the journal {store.location}; call "
                            "list_runs to see the runs."
                        )
                plan = durable.journaled_plan(record)
                total = len(plan.get("steps", [])) if isinstance(plan, dict) else 0
                try:
                    run = durable.resume_run(
                        run_id,
                        registry,
                        journal=journal,
                        decision=chosen,
                        intervention_id=intervention_id,
                        max_workers=max_workers,
                    )
                except durable.DecisionError as exc:
                    hint = f" Pass {exc.choices(_DECISION_ARGUMENTS)}." if exc.accepted else ""
                    raise ToolError(f"{exc}{hint} Call show_run to see the run.") from exc
                except UsageError as exc:
                    raise ToolError(f"{exc} Call show_run to see the run.") from exc
                return run, total

            # Shielded: once the lease is taken the run must start, so that a cancelled
            # call stops it inside the run (which releases the lease), not before it.
            with anyio.CancelScope(shield=True):
                run, total = await anyio.to_thread.run_sync(start)
            await collect_run(run, total_steps=total, report=ctx.report_progress)
            return summarize_run(run.result, max_output_chars=max_output_chars)

    server.add_tool(
        list_runs,
        description=(
            "List the runs in the run journal, newest first: run_id, plan_id, status "
            "(RUNNING, SUCCESS, FAILURE, INTERVENTION_NEEDED, ...), started_at (Unix seconds), "
            "duration_s, parent_run_id (a re-run's origin) and pending (the intervention a "
            "run waits for, or null). run_plan with 'journal' records a run here."
        ),
    )
    server.add_tool(
        show_run,
        description=(
            "One run from the journal: its plan, status, and each step's status, attempts, "
            "starts, duration, error and a one-line output_summary; 'pending' is the "
            "intervention it waits for (kind 'approval' with the step's args, or "
            "'condition' with the intervention_if expression) and its intervention_id, "
            "which resume_run needs."
        ),
    )
    server.add_tool(
        resume_run,
        description=(
            "Go on with a journaled run that stopped for a person (INTERVENTION_NEEDED), "
            "failed, or was killed. Completed steps are not run again: their outputs come "
            "from the journal. A run waiting for a person needs decision 'approve', 'reject' "
            "(with an optional reason) or 'answer' (with 'answer'), and should name "
            "intervention_id. Each step event arrives as a progress notification; returns "
            "the run's result as run_plan does (with run_id). A run another process holds, "
            "or a stale intervention_id, is an error saying so."
        ),
    )
