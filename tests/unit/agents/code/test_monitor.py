"""Error classes from real marimo cell states, and the facts gathered for a fix."""

from __future__ import annotations

from typing import Any

import pytest

from marimo_engine.agents.code.monitor import ErrorClass, classify, gather_facts, last_frames
from marimo_engine.live.protocol import (
    CellInfo,
    ColumnInfo,
    DataFrameDescription,
    ExecuteResult,
    VariableInfo,
)

KEY_TRACEBACK = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pandas/core/indexes/base.py", line 3816, in get_loc
    return self._engine.get_loc(casted_key)
KeyError: 'tmax'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/tmp/marimo_1/__marimo__cell_jAXb_.py", line 2, in <module>
    hot = df['tmax'].max()
          ~~^^^^^^^^
  File "/venv/lib/python3.11/site-packages/pandas/core/frame.py", line 4330, in __getitem__
    indexer = self.columns.get_loc(key)
KeyError: 'tmax'
"""


def cell(
    errors: list[str], console: str = "", status: str = "exception", code: str = ""
) -> CellInfo:
    return CellInfo(id="jAXb", name="hot", code=code, status=status, errors=errors,
                    console=console)  # fmt: skip


@pytest.mark.parametrize(
    ("errors", "status", "expected", "subject"),
    [
        (["NameError: name 'totl' is not defined"], "exception", ErrorClass.UNDEFINED_NAME, "totl"),
        (["ModuleNotFoundError: No module named 'sklearn.linear_model'"], "exception",
         ErrorClass.MISSING_MODULE, "sklearn.linear_model"),
        (["KeyError: 'tmax'"], "exception", ErrorClass.MISSING_KEY, "tmax"),
        (["AttributeError: 'DataFrame' object has no attribute 'tmax'"], "exception",
         ErrorClass.MISSING_KEY, "tmax"),
        (["ValueError: could not convert string to float: 'rain'"], "exception",
         ErrorClass.DATA_VALUE, None),
        (["ZeroDivisionError: division by zero"], "exception", ErrorClass.DATA_VALUE, None),
        (["MemoryError: "], "exception", ErrorClass.RESOURCE_LIMIT, None),
        (["RecursionError: maximum recursion depth exceeded"], "exception",
         ErrorClass.RESOURCE_LIMIT, None),
        (["KeyboardInterrupt: "], "exception", ErrorClass.INTERRUPTED, None),
        ([], "interrupted", ErrorClass.INTERRUPTED, None),
        (["SyntaxError: invalid syntax"], "exception", ErrorClass.SYNTAX, None),
        (["This cell redefines variables from other cells: 'x'"], "marimo-error",
         ErrorClass.GRAPH, "x"),
        (["RuntimeError: boom"], "exception", ErrorClass.OTHER, None),
    ],
)  # fmt: skip
def test_classes(errors: list[str], status: str, expected: ErrorClass, subject: str | None) -> None:
    error = classify(cell(errors, status=status))
    assert error is not None
    assert (error.error_class, error.subject) == (expected, subject)


def test_a_cell_without_error_has_no_class() -> None:
    assert classify(cell([], status="idle")) is None


def test_last_frames_name_the_cell_and_shorten_library_paths() -> None:
    frames = last_frames(KEY_TRACEBACK, {"jAXb": "hot"})
    assert frames == [
        "cell 'hot' line 2: hot = df['tmax'].max()",
        "pandas/core/frame.py line 4330 in __getitem__: indexer = self.columns.get_loc(key)",
    ]


class Kernel:
    """A fact source answering like `LiveClient` from fixed data."""

    def __init__(self) -> None:
        self.vars = [
            VariableInfo(name="df", type="pandas.DataFrame", repr="...", cell_id="a"),
            VariableInfo(name="cfg", type="dict", repr="{...}", cell_id="b"),
            VariableInfo(name="total", type="int", repr="5", cell_id="c"),
        ]

    async def variables(self) -> list[VariableInfo]:
        return self.vars

    async def describe(self, name: str) -> DataFrameDescription:
        assert name == "df"
        return DataFrameDescription(
            name="df", library="pandas", shape=(2, 2),
            columns=[ColumnInfo(name="temp_max", dtype="float64"),
                     ColumnInfo(name="weather", dtype="str")],
        )  # fmt: skip

    async def execute(self, code: str) -> ExecuteResult:
        assert "cfg.keys()" in code
        return ExecuteResult(success=True, stdout='["alpha", "beta"]\n')


@pytest.mark.anyio
async def test_facts_for_a_missing_column_are_the_real_columns() -> None:
    error = classify(cell(["KeyError: 'tmax'"], KEY_TRACEBACK, code="hot = df['tmax'].max()"))
    assert error is not None
    await gather_facts(error, Kernel())  # type: ignore[arg-type]
    assert error.facts["df columns"] == "temp_max, weather"
    assert error.facts["did you mean"] == "temp_max"
    report = error.report()
    assert "[missing_key]" in report and "cell 'hot' line 2" in report and "strategy:" in report


@pytest.mark.anyio
async def test_facts_for_a_missing_key_are_the_dict_keys() -> None:
    error = classify(cell(["KeyError: 'alpah'"], code="v = cfg['alpah']"))
    assert error is not None
    await gather_facts(error, Kernel())  # type: ignore[arg-type]
    assert error.facts["cfg keys"] == "alpha, beta"
    assert error.facts["did you mean"] == "alpha"


@pytest.mark.anyio
async def test_facts_for_an_undefined_name_are_the_names_in_scope() -> None:
    others = [CellInfo(id="z", code="grand_total = 1\n_private = 2")]
    error = classify(cell(["NameError: name 'totl' is not defined"], code="x = totl"))
    assert error is not None
    await gather_facts(error, Kernel(), cells=others)  # type: ignore[arg-type]
    assert error.facts["names in scope"] == "cfg, df, grand_total, total"
    assert error.facts["did you mean"].startswith("total")


@pytest.mark.anyio
async def test_facts_for_a_data_error_are_dtypes_and_values() -> None:
    error = classify(cell(["TypeError: unsupported operand"], code="y = df['weather'] + total"))
    assert error is not None
    await gather_facts(error, Kernel())  # type: ignore[arg-type]
    assert error.facts["df dtypes"] == "temp_max: float64, weather: str"
    assert error.facts["total"] == "int = 5"


@pytest.fixture
def anyio_backend() -> Any:
    return "asyncio"
