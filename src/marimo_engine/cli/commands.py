"""The work of `marimo-engine run`, `validate`, `export` and `tools`.

`cli/main.py` imports this module only when one of these commands runs.
Each function takes the parsed arguments and returns an exit code
(`ExitCode`); bad input raises `UsageError` or `PlanValidationError`, which
`main` prints as one line (and the problems, one per line) with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from marimo_engine.cli.exits import ExitCode, InterruptNotice, exit_code_for
from marimo_engine.cli.loading import LoadedPlan, LoadedTools, load_tools, read_plan
from marimo_engine.cli.output import format_problem, print_problems, write_text_atomic
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.cli.progress import ProgressModel, ProgressRenderer
    from marimo_engine.engine.events import Event, ExecutionResult
    from marimo_engine.plans.schema import Plan

__all__ = ["export_command", "run_command", "tools_command", "validate_command"]


def _checked_plan(loaded: LoadedPlan, tools: LoadedTools) -> Plan | None:
    """Return the parsed plan, or print every problem and return `None`."""
    from marimo_engine.plans.validation import validate_plan

    problems = validate_plan(loaded.data, tools.registry, plans=loaded.plans())
    if problems:
        print_problems(problems, source=loaded.source)
        return None
    from marimo_engine.plans.schema import load_plan

    return load_plan(loaded.data)


def _check_output_path(path: str, option: str) -> None:
    from pathlib import Path

    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise UsageError(
            f"Cannot write {option} {path!r}: folder {str(folder)!r} does not exist; "
            "create it or choose another path."
        )
    if Path(path).is_dir():
        raise UsageError(f"Cannot write {option} {path!r}: it is a directory; give a file name.")


def validate_command(args: argparse.Namespace) -> int:
    """`marimo-engine validate PLAN [--tools M ...] [--json]`.

    Prints `valid`, or every problem one per line (`step 's3', field
    'run_if': ... [code]`); with `--json`, the problem list as JSON (`[]`
    when valid) on stdout.

    Returns:
        0 when the plan is valid, 2 when it has problems.
    """
    from marimo_engine.plans.validation import validate_plan

    loaded = read_plan(args.plan)
    tools = load_tools(args.tools)
    problems = validate_plan(loaded.data, tools.registry, plans=loaded.plans())
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in problems], indent=2))
    elif problems:
        count = len(problems)
        print(f"{loaded.source}: {count} problem{'s' if count != 1 else ''}")
        for problem in problems:
            print(format_problem(problem))
    else:
        print("valid")
    return ExitCode.BAD_INPUT if problems else ExitCode.OK


def export_command(args: argparse.Namespace) -> int:
    """`marimo-engine export PLAN -o OUT.py [--tools M ...] [--input NAME=VALUE ...]`.

    Writes the notebook and runs nothing; `--input` values go into its
    inputs cell.

    Returns:
        0 once the notebook is written; 2 for an invalid plan or input.
    """
    from marimo_engine.cli._args import plan_inputs
    from marimo_engine.engine.compiler import plan_to_notebook

    loaded = read_plan(args.plan)
    tools = load_tools(args.tools)
    plan = _checked_plan(loaded, tools)
    if plan is None:
        return ExitCode.BAD_INPUT
    _check_output_path(args.output, "the notebook")
    inputs = plan_inputs(args, plan) if getattr(args, "input", None) else None
    source = plan_to_notebook(plan, tools.registry, plans=loaded.plans(), inputs=inputs)
    path = write_text_atomic(args.output, source)
    count = len(plan.steps)
    noun = "step" if count == 1 else "steps"
    print(f"wrote {path} ({count} {noun}); open it with: marimo edit {path}")
    _import_hint(tools)
    return ExitCode.OK


def _import_hint(tools: LoadedTools) -> None:
    """Say where the notebook's tool imports come from, when that is not obvious."""
    if tools.search_paths:
        import os

        folders = os.pathsep.join(tools.search_paths)
        _note(
            f"the notebook imports tools from {folders}: open or run it from there, "
            f"or with PYTHONPATH={folders}"
        )


def tools_command(args: argparse.Namespace) -> int:
    """`marimo-engine tools [--tools M ...] [--json]`: list tools and their JSON schemas.

    Returns:
        0.
    """
    tools = load_tools(args.tools)
    schemas = tools.registry.schemas()
    if args.json:
        print(json.dumps(schemas, indent=2))
        return ExitCode.OK
    for index, schema in enumerate(schemas):
        if index:
            print()
        print(f"{schema['name']}: {schema['description']}")
        body = json.dumps(schema["parameters"], indent=2)
        print("\n".join(f"  {row}" for row in body.splitlines()))
    return ExitCode.OK


def schema_command(args: argparse.Namespace) -> int:
    """`marimo-engine schema`: print the plan language's published JSON schema.

    Returns:
        0.
    """
    from marimo_engine.plans.json_schema import published_plan_schema_text

    sys.stdout.write(published_plan_schema_text())
    return ExitCode.OK


