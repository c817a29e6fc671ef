"""The code agent as one MCP tool: `code_goal` works toward a goal in a live session.

The same agent as `marimo-engine code` (docs/code-agent.md): it writes,
runs and fixes cells in the session's notebook until the goal is met or a
limit is reached, each step streamed as an MCP progress notification. The
result is the run's `CodeResult` as JSON.

The approval policy is the server's, set by the person who starts it
(`marimo-engine mcp --approve`), never an argument the calling model could
choose: `ask` (the default) asks the person in the MCP client through an
elicitation form, as the CLI asks on its terminal; a client that cannot
show one, or a connection that cannot carry a question in the middle of a
call (MCP 2026-07-28 and later ask only before a tool runs), gets every
such patch refused, with a note saying why. `auto` approves, `deny` refuses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import Context  # resolved at run time: the SDK reads the hints
from pydantic import BaseModel, Field

from marimo_engine.errors import UsageError
from marimo_engine.mcp_server._errors import tool_errors
from marimo_engine.mcp_server._live import Session, live_client

_LOG = logging.getLogger("marimo_engine.mcp_server")

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from marimo_engine.agents.code.events import ApprovalDecision, ApprovalRequest
    from marimo_engine.mcp_server._sessions import SessionTable

__all__ = ["ApprovalForm", "Approve", "approval_message", "register_code_tools"]

Approve = Literal["auto", "ask", "deny"]
"""What the policy's `ask` means for `code_goal` (`CodeOptions.approve`)."""

NO_ELICITATION_NOTE = (
    "refused: the MCP client cannot ask a person (it has no elicitation support); "
    "the server's owner can start it with --approve auto"
)

NO_BACK_CHANNEL_NOTE = (
    "refused: this MCP connection cannot ask a person during a tool call (protocol "
    "2026-07-28 or later, or a transport without server-to-client requests); the server's "
    "owner can start it with --approve auto"
)


class ApprovalForm(BaseModel):
    """The form a person fills in when the code agent asks (an MCP elicitation)."""

    approve: bool = Field(description="Apply it (true) or refuse it (false).")
    note: str = Field(default="", description="Why, in words; the model reads it when refused.")


def approval_message(request: ApprovalRequest) -> str:
    """The question of an approval in words, with the code of the patch it is about."""
    head = f"marimo-engine code agent, turn {request.turn}: {request.describe()}"
    return "\n".join([head, *request.patch_lines()])


def _asker(ctx: Context) -> Any:
    """`on_intervention` asking the person in the MCP client (elicitation), or refusing."""

    async def ask(request: ApprovalRequest) -> ApprovalDecision:
        from marimo_engine.agents.code.events import ApprovalDecision

        session = ctx.request_context.session
        capabilities = session.client_capabilities
        if capabilities is None or capabilities.elicitation is None:
            return ApprovalDecision(False, NO_ELICITATION_NOTE)
        if not session.can_send_request:
            # MCP 2026-07-28 and later carry questions only before a tool runs
            # (InputRequiredResult), not in the middle of a run.
            return ApprovalDecision(False, NO_BACK_CHANNEL_NOTE)
        try:
            answer = await ctx.elicit(approval_message(request), ApprovalForm)
        except Exception as exc:  # the client failed to ask: nobody approved
            _LOG.warning("The MCP client could not ask for an approval: %s", exc)
            return ApprovalDecision(
                False, f"refused: the MCP client could not ask a person ({exc})"
            )
        if answer.action != "accept":
            return ApprovalDecision(False, f"refused by a person ({answer.action})")
        return ApprovalDecision(answer.data.approve, answer.data.note)

    return ask


def register_code_tools(
    server: MCPServer,
    sessions: SessionTable,
    *,
    model: str | None = None,
    approve: Approve = "ask",
) -> None:
    """Add `code_goal` to `server`.

    Args:
        server: The MCP server.
        sessions: The session table `session` is resolved in.
        model: The model used when a call names none (`marimo-engine mcp --model`).
        approve: The approval policy (`marimo-engine mcp --approve`): `ask`
            asks the person in the client (elicitation), `auto` approves,
            `deny` refuses.
    """

    async def code_goal(
        session: Session,
        goal: Annotated[str, Field(min_length=1, description="What to achieve, in words.")],
        ctx: Context,
        model: Annotated[
            str | None,
            Field(
                description=(
                    "The model, as PROVIDER:NAME (such as 'openai:gpt-4o-mini'); default: the "
                    "one the server was started with (--model)."
                )
            ),
        ] = None,
        data: Annotated[
            list[str] | None,
            Field(description="Data files the goal is about (CSV, Parquet, JSON), by path."),
        ] = None,
        max_turns: Annotated[int, Field(ge=1, le=100, description="Model turns at most.")] = 12,
        max_wall_s: Annotated[
            float,
            Field(gt=0, description="Seconds the whole run may take, approvals included."),
        ] = 1800.0,
        run_timeout_s: Annotated[
            float,
            Field(gt=0, description="Seconds one patch's cells may run before an interrupt."),
        ] = 300.0,
        max_requests: Annotated[int, Field(ge=1, description="Model requests at most.")] = 40,
        max_tokens: Annotated[
            int | None, Field(ge=1, description="Input plus output tokens at most.")
        ] = None,
        budget_usd: Annotated[
            float | None, Field(gt=0, description="US dollars the model calls may cost.")
        ] = None,
    ) -> dict[str, Any]:
        from marimo_engine.agents.code import CodeAgent, CodeOptions
        from marimo_engine.agents.code.data import describe_files
        from marimo_engine.llm.usage import ModelLimits

        with tool_errors(session=session):
            chosen = model or default_model
            if not chosen:
                raise UsageError(
                    "Give model, such as 'openai:gpt-4o-mini' (or start the server with --model)."
                )
            described = describe_files(data or [])
            options = CodeOptions(
                max_turns=max_turns,
                limits=ModelLimits(
                    request_limit=max_requests,
                    total_tokens_limit=max_tokens,
                    budget_usd=budget_usd,
                ),
                run_timeout_s=run_timeout_s,
                max_wall_s=max_wall_s,
                approve=policy,
            )
            agent = CodeAgent(
                chosen,
                options=options,
                on_intervention=_asker(ctx) if policy == "ask" else None,
            )
            known = await sessions.resolve(session)
        result = None
        shown = 0
        async with live_client(sessions, session) as client:
            async for event in agent.events(
                goal,
                client,
                notebook=known.notebook,
                data_context=described,
                # A notebook this server opened may be one marimo just created: its
                # lone blank cell goes (a notebook with anything else is left alone).
                new_notebook=known.opened_here,
            ):
                shown += 1
                await ctx.report_progress(float(shown), None, f"{event.type.value}: {event.msg}")
                if event.result is not None:
                    result = event.result
        assert result is not None  # the last event, DONE, carries it
        return {**result.to_json(), "session": known.session_id}

    default_model, policy = model, approve
    server.add_tool(
        code_goal,
        description=(
            "Work toward a goal in a live notebook with marimo-engine's code agent: it writes "
            "cells, runs them, reads their errors and fixes them until the goal is met or a "
            "limit is reached (turns, wall time, tokens, dollars). Each patch is checked with "
            "marimo's compiler and a policy; patches the policy asks about (network, "
            "subprocesses, the person's own cells, package installs) go to the person in the "
            "MCP client for approval. Every step arrives as a progress notification. Returns "
            "the verdict, the answer, the cells holding it, each turn's changes (checkpoints, "
            "undoable with 'marimo-engine code --undo'), errors left and model usage."
        ),
    )
