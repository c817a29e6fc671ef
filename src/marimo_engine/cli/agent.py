"""`marimo-engine agent "GOAL" --tools MODULE --model MODEL ...`: plan, run and replan with a model.

Wired into `cli/main.py` through `add_parser(subparsers)` and `run(args)`
(docs/architecture.md, "marimo_engine.cli"). Nothing heavy is imported at
module level: pydantic-ai, rich and the engine load when the command runs.

On a terminal the planner's steps are printed one line each, a spinner
with the seconds waited (and, with `--stream`, the tokens so far) runs
while the model answers, and every plan that runs gets the same live step
display as `marimo-engine run` (`cli/progress.RichProgress`). With
`--json`, or when stdout is not a terminal, every agent event is one JSON
line (engine events nested in `event`, `MODEL_PROGRESS` events while a
streamed answer arrives); the last is `DONE`, with the verdict and the
usage report.

Exit codes: 0 `SUCCESS`, 1 `FAILURE` (including no valid plan, a provider
error or a usage limit), 3 `INTERVENTION_NEEDED`, 2 bad input or
configuration (an unknown `--tools` module, a malformed model string, no
key or endpoint), printed as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.cli._args import positive_int, whole_number
from marimo_engine.llm.models import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from marimo_engine.agents.events import AgentEvent, AgentResult

__all__ = ["add_parser", "run"]


_DESCRIPTION = """\
Ask a model for a plan that reaches GOAL with the given tools, check it
(invalid plans go back to the model with their problems), run it as a
marimo notebook, and replan when it fails.

Models: openai:NAME (OPENAI_API_KEY; or OPENAI_BASE_URL for an
OpenAI-compatible server such as vLLM, llama.cpp or LM Studio),
anthropic:NAME (ANTHROPIC_API_KEY), ollama:NAME (OLLAMA_BASE_URL, ending
in /v1), or replay:AUDIT.jsonl to answer offline from the model responses
recorded in an audit log by an earlier run with --audit.
"""

_EPILOG = """\
exit codes: 0 success, 1 failure (no valid plan, a failed run, a provider
error or a usage limit), 2 bad input or configuration, 3 the run stopped for
a person (INTERVENTION_NEEDED).

examples:
  marimo-engine agent "check the hull and the air" --model openai:gpt-4o-mini
  OPENAI_BASE_URL=http://localhost:8000/v1 marimo-engine agent "GOAL" \\
      --tools mypkg.tools --model openai:qwen2.5-7b --audit agent.jsonl
  marimo-engine agent "GOAL" --tools mypkg.tools --model replay:agent.jsonl
"""


def _dollars(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected US dollars such as 0.50, got {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 US dollars, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds such as 60, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `agent` sub-command to `marimo-engine`'s parser.

    Args:
        subparsers: The sub-parsers action of the main parser.
    """
    parser = subparsers.add_parser(
        "agent",
        help="turn a goal into a plan with a model, run it, replan on failure",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("goal", metavar="GOAL", help="what the plan should achieve, in words")
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module path or .py file with tools (repeatable); the example and data "
        "tools are always available",
    )
    parser.add_argument(
        "--only-tools",
        action="store_true",
        help="offer the model only the --tools modules' tools, not the example and data tools",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="such as openai:gpt-4o-mini, or replay:AUDIT.jsonl",
    )
    parser.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model to try when the one before fails or is rate limited (repeatable)",
    )
    parser.add_argument(
        "--max-replans",
        type=whole_number(0, 10),
        default=1,
        metavar="N",
        help="new plans after a failure",
    )
    parser.add_argument(
        "--max-repairs",
        type=whole_number(0, 10),
        default=2,
        metavar="N",
        help="times an invalid plan goes back to the model with its problems",
    )
    parser.add_argument(
        "--budget-usd",
        type=_dollars,
        metavar="X",
        help="stop when the model's cost passes X US dollars (the model must be priced)",
    )
    parser.add_argument(
        "--max-requests", type=positive_int, default=20, metavar="N", help="model requests"
    )
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        metavar="N",
        help="input plus output tokens (for models that report their usage)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"deadline for each whole model request, then the next --fallback "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--context",
        metavar="FILE.json",
        help="JSON given to the model with the goal (such as describe() of your data)",
    )
    parser.add_argument(
        "--audit", metavar="PATH", help="append an audit log (JSON lines) of every action"
    )
    parser.add_argument(
        "--notebook", metavar="OUT.py", help="write the notebook of the last plan run"
    )
    parser.add_argument(
        "--stream", action="store_true", help="ask the model for streamed responses"
    )
    parser.add_argument(
        "--json", action="store_true", help="write agent events as JSON lines, even on a terminal"
    )
    parser.set_defaults(handler=run)


