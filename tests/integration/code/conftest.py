"""Fixtures for code agent tests: a fresh headless `marimo edit` session per test.

One real `marimo edit --headless` server per test module (its own process
group, a private `XDG_STATE_HOME`, stopped by its process id) serves a
folder; each test gets its own notebook file in a folder of its own there,
and its own session on it, so its own kernel process: the tests share the
server's start-up, not state. `--session-ttl 0` ends a session's kernel as
soon as the test closes its websocket.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession, open_session
from tests.processes import keep_past_test

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


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessServer]:
    """A `marimo edit` server on a folder, for the tests of one module."""
    root = tmp_path_factory.mktemp("code-notebooks")
    server = HeadlessServer(
        root, session_ttl_s=0, startup_timeout_s=STARTUP_TIMEOUT_S, env=server_env(root)
    ).start()
    assert server.pid is not None
    keep_past_test(server.pid)  # not stopped when the test that started it ends
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def notebook(shared_server: HeadlessServer, tmp_path: Path) -> Path:
    """A notebook with three cells: `base`, `double` (reads base) and `note`.

    It lives in a folder of its own in the shared server's folder (named after
    the test's temporary folder), so a test's files never meet another's.
    """
    folder = shared_server.notebook / tmp_path.name
    folder.mkdir()
    path = folder / "analysis.py"
    path.write_text(NOTEBOOK, encoding="utf-8")
    return path


@pytest.fixture
def live(shared_server: HeadlessServer, notebook: Path) -> Iterator[LiveSession]:
    """A session of its own on `notebook`, on the shared server, its cells run once."""
    session = open_session(notebook, url=shared_server.url, startup_timeout_s=STARTUP_TIMEOUT_S)
    try:
        yield session
    finally:
        session.close()
