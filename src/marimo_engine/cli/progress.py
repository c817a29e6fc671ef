"""Show a run's events: live progress with rich on a terminal, or JSON lines.

`ProgressModel` (`cli/run_state.py`) folds events into one state per step;
`RichProgress` draws it with rich, one line per step (waiting, running with
a spinner and elapsed seconds, retrying, done, skipped, failed), key
findings highlighted, then a summary with the verdict and the duration;
`JsonLinesProgress` writes each event as one line of JSON for programs.
Both take events as they come (`handle`) and are closed once (`close`).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from marimo_engine.cli.output import silence_stream
from marimo_engine.cli.run_state import (
    ProgressModel,
    StepLine,
    StepState,
    describe_value,
    summarize_output,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from marimo_engine.engine.events import Event

__all__ = [
    "JsonLinesProgress",
    "ProgressModel",
    "ProgressRenderer",
    "RichProgress",
    "StepLine",
    "StepState",
    "describe_value",
    "render_progress",
    "render_steps",
    "render_summary",
    "summarize_output",
]


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
            silence_stream(self._stream)

    def close(self) -> None:
        """Flush the stream."""
        if not self.is_broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.is_broken = True
                silence_stream(self._stream)


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
        grid.add_row(icon, name, Text(line.tool), status)
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
    """Return the rich renderable of the final summary.

    The verdict and duration, then the condition that stopped the run with
    the values it saw, then every key finding with its values, then errors.
    """
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
    if model.run_id:
        parts.append(Text(f"run {model.run_id}", style="dim"))
    # What a person must read first: why the run stopped, and the findings' values.
    stopped = model.intervention_text()
    if stopped is not None:
        parts.append(Text(f"stopped for a person: {stopped}", style="bold yellow"))
    if model.key_findings:
        parts.append(Text("key findings:", style="bold magenta"))
        for step_id, output in model.key_findings.items():
            parts.append(Text(f"  {step_id}: {describe_value(output)}", style="magenta"))
    if model.plan_error:
        parts.append(Text(f"error: {model.plan_error}", style="red"))
    for line in model.steps.values():
        if line.state is StepState.FAILED:
            parts.append(Text(f"error in step {line.step_id!r}: {line.note}", style="red"))
    # Text, not str: a plan's name is the user's text, never rich markup or ":emoji:" codes.
    title = Text(model.title)
    return Panel(Group(*parts), title=title, title_align="left", border_style=style)


def render_progress(model: ProgressModel, now: float | None = None) -> RenderableType:
    """Return the rich renderable of the overall progress: a bar, N/M steps, counts.

    For example `━━━━━━━━━╸━━━━━━━━  1234/3000 steps · 2 running · 1 failed · 12.3 s`.

    Args:
        model: The run's state.
        now: `time.monotonic()` for the elapsed seconds.
    """
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    total = len(model.steps)
    finished = model.finished_count
    counts = model.counts()
    detail = Text(f"{finished}/{total} steps", style="bold")
    for state in (StepState.RUNNING, StepState.RETRYING, StepState.FAILED, StepState.SKIPPED):
        if counts.get(state):
            style = _ICONS.get(state, ("", "cyan"))[1]
            detail.append(f" · {counts[state]} {state.value}", style=style)
    detail.append(f" · {model.elapsed_s(now):.1f} s", style="dim")
    row = Table.grid(padding=(0, 2))
    row.add_column(width=40, no_wrap=True)
    row.add_column(no_wrap=True, overflow="ellipsis")
    row.add_row(ProgressBar(total=max(total, 1), completed=finished, width=40), detail)
    return row


class RichProgress:
    """Live progress on a terminal with rich: step lines while running, then a summary.

    Events only change the model (`handle` costs microseconds); rich redraws
    the view from its own thread `refresh_per_second` times a second, so a
    long plan of fast steps runs about as fast as with `--json`. The view
    stays within the terminal's height: running, retrying and failed steps
    and key findings first, then the steps that finished last, a line
    counting the others by state, and an overall N/M progress bar.

    Args:
        model: The run's state, usually `ProgressModel.from_plan(plan)`.
        console: The rich console; `None` makes one on stdout.
        refresh_per_second: How often the view redraws.
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
        # emoji=False: ":x:" in a plan's text must not become an emoji.
        self.console = console or Console(emoji=False)
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
        from rich.console import Group

        # Room for the header, the progress bar, the live frame's margins and
        # key findings.
        max_rows = max(self.console.height - 5 - 2 * len(self.model.key_findings), 5)
        with self._lock:
            now = time.monotonic()
            return Group(
                render_steps(self.model, now, max_rows=max_rows),
                render_progress(self.model, now),
            )

    def handle(self, event: Event) -> None:
        """Fold the event into the model; the next frame shows it."""
        with self._lock:
            self.model.apply(event)

    def close(self) -> None:
        """Draw the last frame, stop the live display and print the summary."""
        if self._live is None:
            return
        live, self._live = self._live, None
        live.stop()
        self.console.print(render_summary(self.model))
