"""The data toolset on real tables: vega_datasets' Seattle weather, CSV and Parquet files."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import pytest

from marimo_engine.tools.data import (
    aggregate_table,
    chart_table,
    data_registry,
    describe_table,
    load_table,
    query_row,
    query_tables,
)

DATA_TOOLS = [
    "load_table",
    "query_tables",
    "query_row",
    "describe_table",
    "aggregate_table",
    "chart_table",
]


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return load_table(dataset="seattle-weather")


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["a", "a", "b", "b", "c"],
            "temp": [1.0, 3.0, 10.0, None, 7.0],
            "rain": [True, False, True, True, False],
            "day": pd.to_datetime(
                ["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-02", "2024-01-03"]
            ),
        }
    )


# --- load_table -------------------------------------------------------------


def test_load_bundled_dataset_offline(weather: pd.DataFrame) -> None:
    assert weather.shape == (1461, 6)
    assert list(weather.columns) == [
        "date",
        "precipitation",
        "temp_max",
        "temp_min",
        "wind",
        "weather",
    ]
    assert pd.api.types.is_datetime64_any_dtype(weather["date"])
    assert str(weather["date"].min().date()) == "2012-01-01"


def test_load_dataset_accepts_underscores() -> None:
    assert load_table(dataset="seattle_weather").shape == (1461, 6)


def test_load_unknown_dataset_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"No local vega_datasets dataset named 'seatle'.*'cars'"):
        load_table(dataset="seatle")


@pytest.mark.parametrize("kwargs", [{}, {"path": "x.csv", "dataset": "cars"}], ids=["none", "both"])
def test_load_needs_exactly_one_source(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Give exactly one of 'path'"):
        load_table(**kwargs)


def test_load_csv_tsv_and_parquet_round_trip(tmp_path: Path, small: pd.DataFrame) -> None:
    small.to_csv(tmp_path / "t.csv", index=False)
    small.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    small.to_parquet(tmp_path / "t.parquet", index=False)
    small.to_csv(tmp_path / "t.data", index=False)

    from_csv = load_table(path=str(tmp_path / "t.csv"), parse_dates=["day"])
    from_tsv = load_table(path=str(tmp_path / "t.tsv"))
    from_parquet = load_table(path=str(tmp_path / "t.parquet"))
    from_data = load_table(path=str(tmp_path / "t.data"), file_format="csv")

    assert pd.api.types.is_datetime64_any_dtype(from_csv["day"])
    assert from_csv["temp"].tolist()[:3] == [1.0, 3.0, 10.0]
    assert from_tsv.shape == small.shape
    pd.testing.assert_frame_equal(from_parquet, small)
    assert from_data["city"].tolist() == ["a", "a", "b", "b", "c"]


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No file at '.*nope\.csv'"):
        load_table(path=str(tmp_path / "nope.csv"))


def test_load_unknown_suffix_asks_for_a_format(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match="pass file_format='csv', 'tsv' or 'parquet'"):
        load_table(path=str(tmp_path / "t.xlsx"))


# --- SQL ----------------------------------------------------------------------


def test_query_joins_tables_registered_under_their_names(small: pd.DataFrame) -> None:
    cities = pd.DataFrame({"city": ["a", "b"], "name": ["Aberdeen", "Bergen"]})
    result = query_tables(
        "SELECT c.name, avg(t.temp) AS mean_temp FROM temps t JOIN cities c USING (city) "
        "GROUP BY c.name ORDER BY c.name",
        tables={"temps": small, "cities": cities},
    )
    assert isinstance(result, pd.DataFrame)
    assert result.to_dict(orient="records") == [
        {"name": "Aberdeen", "mean_temp": 2.0},
        {"name": "Bergen", "mean_temp": 10.0},
    ]


def test_query_row_gives_plain_python_values(weather: pd.DataFrame) -> None:
    row = query_row(
        "SELECT count(*) AS days, max(temp_max) AS hottest, min(date) AS first, "
        "NULL AS nothing, 'x' AS label FROM weather",
        tables={"weather": weather},
    )
    assert row == {
        "days": 1461,
        "hottest": 35.6,
        "first": "2012-01-01T00:00:00",
        "nothing": None,
        "label": "x",
    }
    assert type(row["days"]) is int
    json.dumps(row)


def test_query_row_of_an_empty_result_is_empty(small: pd.DataFrame) -> None:
    assert query_row("SELECT * FROM t WHERE temp > 100", tables={"t": small}) == {}


def test_bad_sql_names_the_tables(small: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"SQL failed: .*tables available: 't'"):
        query_tables("SELECT nope FROM t", tables={"t": small})


@pytest.mark.parametrize(
    ("tables", "error", "match"),
    [
        ({}, ValueError, "must map SQL table names"),
        ({"1bad": "frame"}, ValueError, "is not a plain SQL name"),
        ({"t": [1, 2]}, TypeError, "'tables.t' must be a pandas DataFrame, got list"),
    ],
    ids=["empty", "bad-name", "not-a-table"],
)
def test_query_rejects_bad_tables(
    small: pd.DataFrame, tables: dict[str, Any], error: type[Exception], match: str
) -> None:
    tables = {k: (small if v == "frame" else v) for k, v in tables.items()}
    with pytest.raises(error, match=match):
        query_tables("SELECT 1", tables=tables)


def test_queries_in_parallel_threads_do_not_share_a_connection(weather: pd.DataFrame) -> None:
    barrier = threading.Barrier(4)

    def count_year(year: int) -> int:
        barrier.wait(timeout=10)
        row = query_row(
            f"SELECT count(*) AS n FROM w WHERE year(date) = {year}", tables={"w": weather}
        )
        return int(row["n"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(count_year, [2012, 2013, 2014, 2015]))
    assert counts == [366, 365, 365, 365]


# --- describe -------------------------------------------------------------------


def test_describe_reports_shape_types_missing_and_statistics(small: pd.DataFrame) -> None:
    profile = describe_table(small)
    assert profile["rows"] == 5
    assert profile["columns"] == 4
    assert profile["column_types"]["temp"] == "float64"
    assert profile["column_types"]["rain"] == "bool"
    assert profile["missing"] == {"city": 0, "temp": 1, "rain": 0, "day": 0}
    assert profile["missing_total"] == 1
    assert profile["summary"]["temp"]["count"] == 4
    assert profile["summary"]["temp"]["mean"] == pytest.approx(21.0 / 4)
    assert profile["summary"]["temp"]["max"] == 10.0
    assert profile["summary"]["city"] == {"count": 5, "unique": 3, "top": "a", "freq": 2}
    assert profile["summary"]["rain"] == {"count": 5, "true": 3}
    assert profile["summary"]["day"]["min"] == "2024-01-01T00:00:00"
    # Plain JSON all the way down, so it can be a key finding or a reference target.
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


def test_describe_the_real_dataset_has_no_gaps(weather: pd.DataFrame) -> None:
    profile = describe_table(weather)
    assert (profile["rows"], profile["missing_total"]) == (1461, 0)
    assert profile["summary"]["weather"]["top"] == "sun"


def test_describe_rejects_a_non_table() -> None:
    with pytest.raises(TypeError, match="'table' must be a pandas DataFrame, got dict"):
        describe_table({"a": 1})  # type: ignore[arg-type]


# --- aggregate ------------------------------------------------------------------


def test_aggregate_groups_and_names_columns(weather: pd.DataFrame) -> None:
    mix = aggregate_table(
        weather,
        by="weather",
        aggregations={"date": "count", "precipitation": ["mean", "max"]},
        sort_by="date_count",
        descending=True,
    )
    assert list(mix.columns) == [
        "weather",
        "date_count",
        "precipitation_mean",
        "precipitation_max",
    ]
    assert mix["weather"].tolist() == ["sun", "fog", "rain", "drizzle", "snow"]
    assert mix["date_count"].sum() == 1461
    assert mix.loc[mix["weather"] == "snow", "precipitation_max"].item() == pytest.approx(
        weather.loc[weather["weather"] == "snow", "precipitation"].max()
    )


def test_aggregate_by_several_columns_with_a_limit(small: pd.DataFrame) -> None:
    result = aggregate_table(
        small, by=["city", "rain"], aggregations={"temp": "sum"}, sort_by="temp_sum", limit=2
    )
    assert result.to_dict(orient="records") == [
        {"city": "a", "rain": True, "temp_sum": 1.0},
        {"city": "a", "rain": False, "temp_sum": 3.0},
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"by": "town", "aggregations": {"temp": "sum"}}, KeyError, "'by' names column"),
        ({"by": "city", "aggregations": {"tmp": "sum"}}, KeyError, "Columns: 'city', 'temp'"),
        ({"by": "city", "aggregations": {"temp": "avg"}}, ValueError, "Unknown aggregation 'avg'"),
        ({"by": "city", "aggregations": {}}, ValueError, "'aggregations' is empty"),
        (
            {"by": "city", "aggregations": {"temp": "sum"}, "sort_by": "temp"},
            KeyError,
            "'sort_by' names column",
        ),
        ({"by": "city", "aggregations": {"temp": "sum"}, "limit": -1}, ValueError, "0 or more"),
    ],
    ids=["by", "column", "function", "empty", "sort_by", "limit"],
)
def test_aggregate_errors_say_what_to_change(
    small: pd.DataFrame, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        aggregate_table(small, **kwargs)


# --- chart ------------------------------------------------------------------------


def test_chart_is_an_altair_chart_with_the_encodings(small: pd.DataFrame) -> None:
    chart = chart_table(small, x="day:T", y="mean(temp):Q", color="city:N", mark="line", title="T")
    assert isinstance(chart, alt.Chart)
    spec = chart.to_dict()
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"] == {"field": "day", "type": "temporal"}
    assert spec["encoding"]["y"] == {"aggregate": "mean", "field": "temp", "type": "quantitative"}
    assert spec["encoding"]["color"]["field"] == "city"
    assert spec["title"] == "T"


def test_chart_count_needs_no_field(small: pd.DataFrame) -> None:
    spec = chart_table(small, x="city:N", y="count()").to_dict()
    assert spec["encoding"]["y"]["aggregate"] == "count"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": "town:N", "y": "temp"}, KeyError, "'x' names column"),
        ({"x": "city", "y": "temp", "mark": "pie"}, ValueError, "Unknown mark 'pie'"),
    ],
    ids=["column", "mark"],
)
def test_chart_errors(
    small: pd.DataFrame, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        chart_table(small, **kwargs)


# --- registry ---------------------------------------------------------------------


def test_registry_holds_every_tool_importable_by_module_path() -> None:
    registry = data_registry()
    assert list(registry) == DATA_TOOLS
    for spec in registry.specs():
        assert spec.import_path == ("marimo_engine.tools.data", spec.name)
        assert not spec.is_async
        assert spec.description
    json.dumps(registry.schemas())


def test_registry_schema_describes_arguments() -> None:
    spec = data_registry().get("load_table")
    properties = spec.parameters_schema["properties"]
    assert set(properties) == {"path", "dataset", "file_format", "parse_dates"}
    assert "vega_datasets" in properties["dataset"]["description"]


@dataclass(frozen=True)
class ArgsCase:
    id: str
    tool: str
    args: dict[str, Any]
    problems: int


ARGS_CASES = [
    ArgsCase("reference-table", "describe_table", {"table": "$load"}, 0),
    ArgsCase("literal-dataset", "load_table", {"dataset": "cars"}, 0),
    ArgsCase("wrong-type", "load_table", {"dataset": 3}, 1),
    ArgsCase("unknown-arg", "chart_table", {"table": "$t", "x": "a", "y": "b", "colour": "c"}, 1),
    ArgsCase("missing-query", "query_tables", {"tables": {"t": "$load"}}, 1),
]


@pytest.mark.parametrize("case", ARGS_CASES, ids=[c.id for c in ARGS_CASES])
def test_registry_checks_literal_args(case: ArgsCase) -> None:
    assert len(data_registry().check_args(case.tool, case.args)) == case.problems


# --- the real-data example plan -------------------------------------------------


def test_example_plan_has_what_the_issue_asks_for() -> None:
    from marimo_engine.examples import load_example
    from marimo_engine.plans.dependencies import step_dependencies
    from marimo_engine.plans.schema import load_plan
    from marimo_engine.plans.validation import validate_plan

    data = load_example("seattle-weather")
    assert validate_plan(data, data_registry()) == []
    plan = load_plan(data)
    steps = {s.id: s for s in plan.steps}
    assert len(steps) >= 6
    assert any(s.run_if for s in plan.steps)
    assert any(s.key_finding for s in plan.steps)
    assert any(s.intervention_if for s in plan.steps)
    assert any(s.tool == "chart_table" for s in plan.steps)
    deps = step_dependencies(plan)
    # profile and weather_mix need only the loaded table: neither waits for the other.
    assert deps["profile"] == ("load_weather",)
    assert deps["weather_mix"] == ("load_weather",)


def test_example_plan_runs_on_the_real_data() -> None:
    from marimo_engine import execute_plan_sync
    from marimo_engine.examples import load_example

    result = execute_plan_sync(load_example("seattle-weather"), tools=data_registry())
    assert result.verdict.value == "SUCCESS", result.error
    assert result.intervention is None  # the data has no gaps: intervention_if stays false
    assert result.skipped == []  # run_if holds: four years of data
    assert result.key_findings == {
        "headline": {
            "wettest_year": 2014,
            "wettest_year_precipitation_mm": 1232.8,
            "warmest_year": 2015,
            "warmest_year_mean_temp_max_c": 17.43,
            "wet_day_share": 0.426,
        }
    }
    assert isinstance(result.outputs["load_weather"], pd.DataFrame)
    assert isinstance(result.outputs["temperature_chart"], alt.Chart)
    assert result.outputs["yearly"]["year"].tolist() == [2012, 2013, 2014, 2015]
