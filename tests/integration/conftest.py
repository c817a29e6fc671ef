"""The real `marimo edit` servers integration tests share, one of each for the whole run.

Starting a marimo server costs seconds on a loaded machine (most of it
marimo's own imports), so tests that need a session, not a server of their
own, share one. Two kinds, each started at most once per run:

- `live_server`: `marimo edit --headless --no-token` on one notebook, and
  `live_session`, that notebook's kernel session held open: the live-bridge
  and MCP tests work on it together (the notebook's state carries across
  them, as in a person's long session).
- `notebook_server`: `marimo edit --headless` on a folder with
  `--session-ttl 0`. A test gets a notebook file in a folder of its own
  there (`notebook_file`) and opens its own session on it, so its own
  kernel, which ends when the test closes the session: tests share the
  server's start-up, not state.

A test that is about starting or stopping servers, tokens, a server's
environment (`PYTHONPATH`), a sandboxed kernel or a browser reload (which
needs marimo's session TTL) starts its own.

Each server runs in its own process group with a private `XDG_STATE_HOME`
(so its registry entry lands in a temporary folder), on a free loopback
port, and is stopped in teardown by its own process id (the whole group, so
no kernel survives it), or by `tests/processes.py` when the run ends any
other way, `kill -9` included (`tests/test_processes.py` checks it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession, free_port, open_session
from tests.processes import keep_past_test, start_process, stop_process

STARTUP_TIMEOUT_S = 120.0
"""Generous: a loaded 2-core machine can take tens of seconds to start marimo."""

NOTEBOOK = """import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    import marimo as mo
    return (mo,)


@app.cell
def seed():
    seed_value = 10
    return (seed_value,)


if __name__ == "__main__":
    app.run()
"""


@dataclass(frozen=True)
class LiveServer:
    """The running server: where it is and what it serves."""

    url: str
    port: int
    pid: int
    notebook: Path
    registry_dir: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    notebook = root / "notebook.py"
    notebook.write_text(NOTEBOOK, encoding="utf-8")
    state = root / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    port = free_port()
    log = (root / "server.log").open("wb")
    command = [
        sys.executable, "-m", "marimo", "edit", "--headless", "--no-token",
        "--skip-update-check", "--host", "127.0.0.1", "--port", str(port), str(notebook),
    ]  # fmt: skip
    process = start_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        outlive_test=True,  # shared by the session's tests; stopped in teardown
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"marimo exited with {process.returncode}: "
                    + (root / "server.log").read_text(errors="replace")[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"marimo did not answer on {url} in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.1)
        yield LiveServer(
            url=url,
            port=port,
            pid=process.pid,
            notebook=notebook,
            registry_dir=state / "marimo" / "servers",
            env=env,
        )
    finally:
        stop_process(process)
        log.close()


async def server_token(url: str) -> str:
    """The skew-protection token marimo's frontend sends (`Marimo-Server-Token`), from its page."""
    import re

    async with httpx.AsyncClient() as http:
        page = (await http.get(f"{url}/", timeout=30)).text
    match = re.search(r'marimo-server-token data-token="([^"]+)"', page)
    assert match, "the editor page carries the server token"
    return match.group(1)


@pytest.fixture(scope="session")
def live_session(live_server: LiveServer) -> Iterator[LiveSession]:
    """The kernel session of the notebook, held open over its websocket from Python."""
    session = open_session(
        live_server.notebook, url=live_server.url, startup_timeout_s=STARTUP_TIMEOUT_S
    )
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def notebook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadlessServer]:
    """A `marimo edit --headless --session-ttl 0` server on a folder, for the whole run.

    Its `notebook` attribute is the folder; put each test's notebook in a
    folder of its own there with `notebook_file`.
    """
    root = tmp_path_factory.mktemp("notebooks")
    server = HeadlessServer(
        root,
        session_ttl_s=0,
        startup_timeout_s=STARTUP_TIMEOUT_S,
        env={**os.environ, "XDG_STATE_HOME": str(root.parent / f"{root.name}-state")},
    ).start()
    assert server.pid is not None
    keep_past_test(server.pid)  # not stopped when the test that started it ends
    try:
        yield server
    finally:
        server.stop()


def notebook_file(server: HeadlessServer, tmp_path: Path, name: str, text: str = "") -> Path:
    """A notebook for one test on the shared folder server, in a folder of its own.

    Args:
        server: `notebook_server`.
        tmp_path: The test's temporary folder (its name names the folder).
        name: The file name, such as `"analysis.py"`.
        text: The notebook's source; empty makes a file marimo opens as a
            new notebook (one blank cell). A folder server needs the file to
            exist before a session opens on it.

    Returns:
        The notebook's path.
    """
    folder = server.notebook / tmp_path.name
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