def _renderer(model: ProgressModel, *, as_json: bool) -> ProgressRenderer:
    from marimo_engine.cli.progress import JsonLinesProgress, RichProgress

    if as_json or not sys.stdout.isatty():
        return JsonLinesProgress(sys.stdout)
    return RichProgress(model)


def run_command(args: argparse.Namespace) -> int:
    """`marimo-engine run PLAN [--tools M] [--input NAME=VALUE] [--json] [--notebook F] ...`.

    Validates the plan first (an invalid plan runs nothing: every problem is
    printed and the exit code is 2), then runs it, showing progress on a
    terminal or JSON lines otherwise, then writes the notebook and the
    HTML report when asked.

    Returns:
        0 for `SUCCESS`, 1 for `FAILURE`, 3 for `INTERVENTION_NEEDED`, 2 for
        bad input; 1 when the report could not be written.
    """
    from marimo_engine.cli.progress import JsonLinesProgress
    from marimo_engine.engine.executor import execute_plan_sync
    from marimo_engine.plans.schema import load_plan
    from marimo_engine.plans.validation import validate_plan

    loaded = read_plan(args.plan)
    tools = load_tools(args.tools)
    for path, option in ((args.notebook, "the notebook"), (args.html, "the HTML report")):
        if path:
            _check_output_path(path, option)
    plans = loaded.plans()
    problems = validate_plan(loaded.data, tools.registry, plans=plans)
    if problems:
        print_problems(problems, source=loaded.source)
        if args.json or not sys.stdout.isatty():
            # The engine's own events for an invalid plan (START, ERROR with
            # the problems, FINISH): programs reading --json get one stream.
            stream = JsonLinesProgress()
            for event in execute_plan_sync(loaded.data, tools.registry, plans=plans).events:
                stream.handle(event)
        return ExitCode.BAD_INPUT
    plan = load_plan(loaded.data)
    from marimo_engine.cli._args import plan_inputs
    from marimo_engine.cli.runs import journal_options

    inputs = plan_inputs(args, plan)  # a missing one is bad input: nothing runs

    journal, on_intervention = journal_options(args)
    executor = getattr(args, "executor", None)
    gather: Any = ()
    if executor not in (None, "inprocess"):
        # Outputs stay on the Dask workers: nothing to journal here, unless asked.
        if getattr(args, "journal", None):
            raise UsageError(
                "--journal cannot record a run on Dask (outputs stay on the workers): "
                "drop --journal or --executor."
            )
        journal = None
        gather = True if args.html else list(getattr(args, "gather", []) or [])

    def start(on_event: Callable[[Event], None]) -> ExecutionResult:
        return execute_plan_sync(
            plan,
            tools.registry,
            max_workers=args.max_workers,
            on_event=on_event,
            journal=journal,
            run_id=args.run_id,
            on_intervention=on_intervention,
            plans=plans,
            executor=executor,
            gather=gather,
            inputs=inputs,
        )

    return present_run(args, plan, tools, start)


def present_run(
    args: argparse.Namespace,
    plan: Plan,
    tools: LoadedTools,
    start: Callable[[Callable[[Event], None]], ExecutionResult],
) -> int:
    """Run `start(on_event)` showing its progress; write the artifacts; return the exit code.

    Used by `run`, `resume` and `rerun` (`cli/runs.py`). `args` needs `json`,
    and may have `notebook` and `html`.
    """
    from marimo_engine.cli.progress import JsonLinesProgress, ProgressModel

    model = ProgressModel.from_plan(plan)
    renderer = _renderer(model, as_json=args.json)
    # RichProgress folds events into the model itself; JSON lines do not, and
    # the HTML report needs the model either way.
    fold = isinstance(renderer, JsonLinesProgress)

    notice = InterruptNotice()

    def on_event(event: Event) -> None:
        notice.install()  # on the first event: asyncio's own Ctrl-C handler is in place
        if fold:
            model.apply(event)
        renderer.handle(event)

    try:
        result = start(on_event)
    finally:
        notice.restore()
        renderer.close()
    from marimo_engine.cli.runs import run_note

    run_note(args, result)
    _write_artifacts(args, model, result, tools)
    return exit_code_for(result.verdict)


def _write_artifacts(
    args: argparse.Namespace, model: ProgressModel, result: ExecutionResult, tools: LoadedTools
) -> None:
    if getattr(args, "notebook", None) and result.notebook is not None:
        path = write_text_atomic(args.notebook, result.notebook)
        _note(f"wrote the notebook of the run to {path}")
        _import_hint(tools)
    if getattr(args, "html", None):
        from marimo_engine.cli.report import write_html_report

        with _status("Writing the HTML report with marimo export html …", quiet=args.json):
            path = write_html_report(
                model,
                result.outputs,
                args.html,
                notebook=result.notebook,
                search_paths=tools.search_paths,
            )
        _note(f"wrote the HTML report to {path}")


def _status(text: str, *, quiet: bool) -> AbstractContextManager[object]:
    """A spinner on a terminal while something slow happens; nothing otherwise."""
    if quiet or not sys.stdout.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console().status(text)


def _note(text: str) -> None:
    # Notes go to stderr, so that stdout stays one JSON event per line.
    print(text, file=sys.stderr)
