"""Which table columns the HTML report writes as plain digits (years and ids)."""

from __future__ import annotations

import pandas as pd
import polars as pl

from marimo_engine.cli.report import plain_integer_columns, present_output


def test_integer_year_and_id_columns_are_plain() -> None:
    frame = pd.DataFrame(
        {
            "year": [2012],
            "days": [1461],
            "wettest_year": [2012],
            "sensor_id": [1042],
            "userId": [5001],
            "yearly_total": [1226],  # a quantity: "yearly" is not the word "year"
            "idle": [3],
            "year_mean": [2013.5],  # not an integer column
            "id_text": ["A-1"],
        }
    )
    assert plain_integer_columns(frame) == ["year", "wettest_year", "sensor_id", "userId"]
    assert plain_integer_columns(pl.DataFrame({"Year": [2015], "n": [1]})) == ["Year"]


def test_anything_else_has_no_plain_columns() -> None:
    assert plain_integer_columns({"year": 2012}) == []
    assert plain_integer_columns([2012]) == []
    assert plain_integer_columns(pd.DataFrame({"days": [1461]})) == []


def test_present_output_formats_only_tables_with_such_columns() -> None:
    plain = pd.DataFrame({"days": [1461]})
    assert present_output(plain) is plain
    assert present_output({"year": 2012}) == {"year": 2012}
    table = present_output(pd.DataFrame({"year": [2012], "days": [1461]}))
    assert type(table).__name__ == "table"
    assert table._format_mapping is not None and set(table._format_mapping) == {"year"}
    assert table._format_mapping["year"](2012) == "2012"


def test_the_report_shows_a_markdown_steps_output_as_markdown() -> None:
    from marimo_engine import execute_plan_sync
    from marimo_engine.cli.report import render_report_notebook
    from marimo_engine.cli.run_state import ProgressModel
    from marimo_engine.plans.schema import load_plan

    plan = load_plan(
        {"steps": [{"id": "s1", "tool": "one"}, {"id": "md", "markdown": "**$s1** row"}]}
    )
    model = ProgressModel.from_plan(plan)
    for event in execute_plan_sync(plan, {"one": lambda: 1}).events:
        model.apply(event)
    assert model.steps["md"].tool == "markdown" and model.steps["md"].is_markdown
    source = render_report_notebook(model, "/nowhere.pickle")
    assert "mo.md(str(show('md')))" in source
    assert "    show('s1')" in source
    assert "Markdown · **done**" in source
