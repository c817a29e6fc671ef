"""The HTML report: marimo's export of a notebook made from a run's own outputs."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from marimo_engine.cli.progress import ProgressModel
from marimo_engine.cli.report import ReportError, render_report_notebook, write_html_report
from marimo_engine.engine.events import ErrorInfo, Event, EventType, Verdict
from marimo_engine.plans.schema import load_plan

pytestmark = pytest.mark.integration

PLAN = load_plan(
    {
        "id": "r1",
        "name": "Report <plan>",
        "steps": [
            {"id": "table", "tool": "load_table", "description": "A *small* table"},
            {"id": "lock", "tool": "scan_hull"},
            {"id": "skipped", "tool": "scan_hull", "run_if": "$table.x > 1"},
            {"id": "broken", "tool": "scan_hull"},
        ],
    }
)


def _finished_model() -> ProgressModel:
    model = ProgressModel.from_plan(PLAN)
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.25]})
    for event in [
        Event(type=EventType.START, plan_id="r1"),
        Event(type=EventType.STEP_START, plan_id="r1", step_id="table"),
        Event(type=EventType.STEP_COMPLETE, plan_id="r1", step_id="table", output=frame),
        Event(type=EventType.STEP_START, plan_id="r1", step_id="lock"),
        Event(type=EventType.STEP_COMPLETE, plan_id="r1", step_id="lock", output=threading.Lock()),
        Event(
            type=EventType.STEP_SKIPPED,
            plan_id="r1",
            step_id="skipped",
            reason="run_if was false",
        ),
        Event(
            type=EventType.ERROR,
            plan_id="r1",
            step_id="broken",
            error=ErrorInfo(type="ValueError", message="sensor offline"),
        ),
        Event(type=EventType.FINISH, plan_id="r1", verdict=Verdict.FAILURE, duration_s=0.5),
    ]:
        model.apply(event)
    return model


def test_report_shows_every_step_with_its_state_and_output(tmp_path: Path) -> None:
    model = _finished_model()
    outputs = {
        "table": pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.25]}),
        "lock": threading.Lock(),  # cannot be pickled: shown in its JSON form
    }
    target = write_html_report(model, outputs, tmp_path / "r.html", notebook="# nb source")
    html = target.read_text(encoding="utf-8")
    for text in ["table", "lock", "skipped", "broken", "Oslo", "19.25", "sensor offline"]:
        assert text in html, text
    assert "FAILURE" in html
    assert "_thread.lock" in html  # the JSON fallback's type name
    assert "run_if was false" in html
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_report_notebook_is_one_marimo_loads(tmp_path: Path) -> None:
    from marimo._ast.load import load_app

    path = tmp_path / "report.py"
    path.write_text(render_report_notebook(_finished_model(), "/nonexistent"), encoding="utf-8")
    app = load_app(str(path))
    assert app is not None
    # setup + header + a markdown cell per step + an output cell per completed step
    assert len(list(app._cell_manager.cells())) == 2 + 4 + 2


def test_report_into_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"folder .* does not exist"):
        write_html_report(_finished_model(), {}, tmp_path / "no" / "r.html")
