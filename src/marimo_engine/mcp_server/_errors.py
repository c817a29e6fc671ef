"""Exceptions become MCP tool errors a model can act on, never a crashed server.

The SDK (`mcp.server.mcpserver`) answers a `ToolError` raised by a tool with
a result whose `isError` is true and whose text is the message; any other
exception is logged and reported as a bare "Error executing tool". We
translate our own exceptions here, once, so that the model reads what was
wrong and what to call next.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

from marimo_engine.errors import (
    EngineError,
    LiveConnectionError,
    LiveHTTPError,
    LiveSelectionError,
    PlanValidationError,
)

if TYPE_CHECKING:
    from marimo_engine.plans.problems import Problem

__all__ = [
    "ToolError",
    "gone_session_message",
    "one_line",
    "problems_message",
    "session_is_gone",
    "tool_errors",
]

_LOG = logging.getLogger("marimo_engine.mcp_server")


def one_line(text: str) -> str:
    """Return `text` with every run of whitespace made one space."""
    return " ".join(text.split())


def problems_message(problems: Sequence[Problem]) -> str:
    """The tool-error text of an invalid plan: a count, what to do, every problem as JSON."""
    count = len(problems)
    body = json.dumps([p.model_dump(mode="json") for p in problems], ensure_ascii=False)
    return (
        f"The plan has {count} problem{'s' if count != 1 else ''}; nothing was run. Fix "
        f"each one (call validate_plan to check, list_tools for the tools and their "
        f"arguments) and call again. Problems: {body}"
    )


def gone_session_message(session: str, detail: str = "") -> str:
    """The tool-error text for a session that is not (or no longer) open."""
    why = f" ({one_line(detail)})" if detail else ""
    return (
        f"Session {session!r} is not open: it was closed, or its marimo server stopped{why}. "
        "Call list_sessions to see the open sessions, or open_notebook to open the notebook "
        "again."
    )


def session_is_gone(exc: BaseException) -> bool:
    """Whether a live-bridge error means the session (or its server) no longer exists."""
    if isinstance(exc, LiveConnectionError | LiveSelectionError):
        return True
    return isinstance(exc, LiveHTTPError) and (
        exc.status in (404, 410) or "invalid session" in str(exc).lower()
    )


@contextmanager
def tool_errors(*, session: str | None = None) -> Iterator[None]:
    """Translate exceptions raised inside a tool into `ToolError`s with actionable text.

    Args:
        session: The session the call names, if any: connection failures and
            marimo's "Invalid session id" then say the session is gone.

    Raises:
        ToolError: Always, for any exception raised in the block (cancellation
            and `ToolError` itself pass through unchanged).
    """
    try:
        yield
    except ToolError:
        raise
    except PlanValidationError as exc:
        raise ToolError(problems_message(exc.problems)) from exc
    except (LiveConnectionError, LiveSelectionError, LiveHTTPError) as exc:
        if session is not None and session_is_gone(exc):
            raise ToolError(gone_session_message(session, str(exc))) from exc
        raise ToolError(one_line(str(exc))) from exc
    except EngineError as exc:
        raise ToolError(one_line(str(exc)) or type(exc).__name__) from exc
    except Exception as exc:
        # Not ours: still an answer the model can read, and a traceback in our log.
        _LOG.exception("Unexpected error in a marimo-engine MCP tool")
        raise ToolError(
            f"Unexpected {type(exc).__name__}: {one_line(str(exc))}. This is a bug in "
            "marimo-engine or a tool; the server log has the traceback."
        ) from exc
