"""Discovery over a temporary registry folder, and picking one server or session."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from marimo_engine.errors import LiveSelectionError
from marimo_engine.live.discovery import (
    list_servers,
    marimo_registry_dir,
    select_server,
    select_session,
)
from marimo_engine.live.protocol import ServerInfo, SessionInfo
from tests.processes import start_process, stop_process

from .conftest import ScriptedServer


def _entry(folder: Path, *, pid: int, port: int, host: str = "127.0.0.1") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "server_id": f"{host}:{port}", "pid": pid, "host": host, "port": port,
        "base_url": "", "started_at": "2026-11-21T10:00:00+00:00", "version": "0.25.2",
    }  # fmt: skip
    (folder / f"{host}_{port}.json").write_text(json.dumps(entry), encoding="utf-8")


def _dead_pid() -> int:
    process = start_process([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    stop_process(process)
    return process.pid


def test_registry_dir_follows_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert marimo_registry_dir() == tmp_path / "marimo" / "servers"
    monkeypatch.setenv("XDG_STATE_HOME", "  ")
    assert marimo_registry_dir() == Path.home() / ".local" / "state" / "marimo" / "servers"


@pytest.mark.integration
def test_list_servers_drops_dead_and_broken_entries(
    tmp_path: Path, scripted_server: ScriptedServer
) -> None:
    folder = tmp_path / "servers"
    port = int(scripted_server.url.rsplit(":", 1)[1])
    scripted_server.json_route("GET", "/health", {"status": "healthy"})
    _entry(folder, pid=os.getpid(), port=port)
    _entry(folder, pid=_dead_pid(), port=9)  # its process is gone
    _entry(folder, pid=os.getpid(), port=1)  # alive pid, but nothing answers there
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "partial.json").write_text('{"pid": 1}', encoding="utf-8")
    assert [s.port for s in list_servers(folder)] == [1, port]
    assert [s.port for s in list_servers(folder, check_health=True)] == [port]
    assert list_servers(tmp_path / "missing") == []


SERVERS = [
    ServerInfo(server_id="a", pid=1, host="127.0.0.1", port=2718, version="0.25.2"),
    ServerInfo(server_id="b", pid=2, host="127.0.0.1", port=2719, version="0.25.2"),
]


def test_select_server() -> None:
    assert select_server(SERVERS, port=2719).server_id == "b"
    assert select_server(SERVERS, url="http://localhost:2718").server_id == "a"
    assert select_server(SERVERS[:1]).server_id == "a"
    with pytest.raises(LiveSelectionError, match=r"2 marimo servers are running: .*--port") as info:
        select_server(SERVERS)
    assert len(info.value.candidates) == 2
    with pytest.raises(LiveSelectionError, match=r"No running marimo server matches port=1\."):
        select_server(SERVERS, port=1)
    with pytest.raises(LiveSelectionError, match="none are registered"):
        select_server([])


SESSIONS = [
    SessionInfo(session_id="s_a", stable_id="sess-a", filename="/n/a.py", path="/n/a.py"),
    SessionInfo(session_id="s_b", stable_id="sess-b", filename="/m/b.py", path="/m/b.py"),
]


def test_select_session() -> None:
    assert select_session(SESSIONS, session_id="s_b").path == "/m/b.py"
    assert select_session(SESSIONS, session_id="sess-a").session_id == "s_a"
    assert select_session(SESSIONS, file="/n/a.py").session_id == "s_a"
    assert select_session(SESSIONS, file="b.py").session_id == "s_b"  # bare file name
    with pytest.raises(LiveSelectionError, match=r"2 sessions are open on U: .*--session"):
        select_session(SESSIONS, url="U")
    with pytest.raises(LiveSelectionError, match=r"No session matches session_id=s_z\. Open"):
        select_session(SESSIONS, session_id="s_z")
    with pytest.raises(LiveSelectionError, match="only while a client holds its websocket"):
        select_session([])
