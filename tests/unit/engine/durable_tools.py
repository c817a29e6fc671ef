"""Tools for the durable-run tests: each call appends its step's name to `$SIDE_LOG`.

The count of lines per name is how often a side effect happened; the
kill -9 tests run these in a subprocess (`--tools tests/unit/engine/durable_tools.py`).
`slow` waits until a file in `$GATE_DIR` exists, so a test can kill the
process while that step is running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _log(name: str) -> None:
    with open(os.environ["SIDE_LOG"], "a", encoding="utf-8") as log:
        log.write(name + "\n")
        log.flush()
        os.fsync(log.fileno())


def first(x: int) -> int:
    """Add one."""
    _log("first")
    return x + 1


def double(y: int) -> dict:
    """Double `y`, as `{"v": ...}`."""
    _log("double")
    return {"v": y * 2}


def last(z: int) -> int:
    """Return `z`."""
    _log("last")
    return z


def slow(z: int, name: str) -> int:
    """Log `NAME-start`, wait until `$GATE_DIR/NAME` exists (at most 120 s), log `NAME-end`."""
    _log(f"{name}-start")
    gate = Path(os.environ.get("GATE_DIR", "/nonexistent")) / name
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    _log(f"{name}-end")
    return z


def counts(path: str | os.PathLike[str]) -> dict[str, int]:
    """Name to how many times it was logged."""
    found: dict[str, int] = {}
    if not Path(path).exists():
        return found
    for line in Path(path).read_text(encoding="utf-8").split():
        found[line] = found.get(line, 0) + 1
    return found
