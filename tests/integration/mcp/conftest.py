"""Fixtures of the MCP server tests: the real `marimo-engine mcp`, over stdio and HTTP.

The marimo server is the run's shared `live_server` (tests/integration/conftest.py:
a real `marimo edit --headless --no-token` with a private registry), the
one the live tests use too. The MCP server
runs as the installed `marimo-engine mcp` console script: over stdio the
SDK's `stdio_client` starts it (in its own process group, ended with its
tree); over HTTP the fixture starts it with `tests/processes.py`. The marimo
servers the MCP server starts (`open_notebook`) are adopted by the test run
from the `server_pid` the tool returns, so that a killed run stops them too.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from marimo_engine.live.session import free_port
from tests.integration.conftest import STARTUP_TIMEOUT_S, LiveServer
from tests.processes import adopt_group, release_group, start_process, stop_process

MARIMO_ENGINE = str(Path(sys.executable).with_name("marimo-engine"))
"""The installed console script: the real entry point, as a coding agent launches it."""

READ_TIMEOUT_S = 600.0
"""Generous: a loaded 2-core machine can take minutes to start marimo servers and kernels."""


def adopt_opened_server(opened: dict[str, Any]) -> None:
    """Have the test run stop the marimo server `open_notebook` started, even if it is killed."""
    if opened.get("server_pid"):
        adopt_group(int(opened["server_pid"]))


def release_opened_server(opened: dict[str, Any]) -> None:
    """Forget an adopted server once the MCP server has stopped it."""
    if opened.get("server_pid"):
        release_group(int(opened["server_pid"]))


def wait_until_down(url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> bool:
    """Whether the marimo server at `url` stops answering within `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=2.0)
        except httpx.HTTPError:
            return True
        time.sleep(0.2)
    return False


def server_env(live: LiveServer) -> dict[str, str]:
    """The MCP server's environment: ours, with the live server's private marimo registry."""
    return {**live.env, "PYTHONUNBUFFERED": "1"}


def stdio_mcp_client(env: dict[str, str], errlog: IO[str], *args: str, **options: Any) -> Client:
    """An MCP client that launches `marimo-engine mcp ARGS` and talks to it over stdio.

    `options` go to the SDK's `Client` (such as `elicitation_callback`).
    """
    params = StdioServerParameters(command=MARIMO_ENGINE, args=["mcp", *args], env=env)
    return Client(
        stdio_client(params, errlog=errlog), read_timeout_seconds=READ_TIMEOUT_S, **options
    )


@dataclass(frozen=True)
class HttpMcpServer:
    """A running `marimo-engine mcp --http`: its endpoint and bearer token."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @contextlib.asynccontextmanager
    async def client(self, token: str | None = None) -> AsyncIterator[Client]:
        """An open MCP client over streamable HTTP sending `token` (default: the right one)."""
        import httpx2

        async with httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=httpx2.Timeout(30.0, read=READ_TIMEOUT_S),
        ) as http:
            transport: Any = streamable_http_client(self.url, http_client=http)
            async with Client(transport, read_timeout_seconds=READ_TIMEOUT_S) as client:
                yield client


@contextlib.contextmanager
def started_http_mcp(env: dict[str, str], log_path: Path, *args: str) -> Iterator[HttpMcpServer]:
    """`marimo-engine mcp --http ARGS` on a free loopback port, token from the environment.

    Stopped (by its process group) when the block ends, or when the run does.
    """
    token = secrets.token_urlsafe(24)
    port = free_port()
    with log_path.open("wb") as log:
        process = start_process(
            [MARIMO_ENGINE, "mcp", "--http", "--port", str(port), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "MARIMO_ENGINE_MCP_TOKEN": token},
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"marimo-engine mcp exited with {process.returncode}: "
                    + log_path.read_text(errors="replace")[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                # Up once it answers; without the token the answer is 401.
                if httpx.post(url, json={}, timeout=2.0).status_code == 401:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"marimo-engine mcp did not answer on {url}")
            time.sleep(0.2)
        yield HttpMcpServer(url=url, token=token, process=process, log=log_path)
    finally:
        stop_process(process)


@pytest.fixture
def http_mcp(live_server: LiveServer, tmp_path: Path) -> Iterator[HttpMcpServer]:
    """`marimo-engine mcp --http` on a free loopback port, next to the shared `live_server`."""
    with started_http_mcp(server_env(live_server), tmp_path / "mcp-http.log") as server:
        yield server
