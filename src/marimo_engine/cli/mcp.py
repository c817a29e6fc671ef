"""`marimo-engine mcp`: serve marimo-engine's tools to coding agents over MCP.

Parsing only, at module level: the server (`marimo_engine.mcp_server`, the
`mcp` SDK, uvicorn) is imported when the command runs. Errors raise
`UsageError` (exit code 2), which `cli/main.py` prints as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

from marimo_engine.cli._args import whole_number

__all__ = ["add_parser", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_DESCRIPTION = """\
Serve marimo-engine's tools over the Model Context Protocol, for coding agents
(Claude Code, Cursor, ...): validate, run and export plans, open headless
notebook sessions, run code and edit cells in live marimo notebooks, and have
the code agent reach a goal in one (code_goal, with --model).

By default the server speaks MCP over stdin/stdout: the agent launches it.
With --http it serves streamable HTTP at http://HOST:PORT/mcp, on loopback
only unless --allow-remote, and every request needs the bearer token
(--token, $MARIMO_ENGINE_MCP_TOKEN, or one printed at start). See docs/mcp.md.
"""

_EPILOG = """\
examples:
  marimo-engine mcp
  claude mcp add marimo-engine -- marimo-engine mcp
  MARIMO_ENGINE_MCP_TOKEN=... marimo-engine mcp --http --port 8765
"""


def add_parser(subparsers: Any) -> None:
    """Add the `mcp` sub-command to `marimo-engine`'s parser.

    Args:
        subparsers: What `ArgumentParser.add_subparsers()` returned.
    """
    parser = subparsers.add_parser(
        "mcp",
        help="serve the engine and live notebooks to coding agents over MCP",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--http", action="store_true", help="serve streamable HTTP instead of stdio"
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address for --http (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=whole_number(1, 65535),
        default=DEFAULT_PORT,
        help=f"port for --http (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback, and marimo servers on other machines "
        "(whoever holds the token can run code in your notebooks)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token for --http (default: $MARIMO_ENGINE_MCP_TOKEN, else a new one "
        "printed at start)",
    )
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module path or .py file with more tools plans may call (repeatable); the "
        "example and data tools are always available",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the code agent's model for code_goal calls that name none, such as "
        "openai:gpt-4o-mini",
    )
    parser.add_argument(
        "--approve",
        choices=("ask", "auto", "deny"),
        default="ask",
        help="what code_goal does with a patch its policy asks about: ask the person in the "
        "MCP client (elicitation; refused when the client cannot ask), auto approves, deny "
        "refuses (default: ask)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until the client disconnects (stdio) or SIGINT/SIGTERM/SIGHUP (HTTP); return 0.

    Raises:
        UsageError: A bad `--tools` module, a non-loopback `--host` without
            `--allow-remote`, or a weak `--token`.
    """
    import os
    import secrets
    import signal
    import sys

    import anyio

    from marimo_engine.cli.loading import load_tools
    from marimo_engine.live.server import EXIT_SIGNALS
    from marimo_engine.mcp_server.transport import TOKEN_ENV, check_bind, serve_http, serve_stdio

    token: str | None = None
    if args.http:
        token = args.token or os.environ.get(TOKEN_ENV) or None
        generated = token is None
        token = token or secrets.token_urlsafe(32)
        check_bind(args.host, allow_remote=args.allow_remote, token=token)
        if generated:
            print(
                f"marimo-engine MCP bearer token (set {TOKEN_ENV} to choose it): {token}",
                file=sys.stderr,
                flush=True,
            )

    from marimo_engine.mcp_server._sessions import SessionTable
    from marimo_engine.mcp_server.server import build_server

    tools = load_tools(args.tools)
    sessions = SessionTable(allow_remote=args.allow_remote)
    debug = bool(getattr(args, "debug", False))
    server, _ = build_server(
        tools.registry,
        sessions=sessions,
        code_model=args.model,
        approve=args.approve,
        log_level="DEBUG" if debug else "WARNING",
    )

    def on_exit_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM and SIGHUP end the serving as Ctrl-C does, so that the marimo
    # servers open_notebook started (on worker threads, which cannot set the
    # handler `track_server` would) are stopped below.
    previous = {signum: signal.signal(signum, on_exit_signal) for signum in EXIT_SIGNALS}
    try:
        if args.http:
            assert token is not None
            anyio.run(
                lambda: serve_http(
                    server,
                    host=args.host,
                    port=args.port,
                    token=token,
                    allow_remote=args.allow_remote,
                    log_level="info" if debug else "warning",
                )
            )
        else:
            anyio.run(serve_stdio, server)
    except KeyboardInterrupt:
        pass
    finally:
        # Stop the marimo servers that open_notebook started, whatever ended the
        # serving; a SIGTERM or SIGHUP meanwhile must not cut that short.
        for signum in EXIT_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        try:
            sessions.close_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return 0
