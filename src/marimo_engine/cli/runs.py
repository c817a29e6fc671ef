"""Durable runs on the command line: `runs`, `runs show`, `resume`, `rerun`, and `run --ask`.

See docs/runs.md. `cli/main.py` adds these parsers (`add_parsers`) and the
journal options of `run` (`add_run_options`); the work is imported only
when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from marimo_engine.cli._args import positive_int
from marimo_engine.cli.exits import ExitCode
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.engine.durable import Decision
    from marimo_engine.engine.events import ExecutionResult, InterventionInfo

__all__ = [
    "add_parsers",
    "add_run_options",
    "journal_options",
    "read_run",
    "run_json",
    "run_note",
    "run_row",
]


def _add_journal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help="the run journal: an SQLite file or a postgresql:// URL (default: "
        "$MARIMO_ENGINE_JOURNAL, else ~/.local/state/marimo-engine/journal.sqlite3)",
    )


def _add_ask(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ask",
        action="store_true",
        help="when a step needs a person (an approval, an intervention_if), ask on the "
        "terminal and go on instead of stopping",
    )


def add_run_options(run: argparse.ArgumentParser) -> None:
    """Add `--journal PATH`, `--no-journal` and `--ask` to `marimo-engine run`."""
    _add_journal(run)
    run.add_argument(
        "--no-journal", action="store_true", help="do not record the run (it cannot be resumed)"
    )
    run.add_argument(
        "--run-id", metavar="ID", help="the run's id (default: a new one, printed at the end)"
    )
    _add_ask(run)


def _lazy(name: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        return int(globals()[name](args))

    handler.__name__ = name
    return handler


def add_parsers(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `runs` (and `runs show`), `resume` and `rerun` to the CLI."""
    from marimo_engine.cli.main import _TOOLS_HELP

    runs = subparsers.add_parser(
        "runs",
        parents=[common],
        help="list the runs in the journal; 'runs show RUN_ID' shows one",
        description="List the journal's runs, newest first: id, plan, status, start, duration.",
    )
    _add_journal(runs)
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="most runs listed"
    )
    runs.set_defaults(handler=_lazy("runs_command"))
    inner = runs.add_subparsers(dest="runs_command", metavar="show")
    show = inner.add_parser(
        "show",
        parents=[common],
        help="one run's steps: state, attempts, output summary, pending intervention",
    )
    show.add_argument("run_id", metavar="RUN_ID")
    _add_journal(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_lazy("show_command"))

    resume = subparsers.add_parser(
        "resume",
        parents=[common],
        help="go on with a run that stopped for a person, failed or was killed",
        description=(
            "Go on with a run from its journal. Completed steps are not run again; their "
            "outputs come from the journal. A run waiting for a person needs --approve, "
            "--reject or --answer."
        ),
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    answer = resume.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_true", help="go on past the intervention")
    answer.add_argument(
        "--reject",
        action="store_true",
        help="end the run as FAILURE (an approval: skip the step and its dependents)",
    )
    answer.add_argument(
        "--answer", metavar="JSON", help="hand a JSON value to the run as the step's output"
    )
    resume.add_argument("--reason", metavar="TEXT", help="why, with --reject")
    resume.add_argument(
        "--intervention",
        metavar="ID",
        help="the intervention_id answered; a stale one is refused",
    )
    _add_common_run(resume, _TOOLS_HELP)
    resume.set_defaults(handler=_lazy("resume_command"))

    rerun = subparsers.add_parser(
        "rerun",
        parents=[common],
        help="run a past run again, running only the steps whose inputs changed",
        description=(
            "Start a new run linked to RUN_ID that runs only the steps whose input "
            "fingerprint (tool and resolved arguments) changed, and their dependents; "
            "every other output is taken from RUN_ID's journal."
        ),
    )
    rerun.add_argument("run_id", metavar="RUN_ID")
    rerun.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.args.NAME=VALUE",
        help="change one argument (VALUE is JSON, or else a string); repeat for several",
    )
    rerun.add_argument("--plan", metavar="CHANGED.json", help="run this changed plan instead")
    _add_common_run(rerun, _TOOLS_HELP)
    rerun.set_defaults(handler=_lazy("rerun_command"))


