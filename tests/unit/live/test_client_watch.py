"""LiveClient against servers that go quiet or lose the session, and its memory bound.

Real loopback servers: one that accepts connections and never answers, and
the scripted marimo-speaking server, whose execute stream here never ends
(as marimo's does when the kernel dies or restarts) while its session list
and kernel status say what happened.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from marimo_engine.errors import LiveSelectionError, LiveSessionEndedError, LiveTimeoutError
from marimo_engine.live import LiveClient, list_sessions
from marimo_engine.live._stream import Tail, aiter_capped_lines, recover_console_tail

from .conftest import Request, ScriptedServer

pytestmark = pytest.mark.anyio

EXECUTE = "/api/kernel/execute"
SESSIONS = {"s_1": {"session_id": "sess-stable-1", "filename": "nb.py", "path": "/tmp/nb.py"}}


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.integration  # a loopback server per test
async def test_every_call_is_bounded_against_a_silent_server(silent_server: str) -> None:
    async with LiveClient(silent_server, "s_1", timeout_s=1.0) as client:
        for call in (client.cells, client.check, lambda: client.execute("1")):
            started = time.monotonic()
            with pytest.raises(LiveTimeoutError, match=r"after 1\.0 s|within 1\.0 s"):
                with anyio.fail_after(60):  # the test's own guard, far above the bound
                    await call()
            assert time.monotonic() - started < 30
    with pytest.raises(LiveTimeoutError):
        await anyio.to_thread.run_sync(lambda: list_sessions(silent_server, timeout_s=1.0))


def _hanging_stream(release: threading.Event) -> Iterator[bytes]:
    yield b'event: stdout\ndata: {"data": "started\\n"}\n\n'
    release.wait(60)  # marimo's stream after the kernel died: nothing, ever


@pytest.mark.integration  # a loopback server per test
async def test_a_closed_session_ends_the_streaming_call(scripted_server: ScriptedServer) -> None:
    release = threading.Event()
    listed = dict(SESSIONS)
    scripted_server.routes[("GET", "/api/sessions")] = lambda _r: (
        200, "application/json", [json.dumps(listed).encode()],
    )  # fmt: skip
    scripted_server.json_route("GET", "/api/kernel/status", {"state": "running"})
    scripted_server.routes[("POST", EXECUTE)] = lambda _r: (
        200, "text/event-stream", _hanging_stream(release),
    )  # fmt: skip
    seen: list[str] = []

    def on_output(chunk: object) -> None:
        seen.append(str(chunk))
        listed.clear()  # the person restarts the kernel: marimo closes the session

    try:
        async with LiveClient(scripted_server.url, "s_1", watch_interval_s=0.2) as client:
            with pytest.raises(LiveSessionEndedError, match="marimo closed it") as info:
                with anyio.fail_after(60):
                    await client.execute("import time; time.sleep(60)", on_output=on_output)
            assert info.value.reason == "session-closed"
            assert client.stable_id == "sess-stable-1"
            # The next call fails at once too, instead of hanging.
            with pytest.raises(LiveSelectionError, match="No session 's_1'"):
                async with LiveClient(scripted_server.url, "s_1") as again:
                    await again.execute("1")
    finally:
        release.set()
    assert seen
    execute = next(r for r in scripted_server.requests if r.path == EXECUTE)
    assert execute.headers["Marimo-Stable-Session-Id"] == "sess-stable-1"
    assert "Marimo-Session-Id" not in execute.headers


@pytest.mark.integration  # a loopback server per test
async def test_a_stopped_kernel_ends_the_streaming_call(scripted_server: ScriptedServer) -> None:
    release = threading.Event()
    scripted_server.json_route("GET", "/api/sessions", SESSIONS)
    scripted_server.json_route("GET", "/api/kernel/status", {"state": "stopped"})
    scripted_server.routes[("POST", EXECUTE)] = lambda _r: (
        200, "text/event-stream", _hanging_stream(release),
    )  # fmt: skip
    try:
        async with LiveClient(scripted_server.url, "sess-stable-1", watch_interval_s=0.2) as c:
            with pytest.raises(LiveSessionEndedError, match="kernel stopped") as info:
                with anyio.fail_after(60):
                    await c.execute("import os; os._exit(1)")
    finally:
        release.set()
    assert info.value.reason == "kernel-stopped"
    status = next(r for r in scripted_server.requests if r.path == "/api/kernel/status")
    assert status.headers["Marimo-Session-Id"] == "s_1"  # the browser id, found by stable id


def _console(text: str) -> bytes:
    return f"event: stdout\ndata: {json.dumps({'data': text})}\n\n".encode()


@pytest.mark.integration  # a loopback server per test
async def test_huge_output_keeps_the_tail_and_says_what_was_dropped(
    scripted_server: ScriptedServer,
) -> None:
    big = "x" * 3_000_000 + "END\n"

    def answer(_r: Request) -> tuple[int, str, list[bytes]]:
        done = {"success": True, "output": {"mimetype": "text/plain", "data": ""}}
        chunks = [_console("a" * 600_000) for _ in range(4)] + [_console(big)]
        end = f"event: done\ndata: {json.dumps(done)}\n\n".encode()
        return 200, "text/event-stream", [*chunks, end]

    scripted_server.routes[("POST", EXECUTE)] = answer
    async with LiveClient(scripted_server.url, "s_1", max_output_chars=100_000) as client:
        result = await client.execute("print('x' * 3_000_000)")
    assert result.stdout.endswith("xxxEND\n")
    assert len(result.stdout) == 100_000
    assert result.stdout_dropped_chars == 4 * 600_000 + len(big) - 100_000
    assert result.stderr_dropped_chars == 0


def test_tail_keeps_the_last_characters() -> None:
    tail = Tail(5)
    for piece in ("abc", "defg", "", "hi"):
        tail.add(piece)
    assert (tail.text(), tail.dropped_chars) == ("efghi", 4)
    tail.add("0123456789", dropped_before=3)
    assert (tail.text(), tail.dropped_chars) == ("56789", 4 + 3 + 5 + 5)


async def test_capped_lines_keep_the_tail_of_long_lines() -> None:
    async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
        for piece in (b"short\nlo", b"ooooooong", b"\r\nlast"):
            yield piece

    lines = [item async for item in aiter_capped_lines(chunks(), 6)]  # type: ignore[arg-type]
    assert lines == [("short", 0), ("ooong", 6), ("last", 0)]


def test_recover_console_tail_reads_a_cut_json_string() -> None:
    full = json.dumps({"data": 'line one\nsays "hi" \\ done\n'})
    for cut in range(5, 20):
        text = recover_console_tail(full[cut:])
        assert text.endswith('"hi" \\ done\n')
    assert recover_console_tail("not json at all") == ""
