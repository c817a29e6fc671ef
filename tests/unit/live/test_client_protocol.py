"""LiveClient's side of the wire against a real loopback server that speaks marimo's protocol.

The kernel's behaviour is covered by the integration tests; here the server
is scripted to check how the client reads streams and maps failures.
"""

from __future__ import annotations

import json
import re

import pytest

from marimo_engine.errors import (
    LiveConnectionError,
    LiveHTTPError,
    LiveKernelError,
    LiveUnsupportedError,
    StaleCellError,
    UsageError,
)
from marimo_engine.live import ConsoleChunk, LiveClient

from .conftest import Request, ScriptedServer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # a loopback server per test

EXECUTE = "/api/kernel/execute"


def _marker(request: Request) -> str:
    code = json.loads(request.body)["code"]
    match = re.search(r"marimo-engine-reply:([0-9a-f]{16}):", code)
    assert match, "templated code carries its reply marker"
    return f"\x1emarimo-engine-reply:{match.group(1)}:"


def _reply(payload: dict[str, object]):
    def events(request: Request) -> list[tuple[str, object]]:
        line = _marker(request) + json.dumps(payload) + "\n"
        return [
            ("stdout", {"data": "cell chatter\n"}),
            ("stdout", {"data": line}),
            ("done", {"success": True, "output": {"mimetype": "text/plain", "data": ""}}),
        ]

    return events


async def test_execute_reads_the_stream(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        lambda _r: [
            ("stdout", {"data": "a"}),
            ("stderr", {"data": "warn\n"}),
            ("stdout", {"data": "b\n"}),
            ("done", {"success": True, "output": {"mimetype": "text/plain", "data": "42"}}),
        ],
    )
    chunks: list[ConsoleChunk] = []
    async with LiveClient(scripted_server.url, "s_1", token="tok") as client:
        result = await client.execute("6 * 7", on_output=chunks.append)
    assert (result.success, result.output, result.stdout, result.stderr) == (
        True, "42", "ab\n", "warn\n",
    )  # fmt: skip
    assert [c.channel for c in chunks] == ["stdout", "stderr", "stdout"]
    request = scripted_server.requests[-1]
    assert json.loads(request.body) == {"code": "6 * 7"}
    assert request.headers["Marimo-Session-Id"] == "s_1"
    assert request.headers["Authorization"] == "Bearer tok"


async def test_a_failed_run_carries_the_error_text(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        lambda _r: [
            ("stderr", {"data": "Traceback ...\nNameError: x\n"}),
            ("done", {"success": False, "output": {"mimetype": "text/plain", "data": ""}}),
        ],
    )
    async with LiveClient(scripted_server.url, "s_1") as client:
        result = await client.execute("x")
    assert not result.success
    assert result.error == "Traceback ...\nNameError: x"


async def test_a_stream_without_done_is_a_connection_error(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(EXECUTE, lambda _r: [("stdout", {"data": "partial"})])
    async with LiveClient(scripted_server.url, "s_1") as client:
        with pytest.raises(LiveConnectionError, match="ended without its 'done' event"):
            await client.execute("1")


async def test_an_old_marimo_is_unsupported(scripted_server: ScriptedServer) -> None:
    async with LiveClient(scripted_server.url, "s_1") as client:  # no route: 404
        with pytest.raises(LiveUnsupportedError, match="has no /api/kernel/execute"):
            await client.execute("1")


async def test_a_bad_session_is_an_http_error(scripted_server: ScriptedServer) -> None:
    scripted_server.json_route("POST", EXECUTE, {"detail": "Invalid session id: s_x"}, status=500)
    async with LiveClient(scripted_server.url, "s_x") as client:
        with pytest.raises(LiveHTTPError, match="session is gone") as info:
            await client.execute("1")
    assert info.value.status == 500


async def test_a_kernel_without_code_mode_is_unsupported(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        _reply({"ok": False, "error_type": "CodeModeUnavailable", "message": "No module named x"}),
    )
    async with LiveClient(scripted_server.url, "s_1") as client:
        with pytest.raises(LiveUnsupportedError, match=r"no marimo\._code_mode .*0\.25\.2"):
            await client.cells()


async def test_a_stale_edit_says_to_read_again(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        _reply({
            "ok": False, "error_type": "StaleCellError", "message": "...",
            "cell_id": "Hbol", "stale_cells": ["Hbol", "MJUe"],
        }),
    )  # fmt: skip
    async with LiveClient(scripted_server.url, "s_1") as client:
        with pytest.raises(StaleCellError, match=r"'Hbol' changed .* Also changed: 'MJUe'\. Read"):
            await client.edit_cell("Hbol", "x = 2")


async def test_replies_become_models(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        _reply({"ok": True, "result": [{"id": "Hbol", "name": "", "code": "x = 1",
                                        "status": "idle", "errors": []}]}),
    )  # fmt: skip
    async with LiveClient(scripted_server.url, "s_1") as client:
        cells = await client.cells()
        assert [(c.id, c.code, c.status) for c in cells] == [("Hbol", "x = 1", "idle")]
        with pytest.raises(UsageError, match=r"No cell 'zz' in the notebook\. Cells: Hbol\."):
            await client.cell("zz")


async def test_a_missing_reply_is_a_kernel_error(scripted_server: ScriptedServer) -> None:
    scripted_server.sse_route(
        EXECUTE,
        lambda _r: [
            ("stderr", {"data": "KeyboardInterrupt\n"}),
            ("done", {"success": False, "output": {"mimetype": "text/plain", "data": ""}}),
        ],
    )
    async with LiveClient(scripted_server.url, "s_1") as client:
        with pytest.raises(LiveKernelError, match="gave no reply to 'graph': KeyboardInterrupt"):
            await client.graph()


async def test_bad_operations_are_usage_errors(scripted_server: ScriptedServer) -> None:
    async with LiveClient(scripted_server.url, "s_1") as client:
        with pytest.raises(UsageError, match="at least one cell operation"):
            await client.apply([])
        with pytest.raises(UsageError, match="Bad cell operation"):
            await client.apply([{"op": "explode"}])  # type: ignore[list-item]
        with pytest.raises(UsageError, match="exactly one of before= or after="):
            await client.move_cell("a")
    assert scripted_server.requests == []  # nothing was sent


def test_remote_hosts_are_refused() -> None:
    with pytest.raises(UsageError, match="not a loopback host"):
        LiveClient("http://192.0.2.10:2718", "s_1")
    LiveClient("http://192.0.2.10:2718", "s_1", allow_remote=True)
    with pytest.raises(UsageError, match="needs a session id"):
        LiveClient("http://127.0.0.1:2718", "")
