"""The live bridge: drive a running marimo notebook (`marimo edit`) from Python.

Find servers and sessions (`list_servers`, `list_sessions`, `find_session`),
open a headless session with no browser (`open_session`), and drive it with
`LiveClient` (async) or `LiveClientSync`: run code, read and change cells,
read variables and dataframes. Running a plan in a live notebook belongs to
the engine (`run_plan_live` in the engine's `live_run` module), which uses
this package; this package is a client and imports nothing of the engine.

Names load on first use: importing this package imports neither httpx nor
websockets nor marimo.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marimo_engine.live.client import TESTED_MARIMO, LiveClient
    from marimo_engine.live.discovery import (
        find_session,
        list_servers,
        list_sessions,
        marimo_registry_dir,
        select_server,
        select_session,
    )
    from marimo_engine.live.protocol import (
        BatchResult,
        CellChange,
        CellInfo,
        ConsoleChunk,
        CreateCell,
        DataFrameDescription,
        DeleteCell,
        EditCell,
        ExecuteResult,
        GraphNode,
        MoveCell,
        NotebookGraph,
        RunCell,
        ServerInfo,
        SessionInfo,
        SetUIValue,
        VariableInfo,
    )
    from marimo_engine.live.server import HeadlessServer
    from marimo_engine.live.session import LiveSession, SessionHolder, aopen_session, open_session
    from marimo_engine.live.sync_client import LiveClientSync

__all__ = [
    "TESTED_MARIMO",
    "BatchResult",
    "CellChange",
    "CellInfo",
    "ConsoleChunk",
    "CreateCell",
    "DataFrameDescription",
    "DeleteCell",
    "EditCell",
    "ExecuteResult",
    "GraphNode",
    "HeadlessServer",
    "LiveClient",
    "LiveClientSync",
    "LiveSession",
    "MoveCell",
    "NotebookGraph",
    "RunCell",
    "ServerInfo",
    "SessionHolder",
    "SessionInfo",
    "SetUIValue",
    "VariableInfo",
    "aopen_session",
    "find_session",
    "list_servers",
    "list_sessions",
    "marimo_registry_dir",
    "open_session",
    "select_server",
    "select_session",
]

_MODULES = {
    "client": ("TESTED_MARIMO", "LiveClient"),
    "sync_client": ("LiveClientSync",),
    "discovery": (
        "find_session",
        "list_servers",
        "list_sessions",
        "marimo_registry_dir",
        "select_server",
        "select_session",
    ),
    "protocol": (
        "BatchResult",
        "CellChange",
        "CellInfo",
        "ConsoleChunk",
        "CreateCell",
        "DataFrameDescription",
        "DeleteCell",
        "EditCell",
        "ExecuteResult",
        "GraphNode",
        "MoveCell",
        "NotebookGraph",
        "RunCell",
        "ServerInfo",
        "SessionInfo",
        "SetUIValue",
        "VariableInfo",
    ),
    "server": ("HeadlessServer",),
    "session": ("LiveSession", "SessionHolder", "aopen_session", "open_session"),
}
_LOCATIONS = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'marimo_engine.live' has no attribute {name!r}")
    value = getattr(import_module(f"marimo_engine.live.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
