"""Show a run's events: live progress with rich on a terminal, or JSON lines.

`ProgressModel` folds events into one state per step (pure, no output);
`RichProgress` draws it with rich, one line per step (waiting, running with
a spinner and elapsed seconds, retrying, done, skipped, failed), key
findings highlighted, then a summary with the verdict and the duration;
`JsonLinesProgress` writes each event as one line of JSON for programs.
Both take events as they come (`handle`) and are closed once (`close`).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from marimo_engine._json import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from marimo_engine.engine.events import ErrorInfo, Event
    from marimo_engine.plans.schema import Plan

__all__ = [
    "JsonLinesProgress",
    "ProgressModel",
    "ProgressRenderer",
    "RichProgress",
    "StepLine",
    "StepState",
    "summarize_output",
]

_SUMMARY_CHARS = 100


class StepState(StrEnum):
    """What the progress display says about a step."""

    WAITING = "waiting"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERVENTION = "intervention"
    CANCELLED = "cancelled"
    NOT_RUN = "not run"


@dataclass
class StepLine:
    """One step's line of the progress display.

    Attributes:
        step_id: The step's id.
        tool: The tool's name.
        description: The step's description, or `""`.
        is_key_finding: Whether the plan marks the step as a key finding.
        state: The current state.
        started_at: `time.monotonic()` when the step started, or `None`.
        duration_s: Seconds the step took, once it ended.
        attempt: The try in progress after a retry (2 for the first retry).
        note: Why it was skipped, the error, or the intervention expression.
        output: The step's output once done.
        summary: `summarize_output(output)`, worked out once when the step is done.
        finished_order: 1 for the first step to finish (done, skipped, failed),
            2 for the next, ...; `None` while it has not finished.
    """

    step_id: str
    tool: str
    description: str = ""
    is_key_finding: bool = False
    state: StepState = StepState.WAITING
    started_at: float | None = None
    duration_s: float | None = None
    attempt: int | None = None
    note: str = ""
    output: Any = None
    summary: str = ""
    finding: str = ""
    finished_order: int | None = None


def _error_text(error: ErrorInfo | None) -> str:
    if error is None:
        return "unknown error"
    message = " ".join(error.message.split())
    return f"{error.type}: {message}" if message else error.type


def summarize_output(value: object, limit: int = _SUMMARY_CHARS) -> str:
    """Return a short one-line description of a step output.

    Args:
        value: Any output: a dataframe gives `table 1461×6 (date, ...)`, an
            Altair chart `chart (Vega-Lite)`, anything else compact JSON
            (the documented fallback of `marimo_engine._json`).
        limit: The most characters to return.

    Returns:
        One line of at most `limit` characters.
    """
    module = type(value).__module__
    shape = getattr(value, "shape", None)
    columns = getattr(value, "columns", None)
    if isinstance(shape, tuple) and len(shape) == 2 and columns is not None:
        names = ", ".join(str(c) for c in list(columns)[:6])
        more = ", …" if len(columns) > 6 else ""
        text = f"table {shape[0]}×{shape[1]} ({names}{more})"
    elif module.startswith("altair"):
        text = f"chart ({type(value).__name__}, Vega-Lite)"
    else:
        try:
            text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(", ", ": "))
        except (TypeError, ValueError):
            text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class ProgressModel:
    """The state of a run as far as its events tell, step by step.

    Attributes:
        plan_id: The plan's id.
        title: The plan's name, or its id.
        steps: One line per step, in plan order.
        verdict: The verdict once `FINISH` arrived, else `None`.
        duration_s: The run's seconds once `FINISH` arrived.
        plan_error: An error not tied to a step (an invalid plan).
        key_findings: Step id to output, for completed key-finding steps.
        intervention: `(step_id, expression)` when the run stopped for a person.
    """

    plan_id: str
    title: str
    steps: dict[str, StepLine] = field(default_factory=dict)
    verdict: str | None = None
    duration_s: float | None = None
    plan_error: str | None = None
    key_findings: dict[str, Any] = field(default_factory=dict)
    intervention: tuple[str, str] | None = None
    _started_at: float = field(default_factory=time.monotonic)
    _finished: int = 0

    @classmethod
    def from_plan(cls, plan: Plan) -> ProgressModel:
        """Return a model with every step of `plan` waiting."""
        model = cls(plan_id=plan.id, title=plan.name or plan.id)
        for step in plan.steps:
            model.steps[step.id] = StepLine(
                step_id=step.id,
                tool=step.tool,
                description=step.description or "",
                is_key_finding=bool(step.key_finding),
            )
        return model

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds since the model was made, or the run's duration once finished."""
        if self.duration_s is not None:
            return self.duration_s
        return (now if now is not None else time.monotonic()) - self._started_at

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one event into the state.

        Args:
            event: The event, in the order the run emitted it.
            now: `time.monotonic()` at arrival; `None` reads the clock.
        """
        from marimo_engine.engine.events import EventType

        now = time.monotonic() if now is None else now
        line = self._line(event)
        kind = event.type
        if kind is EventType.START:
            self._started_at = now
        elif kind is EventType.STEP_START and line is not None:
            line.state, line.started_at = StepState.RUNNING, now
        elif kind is EventType.STEP_RETRY and line is not None:
            line.state, line.attempt = StepState.RETRYING, event.attempt
            line.note = _error_text(event.error)
        elif kind is EventType.STEP_COMPLETE and line is not None:
            line.state, line.output = StepState.DONE, event.output
            line.duration_s = self._duration(event, line, now)
            line.summary = summarize_output(event.output)
            self._finish(line)
            if event.key_finding or line.is_key_finding:
                line.is_key_finding = True
                line.finding = summarize_output(event.output, 300)
                self.key_findings[line.step_id] = event.output
        elif kind is EventType.STEP_SKIPPED and line is not None:
            line.state, line.note = StepState.SKIPPED, event.reason or event.msg
            self._finish(line)
        elif kind is EventType.ERROR:
            if line is not None:
                line.state, line.note = StepState.FAILED, _error_text(event.error)
                line.duration_s = self._duration(event, line, now)
                self._finish(line)
            else:
                self.plan_error = _error_text(event.error)
        elif kind is EventType.INTERVENTION_NEEDED and line is not None:
            line.state, line.note = StepState.INTERVENTION, event.expression or event.msg
            self.intervention = (line.step_id, event.expression or "")
        elif kind is EventType.FINISH:
            self.verdict = event.verdict.value if event.verdict is not None else None
            self.duration_s = (
                event.duration_s if event.duration_s is not None else now - self._started_at
            )
            for step in self.steps.values():
                if step.state in (StepState.RUNNING, StepState.RETRYING):
                    step.state = StepState.CANCELLED
                elif step.state is StepState.WAITING:
                    step.state = StepState.NOT_RUN

    def _finish(self, line: StepLine) -> None:
        self._finished += 1
        line.finished_order = self._finished

    def _line(self, event: Event) -> StepLine | None:
        if event.step_id is None:
            return None
        line = self.steps.get(event.step_id)
        if line is None:  # a step the plan did not list: show it all the same
            line = StepLine(step_id=event.step_id, tool=event.tool or "?")
            self.steps[event.step_id] = line
        return line

    @staticmethod
    def _duration(event: Event, line: StepLine, now: float) -> float | None:
        if event.duration_s is not None:
            return event.duration_s
        return None if line.started_at is None else now - line.started_at

    def counts(self) -> dict[StepState, int]:
        """Return how many steps are in each state (states with none left out)."""
        result: dict[StepState, int] = {}
        for line in self.steps.values():
            result[line.state] = result.get(line.state, 0) + 1
        return result


class ProgressRenderer(Protocol):
    """What the `run` command feeds events to."""

    def handle(self, event: Event) -> None:
        """Show one event."""

    def close(self) -> None:
        """Finish the display (once, after `FINISH` or an interruption)."""


class JsonLinesProgress:
    """Writes each event as one line of JSON (`Event.to_json_line()`), flushed at once.

    Args:
        stream: Where to write; `None` means `sys.stdout`.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.is_broken = False

    def handle(self, event: Event) -> None:
        """Write the event as one JSON line; after the reader went away, nothing."""
        if self.is_broken:
            return
        try:
            self._stream.write(event.to_json_line() + "\n")
            self._stream.flush()
        except BrokenPipeError:
            # `marimo-engine run plan.json | head -3`: the run goes on to its
            # end (FINISH), the lines go nowhere, and Python must not
            # complain about the pipe when it flushes stdout at exit.
            self.is_broken = True
            _silence(self._stream)

    def close(self) -> None:
        """Flush the stream."""
        if not self.is_broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.is_broken = True
                _silence(self._stream)


