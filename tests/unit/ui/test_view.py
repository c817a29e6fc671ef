"""What the runs UI shows, from real journals filled by real runs (`marimo_engine.ui.view`)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.engine.journal import open_journal
from marimo_engine.ui import charts, view
from marimo_engine.ui import text as ui_text

from .conftest import registry

MIXED = {
    "id": "mixed",
    "name": "Mixed states",
    "steps": [
        {"id": "hull", "tool": "scan_hull", "key_finding": True},
        {"id": "never", "tool": "scan_hull", "run_if": "$hull.breach_detected"},
        {"id": "boom", "tool": "fail_once", "args": {"marker": "MARKER"}, "depends_on": ["hull"]},
        {"id": "after", "tool": "scale", "args": {"value": 2}, "depends_on": ["boom"]},
    ],
}


def _run(plan: dict, journal: str) -> str:
    result = execute_plan_sync(plan, tools=registry(), journal=journal)
    assert result.run_id is not None
    return result.run_id


def _plan(tmp_path: Path, plan: dict) -> dict:
    text = str(plan).replace("MARKER", str(tmp_path / "marker"))
    import ast

    return ast.literal_eval(text)


def test_states_of_a_failed_run(tmp_path: Path, journal_path: str) -> None:
    run_id = _run(_plan(tmp_path, MIXED), journal_path)
    with open_journal(journal_path) as journal:
        shown = view.read_view(journal, run_id)
        assert shown is not None
        assert view.read_view(journal, "no-such-run") is None
    assert shown.plan_name == "Mixed states"
    assert (shown.state, shown.verdict) == ("finished", "FAILURE")
    assert [(s.step_id, s.state) for s in shown.steps] == [
        ("hull", "done"),
        ("never", "skipped"),
        ("boom", "failed"),
        ("after", "pending"),
    ]
    boom = shown.step("boom")
    assert boom is not None and boom.error is not None
    assert boom.error["type"] == "RuntimeError"
    assert "on purpose" in boom.error["message"]
    # the journal keeps the tool's traceback for the page (events carry none)
    assert "in fail_once" in boom.error["traceback"]
    assert boom.error["traceback"].rstrip().endswith("the first try fails on purpose")
    assert shown.step("never").reason == "run_if is false: $hull.breach_detected"  # type: ignore[union-attr]
    assert shown.step("after").depends_on == ("boom",)  # type: ignore[union-attr]
    assert shown.step("hull").key_finding  # type: ignore[union-attr]


def test_waiting_step_and_run_rows(journal_path: str) -> None:
    approval = {
        "id": "needs-ok",
        "steps": [
            {"id": "s1", "tool": "scan_hull"},
            {"id": "s2", "tool": "check_oxygen", "requires_approval": True},
        ],
    }
    done_id = _run({"id": "fine", "steps": [{"id": "a", "tool": "scan_hull"}]}, journal_path)
    waiting_id = _run(approval, journal_path)
    with open_journal(journal_path) as journal:
        records = journal.list_runs()
        shown = view.read_view(journal, waiting_id)
    rows = {r["run"]: r for r in view.run_rows(records)}
    assert rows[done_id]["status"] == "finished"
    assert rows[done_id]["verdict"] == "SUCCESS"
    assert rows[done_id]["waiting_at"] == ""
    assert rows[waiting_id]["status"] == "waiting"
    assert rows[waiting_id]["verdict"] == "INTERVENTION_NEEDED"
    assert rows[waiting_id]["waiting_at"] == "s2"
    assert rows[waiting_id]["plan"] == "needs-ok"
    assert set(rows[done_id]) == {
        "run",
        "plan",
        "status",
        "verdict",
        "started",
        "duration_s",
        "parent",
        "waiting_at",
    }
    assert shown is not None
    assert [s.state for s in shown.steps] == ["done", "waiting"]
    assert shown.pending is not None and shown.pending["kind"] == "approval"


def test_running_and_interrupted(journal_path: str) -> None:
    plan = (
        '{"id": "p", "steps": [{"id": "a", "tool": "scan_hull"}, {"id": "b", "tool": "scan_hull"}]}'
    )
    with open_journal(journal_path) as journal:
        token = journal.create_run("r-live", "p", plan)
        journal.write_step("r-live", token, "a", tool="scan_hull", status="running", start=True)
        live = view.read_view(journal, "r-live")
        journal.release("r-live", token)  # as if its process died: nobody holds the lease
        dead = view.read_view(journal, "r-live")
        rows = view.run_rows(journal.list_runs())
    assert live is not None and dead is not None
    assert (live.state, live.is_live) == ("running", True)
    assert [s.state for s in live.steps] == ["running", "pending"]
    assert dead.state == "interrupted"
    assert [s.state for s in dead.steps] == ["interrupted", "pending"]
    assert rows[0]["status"] == "interrupted"
    assert rows[0]["verdict"] == ""
    assert live != dead  # a change the page must redraw
    with open_journal(journal_path) as journal:
        assert view.read_view(journal, "r-live") == dead  # no change: no redraw


def test_mermaid_dag_colours_each_state() -> None:
    steps = (
        view.StepView("a", "scan_hull", None, {}, (), True, "done"),
        view.StepView("b-1", "check_oxygen", None, {}, ("a",), False, "waiting"),
        view.StepView("c_2", "analyze_atmosphere", None, {}, ("a", "b-1", "gone"), False, "failed"),
    )
    text = charts.mermaid_dag(steps)
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "flowchart LR"
    for state in view.STATES:
        assert f"classDef {state} fill:{view.STATE_COLOURS[state]}" in text
    assert 'n0["a #9733;<br/>scan_hull<br/><i>done</i>"]:::done' in lines
    assert 'n1["b-1<br/>check_oxygen<br/><i>waiting</i>"]:::waiting' in lines
    assert [ln for ln in lines if "-->" in ln] == ["n0 --> n1", "n0 --> n2", "n1 --> n2"]


def test_mermaid_labels_cannot_break_out() -> None:
    assert charts._mermaid_text('a"]; click n0 call x()') == ("a#34;#93;#59; click n0 call x()")


def test_proposed_plan_is_all_pending() -> None:
    steps = view.step_views(
        {
            "steps": [
                {"id": "a", "tool": "scan_hull"},
                {"id": "b", "tool": "check_oxygen", "args": {"x": "$a.breach_detected"}},
            ]
        }
    )
    assert [(s.step_id, s.state, s.depends_on) for s in steps] == [
        ("a", "pending", ()),
        ("b", "pending", ("a",)),
    ]


def test_timeline_marks_retries(tmp_path: Path, journal_path: str) -> None:
    plan = {
        "id": "retry",
        "steps": [
            {"id": "first", "tool": "scan_hull"},
            {
                "id": "flaky",
                "tool": "fail_once",
                "args": {"marker": str(tmp_path / "m")},
                "retries": 1,
                "depends_on": ["first"],
            },
        ],
    }
    run_id = _run(plan, journal_path)
    with open_journal(journal_path) as journal:
        shown = view.read_view(journal, run_id)
    assert shown is not None and shown.verdict == "SUCCESS"
    rows = charts._timeline_rows(shown, time.time())
    by_step = {r["step"]: r for r in rows}
    assert by_step["flaky"]["tries"] == 2
    assert by_step["flaky"]["retried"] is True
    assert by_step["flaky"]["note"] == "2 tries"
    assert by_step["first"]["retried"] is False
    assert all(r["end"] > r["start"] for r in rows)
    chart = charts.timeline_chart(shown)
    spec = chart.to_dict()
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"
    import json

    assert '"note": "2 tries"' in json.dumps(spec)
    assert charts.timeline_chart(view.RunView(**{**shown.__dict__, "steps": ()})) is None


def test_outputs_come_back_as_the_tools_made_them(journal_path: str) -> None:
    from marimo_engine.tools.data import data_registry

    load = {"id": "t", "tool": "load_table", "args": {"dataset": "iris"}}
    plan = {"id": "table", "steps": [load]}

    result = execute_plan_sync(plan, tools=data_registry(), journal=journal_path)
    with open_journal(journal_path) as journal:
        outputs = view.read_outputs(journal, result.run_id)
        token = journal.create_run("r2", "p", '{"steps": []}')
        journal.write_step("r2", token, "x", status="completed", output_format="pickle",
                           output=b"not a pickle")  # fmt: skip
        broken = view.read_outputs(journal, "r2")
    assert isinstance(outputs["t"], pd.DataFrame)
    assert outputs["t"].shape == (150, 5)
    assert isinstance(broken["x"], view.UnloadableOutput)
    assert broken["x"].output_format == "pickle"


def test_displayable_turns_models_into_json() -> None:
    import asyncio

    from marimo_engine.tools.examples import check_oxygen

    reading = asyncio.run(check_oxygen())
    shown = view.displayable(reading)
    assert isinstance(shown, dict) and shown["level"] == reading.level
    frame = pd.DataFrame({"a": [1]})
    assert view.displayable(frame) is frame
    assert view.displayable({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("status", "owner", "until", "expected"),
    [
        ("running", "h:1:t", 2e9, "running"),
        ("running", None, None, "interrupted"),
        ("running", "h:1:t", 1.0, "interrupted"),
        ("INTERVENTION_NEEDED", None, None, "waiting"),
        ("SUCCESS", None, None, "finished"),
        ("FAILURE", None, None, "finished"),
    ],
)
def test_run_state(status: str, owner: str | None, until: float | None, expected: str) -> None:
    from marimo_engine.engine.journal import RunRecord

    record = RunRecord("r", "p", "{}", status, None, 0.0, 0.0, None, None, None, owner, until)
    assert view.run_state(record, now=1000.0) == expected


def test_event_json_carries_no_traceback(tmp_path: Path) -> None:
    plan = {"steps": [{"id": "boom", "tool": "fail_once", "args": {"marker": str(tmp_path / "m")}}]}
    result = execute_plan_sync(plan, tools=registry())
    (error,) = [e for e in result.events if e.type.value == "ERROR"]
    assert error.error is not None and "in fail_once" in (error.error.traceback or "")
    assert "traceback" not in error.to_json_line()
    assert "traceback" not in error.error.model_dump()


def test_text_from_plans_is_shown_as_written() -> None:
    import json

    assert ui_text.md_text("<img src=x onerror=alert(1)>") == (
        "&lt;img src&#61;x onerror&#61;alert&#40;1&#41;&gt;"
    )
    assert ui_text.md_text("[a](javascript:x) *b* `c` $d$") == (
        "&#91;a&#93;&#40;javascript&#58;x&#41; &#42;b&#42; &#96;c&#96; &#36;d&#36;"
    )
    assert ui_text.md_code("a`b\nc") == "`a'b c`"
    fenced = ui_text.fenced_json({"name": "```\n<b>x</b>"})
    assert fenced.count("```") == 2
    assert json.loads(fenced.removeprefix("```json\n").removesuffix("\n```")) == {
        "name": "```\n<b>x</b>"
    }


def test_resolved_args_come_from_the_outputs(journal_path: str) -> None:
    plan = {
        "id": "chain",
        "steps": [
            {"id": "a", "tool": "scale", "args": {"value": 2}},
            {"id": "b", "tool": "scale", "args": {"value": "$a.value", "factor": 3}},
        ],
    }
    run_id = _run(plan, journal_path)
    with open_journal(journal_path) as journal:
        shown = view.read_view(journal, run_id)
        outputs = view.read_outputs(journal, run_id)
    assert shown is not None
    a, b = shown.steps
    assert view.resolved_args(a, outputs) is None  # nothing to resolve
    assert view.resolved_args(b, outputs) == {"value": 4.0, "factor": 3}
    assert view.resolved_args(b, {}) is None  # its dependency has no output


def test_a_sub_plan_step_is_labelled_with_its_plan() -> None:
    (step,) = view.step_views({"steps": [{"id": "sub", "plan": "checks"}]})
    assert step.tool == "plan:checks"


def test_answer_schema_is_the_tools_declared_output() -> None:
    tools = registry()
    schema = view.answer_schema(tools, "check_oxygen")
    assert schema is not None and "level" in str(schema)
    assert view.answer_schema(tools, "no_such_tool") is None
