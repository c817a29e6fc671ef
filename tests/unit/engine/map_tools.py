"""Tools for map and sub-plan tests, importable by module path (compiled notebooks use them)."""

from __future__ import annotations

import asyncio
import time


def listing(count: int = 4) -> list[str]:
    """`count` file names: `['f0.csv', 'f1.csv', ...]`."""
    return [f"f{i}.csv" for i in range(count)]


async def measure(name: str, position: int = 0) -> dict[str, object]:
    """The name's length; items listed first end last (their sleep is longer).

    Raises:
        ValueError: For a name that contains `bad`.
    """
    await asyncio.sleep(0.002 * (10 - min(position, 10)))
    if "bad" in name:
        raise ValueError(f"cannot read {name}")
    return {"name": name, "size": len(name), "position": position}


def measure_sync(name: str) -> int:
    """A plain function: the name's length, after 5 ms."""
    time.sleep(0.005)
    return len(name)


def double(x: int) -> int:
    """`2 * x`."""
    return 2 * x


def add(values: list[int]) -> int:
    """The sum of `values`."""
    return sum(values)


def fail(message: str = "broken") -> None:
    """Always raises `RuntimeError(message)`."""
    raise RuntimeError(message)
