"""Data context for the model: what the data files hold, read from the files themselves."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from marimo_engine.errors import UsageError

__all__ = ["DATA_SUFFIXES", "describe_file", "describe_files"]

DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".json", ".jsonl", ".ndjson")
"""File types the agent can describe (and the EDA agent can explore)."""

MAX_SAMPLE_ROWS = 3

LARGE_FILE_BYTES = 100 * 1024**2
"""Text files past this size are described from their first `LARGE_FILE_ROWS` rows."""

LARGE_FILE_ROWS = 100_000


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe one data file: absolute path, rows, columns with dtypes, a few rows, missing counts.

    Args:
        path: A CSV, TSV, Parquet, JSON or JSON lines file.

    Returns:
        `{"path", "format", "rows", "described_rows", "columns": [{"name", "dtype",
        "missing"}], "sample": [...]}`. A CSV or TSV file past `LARGE_FILE_BYTES`
        is described from its first `LARGE_FILE_ROWS` rows (`rows` then counts
        its lines, less the header).

    Raises:
        UsageError: The file is missing, of an unknown type, or cannot be read.
    """
    import pandas as pd

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise UsageError(
            f"Data file {str(path)!r} does not exist; pass the path of a CSV or Parquet file."
        )
    suffix = file.suffix.lower()
    large = suffix in (".csv", ".tsv") and file.stat().st_size > LARGE_FILE_BYTES
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(
                file,
                sep="\t" if suffix == ".tsv" else ",",
                nrows=LARGE_FILE_ROWS if large else None,
            )
        elif suffix == ".parquet":
            frame = pd.read_parquet(file)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(file, lines=True)
        elif suffix == ".json":
            frame = pd.read_json(file)
        else:
            raise UsageError(
                f"Data file {str(path)!r} has type {suffix or '(none)'!r}; use one of "
                + ", ".join(DATA_SUFFIXES)
                + "."
            )
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"Cannot read data file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    missing = frame.isna().sum()
    columns = [
        {"name": str(name), "dtype": str(dtype), "missing": int(missing[name])}
        for name, dtype in frame.dtypes.items()
    ]
    sample = [
        {str(k): (str(v)[:40]) for k, v in row.items()}
        for row in frame.head(MAX_SAMPLE_ROWS).to_dict(orient="records")
    ]
    return {
        "path": str(file),
        "format": suffix.lstrip("."),
        "rows": _count_lines(file) - 1 if large else len(frame),
        "described_rows": len(frame),
        "columns": columns,
        "sample": sample,
    }


def describe_files(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """`describe_file` for each path, in order."""
    return [describe_file(p) for p in paths]
