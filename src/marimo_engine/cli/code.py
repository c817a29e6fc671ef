"""`marimo-engine code "GOAL"` and `marimo-engine eda DATA`: the code agent on a live notebook.

Wired into `cli/main.py` through `add_parser(subparsers)` (docs/architecture.md,
"marimo_engine.cli"). Nothing heavy is imported at module level.

Exit codes (as `run`): 0 the goal was met (`SUCCESS`), 1 `FAILURE` (a
limit, the same error twice, a model error), 2 bad input or configuration,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from marimo_engine.cli._args import positive_int, whole_number
from marimo_engine.cli.exits import ExitCode, print_error, report_error, selecting

if TYPE_CHECKING:
    from marimo_engine.agents.code.events import ApprovalRequest, CodeEvent
    from marimo_engine.live.session import LiveSession

__all__ = ["add_parser", "run", "run_eda"]


_DESCRIPTION = """\
Reach GOAL by writing marimo cells: the model proposes cell creations, edits
and deletions; each patch is checked (syntax, marimo's graph rules, a policy
on imports and calls), applied through marimo's code mode, run, and watched;
failing cells go back to the model with the facts a fix needs.

NOTEBOOK.py is opened headless (created if missing); --url/--session join a
running 'marimo edit' instead, where the person sees every change (a
NOTEBOOK.py that does not exist yet is created for a server on this machine).
"""

_EPILOG = """\
exit codes: 0 the goal was met, 1 failure (a limit, the same error twice, a
model error), 2 bad input or configuration, 130 interrupted.

examples:
  marimo-engine code "average temp_max per month" weather.py --data seattle.csv \\
      --model openai:gpt-4o-mini
  marimo-engine code "add a chart of sales" --url http://127.0.0.1:2718 --approve ask \\
      --model anthropic:claude-sonnet-4-5
  marimo-engine code --undo weather.py
