"""A kernel that dies or restarts under the agent: the call ends with a clear error.

Each test opens a session of its own on a notebook of its own, on the run's
shared folder server (`notebook_server`), since the kernel does not survive
the test; the server does (each session has its own kernel process).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from marimo_engine.errors import LiveSessionEndedError
from marimo_engine.live import open_session
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession
from tests.integration.conftest import notebook_file

from .conftest import STARTUP_TIMEOUT_S, server_token

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NOTEBOOK = """import marimo

app = marimo.App()


@app.cell
def _():
    lifecycle_value = 5
    return (lifecycle_value,)


if __name__ == "__main__":
    app.run()
"""

GUARD_S = 120.0
"""The test's own guard on each call: far above the client's own bounds, so a hang fails."""


@pytest.fixture
def own_session(notebook_server: HeadlessServer, tmp_path: Path) -> Iterator[LiveSession]:
    notebook = notebook_file(notebook_server, tmp_path, "lifecycle.py", NOTEBOOK)
    with open_session(
        notebook, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        yield live


async def test_a_kernel_that_dies_ends_the_call_and_the_next(own_session: LiveSession) -> None:
    async with own_session.client() as client:
        assert (await client.execute("print(lifecycle_value)")).stdout == "5\n"
        with pytest.raises(LiveSessionEndedError, match="ended") as info:
            with anyio.fail_after(GUARD_S):
                await client.execute("import os; os._exit(1)")
        assert info.value.reason in ("kernel-stopped", "session-closed")
        with pytest.raises(LiveSessionEndedError):
            with anyio.fail_after(GUARD_S):
                await client.execute("1")


async def test_a_restart_ends_a_long_run(own_session: LiveSession) -> None:
    async with own_session.client() as client:
        started = anyio.Event()
        failure: list[BaseException] = []

        async def long_run() -> None:
            def on_output(chunk: object) -> None:
                started.set()

            try:
                with anyio.fail_after(GUARD_S):
                    await client.execute(
                        "import time\nprint('sleeping', flush=True)\ntime.sleep(60)",
                        on_output=on_output,
                    )
            except BaseException as exc:
                failure.append(exc)
                started.set()

        async with anyio.create_task_group() as group:
            group.start_soon(long_run)
            with anyio.fail_after(GUARD_S):
                await started.wait()
            # What the browser's "Restart kernel" sends (marimo's own endpoint).
            token = await server_token(own_session.url)
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"{own_session.url}/api/kernel/restart_session",
                    headers={
                        "Marimo-Session-Id": own_session.session_id,
                        "Marimo-Server-Token": token,
                    },
                    timeout=60,
                )
            assert response.status_code == 200, response.text
    assert len(failure) == 1
    assert isinstance(failure[0], LiveSessionEndedError), repr(failure[0])
    assert failure[0].reason == "session-closed"
    assert "restarted" in str(failure[0])
