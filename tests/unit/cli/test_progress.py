"""The progress display, driven by lists of real `Event`s, and the JSON lines stream."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from rich.console import Console

from marimo_engine.cli.progress import (
    JsonLinesProgress,
    ProgressModel,
    RichProgress,
    StepState,
    describe_value,
    render_progress,
    render_steps,
    render_summary,
    summarize_output,
)
from marimo_engine.engine.events import ErrorInfo, Event, EventType, Verdict
from marimo_engine.plans.schema import load_plan

PLAN = load_plan(
    {
        "id": "p1",
        "name": "Demo plan",
        "steps": [
            {"id": "a", "tool": "scan_hull"},
            {"id": "b", "tool": "check_oxygen", "key_finding": True},
            {"id": "c", "tool": "analyze_atmosphere", "run_if": "$b.level < 1"},
            {"id": "d", "tool": "scan_hull", "depends_on": ["a"]},
            {"id": "e", "tool": "scan_hull", "depends_on": ["d"]},
        ],
    }
)


def _event(kind: EventType, step_id: str | None = None, **fields: object) -> Event:
    return Event(type=kind, plan_id="p1", step_id=step_id, **fields)  # type: ignore[arg-type]


def _text(renderable: object, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _model_after(events: list[Event], now: float = 100.0) -> ProgressModel:
    model = ProgressModel.from_plan(PLAN)
    for event in events:
        model.apply(event, now=now)
    return model


RUNNING = [
    _event(EventType.START),
    _event(EventType.STEP_START, "a", tool="scan_hull"),
    _event(EventType.STEP_START, "b", tool="check_oxygen"),
    _event(EventType.STEP_COMPLETE, "b", output={"level": 20.9}, key_finding=True, duration_s=0.25),
]


def test_states_while_running() -> None:
    model = _model_after(RUNNING)
    states = {sid: line.state for sid, line in model.steps.items()}
    assert states == {
        "a": StepState.RUNNING,
        "b": StepState.DONE,
        "c": StepState.WAITING,
        "d": StepState.WAITING,
        "e": StepState.WAITING,
    }
    assert model.key_findings == {"b": {"level": 20.9}}


def test_running_line_has_a_spinner_and_elapsed_seconds() -> None:
    model = _model_after(RUNNING, now=100.0)
    text = _text(render_steps(model, now=102.5))
    lines = {line.split()[1]: line for line in text.splitlines() if line.strip()[:1] != "★"}
    assert "running 2.5s" in lines["a"]
    assert lines["a"].split()[0] not in {"·", "✓"}  # a spinner frame
    assert "done 0.25s" in lines["b"]
    assert "waiting" in lines["c"]
    assert "★ key finding: level = 20.9" in text


def test_every_final_state_is_shown() -> None:
    events = [
        *RUNNING,
        _event(
            EventType.STEP_RETRY,
            "a",
            attempt=2,
            error=ErrorInfo(type="TimeoutError", message="took too long"),
        ),
        _event(EventType.STEP_SKIPPED, "c", reason="run_if '$b.level < 1' was false"),
        _event(EventType.ERROR, "a", error=ErrorInfo(type="ValueError", message="bad\nhull")),
        _event(EventType.FINISH, verdict=Verdict.FAILURE, duration_s=1.5, outputs={}),
    ]
    model = ProgressModel.from_plan(PLAN)
    for event in events[:5]:
        model.apply(event, now=100.0)
    assert model.steps["a"].state is StepState.RETRYING
    assert "retrying, attempt 2" in _text(render_steps(model, now=101.0))
    assert "after TimeoutError: took too long" in _text(render_steps(model, now=101.0))
    for event in events[5:]:
        model.apply(event, now=101.0)
    states = {sid: line.state for sid, line in model.steps.items()}
    assert states == {
        "a": StepState.FAILED,
        "b": StepState.DONE,
        "c": StepState.SKIPPED,
        "d": StepState.NOT_RUN,
        "e": StepState.NOT_RUN,
    }
    steps = _text(render_steps(model))
    assert "failed 1.00s  ValueError: bad hull" in steps
    assert "skipped  run_if '$b.level < 1' was false" in steps
    summary = _text(render_summary(model))
    assert "FAILURE in 1.50 s · 5 steps: 1 failed, 1 done, 1 skipped, 2 not run" in summary
    assert "error in step 'a': ValueError: bad hull" in summary
    assert "key findings:" in summary


def test_intervention_and_cancelled_steps() -> None:
    model = _model_after(
        [
            *RUNNING,
            _event(EventType.INTERVENTION_NEEDED, "b", expression="$b.level < 15"),
            _event(EventType.FINISH, verdict=Verdict.INTERVENTION_NEEDED, duration_s=0.5),
        ]
    )
    assert model.steps["b"].state is StepState.INTERVENTION
    assert model.steps["a"].state is StepState.CANCELLED
    summary = _text(render_summary(model), width=160)
    assert "INTERVENTION_NEEDED in 0.50 s" in summary
    rows = [row.strip("│ ") for row in summary.splitlines()]
    # Right under the verdict: the condition that fired with the value it saw,
    # then the key finding's values.
    assert rows[1].startswith("INTERVENTION_NEEDED in 0.50 s")
    assert rows[2] == (
        "stopped for a person: step 'b': intervention_if $b.level < 15 was true ($b.level = 20.9)"
    )
    assert rows[3:5] == ["key findings:", "b: level = 20.9"]
    assert model.intervention_values == {"$b.level": 20.9}


def test_describe_value_names_each_value() -> None:
    assert describe_value({"level": 14.2, "status": "critical", "year": 2012}) == (
        "level = 14.2, status = 'critical', year = 2012"
    )
    assert describe_value({"nested": {"a": [1, 2]}}) == 'nested = {"a": [1, 2]}'
    assert describe_value(14.2) == "14.2"
    assert describe_value("critical") == "'critical'"
    assert describe_value(pd.DataFrame({"a": [1]})) == "table 1×1 (a)"
    assert len(describe_value({"k": "x" * 500}, 50)) == 50


def test_intervention_values_from_other_steps_and_unresolvable_ones() -> None:
    model = _model_after(
        [
            *RUNNING,
            _event(
                EventType.INTERVENTION_NEEDED,
                "b",
                expression="$b.level < 15 and $a.breach",
                output={"level": 9.5},
            ),
        ]
    )
    # `a` has no output yet: its value is left out, not invented.
    assert model.intervention_values == {"$b.level": 9.5}


def test_invalid_plan_error_is_shown_in_the_summary() -> None:
    model = _model_after(
        [
            _event(EventType.START),
            _event(EventType.ERROR, error=ErrorInfo(type="PlanValidationError", message="bad")),
            _event(EventType.FINISH, verdict=Verdict.FAILURE, duration_s=0.0),
        ]
    )
    assert "error: PlanValidationError: bad" in _text(render_summary(model))


def test_lines_stay_one_per_step_on_a_narrow_terminal() -> None:
    model = _model_after(RUNNING)
    model.steps["b"].summary = summarize_output({"text": "x" * 500})
    text = _text(render_steps(model, now=101.0), width=60)
    step_lines = [line for line in text.splitlines() if line[:2].strip() not in ("", "★")]
    assert len(step_lines) == 5


def test_rich_progress_on_a_terminal_ends_with_the_summary() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None, record=True)
    progress = RichProgress(_model_after([]), console=console, refresh_per_second=50)
    for event in [
        *RUNNING,
        _event(EventType.STEP_COMPLETE, "a", output=None, duration_s=0.1),
        _event(EventType.STEP_SKIPPED, "c", reason="run_if was false"),
        _event(EventType.STEP_START, "d"),
        _event(EventType.STEP_COMPLETE, "d", output=[1, 2], duration_s=0.1),
        _event(EventType.STEP_START, "e"),
        _event(EventType.STEP_COMPLETE, "e", output="ok", duration_s=0.1),
        _event(EventType.FINISH, verdict=Verdict.SUCCESS, duration_s=0.75),
    ]:
        progress.handle(event)
    progress.close()
    progress.close()  # a second close does nothing
    text = console.export_text()
    assert text.startswith("Demo plan (p1)")
    assert "SUCCESS in 0.75 s · 5 steps: 4 done, 1 skipped" in text
    assert "✓ e" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (pd.DataFrame({"a": [1, 2], "b": [3, 4]}), "table 2×2 (a, b)"),
        ({"level": 20.9}, '{"level": 20.9}'),
        (None, "null"),
        ("x" * 200, '"' + "x" * 98 + "…"),
    ],
    ids=["dataframe", "mapping", "none", "long"],
)
def test_summarize_output(value: object, expected: str) -> None:
    assert summarize_output(value) == expected


def test_summarize_chart() -> None:
    import altair as alt

    chart = alt.Chart(pd.DataFrame({"a": [1]})).mark_bar().encode(x="a")
    assert summarize_output(chart) == "chart (Chart, Vega-Lite)"


def test_json_lines_are_one_event_each() -> None:
    stream = io.StringIO()
    sink = JsonLinesProgress(stream)
    frame = pd.DataFrame({"a": [1, 2]})
    sink.handle(_event(EventType.START))
    sink.handle(_event(EventType.STEP_COMPLETE, "a", output=frame, key_finding=False))
    sink.close()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["START", "STEP_COMPLETE"]
    assert json.loads(lines[1])["output"]["shape"] == [2, 1]


def test_a_long_plan_shows_what_matters_within_the_terminal() -> None:
    plan = load_plan({"steps": [{"id": f"s{i}", "tool": "scan_hull"} for i in range(200)]})
    model = ProgressModel.from_plan(plan)
    events = [_event(EventType.START)]
    for i in range(150):
        events += [
            _event(EventType.STEP_START, f"s{i}"),
            _event(EventType.STEP_COMPLETE, f"s{i}", output=i),
        ]
    events += [_event(EventType.STEP_START, "s150"), _event(EventType.STEP_START, "s151")]
    for event in events:
        model.apply(event, now=10.0)
    text = _text(render_steps(model, now=11.0, max_rows=10))
    rows = [line.split()[1] for line in text.splitlines() if line.strip()]
    # The running steps, then the most recently finished ones, in plan order.
    assert rows == ["s143", "s144", "s145", "s146", "s147", "s148", "s149", "s150", "s151", "191"]
    assert text.splitlines()[-1].split() == [
        "…",
        "191",
        "more",
        "steps",
        "143",
        "done,",
        "48",
        "waiting",
    ]


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_json_lines_stop_quietly_when_the_reader_goes_away() -> None:
    sink = JsonLinesProgress(_ClosedPipe())
    sink.handle(_event(EventType.START))
    sink.handle(_event(EventType.FINISH, verdict=Verdict.SUCCESS))
    sink.close()
    assert sink.is_broken


def _chain_model(n: int) -> ProgressModel:
    plan = load_plan(
        {
            "id": "long",
            "steps": [{"id": f"s{i}", "tool": "scan_hull"} for i in range(n)],
        }
    )
    return ProgressModel.from_plan(plan)


def test_events_do_not_redraw_the_terminal_view() -> None:
    """A frame per event cost ~50 ms a step; frames now come at a fixed rate."""
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, height=30, color_system=None)
    model = _chain_model(2000)
    # One frame every 1000 s: none comes while the events are handled.
    progress = RichProgress(model, console=console, refresh_per_second=0.001)
    before = len(stream.getvalue())
    progress.handle(Event(type=EventType.START, plan_id="long"))
    for i in range(2000):
        progress.handle(Event(type=EventType.STEP_START, plan_id="long", step_id=f"s{i}"))
        progress.handle(
            Event(type=EventType.STEP_COMPLETE, plan_id="long", step_id=f"s{i}", output=i)
        )
    assert len(stream.getvalue()) == before
    assert model.finished_count == 2000
    progress.handle(
        Event(type=EventType.FINISH, plan_id="long", verdict=Verdict.SUCCESS, duration_s=2.0)
    )
    progress.close()
    frame = stream.getvalue()[before:]
    # The last frame is drawn at close, bounded by the terminal's height.
    assert "2000/2000 steps" in frame
    assert "✓ s1999" in frame
    assert "more steps" in frame
    assert len(frame.split("SUCCESS in 2.00 s")[0].splitlines()) <= 30


def test_progress_line_counts_finished_running_and_failed_steps() -> None:
    model = _chain_model(10)
    for event in [
        Event(type=EventType.START, plan_id="long"),
        Event(type=EventType.STEP_START, plan_id="long", step_id="s0"),
        Event(type=EventType.STEP_COMPLETE, plan_id="long", step_id="s0", output=1),
        Event(type=EventType.STEP_START, plan_id="long", step_id="s1"),
        Event(type=EventType.STEP_START, plan_id="long", step_id="s2"),
        Event(
            type=EventType.ERROR,
            plan_id="long",
            step_id="s2",
            error=ErrorInfo(type="ValueError", message="x"),
        ),
    ]:
        model.apply(event, now=10.0)
    text = _text(render_progress(model, now=13.5))
    assert "2/10 steps · 1 running · 1 failed · 3.5 s" in text
    assert "━" in text


def test_final_panel_names_the_run() -> None:
    from marimo_engine import execute_plan_sync

    plan = load_plan({"steps": [{"id": "a", "tool": "one"}]})
    model = ProgressModel.from_plan(plan)
    result = execute_plan_sync(plan, {"one": lambda: 1}, run_id="run-for-panel")
    for event in result.events:
        model.apply(event)
    assert "run run-for-panel" in _text(render_summary(model))


def test_a_plans_name_is_shown_as_written_not_as_markup_or_emoji() -> None:
    plan = load_plan(
        {
            "id": "p2",
            "name": "oxygen :x: [red]check[/red]",
            "steps": [{"id": "a", "tool": "scan_hull"}],
        }
    )
    model = ProgressModel.from_plan(plan)
    text = _text(render_steps(model)) + _text(render_summary(model))
    assert "oxygen :x: [red]check[/red]" in text and "❌" not in text