def _silence(stream: TextIO) -> None:
    import os

    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


_ICONS = {
    StepState.WAITING: ("·", "dim"),
    StepState.RETRYING: ("↻", "yellow"),
    StepState.DONE: ("✓", "green"),
    StepState.SKIPPED: ("↷", "dim"),
    StepState.FAILED: ("✗", "bold red"),
    StepState.INTERVENTION: ("!", "bold yellow"),
    StepState.CANCELLED: ("✗", "red"),
    StepState.NOT_RUN: ("·", "dim"),
}
_VERDICT_STYLES = {
    "SUCCESS": "bold green",
    "FAILURE": "bold red",
    "INTERVENTION_NEEDED": "bold yellow",
}


_IMPORTANT = (
    StepState.RUNNING,
    StepState.RETRYING,
    StepState.FAILED,
    StepState.INTERVENTION,
    StepState.CANCELLED,
)


def _visible_lines(model: ProgressModel, max_rows: int | None) -> tuple[list[StepLine], int]:
    """The lines to draw, in plan order, and how many were left out.

    With more steps than `max_rows`, running, retrying, failed and stopped
    steps and key findings are always shown; the rest of the room goes to
    the steps that finished last, so a long plan shows where it is.
    """
    lines = list(model.steps.values())
    if max_rows is None or len(lines) <= max_rows:
        return lines, 0
    room = max(max_rows - 1, 1)  # one row says how many are hidden
    keep = {id(x) for x in lines if x.state in _IMPORTANT or x.finding}
    recent = sorted(
        (x for x in lines if x.finished_order is not None and id(x) not in keep),
        key=lambda x: x.finished_order or 0,
        reverse=True,
    )
    for line in recent[: max(room - len(keep), 0)]:
        keep.add(id(line))
    shown = [x for x in lines if id(x) in keep]
    return shown, len(lines) - len(shown)


