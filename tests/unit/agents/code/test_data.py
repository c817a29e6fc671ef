"""Data context: what the model is told about a data file, read from the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from marimo_engine.agents.code import data
from marimo_engine.agents.code.data import describe_file
from marimo_engine.errors import UsageError


def test_a_csv_is_described_with_dtypes_missing_counts_and_sample(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("city,temp\nA,10\nB,\nC,12\nD,13\n")
    info = describe_file(path)
    assert info["rows"] == 4 and info["described_rows"] == 4
    assert info["columns"] == [
        {"name": "city", "dtype": info["columns"][0]["dtype"], "missing": 0},
        {"name": "temp", "dtype": "float64", "missing": 1},
    ]
    assert info["sample"][0] == {"city": "A", "temp": "10.0"} and len(info["sample"]) == 3


def test_a_large_csv_is_described_from_its_first_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv"
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(50)))
    monkeypatch.setattr(data, "LARGE_FILE_BYTES", 10)
    monkeypatch.setattr(data, "LARGE_FILE_ROWS", 5)
    info = describe_file(path)
    assert (info["rows"], info["described_rows"]) == (50, 5)


def test_parquet_and_bad_files(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "p.parquet")
    assert describe_file(tmp_path / "p.parquet")["rows"] == 2
    with pytest.raises(UsageError, match="does not exist"):
        describe_file(tmp_path / "none.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(UsageError, match=r"has type '\.xlsx'"):
        describe_file(tmp_path / "x.xlsx")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="Cannot read data file"):
        describe_file(tmp_path / "bad.parquet")
