"""Tools the runs UI tests run plans with: a step that waits for the test, a step that fails once.

The test process runs the plans; the UI server loads this file with
`--tools` so that it can resume and re-run them.
"""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_file(path: str, timeout_s: float = 120.0) -> dict[str, object]:
    """Wait until the file `path` exists (the test creates it), at most `timeout_s` seconds.

    Returns:
        `{"path": path, "found": bool}`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if Path(path).exists():
            return {"path": path, "found": True}
        time.sleep(0.05)
    return {"path": path, "found": False}


def fail_once(marker: str) -> dict[str, object]:
    """Fail on the first call (leaving `marker` behind), succeed on the next ones.

    Raises:
        RuntimeError: On the first call, when `marker` does not exist yet.
    """
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once", encoding="utf-8")
        raise RuntimeError("the first try fails on purpose")
    return {"marker": marker, "ok": True}


def scale(value: float, factor: float = 2.0) -> dict[str, float]:
    """Multiply `value` by `factor`: `{"value": value * factor}`."""
    return {"value": value * factor}
