"""Discovery, headless sessions from nothing, tokens, and a person's browser joining."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from marimo_engine.errors import LiveConnectionError, LiveHTTPError, LiveSelectionError, UsageError
from marimo_engine.live import (
    find_session,
    list_servers,
    list_sessions,
    open_session,
)
from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession

from .conftest import STARTUP_TIMEOUT_S, LiveServer

pytestmark = pytest.mark.integration

SMALL_NOTEBOOK = """import marimo

app = marimo.App()


@app.cell
def _():
    opened_value = 3
    return (opened_value,)


if __name__ == "__main__":
    app.run()
"""


def test_discovery_finds_the_server_and_its_session(
    live_server: LiveServer, live_session: LiveSession
) -> None:
    servers = list_servers(live_server.registry_dir, check_health=True)
    assert [(s.port, s.version[:5]) for s in servers] == [(live_server.port, "0.25.")]
    assert servers[0].url == live_server.url
    sessions = list_sessions(live_server.url)
    assert live_session.session_id in [s.session_id for s in sessions]
    listed = next(s for s in sessions if s.session_id == live_session.session_id)
    assert live_session.stable_id is not None and live_session.stable_id == listed.stable_id
    url, session = find_session(port=live_server.port, registry_dir=live_server.registry_dir)
    assert (url, session.session_id) == (live_server.url, live_session.session_id)
    url, session = find_session(file=live_server.notebook, registry_dir=live_server.registry_dir)
    assert session.path == str(live_server.notebook)
    with pytest.raises(LiveSelectionError, match=r"No session on .* matches session_id=nope"):
        find_session(url=live_server.url, session_id="nope")
    with pytest.raises(LiveSelectionError, match=r"No running marimo server matches port=1\."):
        find_session(port=1, registry_dir=live_server.registry_dir)


def _kernel_ready(ws_url: str) -> dict[str, object]:
    with connect(ws_url, open_timeout=STARTUP_TIMEOUT_S, max_size=None) as ws:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=STARTUP_TIMEOUT_S))
            if message.get("op") == "kernel-ready":
                return dict(message["data"])
    raise AssertionError("no kernel-ready message")


def test_a_browser_opening_the_notebook_sees_what_the_agent_did(
    live_server: LiveServer, live_session: LiveSession
) -> None:
    with live_session.sync_client() as client:
        change = client.create_cell("shown_to_person = 'hello from the agent'", name="agent_note")
    # What a browser does on opening the server's URL: a websocket with a fresh session id.
    ws_url = live_server.url.replace("http", "ws", 1) + "/ws?session_id=s_person_browser"
    ready = _kernel_ready(ws_url)
    assert change.cell_id in ready["cell_ids"]
    assert "shown_to_person = 'hello from the agent'" in ready["codes"]
    assert ready["kiosk"] is True  # joins the agent's kernel and watches it live
    # The agent's session is untouched by the viewer coming and going.
    with live_session.sync_client() as client:
        assert client.execute("print(shown_to_person)").stdout == "hello from the agent\n"


def test_the_sync_facade(live_session: LiveSession) -> None:
    with live_session.sync_client() as client:
        change = client.create_cell("sync_value = 21", name="sync_cell")
        assert change.status == "idle"
        result = client.execute("print(sync_value * 2)")
        assert result.stdout == "42\n"
        assert any(c.name == "sync_cell" for c in client.cells())
        assert any(v.name == "sync_value" for v in client.variables())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_open_session_from_nothing_and_close(tmp_path: Path) -> None:
    notebook = tmp_path / "fresh.py"
    notebook.write_text(SMALL_NOTEBOOK, encoding="utf-8")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    registry = tmp_path / "state" / "marimo" / "servers"
    with open_session(notebook, env=env, startup_timeout_s=STARTUP_TIMEOUT_S) as live:
        assert live.server is not None and live.holder is not None
        pid = live.server.pid
        assert pid is not None
        assert [s.port for s in list_servers(registry)] == [live.server.port]
        assert [s.session_id for s in list_sessions(live.url)] == [live.session_id]
        with live.sync_client() as client:
            # run_all ran the notebook's cells, as a browser opening it would.
            assert client.execute("print(opened_value)").stdout == "3\n"
        assert live.browser_url == live.url + "/"
    assert _gone(pid)
    assert list_servers(registry) == []


def test_a_server_with_a_token_needs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = tmp_path / "guarded.py"
    notebook.write_text(SMALL_NOTEBOOK, encoding="utf-8")
    monkeypatch.delenv("MARIMO_TOKEN", raising=False)
    with open_session(
        notebook, token="s3cret-token", run_all=False, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        with pytest.raises(LiveHTTPError, match="wants a token") as info:
            list_sessions(live.url)
        assert info.value.status in (401, 403)
        assert [s.session_id for s in list_sessions(live.url, token="s3cret-token")] == [
            live.session_id
        ]
        monkeypatch.setenv("MARIMO_TOKEN", "s3cret-token")
        assert len(list_sessions(live.url)) == 1
        assert live.browser_url.endswith("/?access_token=s3cret-token")
        with live.sync_client() as client:
            assert client.execute("print(1 + 1)").stdout == "2\n"


@pytest.mark.anyio
async def test_aopen_session_joins_the_notebooks_existing_session(
    live_server: LiveServer, live_session: LiveSession
) -> None:
    from marimo_engine.live import aopen_session

    async with await aopen_session(live_server.notebook, url=live_server.url) as joined:
        assert joined.session_id == live_session.session_id
        assert joined.server is None and joined.holder is None  # nothing new was opened
        async with joined.client() as client:
            assert (await client.execute("print(seed_value)")).stdout == "10\n"
    # Closing the joined session leaves the original one alone.
    async with live_session.client() as client:
        assert (await client.execute("print(seed_value)")).success


def test_open_session_on_a_folder_server_creates_a_missing_notebook(
    notebook_server: HeadlessServer, tmp_path: Path
) -> None:
    # A server started on a folder opens only files that exist; `open_session`
    # creates the notebook as `marimo edit new.py` would, and says why it cannot.
    folder = notebook_server.notebook / tmp_path.name
    folder.mkdir()
    new = folder / "new.py"
    with open_session(
        new, url=notebook_server.url, run_all=False, startup_timeout_s=STARTUP_TIMEOUT_S
    ) as live:
        assert new.exists() and live.holder is not None
        assert [s.path for s in list_sessions(live.url) if s.session_id == live.session_id] == [
            str(new)
        ]
    outside = tmp_path / "outside.py"  # not in the server's folder
    with pytest.raises(LiveConnectionError, match=r"will not open the notebook .*outside\.py.*"
                       r"outside the allowed directory .*HTTP 403"):  # fmt: skip
        open_session(outside, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S)
    assert not outside.exists()  # created for the session, removed when it was refused
    with pytest.raises(UsageError, match=r"The folder of the notebook .* does not exist"):
        open_session(folder / "nope" / "x.py", url=notebook_server.url)
