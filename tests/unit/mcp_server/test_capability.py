"""marimo-engine as a marimo code-mode capability (`marimo.agent.capability`)."""

from __future__ import annotations

import pandas as pd
import pytest

import marimo_engine.capability as me
from marimo_engine.engine.events import Verdict
from marimo_engine.examples import load_example


def test_marimo_finds_the_capability_entry_point() -> None:
    from marimo._code_mode import capabilities

    assert capabilities()["marimo-engine"] == "marimo_engine.capability"


def test_code_mode_help_lists_the_capability() -> None:
    import marimo._code_mode as cm

    assert "marimo-engine    import marimo_engine.capability" in (cm.__doc__ or "")


def test_the_module_help_says_how_to_run_plans_and_describe_data() -> None:
    doc = me.__doc__ or ""
    for phrase in ("await me.run(plan)", "me.validate(plan)", "me.describe(df", "me.tools()"):
        assert phrase in doc


def test_tools_validate_and_notebook() -> None:
    assert any(t["name"] == "scan_hull" for t in me.tools())
    assert me.validate(me.example("hull-check-7")) == []
    [problem] = me.validate({"steps": [{"id": "s1", "tool": "scan_hul"}]})
    assert problem["code"] == "unknown_tool"
    assert "marimo.App" in me.notebook(load_example("hull-check-7"))
    assert me.plan_language().startswith("# The plan language")


@pytest.mark.anyio
async def test_run_returns_the_result_with_its_notebook() -> None:
    result = await me.run(me.example("hull-check-7"))
    assert result.verdict is Verdict.SUCCESS
    assert result.key_findings["s2"].status == "nominal"
    assert result.notebook is not None and "marimo.App" in result.notebook
    invalid = await me.run({"steps": [{"id": "s1", "tool": "scan_hul"}]})
    assert invalid.verdict is Verdict.FAILURE and invalid.notebook is None
    assert invalid.error is not None and invalid.error.problems


def _frame(columns: int = 3, rows: int = 50) -> pd.DataFrame:
    return pd.DataFrame(
        {f"col_{i}": [float(r * (i + 1)) for r in range(rows)] for i in range(columns)}
    )


def test_describe_gives_shape_columns_statistics_and_rows() -> None:
    text = me.describe(_frame(), max_rows=2)
    lines = text.splitlines()
    assert lines[0] == "pandas DataFrame: 50 rows x 3 columns"
    assert lines[2].startswith("- col_0 (float64, 0 missing): ") and '"mean": 24.5' in lines[2]
    assert lines[-3] == "first 2 rows:"


@pytest.mark.parametrize("budget", [120, 300, 800])
def test_describe_keeps_within_its_budget(budget: int) -> None:
    text = me.describe(_frame(columns=40), max_chars=budget)
    assert len(text) <= budget
    assert text.startswith("pandas DataFrame: 50 rows x 40 columns")


def test_describe_reads_polars_and_refuses_other_values() -> None:
    import polars as pl

    text = me.describe(pl.DataFrame({"a": [1, 2, 3]}))
    assert text.startswith("polars DataFrame: 3 rows x 1 columns")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        me.describe([1, 2, 3])
