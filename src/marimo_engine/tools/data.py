"""The data toolset: load tables, query them with SQL, describe, aggregate, chart.

Tables flow between steps as real pandas DataFrames: a step that loads a
table outputs the DataFrame itself, and later steps take it as an argument by
reference (`"table": "$load_weather"`). Steps that need a scalar for a
`run_if`, an `intervention_if` or a key finding use the tools that return
plain mappings (`describe_table`, `query_row`), whose keys references can
follow (`$profile.missing_total`).

Every tool is a plain function importable by module path, so that the
compiled notebook can import it in its setup cell, and every heavy library
(pandas, DuckDB, Altair, vega_datasets) is imported inside the function that
needs it.

Use `data_registry()` to get the tools as a `ToolRegistry`:

    from marimo_engine import execute_plan_sync
    from marimo_engine.tools.data import data_registry

    result = execute_plan_sync(plan, tools=data_registry())
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from marimo_engine.tools.registry import ToolRegistry

    Table: TypeAlias = pd.DataFrame
    Chart: TypeAlias = alt.Chart
else:
    # At run time the annotations resolve to `Any`, so that building a tool's
    # JSON schema never imports pandas or Altair: tables and charts are passed
    # by reference, never as JSON literals.
    Table = Any
    Chart = Any

__all__ = [
    "AGGREGATIONS",
    "CHART_MARKS",
    "TableDescription",
    "aggregate_table",
    "chart_table",
    "data_registry",
    "describe_table",
    "load_table",
    "query_row",
    "query_tables",
]

AGGREGATIONS = ("count", "sum", "mean", "median", "min", "max", "std", "var", "nunique")
"""Aggregation functions `aggregate_table` accepts (pandas' names)."""

CHART_MARKS = ("bar", "line", "point", "area", "tick", "rect", "circle", "square")
"""Altair marks `chart_table` accepts."""

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _require_table(value: object, argument: str) -> Table:
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise TypeError(
            f"Argument {argument!r} must be a pandas DataFrame, got {type(value).__name__}; "
            "pass the output of a table step by reference, such as '$load_weather'."
        )
    return value


def _require_columns(table: Table, columns: Sequence[str], argument: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        known = ", ".join(repr(str(c)) for c in table.columns)
        raise KeyError(
            f"Argument {argument!r} names column(s) {', '.join(map(repr, missing))} "
            f"that the table does not have. Columns: {known}."
        )


def _python_scalar(value: object) -> object:
    """Return a numpy/pandas scalar as its plain Python value; NaN becomes `None`."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__.startswith("numpy"):
        value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__module__.startswith("pandas"):
        import pandas as pd

        if value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    return value


def _vega_dataset(name: str) -> Table:
    from vega_datasets import local_data

    known = local_data.list_datasets()
    wanted = name.strip().replace("_", "-")
    if wanted not in known:
        raise ValueError(
            f"No local vega_datasets dataset named {name!r}. "
            f"Available offline: {', '.join(repr(k) for k in known)}."
        )
    return local_data(wanted)


def load_table(
    path: str | None = None,
    dataset: str | None = None,
    file_format: str | None = None,
    parse_dates: list[str] | None = None,
) -> Table:
    """Load a table from a CSV or Parquet file, or a dataset bundled with `vega_datasets`.

    Give exactly one of `path` and `dataset`.

    Args:
        path: A CSV (`.csv`, `.tsv`) or Parquet (`.parquet`, `.pq`) file,
            absolute or relative to the current directory.
        dataset: The name of a dataset that ships inside the `vega_datasets`
            package and loads offline (`vega_datasets.local_data`), such as
            `"seattle-weather"`, `"cars"` or `"iris"`; underscores may replace
            dashes.
        file_format: `"csv"`, `"tsv"` or `"parquet"` when the file's suffix does not
            say; `None` infers it from the suffix.
        parse_dates: CSV columns to parse as dates; `None` parses none
            (vega datasets come with their dates parsed).

    Returns:
        The table as a pandas DataFrame.

    Raises:
        ValueError: Neither or both of `path` and `dataset` given, an unknown
            dataset or format.
        FileNotFoundError: `path` does not exist.
    """
    import pandas as pd

    if (path is None) == (dataset is None):
        raise ValueError(
            "Give exactly one of 'path' (a CSV or Parquet file) and 'dataset' "
            "(a vega_datasets name such as 'seattle-weather')."
        )
    if dataset is not None:
        return _vega_dataset(dataset)
    file = Path(path).expanduser()  # type: ignore[arg-type]
    if not file.is_file():
        raise FileNotFoundError(
            f"No file at {str(file)!r} (current directory {str(Path.cwd())!r})."
        )
    kind = file_format or _FORMATS.get(file.suffix.lower())
    if kind not in ("csv", "tsv", "parquet"):
        raise ValueError(
            f"Cannot tell the format of {str(file)!r}: pass file_format='csv', 'tsv' or 'parquet'."
        )
    if kind == "parquet":
        return pd.read_parquet(file)
    return pd.read_csv(file, sep="\t" if kind == "tsv" else ",", parse_dates=parse_dates or False)


def _run_sql(query: str, tables: Mapping[str, object]) -> Table:
    import duckdb

    if not isinstance(tables, Mapping) or not tables:
        raise ValueError(
            "Argument 'tables' must map SQL table names to tables, such as "
            '{"weather": "$load_weather"}.'
        )
    # One in-memory database per call: steps run in worker threads at the same
    # time, and a DuckDB connection must not be shared between threads.
    with duckdb.connect(":memory:") as connection:
        for name, table in tables.items():
            if not _TABLE_NAME.match(name):
                raise ValueError(
                    f"Table name {name!r} is not a plain SQL name: use letters, digits "
                    "and underscores, not starting with a digit."
                )
            connection.register(name, _require_table(table, f"tables.{name}"))
        try:
            return connection.execute(query).df()
        except duckdb.Error as exc:
            names = ", ".join(repr(n) for n in tables)
            detail = " ".join(str(exc).split())  # DuckDB's message spans lines
            raise ValueError(f"SQL failed: {detail} (tables available: {names})") from exc


def query_tables(query: str, tables: dict[str, Any]) -> Table:
    """Run a DuckDB SQL query over tables from earlier steps.

    Args:
        query: One SQL statement in DuckDB's dialect
            (https://duckdb.org/docs/sql/introduction), such as
            `"SELECT weather, count(*) AS days FROM weather GROUP BY weather"`.
        tables: SQL table name to DataFrame, the tables passed by reference:
            `{"weather": "$load_weather"}`. Names are plain SQL identifiers.

    Returns:
        The result as a pandas DataFrame.

    Raises:
        ValueError: A bad table name or a query DuckDB rejects (the message
            carries DuckDB's and the names of the tables).
        TypeError: A table that is not a DataFrame.
    """
    return _run_sql(query, tables)


def query_row(query: str, tables: dict[str, Any]) -> dict[str, Any]:
    """Run a DuckDB SQL query and return its first row as a mapping.

    Use it for the values that conditions and key findings read:
    `"run_if": "$totals.rainy_days > 100"`.

    Args:
        query: One SQL statement in DuckDB's dialect; its first row is kept.
        tables: SQL table name to DataFrame, as in `query_tables`.

    Returns:
        Column name to plain Python value (`int`, `float`, `str`, `bool`,
        ISO 8601 string for timestamps, `None` for NULL); an empty mapping
        when the query returns no row.

    Raises:
        ValueError: As `query_tables`.
        TypeError: As `query_tables`.
    """
    frame = _run_sql(query, tables)
    if frame.empty:
        return {}
    return {str(c): _python_scalar(frame[c].iloc[0]) for c in frame.columns}


class TableDescription(TypedDict):
    """A table's description: its shape, column types, missing values and statistics."""

    rows: int
    columns: int
    column_types: dict[str, str]
    missing: dict[str, int]
    missing_total: int
    summary: dict[str, dict[str, Any]]


def describe_table(table: Table) -> TableDescription:
    """Describe a table: shape, column types, missing values and summary statistics.

    Args:
        table: A pandas DataFrame, passed by reference (`"$load_weather"`).

    Returns:
        A mapping with `rows` (int), `columns` (int), `column_types` (column
        to dtype name), `missing` (column to count of missing values),
        `missing_total` (int) and `summary` (column to statistics: for
        numeric columns `count`, `mean`, `std`, `min`, `25%`, `50%`, `75%`,
        `max`; for dates `count`, `min`, `max`; for other columns `count`,
        `unique`, `top`, `freq`). Every value is plain JSON.

    Raises:
        TypeError: `table` is not a DataFrame.
    """
    import pandas as pd

    frame = _require_table(table, "table")
    missing = {str(c): int(n) for c, n in frame.isna().sum().items()}
    summary: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        series = frame[column]
        stats: dict[str, Any] = {"count": int(series.count())}
        if pd.api.types.is_bool_dtype(series):
            stats["true"] = int(series.sum())
        elif pd.api.types.is_numeric_dtype(series):
            described = series.describe()
            for key in ("mean", "std", "min", "25%", "50%", "75%", "max"):
                stats[key] = _python_scalar(described[key])
        elif pd.api.types.is_datetime64_any_dtype(series):
            stats["min"] = _python_scalar(series.min())
            stats["max"] = _python_scalar(series.max())
        else:
            counts = series.value_counts()
            stats["unique"] = int(series.nunique())
            stats["top"] = _python_scalar(counts.index[0]) if len(counts) else None
            stats["freq"] = int(counts.iloc[0]) if len(counts) else 0
        summary[str(column)] = stats
    return {
        "rows": int(frame.shape[0]),
        "columns": int(frame.shape[1]),
        "column_types": {str(c): str(t) for c, t in frame.dtypes.items()},
        "missing": missing,
        "missing_total": sum(missing.values()),
        "summary": summary,
    }


def aggregate_table(
    table: Table,
    by: list[str] | str,
    aggregations: dict[str, list[str] | str],
    sort_by: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> Table:
    """Group a table and aggregate its columns.

    Args:
        table: A pandas DataFrame, passed by reference.
        by: The column, or list of columns, to group by.
        aggregations: Column to one function name or a list of them, from
            `AGGREGATIONS` (pandas' names): `{"precipitation": ["mean", "max"],
            "date": "count"}`.
        sort_by: A result column to sort by, such as `"precipitation_mean"`;
            `None` keeps the group order.
        descending: Sort from largest to smallest.
        limit: Keep at most this many rows after sorting; `None` keeps all.

    Returns:
        A DataFrame with the group columns followed by one column per
        aggregation, named `<column>_<function>` (`precipitation_mean`).

    Raises:
        TypeError: `table` is not a DataFrame.
        KeyError: A column that the table (or, for `sort_by`, the result)
            does not have; the message lists the columns.
        ValueError: An unknown aggregation function or an empty `aggregations`.
    """
    frame = _require_table(table, "table")
    keys = [by] if isinstance(by, str) else list(by)
    _require_columns(frame, keys, "by")
    if not aggregations:
        raise ValueError(
            "Argument 'aggregations' is empty: map a column to functions, "
            'such as {"precipitation": ["mean", "max"]}.'
        )
    _require_columns(frame, list(aggregations), "aggregations")
    named: dict[str, tuple[str, str]] = {}
    for column, functions in aggregations.items():
        for function in [functions] if isinstance(functions, str) else functions:
            if function not in AGGREGATIONS:
                raise ValueError(
                    f"Unknown aggregation {function!r} for column {column!r}. "
                    f"Use one of: {', '.join(AGGREGATIONS)}."
                )
            named[f"{column}_{function}"] = (column, function)
    result = frame.groupby(keys, sort=True, dropna=False).agg(**named).reset_index()
    if sort_by is not None:
        _require_columns(result, [sort_by], "sort_by")
        result = result.sort_values(sort_by, ascending=not descending, kind="stable")
        result = result.reset_index(drop=True)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"Argument 'limit' must be 0 or more, got {limit}.")
        result = result.head(limit)
    return result


def chart_table(
    table: Table,
    x: str,
    y: str,
    mark: str = "bar",
    color: str | None = None,
    title: str | None = None,
    width: int = 480,
    height: int = 300,
) -> Chart:
    """Chart a table with Altair.

    Encodings use Altair's shorthand
    (https://altair-viz.github.io/user_guide/encodings/index.html):
    a column name, optionally with a type (`"month:O"`, `"temp:Q"`,
    `"weather:N"`, `"date:T"`) and an aggregate (`"mean(temp_max):Q"`,
    `"count()"`).

    Args:
        table: A pandas DataFrame, passed by reference.
        x: The x encoding.
        y: The y encoding.
        mark: One of `CHART_MARKS`.
        color: The color encoding, or `None`.
        title: The chart title, or `None`.
        width: Width in pixels.
        height: Height in pixels.

    Returns:
        An `altair.Chart` (marimo renders it as a chart; `.to_dict()` gives
        the Vega-Lite spec).

    Raises:
        TypeError: `table` is not a DataFrame.
        ValueError: An unknown mark.
        KeyError: An encoding names a column the table does not have.
    """
    import altair as alt

    frame = _require_table(table, "table")
    if mark not in CHART_MARKS:
        raise ValueError(f"Unknown mark {mark!r}. Use one of: {', '.join(CHART_MARKS)}.")
    encodings = {"x": x, "y": y}
    if color is not None:
        encodings["color"] = color
    for channel, shorthand in encodings.items():
        field = alt.utils.parse_shorthand(shorthand).get("field")
        if field is not None:
            _require_columns(frame, [field], channel)
    chart = getattr(alt.Chart(frame), f"mark_{mark}")()
    chart = chart.encode(**encodings).properties(width=width, height=height)
    if title is not None:
        chart = chart.properties(title=title)
    return chart


def data_registry() -> ToolRegistry:
    """Return a new `ToolRegistry` with the data tools under their function names.

    Returns:
        A registry holding `load_table`, `query_tables`, `query_row`,
        `describe_table`, `aggregate_table` and `chart_table`, each importable
        by module path (`marimo_engine.tools.data`).
    """
    from marimo_engine.tools.registry import ToolRegistry

    registry = ToolRegistry()
    for function in (
        load_table,
        query_tables,
        query_row,
        describe_table,
        aggregate_table,
        chart_table,
    ):
        registry.register(function)
    return registry