def _read_context(path: str | None) -> Any:
    if path is None:
        return None
    from marimo_engine.errors import UsageError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read --context {path!r}: {exc.strerror}.") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--context {path!r} is not JSON: {exc.msg} at line {exc.lineno}; fix the file."
        ) from exc


def run(args: argparse.Namespace) -> int:
    """Run `marimo-engine agent` with parsed arguments.

    Args:
        args: From `add_parser`'s parser.

    Returns:
        0 `SUCCESS`, 1 `FAILURE`, 3 `INTERVENTION_NEEDED`, 2 bad input or
        configuration (the message is printed as one line on stderr).
    """
    import warnings

    import pydantic_ai

    from marimo_engine.cli.exits import InterruptNotice, exit_code_for, print_error

    # The command owns its output: no first-run banner from pydantic-ai, and no raw
    # warning about a model that omits usage (the planner says it once, as a NOTICE).
    pydantic_ai.BANNER_ENABLED = False
    warnings.filterwarnings("ignore", category=pydantic_ai.UsageLimitUnavailableWarning)
    agent, context = _build(args)  # a ModelConfigError or UsageError: `main` reports it (exit 2)
    as_json = bool(args.json) or not sys.stdout.isatty()
    display = _JsonDisplay() if as_json else _RichDisplay(agent.model_label)
    import anyio

    notice = InterruptNotice()  # Ctrl-C, SIGTERM, SIGHUP: the plan run ends with its FINISH
    try:
        result = anyio.run(_drive, agent, args.goal, context, display, notice)
    finally:
        notice.restore()
        display.close()
    if args.notebook and result.execution is not None and result.execution.notebook:
        from marimo_engine.cli.output import write_text_atomic

        path = write_text_atomic(args.notebook, result.execution.notebook)
        print(f"wrote the notebook of the last run to {path}", file=sys.stderr)
    if result.error:
        print_error(result.error)
    return exit_code_for(result.verdict)


def _build(args: argparse.Namespace) -> tuple[Any, Any]:
    from marimo_engine.agents.planner import PlannerAgent, PlannerOptions
    from marimo_engine.cli.loading import load_tools
    from marimo_engine.llm.usage import ModelLimits

    if args.only_tools and not args.tools:
        from marimo_engine.errors import UsageError

        raise UsageError("--only-tools needs at least one --tools MODULE.")
    tools = load_tools(args.tools, include_defaults=not args.only_tools)
    context = _read_context(args.context)
    options = PlannerOptions(
        max_repairs=args.max_repairs,
        max_replans=args.max_replans,
        limits=ModelLimits(
            request_limit=args.max_requests,
            total_tokens_limit=args.max_tokens,
            budget_usd=args.budget_usd,
        ),
        stream=bool(args.stream),
        timeout_s=args.timeout,
    )
    agent = PlannerAgent(
        args.model,
        tools.registry,
        fallbacks=list(args.fallback),
        options=options,
        audit_path=args.audit,
    )
    return agent, context


