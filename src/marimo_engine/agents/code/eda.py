"""The EDA agent: the code agent with an exploratory-analysis brief and the data's own context.

`eda_goal(path, target=...)` and `eda_brief(target=...)` are what
`marimo-engine eda DATA` gives `CodeAgent`; the data context (columns,
dtypes, missing counts, sample rows) comes from the file itself
(`data.describe_file`), so the model writes cells for this data, not a
template.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EDA_SECTIONS", "eda_brief", "eda_goal"]

EDA_SECTIONS = (
    "load",
    "schema",
    "missing values",
    "distributions",
    "relations",
    "charts",
    "summary",
)
"""What an exploratory notebook covers, in order."""


def eda_goal(
    path: str | os.PathLike[str] | None = None,
    *,
    target: str | None = None,
    variable: str | None = None,
) -> str:
    """The goal of an EDA run on one data file, or on a dataframe variable of a live session."""
    subject = f"the dataframe `{variable}`" if variable else Path(path or "data").name
    goal = f"Build an exploratory data analysis notebook of {subject}"
    if target:
        goal += f", explaining the column {target!r}"
    return goal + "."


def eda_brief(*, target: str | None = None, variable: str | None = None) -> str:
    """Instructions for an exploratory notebook (added to the code agent's)."""
    load = (
        f"- load: the data is already in the notebook as `{variable}`; do not reload it;"
        if variable
        else "- load: read the file from its path into a dataframe `df` (parse dates);"
    )
    lines = [
        "Exploratory analysis brief: build the notebook in small named cells, one idea each:",
        load,
        "- schema: columns, dtypes, rows (a table);",
        "- missing values: count and share per column;",
        "- distributions: describe() of numeric columns, value counts of categorical ones;",
        "- relations: correlations between numeric columns"
        + (f", and how each relates to the target {target!r}" if target else "")
        + ";",
        "- charts: two or three altair charts (a histogram, a time series if there are "
        "dates, a relation);",
        "- summary: a mo.md cell whose numbers are f-string values of variables the cells "
        "computed (never typed in by hand), with the key findings.",
        "Finish with the findings as the answer, naming the summary cell.",
    ]
    return "\n".join(lines)