def _add_common_run(parser: argparse.ArgumentParser, tools_help: str) -> None:
    parser.add_argument("--tools", action="append", default=[], metavar="MODULE", help=tools_help)
    _add_journal(parser)
    parser.add_argument("--json", action="store_true", help="write events as JSON lines")
    parser.add_argument(
        "--max-workers", type=positive_int, metavar="N", help="threads for plain-function tools"
    )
    _add_ask(parser)


# -- options -------------------------------------------------------------------------------


def journal_options(args: argparse.Namespace) -> tuple[Any, Any]:
    """`(journal, on_intervention)` for `execute_plan` from `--journal`, `--no-journal`, `--ask`.

    Raises:
        UsageError: `--journal` with `--no-journal`, or `--ask` without a terminal.
    """
    journal: Any = True
    if getattr(args, "no_journal", False):
        if args.journal:
            raise UsageError("--journal and --no-journal contradict each other: give one.")
        journal = None
    elif getattr(args, "journal", None):
        journal = args.journal
    return journal, _asker(args)


def _asker(args: argparse.Namespace) -> Any:
    if not getattr(args, "ask", False):
        return None
    if not sys.stdin.isatty():
        raise UsageError("--ask needs a terminal on standard input; without it, use resume.")

    async def ask(info: InterventionInfo) -> Decision | None:
        import asyncio

        return await asyncio.to_thread(_prompt, info)

    return ask


