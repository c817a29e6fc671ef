"""`marimo-engine live ...`: drive a running marimo notebook from the command line.

    marimo-engine live servers                 running servers (marimo's registry)
    marimo-engine live sessions                their kernel sessions
    marimo-engine live open NOTEBOOK.py        start a headless server and hold a session
    marimo-engine live exec -c CODE | FILE     run code in the kernel, streaming output
    marimo-engine live cells                   the notebook's cells, status and errors
    marimo-engine live create -c CODE          add a cell (and run it)
    marimo-engine live edit CELL -c CODE       replace a cell's code (and run it)
    marimo-engine live run CELL                run a cell and what depends on it
    marimo-engine live delete CELL             delete a cell
    marimo-engine live move CELL --after C     move a cell before or after another
    marimo-engine live vars                    the cells' variables: type and short repr
    marimo-engine live describe NAME           a dataframe's shape, columns, sample rows
    marimo-engine live run-plan PLAN.json      run a plan in the live notebook

The session is found from `--url` / `--port` / `--file` / `--session`, or is
the only one running. Exit codes: 0 ok, 1 a failed run or request, 2 bad
input (including no or several matching sessions), 3 a plan that stopped
for a person. Errors are one line on stderr; `--debug` adds the traceback.

Nothing heavy is imported at module level: commands import their work.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from marimo_engine.cli._args import add_input_option
from marimo_engine.cli.exits import ExitCode, exit_code_for, print_error

if TYPE_CHECKING:
    from marimo_engine.live.sync_client import LiveClientSync

__all__ = ["add_parser", "run"]

OK, FAILURE, BAD_INPUT = ExitCode.OK, ExitCode.FAILURE, ExitCode.BAD_INPUT


def _selection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("session selection")
    group.add_argument("--url", help="server URL, such as http://127.0.0.1:2718")
    group.add_argument("--port", type=int, help="port of a registered server")
    group.add_argument("--file", metavar="NOTEBOOK.py", help="the notebook the session has open")
    group.add_argument("--session", metavar="ID", help="session id (see 'live sessions')")
    group.add_argument("--token", help="access token (default: $MARIMO_TOKEN)")
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a server that is not on this machine (code runs there)",
    )
    group.add_argument("--registry-dir", help=argparse.SUPPRESS)
    parent.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return parent


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_parser(subparsers: Any) -> None:
    """Add the `live` command and its sub-commands to an argparse subparsers object.

    Args:
        subparsers: What `ArgumentParser.add_subparsers()` returned.
    """
    select = _selection_options()
    live = subparsers.add_parser(
        "live",
        help="drive a running marimo notebook (marimo edit)",
        description=(
            "Drive a running marimo notebook: run code in its kernel, read its cells and "
            "variables, and run plans there while a person watches in the browser."
        ),
    )
    live.add_argument("--debug", action="store_true", default=False, help="show tracebacks")
    commands = live.add_subparsers(dest="live_command", metavar="COMMAND")

    servers = commands.add_parser("servers", help="list running marimo servers", parents=[select])
    servers.add_argument("--check", action="store_true", help="also ask each server's /health")
    _json_option(servers)

    sessions = commands.add_parser("sessions", help="list kernel sessions", parents=[select])
    _json_option(sessions)

    open_ = commands.add_parser(
        "open",
        help="open a notebook in a headless session and hold it until interrupted",
        parents=[select],
        description=(
            "Start 'marimo edit --headless' for NOTEBOOK.py (or use --url's server) and hold "
            "its kernel session from Python, with no browser. Prints the URL and session id, "
            "then waits until Ctrl-C or SIGTERM, which closes the session and stops the "
            "server it started. A person can open the URL in a browser meanwhile."
        ),
    )
    open_.add_argument("notebook", metavar="NOTEBOOK.py")
    open_.add_argument("--no-run", action="store_true", help="do not run the cells on opening")
    open_.add_argument(
        "--startup-timeout", type=float, default=60.0, metavar="S", help="seconds to wait"
    )
    _json_option(open_)

    exec_ = commands.add_parser(
        "exec",
        help="run Python code in the kernel, streaming its output",
        parents=[select],
        description="Run code in the kernel's scratchpad; stdout and stderr stream as they come.",
    )
    exec_.add_argument("-c", "--code", help="the code to run")
    exec_.add_argument("source", nargs="?", metavar="FILE", help="a file of code, '-' for stdin")
    exec_.add_argument(
        "--timeout", type=float, metavar="S", help="interrupt the run after S seconds"
    )
    _json_option(exec_)

    cells = commands.add_parser("cells", help="list the notebook's cells", parents=[select])
    _json_option(cells)
    _add_cell_commands(commands, select)

    vars_ = commands.add_parser("vars", help="list the cells' variables", parents=[select])
    _json_option(vars_)

    describe = commands.add_parser(
        "describe", help="describe a pandas or polars dataframe", parents=[select]
    )
    describe.add_argument("name", metavar="NAME")
    describe.add_argument("--max-chars", type=int, default=2000, metavar="N")
    describe.add_argument("--rows", type=int, default=5, metavar="N")
    _json_option(describe)

    run_plan = commands.add_parser(
        "run-plan",
        help="run a plan in the live notebook, one cell per step",
        parents=[select],
        description=(
            "Put each step of PLAN into the live notebook as a cell and run it there; "
            "prints one line per event (JSON lines with --json)."
        ),
    )
    run_plan.add_argument("plan", metavar="PLAN", help="plan JSON file, '-' or example:NAME")
    run_plan.add_argument(
        "--tools", action="append", default=[], metavar="MODULE", help="extra tool modules"
    )
    add_input_option(run_plan)
    _json_option(run_plan)

    live.set_defaults(handler=run, reword_error=cli_wording)  # see cli/exits.py


def _code_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("-c", "--code", help="the cell's code")
    parser.add_argument(
        "source",
        nargs="?",
        metavar="FILE",
        help="a file holding the code, '-' for stdin" + ("" if required else " (optional)"),
    )


def _add_cell_commands(commands: Any, select: argparse.ArgumentParser) -> None:
    """Add `create`, `edit`, `run`, `delete` and `move`: one cell operation each."""
    create = commands.add_parser(
        "create",
        help="add a cell to the notebook and run it",
        parents=[select],
        description="Add a cell (at the end unless --before/--after) and run it; the person "
        "sees it appear in the browser.",
    )
    _code_options(create, required=True)
    create.add_argument("--name", help="a Python identifier naming the cell")
    place = create.add_mutually_exclusive_group()
    place.add_argument("--before", metavar="CELL", help="insert before this cell (id or name)")
    place.add_argument("--after", metavar="CELL", help="insert after this cell (id or name)")
    create.add_argument("--no-run", action="store_true", help="add it without running it")
    create.add_argument("--hide-code", action="store_true", help="show the code collapsed")
    _json_option(create)

    edit = commands.add_parser(
        "edit",
        help="replace a cell's code and run it (its dependents re-run)",
        parents=[select],
        description="Replace the code of CELL (id or name) and run it. Refused when the cell "
        "changed since the agent last read it, or when its code is the person's "
        "(--allow-person-cell when they asked for it).",
    )
    edit.add_argument("target", metavar="CELL", help="the cell's id or name")
    _code_options(edit, required=False)
    edit.add_argument("--name", help="rename the cell")
    edit.add_argument("--no-run", action="store_true", help="do not run it afterwards")
    edit.add_argument(
        "--allow-person-cell",
        action="store_true",
        help="edit a cell whose code the person wrote (they may be typing in it)",
    )
    edit.add_argument(
        "--force", action="store_true", help="skip every check and overwrite the person's changes"
    )
    _json_option(edit)

    run_ = commands.add_parser(
        "run",
        help="run a cell and, reactively, what depends on it",
        parents=[select],
        description="Run CELL (id or name); its dependents re-run. Console output streams.",
    )
    run_.add_argument("target", metavar="CELL", help="the cell's id or name")
    run_.add_argument(
        "--timeout", type=float, metavar="S", help="interrupt the run after S seconds"
    )
    _json_option(run_)

    delete = commands.add_parser(
        "delete", help="delete a cell", parents=[select], description="Delete CELL (id or name)."
    )
    delete.add_argument("target", metavar="CELL", help="the cell's id or name")
    delete.add_argument(
        "--allow-person-cell",
        action="store_true",
        help="delete a cell whose code the person wrote",
    )
    _json_option(delete)

    move = commands.add_parser(
        "move",
        help="move a cell before or after another",
        parents=[select],
        description="Move CELL before or after another cell (order only; nothing re-runs).",
    )
    move.add_argument("target", metavar="CELL", help="the cell's id or name")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--before", metavar="CELL", help="move it before this cell")
    where.add_argument("--after", metavar="CELL", help="move it after this cell")
    _json_option(move)


def run(args: argparse.Namespace) -> int:
    """Run a parsed `live` command and return its exit code.

    Errors propagate to `main`, which reports them (`cli/exits.py`).
    """
    command = getattr(args, "live_command", None)
    if command is None:
        print_error(
            "say what to do: marimo-engine live "
            "{servers,sessions,open,exec,cells,create,edit,run,delete,move,vars,describe,"
            "run-plan}"
        )
        return BAD_INPUT
    return _HANDLERS[command](args)


_PYTHON_TO_CLI = (
    (r"\ballow_remote=True\b", "--allow-remote"),
    (r"\ballow_person_cell=True\b", "--allow-person-cell"),
    (r"\bforce=True\b", "--force"),
    (r"\bsession_id=", "--session "),
    (r"\b(url|port|file|token)=", r"--\1 "),
    (r"\b(open_timeout_s|startup_timeout_s)\b", "--startup-timeout"),
    (r"\b(run_)?timeout_s\b", "--timeout"),
    (r"\bopen_session\(\)", "'marimo-engine live open'"),
    (r"\bcells\(\)", "'marimo-engine live cells'"),
    (r"\bcreate_cell\b", "'marimo-engine live create'"),
    (r"\blist_sessions\(url\)", "'marimo-engine live sessions'"),
)


def cli_wording(message: str) -> str:
    """Reword an error written for Python callers for the command line.

    Python argument names become the flags that set them (`url=` ->
    `--url`, `timeout_s` -> `--timeout`, `allow_remote=True` ->
    `--allow-remote`), calls become commands, and `(CLI: ...)` asides, now
    redundant, are dropped.
    """
    import re

    message = re.sub(r"\s*\(CLI: [^)]*\)", "", message)
    for pattern, replacement in _PYTHON_TO_CLI:
        message = re.sub(pattern, replacement, message)
    return re.sub(r" +([,.;)])", r"\1", re.sub(r"  +", " ", message))


def _client(args: argparse.Namespace) -> LiveClientSync:
    from marimo_engine.cli.exits import selecting
    from marimo_engine.live.sync_client import LiveClientSync

    with selecting():  # a --url no server answers on is bad input (exit 2)
        return LiveClientSync.connect(
            url=args.url,
            port=args.port,
            file=args.file,
            session_id=args.session,
            token=args.token,
            allow_remote=args.allow_remote,
            registry_dir=args.registry_dir,
        )


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _servers(args: argparse.Namespace) -> int:
    from marimo_engine.live.discovery import list_servers

    servers = list_servers(args.registry_dir, check_health=args.check)
    if args.port is not None:
        servers = [s for s in servers if s.port == args.port]
    if args.json:
        _print_json([{**s.model_dump(), "url": s.url} for s in servers])
        return OK
    if not servers:
        print(
            "no running marimo servers (only servers started with --no-token register); "
            "start one with 'marimo-engine live open NOTEBOOK.py'"
        )
        return OK
    for s in servers:
        print(f"{s.url}  pid {s.pid}  marimo {s.version}  started {s.started_at}")
    return OK


def _sessions(args: argparse.Namespace) -> int:
    from marimo_engine.live.discovery import list_servers, list_sessions

    if args.url is not None:
        urls = [args.url]
    else:
        servers = list_servers(args.registry_dir)
        urls = [s.url for s in servers if args.port is None or s.port == args.port]
    rows = []
    for url in urls:
        for session in list_sessions(url, token=args.token, allow_remote=args.allow_remote):
            if args.session is not None and args.session not in (
                session.session_id,
                session.stable_id,
            ):
                continue
            rows.append({"url": url, **session.model_dump()})
    if args.json:
        _print_json(rows)
        return OK
    if not rows:
        print("no open sessions; open one with 'marimo-engine live open NOTEBOOK.py'")
    for row in rows:
        where = row["path"] or row["filename"] or "(unsaved)"
        stable = f"  (stable id {row['stable_id']})" if row["stable_id"] else ""
        print(f"{row['url']}  {row['session_id']}  {where}{stable}")
    return OK


def _open(args: argparse.Namespace) -> int:
    import signal
    import threading

    from marimo_engine.live.session import open_session

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with open_session(
            args.notebook,
            url=args.url,
            session_id=args.session,
            token=args.token,
            allow_remote=args.allow_remote,
            port=args.port,
            run_all=not args.no_run,
            startup_timeout_s=args.startup_timeout,
        ) as live:
            info = {
                "url": live.url,
                "session_id": live.session_id,
                "browser_url": live.browser_url,
                "notebook": str(live.notebook) if live.notebook else None,
                "server_pid": live.server.pid if live.server else None,
                "open_duration_s": round(live.open_duration_s, 3),
            }
            if args.json:
                print(json.dumps(info), flush=True)
            else:
                print(
                    f"session {live.session_id} open on {live.url} "
                    f"({info['open_duration_s']} s)\n"
                    f"  open {live.browser_url} in a browser to watch it\n"
                    f"  drive it: marimo-engine live exec --url {live.url} "
                    f"--session {live.session_id} -c 'print(1)'\n"
                    "  Ctrl-C closes the session"
                    + (" and stops the server" if live.server else ""),
                    flush=True,
                )
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return OK


def _read_code(args: argparse.Namespace) -> str:
    from pathlib import Path

    from marimo_engine.errors import UsageError

    if args.code is not None and args.source is not None:
        raise UsageError("Give the code with -c CODE or as FILE, not both.")
    if args.code is not None:
        return str(args.code)
    if args.source is None:
        raise UsageError("Nothing to run: pass -c CODE, a FILE, or '-' to read stdin.")
    if args.source == "-":
        return sys.stdin.read()
    path = Path(args.source)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot read {args.source!r}: {exc.strerror or exc}.") from exc


def _exec(args: argparse.Namespace) -> int:
    code = _read_code(args)
    with _client(args) as client:
        result = client.execute(code, on_output=_forward(args), timeout_s=args.timeout)
    if args.json:
        _print_json({**result.model_dump(), "output_text": result.output_text})
    elif result.success and result.output_text:
        print(result.output_text)
    return OK if result.success else FAILURE


def _cells(args: argparse.Namespace) -> int:
    with _client(args) as client:
        cells = client.cells()
    if args.json:
        _print_json([c.model_dump() for c in cells])
        return OK
    for index, cell in enumerate(cells):
        name = f" ({cell.name})" if cell.name else ""
        print(f"[{index}] {cell.id}{name}  {cell.status or 'empty'}")
        for line in cell.code.splitlines():
            print(f"    {line}")
        for error in cell.errors:
            print(f"    ! {error}")
        if cell.output:
            print(f"    => {cell.output[:200]}")
    return OK


def _print_batch(args: argparse.Namespace, batch: Any, verb: str) -> int:
    """Print what one cell operation did; exit 1 when the cell ended with errors."""
    change = batch.changes[0]
    failed = bool(change.errors) or change.status in ("exception", "marimo-error")
    failed = failed or not batch.execution.success
    if args.json:
        _print_json({**change.model_dump(), "execution": batch.execution.model_dump()})
        return FAILURE if failed else OK
    status = f"  {change.status}" if change.status else ""
    print(f"{verb} cell {change.cell_id}{status}")
    for error in change.errors:
        print(f"  ! {error}", file=sys.stderr)
    if not batch.execution.success and not change.errors and batch.execution.error:
        print(batch.execution.error, file=sys.stderr)
    return FAILURE if failed else OK


def _forward(args: argparse.Namespace) -> Any:
    """Stream console chunks to our stdout/stderr unless --json collects them."""
    if getattr(args, "json", False):
        return None

    def forward(chunk: Any) -> None:
        stream = sys.stdout if chunk.channel == "stdout" else sys.stderr
        stream.write(chunk.text)
        stream.flush()

    return forward


def _create(args: argparse.Namespace) -> int:
    from marimo_engine.live.protocol import CreateCell

    op = CreateCell(
        code=_read_code(args),
        name=args.name,
        before=args.before,
        after=args.after,
        run=not args.no_run,
        hide_code=args.hide_code,
    )
    with _client(args) as client:
        batch = client.apply([op], on_output=_forward(args))
    return _print_batch(args, batch, "created")


def _edit(args: argparse.Namespace) -> int:
    from marimo_engine.errors import UsageError
    from marimo_engine.live.protocol import EditCell

    if args.code is None and args.source is None:
        if args.name is None:
            raise UsageError("Nothing to change: pass -c CODE, a FILE, '-' or --name NAME.")
        code = None
    else:
        code = _read_code(args)
    op = EditCell(
        target=args.target,
        code=code,
        name=args.name,
        run=not args.no_run,
        allow_person_cell=args.allow_person_cell,
    )
    with _client(args) as client:
        batch = client.apply([op], force=args.force, on_output=_forward(args))
    return _print_batch(args, batch, "edited")


def _run_cell(args: argparse.Namespace) -> int:
    from marimo_engine.live.protocol import RunCell

    with _client(args) as client:
        batch = client.apply(
            [RunCell(target=args.target)], on_output=_forward(args), timeout_s=args.timeout
        )
    return _print_batch(args, batch, "ran")


def _delete(args: argparse.Namespace) -> int:
    from marimo_engine.live.protocol import DeleteCell

    op = DeleteCell(target=args.target, allow_person_cell=args.allow_person_cell)
    with _client(args) as client:
        batch = client.apply([op])
    return _print_batch(args, batch, "deleted")


def _move(args: argparse.Namespace) -> int:
    from marimo_engine.live.protocol import MoveCell

    with _client(args) as client:
        batch = client.apply([MoveCell(target=args.target, before=args.before, after=args.after)])
    return _print_batch(args, batch, "moved")


def _vars(args: argparse.Namespace) -> int:
    with _client(args) as client:
        variables = client.variables()
    if args.json:
        _print_json([v.model_dump() for v in variables])
        return OK
    for v in variables:
        print(f"{v.name}: {v.type} = {v.repr}")
    return OK


def _describe(args: argparse.Namespace) -> int:
    with _client(args) as client:
        description = client.describe(args.name, max_chars=args.max_chars, max_rows=args.rows)
    if args.json:
        _print_json(description.model_dump())
    else:
        print(description.to_text())
    return OK


def _run_plan(args: argparse.Namespace) -> int:
    from marimo_engine.cli._args import plan_inputs
    from marimo_engine.cli.loading import load_tools, read_plan
    from marimo_engine.engine.live_run import run_plan_live
    from marimo_engine.plans.schema import load_plan

    loaded = read_plan(args.plan)
    tools = load_tools(args.tools)
    try:
        plan = load_plan(loaded.data)
    except Exception:  # an invalid plan: the run reports every problem
        plan = None
    # a missing or unknown input is bad input before any cell is touched
    inputs = plan_inputs(args, plan) if plan is not None else None

    def show(event: Any) -> None:
        if args.json:
            print(event.to_json_line(), flush=True)
        else:
            where = f"{event.step_id}: " if event.step_id else ""
            print(f"{event.type.value:<20} {where}{event.msg}", flush=True)

    with _client(args) as client:
        run = run_plan_live(
            loaded.data, tools.registry, client.client, inputs=inputs, plans=loaded.plans()
        )

        async def main() -> None:
            async with run:
                async for event in run:
                    show(event)

        client.call(main)
    result = run.result
    if result.error is not None and result.error.problems:  # an invalid plan
        if not args.json:
            from marimo_engine.cli.output import print_problems

            print_problems(result.error.problems, source=loaded.source)
        return BAD_INPUT
    return exit_code_for(result.verdict)


_HANDLERS = {
    "servers": _servers,
    "sessions": _sessions,
    "open": _open,
    "exec": _exec,
    "cells": _cells,
    "create": _create,
    "edit": _edit,
    "run": _run_cell,
    "delete": _delete,
    "move": _move,
    "vars": _vars,
    "describe": _describe,
    "run-plan": _run_plan,
}