"""


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", metavar="URL", help="a running marimo server to join")
    parser.add_argument("--session", metavar="ID", help="the session id to join")
    parser.add_argument("--token", metavar="T", help="the server's access token")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a server that is not on loopback"
    )
    parser.add_argument("--model", metavar="MODEL", help="such as openai:gpt-4o-mini")
    parser.add_argument(
        "--fallback", action="append", default=[], metavar="MODEL",
        help="a model to try when the one before fails (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--approve", choices=("auto", "ask", "deny"), default=None,
        help="what the policy's 'ask' means: auto approves, ask prompts on the terminal, "
        "deny refuses (default: ask on a terminal, deny otherwise)",
    )  # fmt: skip
    parser.add_argument(
        "--sandbox", action="store_true",
        help="run the kernel under bubblewrap: no network, writes only in the notebook's folder",
    )  # fmt: skip
    parser.add_argument(
        "--max-turns", type=whole_number(1, 100), default=12, metavar="N", help="model turns"
    )
    parser.add_argument(
        "--max-requests", type=positive_int, default=40, metavar="N", help="model requests"
    )
    parser.add_argument(
        "--max-tokens", type=positive_int, metavar="N", help="input plus output tokens"
    )
    parser.add_argument("--budget-usd", type=_dollars, metavar="X", help="US dollars allowed")
    parser.add_argument(
        "--timeout", type=_seconds, default=300.0, metavar="S",
        help="seconds one patch's cells may run before the kernel is interrupted",
    )  # fmt: skip
    parser.add_argument(
        "--max-wall", type=_seconds, default=1800.0, metavar="S",
        help="seconds the whole run may take, model calls and approvals included "
        "(default 1800)",
    )  # fmt: skip
    parser.add_argument(
        "--audit", metavar="PATH", help="append an audit log (JSON lines) of every action"
    )
    parser.add_argument("--html", metavar="OUT.html", help="export the notebook to HTML at the end")
    parser.add_argument(
        "--stream", action="store_true", help="ask the model for streamed responses"
    )
    parser.add_argument("--json", action="store_true", help="write events as JSON lines")
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )


def _dollars(text: str) -> float:
    from marimo_engine.cli.agent import _dollars as dollars

    return dollars(text)


def _seconds(text: str) -> float:
    from marimo_engine.cli.agent import _seconds as seconds

    return seconds(text)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `code` and `eda` sub-commands to `marimo-engine`'s parser."""
    code = subparsers.add_parser(
        "code",
        help="write, run and fix marimo cells to reach a goal, with a model",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    code.add_argument("goal", metavar="GOAL", nargs="?", help="what to achieve, in words")
    code.add_argument("notebook", metavar="NOTEBOOK.py", nargs="?", help="the notebook")
    code.add_argument(
        "--data", action="append", default=[], metavar="FILE",
        help="a data file the goal is about (CSV, Parquet, JSON); repeatable",
    )  # fmt: skip
    code.add_argument(
        "--undo", action="store_true", help="undo the agent's last turn on the notebook"
    )
    code.add_argument(
        "--diff", action="store_true", help="show the agent's last turn on the notebook"
    )
    _common_options(code)
    code.set_defaults(handler=run)

    eda = subparsers.add_parser(
        "eda",
        help="build an exploratory notebook on a CSV or Parquet file, with a model",
        description=(
            "Explore DATA in a marimo notebook: load, schema, missing values, "
            "distributions, relations, charts and a summary written from the numbers "
            "the cells computed. The code agent with an EDA brief."
        ),
    )
    eda.add_argument("data", metavar="DATA", help="a CSV, Parquet or JSON file")
    eda.add_argument("--target", metavar="COLUMN", help="a column to explain")
    eda.add_argument(
        "--notebook", metavar="OUT.py", help="the notebook (default: eda_<DATA stem>.py)"
    )
    _common_options(eda)
    eda.set_defaults(handler=run_eda)


def _error(message: str) -> int:
    """Bad input found here: one `error:` line (cli/exits.py), exit code 2."""
    print_error(message)
    return ExitCode.BAD_INPUT


def _open(
    args: argparse.Namespace, notebook: Path | None, data: tuple[str, ...] = ()
) -> LiveSession:
    if not (args.url or args.session):
        return _open_session(args, notebook, data)  # a server of our own that fails: exit 1
    with selecting():  # a --url no server answers on is bad input (exit 2)
        return _open_session(args, notebook, data)


def _open_session(
    args: argparse.Namespace, notebook: Path | None, data: tuple[str, ...]
) -> LiveSession:
    from marimo_engine.agents.code.sandbox import SandboxLimits, open_sandboxed_session
    from marimo_engine.errors import UsageError
    from marimo_engine.live.session import open_session

    if args.url or args.session:
        if args.sandbox:
            raise UsageError(
                "--sandbox applies to sessions the agent opens itself; a person's running "
                "session is never sandboxed by us (approvals govern there). Drop --sandbox."
            )
        url, session_id = args.url, args.session
        if url is None:
            from marimo_engine.live.discovery import find_session

            url, _ = find_session(session_id=args.session, token=args.token,
                                  allow_remote=args.allow_remote)  # fmt: skip
        elif session_id is None:
            session_id = _running_session(args, url, notebook)
        return open_session(
            notebook, url=url, session_id=session_id, token=args.token,
            allow_remote=args.allow_remote, run_all=False,
        )  # fmt: skip
    if notebook is None:
        raise UsageError("Give a NOTEBOOK.py (created if missing), or --url/--session.")
    if args.sandbox:
        return open_sandboxed_session(notebook, limits=SandboxLimits(), read_only=data)
    return open_session(notebook)


def _running_session(args: argparse.Namespace, url: str, notebook: Path | None) -> str | None:
    """The session to join on `url` when only `--url` was given: the person's open notebook.

    `--url` alone means the notebook a person has open there: the only
    session of the server (or of NOTEBOOK.py, when given). Opening a new
    connection to a notebook a browser already edits would only watch it.

    Returns:
        Its session id, or `None` when the server has no session (of that
        notebook): the agent then opens one.

    Raises:
        UsageError: Several sessions match; the message lists them.
    """
    from marimo_engine.errors import UsageError
    from marimo_engine.live.discovery import list_sessions

    sessions = list_sessions(url, token=args.token, allow_remote=args.allow_remote)
    if notebook is not None:
        sessions = [s for s in sessions if s.path and Path(s.path).resolve() == notebook]
    if len(sessions) > 1:
        listed = ", ".join(f"{s.session_id} ({s.path or 'unsaved'})" for s in sessions)
        raise UsageError(f"{url} has several sessions: {listed}; pick one with --session ID.")
    return sessions[0].session_id if sessions else None


def _notebook_of(live: LiveSession, notebook: Path | None) -> Path | None:
    if notebook is not None:
        return notebook
    from marimo_engine.live.discovery import list_sessions

    for info in list_sessions(live.url, token=live.token, allow_remote=live.allow_remote):
        if info.session_id == live.session_id and info.path:
            return Path(info.path)
    return None


def run(args: argparse.Namespace) -> int:
    """Run `marimo-engine code` with parsed arguments; returns the exit code."""
    goal, notebook = args.goal, args.notebook
    if (args.undo or args.diff) and notebook is None and goal and goal.endswith(".py"):
        goal, notebook = None, goal
    path = Path(notebook).resolve() if notebook else None
    if args.undo or args.diff:
        return _review(args, path)
    if not goal:
        return _error("Give a GOAL in words (or --undo / --diff).")
    return _run_goal(args, goal, path, data=list(args.data), brief=None)


def run_eda(args: argparse.Namespace) -> int:
    """Run `marimo-engine eda` with parsed arguments; returns the exit code."""
    from marimo_engine.agents.code.eda import eda_brief, eda_goal

    data = Path(args.data).resolve()
    if not data.is_file() and args.data.isidentifier() and (args.url or args.session):
        # A dataframe variable of the live session, described by its kernel.
        notebook = Path(args.notebook).resolve() if args.notebook else None
        return _run_goal(
            args, eda_goal(target=args.target, variable=args.data), notebook, data=[],
            brief=eda_brief(target=args.target, variable=args.data), variable=args.data,
        )  # fmt: skip
    notebook = Path(args.notebook).resolve() if args.notebook else Path(f"eda_{data.stem}.py")
    return _run_goal(
        args, eda_goal(data, target=args.target), notebook.resolve(), data=[str(data)],
        brief=eda_brief(target=args.target),
    )  # fmt: skip


def _run_goal(
    args: argparse.Namespace,
    goal: str,
    path: Path | None,
    *,
    data: list[str],
    brief: str | None,
    variable: str | None = None,
) -> int:
    import anyio
    import pydantic_ai

    from marimo_engine.agents.code import CodeAgent, CodeOptions
    from marimo_engine.agents.code.data import describe_files
    from marimo_engine.agents.code.sandbox import SandboxLimits
    from marimo_engine.errors import LiveSelectionError, ModelConfigError, UsageError
    from marimo_engine.llm.usage import ModelLimits

    pydantic_ai.BANNER_ENABLED = False
    if not args.model:
        return _error("Give --model, such as openai:gpt-4o-mini.")
    approve = args.approve or ("ask" if sys.stdin.isatty() else "deny")
    try:
        described = describe_files(data)
        options = CodeOptions(
            max_turns=args.max_turns,
            limits=ModelLimits(
                request_limit=args.max_requests, total_tokens_limit=args.max_tokens,
                budget_usd=args.budget_usd,
            ),
            run_timeout_s=args.timeout,
            max_wall_s=args.max_wall,
            approve=approve,
            limits_text=SandboxLimits().describe() if args.sandbox else None,
            stream=args.stream,
        )  # fmt: skip
        agent = CodeAgent(
            args.model, fallbacks=args.fallback, options=options,
            on_intervention=_ask_on_terminal if approve == "ask" else None,
            audit_path=args.audit, brief=brief,
        )  # fmt: skip
    except (ModelConfigError, UsageError) as exc:
        return report_error(exc, debug=bool(getattr(args, "debug", False)))
    as_json = bool(args.json) or not sys.stdout.isatty()
    display = _Display(as_json)
    # A notebook that does not exist yet is created when the session opens (by
    # marimo for a server of our own, by open_session for a running one).
    new_notebook = path is not None and not path.exists()
    try:
        live = _open(args, path, tuple(data))
    except (UsageError, LiveSelectionError) as exc:
        return report_error(exc, debug=bool(getattr(args, "debug", False)))
    with live:
        notebook = _notebook_of(live, path)
        display.line(f"notebook: {notebook or '(unsaved)'} at {live.browser_url}")

        async def drive() -> Any:
            result = None
            async with live.client() as client:
                context = list(described)
                if variable is not None:
                    context.append(await _describe_variable(client, variable))
                async for event in agent.events(
                    goal, client, notebook=notebook, data_context=context,
                    new_notebook=new_notebook,
                ):  # fmt: skip
                    display.event(event)
                    if event.result is not None:
                        result = event.result
            return result

        result = anyio.run(drive)
    if args.html and notebook is not None:
        _export_html(notebook, Path(args.html), display)
    return ExitCode.OK if result is not None and result.succeeded else ExitCode.FAILURE


async def _describe_variable(client: Any, name: str) -> dict[str, Any]:
    """The data context of a dataframe held in a live session's global `name`."""
    description = await client.describe(name, max_chars=3000)
    return {
        "variable": name,
        "library": description.library,
        "rows": description.shape[0],
        "columns": [c.model_dump() for c in description.columns],
        "sample": description.sample,
    }


def _review(args: argparse.Namespace, path: Path | None) -> int:
    import anyio

    from marimo_engine.agents.code.checkpoints import NotebookMemory, undo_checkpoint
    from marimo_engine.errors import LiveSelectionError, UsageError

    try:
        if path is None and not (args.url or args.session):
            raise UsageError("Give the NOTEBOOK.py whose last turn to undo or show.")
        if path is not None and not (args.url or args.session):
            # Read the memory before opening a session: a mistyped path must not
            # start marimo (which creates the file) only to say there is nothing to undo.
            memory = NotebookMemory.load(str(path))
            if memory.last_checkpoint() is None:
                raise UsageError(f"No turn of the code agent to undo on {str(path)!r}.")
        live = _open(args, path) if args.undo else None
        notebook = path if live is None else _notebook_of(live, path)
        if notebook is None:
            raise UsageError("The session has no notebook file; pass NOTEBOOK.py.")
        memory = NotebookMemory.load(str(notebook))
        checkpoint = memory.last_checkpoint()
        if checkpoint is None:
            raise UsageError(f"No turn of the code agent to undo on {str(notebook)!r}.")
    except (UsageError, LiveSelectionError) as exc:
        if "live" in locals() and live is not None:
            live.close()
        return report_error(exc, debug=bool(getattr(args, "debug", False)))
    print(checkpoint.diff_text())
    if live is None:
        return ExitCode.OK
    with live:

        async def undo() -> Any:
            import uuid

            from marimo_engine.agents.audit import AuditLog

            audit = (
                AuditLog(args.audit, run_id=f"undo-{uuid.uuid4().hex[:8]}") if args.audit else None
            )
            try:
                async with live.client() as client:
                    return await undo_checkpoint(client, checkpoint, memory=memory, audit=audit)
            finally:
                if audit is not None:
                    audit.close()

        result = anyio.run(undo)
    print(f"undone: turn {result.turn} ({len(result.ops)} operation(s))")
    for note in result.notes:
        print(f"note: {note}")
    # Nothing put back while the turn had changes: say so with the exit code too.
    return ExitCode.OK if result.ops or not checkpoint.changed else ExitCode.FAILURE


async def _ask_on_terminal(request: ApprovalRequest) -> bool:
    import asyncio
    import contextlib
    import os
    import threading

    lines = ["", f"approval needed: {request.describe()}", *request.patch_lines()]
    print("\n".join(lines), file=sys.stderr)

    # Reading blocks its thread until a line comes. A daemon thread of our own, not a
    # worker of anyio's pool (which the interpreter joins at exit), reading the file
    # descriptor itself, not `sys.stdin` (whose buffer lock a blocked reader would hold
    # at exit): when the run's wall-time limit ends the wait, the command still exits.
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()

    def settle(text: str) -> None:
        if not answered.done():
            answered.set_result(text)

    def ask() -> None:
        line = b""
        try:
            fd = sys.stdin.fileno()
            while b"\n" not in line:
                chunk = os.read(fd, 1024)
                if not chunk:
                    break
                line += chunk
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop is closed: no one waits
            loop.call_soon_threadsafe(settle, line.decode(errors="replace").split("\n")[0])

    # The prompt goes to stderr: with --json, stdout carries only JSON lines.
    print("approve? [y/N] ", end="", file=sys.stderr, flush=True)
    threading.Thread(target=ask, name="marimo-engine-approval", daemon=True).start()
    answer = await answered
    return answer.strip().lower() in ("y", "yes")


def _export_html(notebook: Path, out: Path, display: _Display) -> None:
    import subprocess

    command = [sys.executable, "-m", "marimo", "export", "html", str(notebook), "-o", str(out)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        display.line("html: marimo export html took more than 600 s; not written")
        return
    if done.returncode == 0:
        display.line(f"html: {out}")
    else:
        display.line(f"html: marimo export html failed: {done.stderr.strip()[-300:]}")


class _Display:
    """One line per event on a terminal (rich), or one JSON line per event."""

    _STYLES: ClassVar[dict[str, str]] = {
        "PATCH_REJECTED": "yellow", "CELL_ERROR": "red", "REPAIR": "cyan",
        "APPLIED": "green", "FINISHED": "bold green", "APPROVAL": "magenta",
    }  # fmt: skip

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._console: Any = None
        if not as_json:
            from rich.console import Console

            # emoji=False: model names such as "openai:x" must not become emoji (":x:").
            self._console = Console(highlight=False, emoji=False)

    def line(self, text: str) -> None:
        if self.as_json:
            print(json.dumps({"type": "INFO", "msg": text}), flush=True)
        else:
            self._console.print(text, markup=False)

    def event(self, event: CodeEvent) -> None:
        if self.as_json:
            print(event.to_json_line(), flush=True)
            return
        from rich.text import Text

        style = self._STYLES.get(event.type.value, "")
        text = Text(f"[turn {event.turn}] ", style="dim")
        text.append(event.msg, style=style)
        self._console.print(text)
        if event.type.value == "CELL_ERROR" and event.errors:
            from marimo_engine.agents.code.monitor import CellError, ErrorClass

            data = dict(event.errors[0])
            error = CellError(
                cell_id=data["cell_id"], cell_name=data["cell_name"], code="",
                error_class=ErrorClass(data["class"]), exception=data["exception"],
                message=data["message"], frames=data["frames"], facts=data["facts"],
            )  # fmt: skip
            for extra in error.report().splitlines()[1:]:
                self._console.print(Text(f"    {extra}", style="dim"))
        if event.type.value == "DONE" and event.result is not None:
            result = event.result
            if result.answer:
                self._console.print(Text(f"answer: {result.answer}", style="bold"))
            self._console.print(
                f"turns: {result.turns}, checkpoints: {len(result.checkpoints)}, "
                f"repairs: {len(result.repairs)}, {result.usage.describe()}",
                markup=False,
            )
