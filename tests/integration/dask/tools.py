"""Tools for the Dask tests: importable on the workers as `tests.integration.dask.tools`."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time
from dataclasses import dataclass
from typing import Any

from tests.unit.engine.map_tools import add, double, listing, measure

__all__ = ["add", "double", "listing", "measure"]  # the map tests' tools, also loaded here


@dataclass(frozen=True)
class Reading:
    level: float
    items: tuple[str, ...] = ("a", "b")


def reading(level: float = 20.9) -> Reading:
    """A sensor reading."""
    return Reading(level=level)


def echo(value: Any = None) -> Any:
    """Return `value`."""
    return value


async def aecho(value: Any = None) -> Any:
    """Return `value`, as a coroutine."""
    await asyncio.sleep(0)
    return value


def boom(message: str = "sensor offline") -> None:
    """Fail."""
    raise RuntimeError(message)


def flaky(marker: str, fail_times: int) -> dict[str, int]:
    """Fail the first `fail_times` calls (counted in a file), then answer."""
    path = pathlib.Path(marker)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise ConnectionError(f"try {calls + 1} dropped")
    return {"value": 42, "tries": calls + 1}


def spin(seconds: float, marker: str = "") -> str:
    """Busy in Python code for `seconds` (an interruption lands at once); marks its start."""
    if marker:
        pathlib.Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        total += 1
    return "spun"


async def asleep(seconds: float) -> str:
    """Sleep as a coroutine."""
    await asyncio.sleep(seconds)
    return "slept"


def sometimes_slow(marker: str) -> str:
    """Slow (pure Python) on the first call, fast after."""
    path = pathlib.Path(marker)
    first = not path.exists()
    path.write_text("called")
    if first:
        spin(30)
    return "fast enough"


class Halt(BaseException):
    """A BaseException that is not an Exception."""


def raise_base(kind: str) -> None:
    """Raise a BaseException that is not an Exception."""
    raise {"halt": Halt, "keyboard": KeyboardInterrupt, "exit": SystemExit}[kind]("stop now")


def pid_then_wait(marker: str, seconds: float) -> int:
    """First call: write this worker's pid, then wait; later calls: answer at once."""
    path = pathlib.Path(marker)
    if path.exists():
        return os.getpid()
    path.write_text(str(os.getpid()))
    spin(seconds)
    return os.getpid()


def make_frame(rows: int) -> Any:
    """A dataframe of `rows` rows (two int64 columns)."""
    import numpy as np
    import pandas as pd

    values = np.arange(rows, dtype="int64")
    return pd.DataFrame({"x": values, "y": values % 7})


def add_column(frame: Any) -> Any:
    """The frame with `z = x * 2`."""
    return frame.assign(z=frame["x"] * 2)


def keep_even(frame: Any) -> Any:
    """The rows whose `y` is even."""
    return frame[frame["y"] % 2 == 0]


def chunks(count: int, rows: int) -> list[Any]:
    """`count` dataframes of `rows` rows each (a list of big items)."""
    return [make_frame(rows) for _ in range(count)]


def row_count(frame: Any) -> int:
    """How many rows `frame` has."""
    return len(frame)


def gauged(folder: str, name: str, seconds: float) -> int:
    """Mark this call as running in `folder` for `seconds`; how many calls ran at once, at most."""
    here = pathlib.Path(folder)
    mark = here / name
    mark.write_text("running")
    most = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        most = max(most, sum(1 for _ in here.iterdir()))
        time.sleep(0.01)
    mark.unlink()
    return most