def render_steps(
    model: ProgressModel, now: float | None = None, *, max_rows: int | None = None
) -> RenderableType:
    """Return the rich renderable of the step lines (a grid, one row per step).

    Args:
        model: The run's state.
        now: `time.monotonic()` for the elapsed seconds of running steps.
        max_rows: Draw at most about this many step lines (a terminal's
            height); `None` draws every step.
    """
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    now = time.monotonic() if now is None else now
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=1, no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column(overflow="ellipsis")
    shown, hidden = _visible_lines(model, max_rows)
    for line in shown:
        # One line per step: the status is cut, not wrapped, on a narrow terminal.
        status = Text(no_wrap=True, overflow="ellipsis")
        if line.state in (StepState.RUNNING, StepState.RETRYING):
            started = line.started_at if line.started_at is not None else now
            icon: Any = Spinner("dots", style="cyan")
            if line.state is StepState.RETRYING:
                status.append(f"retrying, attempt {line.attempt or 2}", style="yellow")
                status.append(f" {now - started:.1f}s", style="dim")
                status.append(f"  after {line.note}", style="yellow")
            else:
                status.append("running", style="cyan")
                status.append(f" {now - started:.1f}s", style="dim")
        else:
            symbol, style = _ICONS[line.state]
            icon = Text(symbol, style=style)
            status.append(line.state.value, style=style)
            if line.duration_s is not None:
                status.append(f" {line.duration_s:.2f}s", style="dim")
            if line.state is StepState.DONE:
                status.append(f"  → {line.summary}", style="dim")
            elif line.note:
                status.append(f"  {line.note}", style=style)
        name = Text(line.step_id)
        if line.is_key_finding:
            name.append(" ★", style="bold magenta")
        grid.add_row(icon, name, line.tool, status)
        if line.finding and line.state is StepState.DONE:
            grid.add_row("", "", "", Text(f"★ key finding: {line.finding}", style="bold magenta"))
    if hidden:
        counts: dict[StepState, int] = {}
        shown_ids = {id(x) for x in shown}
        for line in model.steps.values():
            if id(line) not in shown_ids:
                counts[line.state] = counts.get(line.state, 0) + 1
        detail = ", ".join(f"{n} {state.value}" for state, n in counts.items())
        grid.add_row("…", Text(f"{hidden} more steps", style="dim"), "", Text(detail, style="dim"))
    return grid


