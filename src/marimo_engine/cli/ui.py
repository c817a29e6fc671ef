"""`marimo-engine ui`: the runs UI, a marimo app served on loopback (docs/ui.md).

Wired into `cli/main.py` through `add_parser(subparsers)` and `run(args)`.
Nothing heavy is imported at module level: marimo and uvicorn load when
the command runs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from marimo_engine.cli._args import whole_number

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Serve the runs UI: a marimo app (run mode) over the run journal. It lists
the runs, shows one run's DAG, timeline, outputs and errors live, answers
a pending intervention (approve, reject, answer) so the run goes on,
re-runs a run with changed arguments, and turns a goal typed in the chat
into a plan (with --model) that runs once you approve it.

The app listens on 127.0.0.1 and needs marimo's access token: open the URL
it prints. --allow-remote lets it listen elsewhere (whoever has the token
can then resume runs and run plans with your tools).
"""

_EPILOG = """\
examples:
  marimo-engine ui
  marimo-engine ui --journal runs.sqlite3 --port 2720
  OPENAI_BASE_URL=http://localhost:8000/v1 marimo-engine ui --model openai:qwen2.5-7b
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ui` sub-command to `marimo-engine`'s parser.

    Args:
        subparsers: What `ArgumentParser.add_subparsers()` returned.
    """
    from marimo_engine.ui.server import DEFAULT_HOST

    parser = subparsers.add_parser(
        "ui",
        help="serve the runs UI (a marimo app): watch runs live, answer them, re-run, chat",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help="the run journal: an SQLite file or a postgresql:// URL (default: "
        "$MARIMO_ENGINE_JOURNAL, else ~/.local/state/marimo-engine/journal.sqlite3)",
    )
    parser.add_argument(
        "--port",
        type=whole_number(0, 65535),
        default=2719,
        metavar="N",
        help="port to listen on (default: 2719; 0 picks a free one)",
    )
    parser.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default: {DEFAULT_HOST}; with --allow-remote, 0.0.0.0)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow listening on an address that is not loopback (the token still applies)",
    )
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module path or .py file with tools resumed and new runs may call "
        "(repeatable); the example and data tools are always available",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the planner's model for the chat, such as openai:gpt-4o-mini (docs/agents.md); "
        "without it the chat says how to set one",
    )
    parser.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model to try when the one before fails (repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve the app until SIGINT or SIGTERM, then end the process with exit code 0.

    The process ends with `os._exit` once the server has stopped, so that
    no kernel or run thread keeps it alive: call it in a process of its own.

    Raises:
        UsageError: A non-loopback `--host` without `--allow-remote`, a port
            that is taken, a weak `$MARIMO_ENGINE_UI_TOKEN`, a `--tools`
            module that cannot be loaded, or a journal that cannot be opened.
    """
    import signal

    from marimo_engine.cli.exits import ExitCode
    from marimo_engine.engine.journal import open_journal
    from marimo_engine.ui.actions import UIConfig
    from marimo_engine.ui.server import (
        DEFAULT_HOST,
        TOKEN_ENV,
        app_url,
        bind_socket,
        check_host,
        check_token,
        serve,
    )

    host = args.host or ("0.0.0.0" if args.allow_remote else DEFAULT_HOST)
    check_host(host, allow_remote=args.allow_remote)
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    check_token(token)
    config = UIConfig(
        journal=args.journal or None,
        tools=tuple(args.tools),
        model=args.model,
        fallbacks=tuple(args.fallback),
    )
    config.registry()  # a broken --tools module: one line now, not in the page later
    with open_journal(config.journal) as journal:  # a journal that cannot be opened: the same
        location = journal.location
    sock = bind_socket(host, args.port)
    port = sock.getsockname()[1]
    url = app_url(host, port, token)

    def ready() -> None:
        print(f"marimo-engine runs UI, journal {location}", file=sys.stderr, flush=True)
        print(url, flush=True)

    # SIGTERM stops the server as Ctrl-C does (uvicorn handles both once serving).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(config, sock, token, on_ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    # The server has stopped. A page's kernel (a thread marimo keeps for a
    # reconnect) and a run resumed from the page (a background thread) would
    # keep the interpreter waiting; every journal write is committed, and a
    # run cut short here is resumed later like any interrupted run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(ExitCode.OK)
    return ExitCode.OK
