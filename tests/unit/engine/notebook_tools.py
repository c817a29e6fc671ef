"""Tools importable by module path, for compiled notebooks run in a subprocess.

Each call appends a line to the file named by `journal`, so a test can see
which steps a standalone run of the notebook executed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path


def record(journal: str, label: str, level: float = 20.0) -> dict[str, object]:
    """Append `label` to the journal file and return a reading.

    Args:
        journal: Path of the journal file.
        label: What to write.
        level: A number later steps can compare against.

    Returns:
        `{"label": label, "level": level}`.
    """
    with Path(journal).open("a", encoding="utf-8") as f:
        f.write(label + "\n")
    return {"label": label, "level": level}


async def arecord(journal: str, label: str) -> str:
    """Coroutine form of `record`; returns the label."""
    await asyncio.sleep(0)
    record(journal, label)
    return label


def json(value: str) -> str:
    """Return `value`; named `json` to test that the notebook's own `json` stays intact."""
    return value


def broken(journal: str) -> None:
    """Append `broken` to the journal, then raise `ValueError("bad sensor")`."""
    record(journal, "broken")
    raise ValueError("bad sensor")