def render_summary(model: ProgressModel) -> RenderableType:
    """Return the rich renderable of the final summary: verdict, duration, findings."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    verdict = model.verdict or "UNFINISHED"
    style = _VERDICT_STYLES.get(verdict, "bold")
    head = Text()
    head.append(verdict, style=style)
    head.append(f" in {model.elapsed_s():.2f} s · {len(model.steps)} steps: ")
    counts = model.counts()
    head.append(", ".join(f"{n} {state.value}" for state, n in counts.items()))
    parts: list[Any] = [head]
    if model.plan_error:
        parts.append(Text(f"error: {model.plan_error}", style="red"))
    for line in model.steps.values():
        if line.state is StepState.FAILED:
            parts.append(Text(f"error in step {line.step_id!r}: {line.note}", style="red"))
    if model.intervention is not None:
        step_id, expression = model.intervention
        parts.append(
            Text(
                f"stopped for a person: step {step_id!r}, intervention_if {expression!r} was true",
                style="yellow",
            )
        )
    if model.key_findings:
        parts.append(Text("key findings:", style="bold magenta"))
        for step_id, output in model.key_findings.items():
            parts.append(Text(f"  {step_id}: {summarize_output(output, 300)}", style="magenta"))
    return Panel(Group(*parts), title=model.title, title_align="left", border_style=style)


class RichProgress:
    """Live progress on a terminal with rich: step lines while running, then a summary.

    Args:
        model: The run's state, usually `ProgressModel.from_plan(plan)`.
        console: The rich console; `None` makes one on stdout.
        refresh_per_second: How often the spinner and elapsed seconds redraw.
    """

    def __init__(
        self,
        model: ProgressModel,
        *,
        console: Console | None = None,
        refresh_per_second: float = 8.0,
    ) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self.model = model
        self.console = console or Console()
        # rich redraws from its own thread: the model changes under this lock.
        self._lock = threading.Lock()
        self._live: Live | None = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=False,
        )
        header = Text(model.title, style="bold")
        header.append(f" ({model.plan_id})", style="dim")
        self.console.print(header)
        self._live.start()

    def _render(self) -> RenderableType:
        # Room for the header, the live frame's margins and key findings.
        max_rows = max(self.console.height - 4 - 2 * len(self.model.key_findings), 5)
        with self._lock:
            return render_steps(self.model, max_rows=max_rows)

    def handle(self, event: Event) -> None:
        """Fold the event into the model and redraw."""
        with self._lock:
            self.model.apply(event)
        if self._live is not None:
            self._live.refresh()

    def close(self) -> None:
        """Stop the live display (its last frame stays) and print the summary."""
        if self._live is None:
            return
        live, self._live = self._live, None
        live.stop()
        self.console.print(render_summary(self.model))