async def _drive(agent: Any, goal: str, context: Any, display: Any, notice: Any) -> AgentResult:
    from contextlib import aclosing

    notice.install()  # asyncio's Ctrl-C handler is in place now
    result = None
    async with aclosing(agent.events(goal, context=context)) as events:
        async for event in events:
            display.handle(event)
            if event.result is not None:
                result = event.result
    assert result is not None
    return result


class _JsonDisplay:
    """One JSON line per agent event on stdout, flushed at once."""

    def handle(self, event: AgentEvent) -> None:
        sys.stdout.write(event.to_json_line() + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        sys.stdout.flush()


class _RichDisplay:
    """Planner lines, a spinner while the model answers, and the `run` command's
    live step display for each plan that runs."""

    def __init__(self, model_label: str, console: Any = None) -> None:
        from rich.console import Console

        # emoji=False: model names and model text such as "x:latest" or ":x:" stay as written.
        self.console = console or Console(emoji=False)
        self.model_label = model_label
        self.progress: Any = None
        self.waiting: Any = None  # the spinner while a model request is out
        self._waiting_task: Any = None
        from rich.text import Text

        self.console.print(Text.assemble(("planner", "bold"), (f" model {model_label}", "dim")))

    def _start_waiting(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._stop_waiting()
        self.waiting = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.waiting.start()
        self._waiting_task = self.waiting.add_task(f"waiting for {self.model_label}", total=None)

    def _stop_waiting(self) -> None:
        if self.waiting is not None:
            self.waiting.stop()
            self.waiting = None

    def handle(self, event: AgentEvent) -> None:
        from marimo_engine.agents.events import AgentEventType as T
        from marimo_engine.engine.events import EventType

        if event.type is T.MODEL_PROGRESS:
            if self.waiting is None:
                self._start_waiting()
            self.waiting.update(self._waiting_task, description=event.msg, refresh=True)
            if event.progress and event.progress.get("done"):
                self._stop_waiting()
                self.console.print(
                    f"  {event.msg}", style="dim", highlight=False, markup=False, emoji=False
                )
            return
        self._stop_waiting()
        if event.type is T.PLANNING:
            self._line(event)
            self._start_waiting()
            return
        if event.type is T.ENGINE_EVENT and event.event is not None:
            if self.progress is not None:
                self.progress.handle(event.event)
                if event.event.type is EventType.FINISH:
                    self.progress.close()
                    self.progress = None
            return
        if event.type is T.PLAN_ACCEPTED and event.plan is not None:
            self._line(event)
            self._start_progress(event.plan)
            return
        if event.type is T.DONE:
            self._line(event)
            if event.result is not None:
                self.console.print(
                    event.result.usage.describe(),
                    style="dim",
                    highlight=False,
                    markup=False,
                    emoji=False,
                )
            return
        self._line(event)

    def _start_progress(self, plan: dict[str, Any]) -> None:
        from marimo_engine.cli.progress import ProgressModel, RichProgress
        from marimo_engine.plans.schema import load_plan

        self.progress = RichProgress(ProgressModel.from_plan(load_plan(plan)), console=self.console)

    def _line(self, event: AgentEvent) -> None:
        from marimo_engine.agents.events import AgentEventType as T

        style = {
            T.NOTICE: "yellow",
            T.PLAN_REJECTED: "yellow",
            T.PLAN_ACCEPTED: "green",
            T.REPLAN: "yellow",
            T.INTERVENTION: "bold yellow",
            T.DONE: "bold",
        }.get(event.type, "cyan")
        from rich.text import Text

        msg = event.msg
        if event.type is T.PLAN_REJECTED and event.problems:  # the problems follow, one per line
            msg = f"Plan {event.proposal} rejected: {len(event.problems)} problem(s)"
        self.console.print(Text.assemble(("▸ ", style), msg), highlight=False)
        for problem in event.problems or ():
            self.console.print(
                f"    {problem.describe()}",
                style="yellow",
                highlight=False,
                markup=False,
                emoji=False,
            )

    def close(self) -> None:
        self._stop_waiting()
        if self.progress is not None:
            self.progress.close()
            self.progress = None