def _prompt(info: InterventionInfo) -> Decision | None:
    """Ask on the terminal; `None` (the run stops for `resume`) on end of input."""
    from marimo_engine.cli.run_state import describe_value
    from marimo_engine.engine.durable import Decision

    if info.kind == "approval":
        shown = json.dumps(_jsonable(info.args), ensure_ascii=False)
        question = f"\nStep {info.step_id!r} needs approval; it will be called with {shown}"
        choices = "[a]pprove / [r]eject"
    else:
        question = (
            f"\nStep {info.step_id!r} needs a person: {info.expression} is true; "
            f"output: {describe_value(info.output)}"
        )
        choices = "[a]pprove / [r]eject / or type a JSON value as the step's output"
    print(question, file=sys.stderr)
    while True:
        print(f"{choices}: ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return None
        text = line.strip()
        if text.lower() in ("a", "approve", "y", "yes"):
            return Decision.approve()
        if text.lower() in ("r", "reject", "n", "no"):
            print("reason (optional): ", end="", file=sys.stderr, flush=True)
            return Decision.reject(sys.stdin.readline().strip() or None)
        if info.kind != "approval" and text:
            try:
                return Decision.answer(json.loads(text))
            except ValueError:
                print("not JSON; try again", file=sys.stderr)


def _jsonable(value: Any) -> Any:
    from marimo_engine._json import to_jsonable

    return to_jsonable(value)


def run_note(args: argparse.Namespace, result: ExecutionResult) -> None:
    """After a journaled run: its id on stderr, and how to resume a paused one."""
    if getattr(args, "no_journal", False) or result.run_id is None:
        return
    where = f" --journal {args.journal}" if getattr(args, "journal", None) else ""
    print(f"run {result.run_id}", file=sys.stderr)
    info = result.intervention
    if result.verdict.value == "INTERVENTION_NEEDED" and info is not None:
        how = "--approve | --reject"
        if info.kind != "approval":
            how += " | --answer JSON"
        print(
            f"resume with: marimo-engine resume {result.run_id}{where} {how} "
            f"(intervention {info.intervention_id})",
            file=sys.stderr,
        )


# -- commands -------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> Any:
    from marimo_engine.engine.journal import open_journal

    return open_journal(getattr(args, "journal", None) or None)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def run_row(record: Any) -> dict[str, Any]:
    """One line of `runs --json` (and MCP `list_runs`) for a `journal.RunRecord`.

    Returns:
        `{"run_id", "plan_id", "status", "started_at" (Unix seconds),
        "duration_s", "parent_run_id", "pending"}`.
    """
    return {
        "run_id": record.run_id,
        "plan_id": record.plan_id,
        "status": record.status,
        "started_at": record.started_at,
        "duration_s": record.duration_s,
        "parent_run_id": record.parent_run_id,
        "pending": record.pending,
    }


def read_run(journal: Any, run_id: str) -> tuple[Any, dict[str, str]]:
    """A run with its steps, and a one-line summary of each stored output.

    Args:
        journal: `journal.open_journal`'s argument (`None`: the default journal).
        run_id: The run.

    Returns:
        `(record, summaries)`: the `journal.RunRecord` and step id to summary.

    Raises:
        UsageError: No such run in the journal.
        JournalError: The journal cannot be read.
    """
    from marimo_engine.cli.run_state import summarize_output
    from marimo_engine.engine._journal_codec import decode_output
    from marimo_engine.engine.journal import open_journal

    with open_journal(journal) as store:
        record = store.get_run(run_id)
        if record is None:
            raise UsageError(f"No run {run_id!r} in the journal {store.location}.")
        stored = store.outputs(run_id)
    summaries: dict[str, str] = {}
    for sid, (_, fmt, data) in stored.items():
        if fmt is None or data is None:
            continue
        try:
            summaries[sid] = summarize_output(decode_output(fmt, data))
        except Exception as exc:  # an output this process cannot load (a missing class)
            summaries[sid] = f"<{fmt} output, not loadable here: {type(exc).__name__}>"
    return record, summaries


def run_json(record: Any, summaries: dict[str, str]) -> dict[str, Any]:
    """`runs show --json` and MCP `show_run`: the record's JSON, each step with `output_summary`."""
    data = record.to_json()
    for step in data["steps"]:
        step["output_summary"] = summaries.get(step["step_id"])
    return data


def runs_command(args: argparse.Namespace) -> int:
    """`marimo-engine runs [--json]`: id, plan, status, start, duration of each run."""
    with _open(args) as journal:
        records = journal.list_runs(args.limit)
    if args.json:
        rows = [run_row(r) for r in records]
        print(json.dumps(rows, ensure_ascii=False))
        return ExitCode.OK
    if not records:
        print("no runs in the journal")
        return ExitCode.OK
    print(f"{'RUN':<26} {'PLAN':<24} {'STATUS':<20} {'STARTED':<19} DURATION")
    for r in records:
        duration = "-" if r.duration_s is None else f"{r.duration_s:.3f} s"
        started = _when(r.started_at)
        print(f"{r.run_id:<26} {r.plan_id[:24]:<24} {r.status:<20} {started} {duration}")
    return ExitCode.OK


def show_command(args: argparse.Namespace) -> int:
    """`marimo-engine runs show RUN_ID [--json]`: each step's state, attempts, output summary."""
    record, summaries = read_run(getattr(args, "journal", None) or None, args.run_id)
    if args.json:
        print(json.dumps(run_json(record, summaries), ensure_ascii=False, default=str))
        return ExitCode.OK
    print(f"run {record.run_id}  plan {record.plan_id}  status {record.status}")
    print(
        f"started {_when(record.started_at)}"
        + (f"  duration {record.duration_s:.3f} s" if record.duration_s is not None else "")
    )
    if record.parent_run_id:
        print(f"re-run of {record.parent_run_id}")
    inputs = record.to_json()["inputs"]
    if inputs:
        shown = [
            f"{name}={json.dumps(item['value'], ensure_ascii=False)[:60]}"
            if item["format"] == "json"
            else f"{name}=<{item['format']}>"
            for name, item in inputs.items()
        ]
        print("inputs " + ", ".join(shown))
    from marimo_engine.ui.view import run_state

    live = run_state(record) == "running"
    for step in record.steps:
        # a step left `running` by a run nobody runs any more (cancelled, or its
        # process died) is interrupted, as the runs UI says
        status = "interrupted" if step.status == "running" and not live else step.status
        line = f"  {step.step_id:<20} {status:<12} attempts {step.attempt}"
        line += f" starts {step.starts}"
        if step.duration_s is not None:
            line += f"  {step.duration_s:.3f} s"
        if step.reused_from:
            line += f"  (output from {step.reused_from})"
        if step.step_id in summaries:
            line += f"  -> {summaries[step.step_id]}"
        if step.error:
            line += f"  {step.error.get('type')}: {step.error.get('message')}"
        if step.reason:
            line += f"  ({step.reason})"
        print(line)
    if record.pending:
        p = record.pending
        print(
            f"waiting for a person: {p.get('kind')} at step {p.get('step_id')!r} "
            f"(intervention {p.get('intervention_id')})"
        )
        if p.get("kind") == "approval":
            print(f"  arguments: {json.dumps(p.get('args'), ensure_ascii=False)}")
        else:
            print(f"  {p.get('expression')} is true")
    return ExitCode.OK


def _decision(args: argparse.Namespace) -> Decision | None:
    from marimo_engine.engine.durable import Decision

    if args.reason and not args.reject:
        raise UsageError("--reason goes with --reject.")
    if args.approve:
        return Decision.approve()
    if args.reject:
        return Decision.reject(args.reason)
    if args.answer is not None:
        try:
            return Decision.answer(json.loads(args.answer))
        except ValueError as exc:
            raise UsageError(f"--answer must be JSON ({exc}); quote a string: '\"yes\"'.") from exc
    return None


def _run_from(args: argparse.Namespace, make: Any) -> int:
    """Start the `PlanRun` `make(tools, on_event)` returns and show it as `run` does."""
    from marimo_engine.cli.commands import present_run
    from marimo_engine.cli.loading import load_tools
    from marimo_engine.engine.executor import run_sync
    from marimo_engine.plans.schema import load_plan

    tools = load_tools(args.tools)

    def start(on_event: Any) -> ExecutionResult:
        return run_sync(make(tools.registry, on_event)._run)

    # The plan for the progress display: the one the run will run.
    plan_run_probe = make(tools.registry, None, probe=True)
    plan = load_plan(plan_run_probe)
    return present_run(args, plan, tools, start)


_DECISION_FLAGS = {"approve": "--approve", "reject": "--reject", "answer": "--answer JSON"}
"""How `resume` takes each decision (`DecisionError.choices`)."""


def resume_command(args: argparse.Namespace) -> int:
    """`marimo-engine resume RUN_ID [--approve | --reject [--reason T] | --answer JSON]`."""
    from marimo_engine.engine.durable import DecisionError, journaled_plan, resume_run

    decision = _decision(args)
    on_intervention = _asker(args)

    def make(registry: Any, on_event: Any, probe: bool = False) -> Any:
        if probe:
            with _open(args) as journal:
                record = journal.get_run(args.run_id, steps=False)
                if record is None:
                    raise UsageError(f"No run {args.run_id!r} in the journal {journal.location}.")
                return journaled_plan(record)
        try:
            return resume_run(
                args.run_id,
                registry,
                journal=args.journal or None,
                decision=decision,
                intervention_id=args.intervention,
                max_workers=args.max_workers,
                on_event=on_event,
                on_intervention=on_intervention,
            )
        except DecisionError as exc:
            if not exc.accepted:
                raise
            raise UsageError(f"{exc} Pass {exc.choices(_DECISION_FLAGS)}.") from exc

    return _run_from(args, make)


def rerun_command(args: argparse.Namespace) -> int:
    """`marimo-engine rerun RUN_ID --set STEP.args.NAME=VALUE | --plan CHANGED.json`."""
    from marimo_engine.cli._args import name_values
    from marimo_engine.cli.loading import read_plan
    from marimo_engine.engine.durable import apply_changes, journaled_plan, rerun

    changes = name_values(args.set, "--set", "STEP.args.NAME=VALUE")
    if not changes and not args.plan:
        raise UsageError("rerun needs --set STEP.args.NAME=VALUE or --plan CHANGED.json.")
    changed_plan = read_plan(args.plan).data if args.plan else None
    on_intervention = _asker(args)

    def make(registry: Any, on_event: Any, probe: bool = False) -> Any:
        if probe:
            with _open(args) as journal:
                record = journal.get_run(args.run_id, steps=False)
                if record is None:
                    raise UsageError(f"No run {args.run_id!r} in the journal {journal.location}.")
                base = changed_plan if changed_plan is not None else journaled_plan(record)
                return apply_changes(base, changes) if changes else base
        return rerun(
            args.run_id,
            registry,
            plan=changed_plan,
            changes=changes or None,
            journal=args.journal or None,
            max_workers=args.max_workers,
            on_event=on_event,
            on_intervention=on_intervention,
        )

    return _run_from(args, make)
