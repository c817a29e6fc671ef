"""Fixtures for code agent tests: a fresh headless `marimo edit` session per test.

Each session is a real server (`open_session`, its own process group) on a
notebook in the test's temporary folder, with a private `XDG_STATE_HOME`;
closing it stops the server by its process id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from marimo_engine.live.session import LiveSession, open_session

STARTUP_TIMEOUT_S = 120.0
"""Generous: a loaded 2-core machine can take tens of seconds to start marimo."""

NOTEBOOK = """import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def base():
    base_value = 10
    return (base_value,)


@app.cell
def double():
    doubled = base_value * 2
    return (doubled,)


@app.cell
def note():
    label = "numbers"
    return (label,)


if __name__ == "__main__":
    app.run()
"""


def server_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a test's marimo server: a private state folder."""
    return {**os.environ, "XDG_STATE_HOME": str(root / "state"), **extra}


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """A notebook with three cells: `base`, `double` (reads base) and `note`."""
    path = tmp_path / "analysis.py"
    path.write_text(NOTEBOOK, encoding="utf-8")
    return path


@pytest.fixture
def live(tmp_path: Path, notebook: Path) -> Iterator[LiveSession]:
    """A headless session on `notebook`, its cells run once."""
    session = open_session(notebook, startup_timeout_s=STARTUP_TIMEOUT_S, env=server_env(tmp_path))
    try:
        yield session
    finally:
        session.close()
