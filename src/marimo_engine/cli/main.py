"""The `marimo-engine` command: argument parsing and exit codes.

This module only parses arguments and presents errors; each command imports
its work when it runs (`marimo_engine.cli.commands`), so that
`marimo-engine --help` answers without importing marimo, pydantic-ai, httpx,
rich, DuckDB or pandas. The `live` and `agent` command groups live in
`cli/live.py` and `cli/agent.py`, which expose `add_parser(subparsers)` and
`run(args) -> int` (docs/architecture.md, "marimo_engine.cli").

Exit codes and error reporting are `cli/exits.py`'s, for every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from marimo_engine.cli._args import add_input_option, positive_int
from marimo_engine.cli._streams import debug_log_to_stderr, quiet_when_reader_gone
from marimo_engine.cli.exits import ExitCode, run_handler

__all__ = ["ExitCode", "build_parser", "main"]

PROG = "marimo-engine"


_DESCRIPTION = """\
Run AI agents' JSON tool plans as real marimo notebooks.

A plan is JSON: steps that call tools, with $references between them (see
docs/plan-language.md). PLAN is a path to a .json file, '-' for standard
input, or 'example:NAME' for a plan shipped with the package, such as
'example:seattle-weather'.
"""

_EPILOG = """\
exit codes: 0 success, 1 the run ended in FAILURE, 2 bad input (unreadable
file, invalid JSON, invalid plan, unknown --tools module), 3 the run ended in
INTERVENTION_NEEDED.

examples:
  marimo-engine run example:seattle-weather --html report.html
  marimo-engine validate plan.json --tools mypkg.tools
  marimo-engine export plan.json -o plan_notebook.py
  marimo-engine tools --tools ./my_tools.py
  marimo-engine schema > plan.schema.json
  marimo-engine runs
  marimo-engine resume RUN_ID --approve
"""

_TOOLS_HELP = (
    "a module path (mypkg.tools) or a .py file exposing a ToolRegistry, a "
    "*_registry() function, or plain functions; repeat for several. The example "
    "and data tools are always available."
)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a sub-command's default must not overwrite `--debug` given
    # before the sub-command's name.
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of errors",
    )
    return common


def _add_tools_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help=_TOOLS_HELP,
    )


def _add_plan_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "plan", metavar="PLAN", help="plan JSON file, '-' for stdin, or example:NAME"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `marimo-engine` with every sub-command.

    Returns:
        The parser; each sub-command sets `args.handler`, a callable taking
        the parsed `argparse.Namespace` and returning an exit code.
    """
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = subparsers.add_parser(
        "run",
        parents=[common],
        help="run a plan, showing live progress",
        description=(
            "Run a plan. On a terminal, shows one line per step with its state and a "
            "summary; with --json, or when stdout is not a terminal, writes one JSON "
            "event per line."
        ),
    )
    _add_plan_argument(run)
    _add_tools_option(run)
    run.add_argument(
        "--json", action="store_true", help="write events as JSON lines, even on a terminal"
    )
    run.add_argument(
        "--notebook", metavar="OUT.py", help="write the marimo notebook of the run to OUT.py"
    )
    run.add_argument(
        "--html",
        metavar="OUT.html",
        help="write an HTML report of the run, every step's output rendered (marimo export)",
    )
    run.add_argument(
        "--max-workers",
        type=positive_int,
        metavar="N",
        help="threads for plain-function tools running at the same time (default: engine's)",
    )
    run.add_argument(
        "--executor",
        metavar="WHERE",
        default=None,
        help="where tool steps run: 'inprocess' (default), 'dask' (a local Dask cluster for "
        "the run) or 'dask://HOST:PORT' (a running Dask scheduler); see docs/dask.md",
    )
    run.add_argument(
        "--gather",
        metavar="STEP_ID",
        action="append",
        default=[],
        help="on Dask, bring this step's output back whole (repeatable; key findings always "
        "come back, and every output with --html)",
    )
    add_input_option(run)
    from marimo_engine.cli import runs as runs_cli

    runs_cli.add_run_options(run)
    run.set_defaults(handler=_lazy("run_command"))

    validate = subparsers.add_parser(
        "validate",
        parents=[common],
        help="check a plan and list every problem",
        description="Check a plan; print every problem, one per line, or 'valid'.",
    )
    _add_plan_argument(validate)
    _add_tools_option(validate)
    validate.add_argument("--json", action="store_true", help="print the problems as JSON")
    validate.set_defaults(handler=_lazy("validate_command"))

    export = subparsers.add_parser(
        "export",
        parents=[common],
        help="write a plan's marimo notebook without running it",
        description=(
            "Write the marimo notebook of a plan without running it; open it with "
            "'marimo edit OUT.py' or run it with 'python OUT.py'."
        ),
    )
    _add_plan_argument(export)
    export.add_argument("-o", "--output", required=True, metavar="OUT.py", help="notebook file")
    _add_tools_option(export)
    add_input_option(export)
    export.set_defaults(handler=_lazy("export_command"))

    tools = subparsers.add_parser(
        "tools",
        parents=[common],
        help="list the registered tools with their JSON schemas",
        description="List the tools a plan may call, with the JSON schema of their arguments.",
    )
    _add_tools_option(tools)
    tools.add_argument("--json", action="store_true", help="print the tool schemas as JSON")
    tools.set_defaults(handler=_lazy("tools_command"))

    schema = subparsers.add_parser(
        "schema",
        parents=[common],
        help="print the JSON schema of a plan",
        description=(
            "Print the JSON schema (draft 2020-12) of the plan language, as published in the "
            'package (marimo_engine/plans/plan.schema.json). Point a plan\'s "$schema" at a '
            "saved copy to get completion and checks in an editor."
        ),
    )
    schema.set_defaults(handler=_lazy("schema_command"))

    runs_cli.add_parsers(subparsers, common)
    for group in ("live", "agent", "code", "mcp", "ui"):
        _add_group(subparsers, group, common)
    return parser


def _add_group(subparsers: argparse._SubParsersAction, name: str, common: object) -> None:
    """Add the `live` / `agent` command group from `cli/<name>.py`.

    A group module that fails to import is a broken build, not a missing
    command: the error propagates (the test suite and `--help` show it).
    """
    module = importlib.import_module(f"marimo_engine.cli.{name}")
    before = set(subparsers.choices)
    module.add_parser(subparsers)
    added = subparsers.choices.get(name)
    if added is not None and name not in before:
        if "debug" not in {a.dest for a in added._actions}:
            added.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
        if added.get_default("handler") is None:
            added.set_defaults(handler=module.run)


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        commands = importlib.import_module("marimo_engine.cli.commands")
        return int(getattr(commands, name)(args))

    handler.__name__ = name
    return handler


def _version() -> str:
    from marimo_engine import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run `marimo-engine` with `argv` and return the exit code.

    Args:
        argv: The arguments after the program name; `None` reads `sys.argv`.

    Returns:
        An `ExitCode` value. Errors are printed to stderr as one line
        (`error: ...`), with a traceback only when `--debug` is given.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.BAD_INPUT
    with quiet_when_reader_gone(), debug_log_to_stderr(enabled=debug):
        return run_handler(handler, args, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
