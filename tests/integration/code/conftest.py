"""Fixtures for code agent tests: a session of its own per test, on the run's shared server.

The server is `notebook_server` (tests/integration/conftest.py): one real
`marimo edit --headless --session-ttl 0` on a folder for the whole run.
Each test gets its own notebook file in a folder of its own there, and its
own session on it, so its own kernel process, which ends as soon as the
test closes its websocket: the tests share the server's start-up, not state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession, open_session
from tests.integration.conftest import STARTUP_TIMEOUT_S, notebook_file

__all__ = ["NOTEBOOK", "STARTUP_TIMEOUT_S", "server_env"]

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
    """The environment of a marimo server a test starts itself: a private state folder."""
    return {**os.environ, "XDG_STATE_HOME": str(root / "state"), **extra}


@pytest.fixture
def notebook(notebook_server: HeadlessServer, tmp_path: Path) -> Path:
    """A notebook with three cells: `base`, `double` (reads base) and `note`.

    It lives in a folder of its own in the shared server's folder (named after
    the test's temporary folder), so a test's files never meet another's.
    """
    return notebook_file(notebook_server, tmp_path, "analysis.py", NOTEBOOK)


@pytest.fixture
def live(notebook_server: HeadlessServer, notebook: Path) -> Iterator[LiveSession]:
    """A session of its own on `notebook`, on the shared server, its cells run once."""
    session = open_session(notebook, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S)
    try:
        yield session
    finally:
        session.close()
