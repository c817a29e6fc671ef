"""The live sessions an MCP server knows: the ones it opened, and any it can find.

Every live tool names its session by id. `SessionTable.resolve` finds the
server of that id: first among the sessions this server opened or used
before, then on every running marimo server in marimo's registry. A
session that cannot be found, or that fails mid-call because its server
went away, is reported as gone, with the call to make next
(`_errors.gone_session_message`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from marimo_engine.errors import LiveError
from marimo_engine.mcp_server._errors import ToolError, gone_session_message

if TYPE_CHECKING:
    from marimo_engine.live.client import LiveClient
    from marimo_engine.live.session import LiveSession

__all__ = ["KnownSession", "SessionTable"]

_LOG = logging.getLogger("marimo_engine.mcp_server")


@dataclass
class KnownSession:
    """A kernel session a tool call may name.

    Attributes:
        session_id: The session id (`Marimo-Session-Id`).
        url: Its server's URL.
        token: The server's access token, or `None`.
        notebook: The notebook path, when known.
        live: The `LiveSession` this MCP server opened (and closes), or `None`.
        stable_id: marimo's stable id of the session (it survives a browser
            tab reload; tools accept it as `session` too), or `None`.
    """

    session_id: str
    url: str
    token: str | None = None
    notebook: str | None = None
    live: LiveSession | None = None
    stable_id: str | None = None

    @property
    def opened_here(self) -> bool:
        """Whether this MCP server opened the session (and so closes it when asked or on exit)."""
        return self.live is not None and (
            self.live.holder is not None or self.live.server is not None
        )

    def describe(self) -> dict[str, Any]:
        """The session as a tool result shows it.

        Returns:
            `{"session", "stable_id", "url", "notebook", "opened_here",
            "browser_url", "server_pid"}`; `server_pid` is the `marimo edit` process this
            MCP server started for the session (its process group), else `None`.
        """
        browser_url = self.live.browser_url if self.live is not None else f"{self.url}/"
        server = self.live.server if self.live is not None else None
        return {
            "session": self.session_id,
            "stable_id": self.stable_id,
            "url": self.url,
            "notebook": self.notebook,
            "opened_here": self.opened_here,
            "browser_url": browser_url,
            "server_pid": server.pid if server is not None else None,
        }


def _found(info: Any, url: str, token: str | None) -> KnownSession:
    """A session found on a server (`SessionInfo`), which this MCP server did not open."""
    return KnownSession(
        info.session_id, url, token, info.path or info.filename, stable_id=info.stable_id
    )


class SessionTable:
    """The sessions of one MCP server process, shared by all its clients.

    Clients never cross-talk: each call names its session id, and the id
    alone picks the kernel.
    """

    def __init__(
        self,
        *,
        allow_remote: bool = False,
        registry_dir: str | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        """Make an empty table.

        Args:
            allow_remote: Allow marimo servers that are not on this machine.
            registry_dir: marimo's server registry folder; `None` uses marimo's.
            startup_timeout_s: Seconds `open()` waits for a new server and kernel.
        """
        self.allow_remote = allow_remote
        self.registry_dir = registry_dir
        self.startup_timeout_s = startup_timeout_s
        self._sessions: dict[str, KnownSession] = {}

    async def open(
        self,
        notebook: str | None,
        *,
        url: str | None = None,
        token: str | None = None,
        run_all: bool = True,
    ) -> KnownSession:
        """Open a headless session on a notebook (a new `marimo edit --headless`), or join `url`'s.

        Args:
            notebook: The notebook path (created when missing); `None` only with `url`.
            url: A running marimo server; `None` starts a new one on a free loopback port.
            token: The server's access token; `None` uses `MARIMO_TOKEN` for `url`.
            run_all: Run every cell when the session is new.

        Returns:
            The session, remembered in the table.

        Raises:
            UsageError, LiveError: As `marimo_engine.live.session.open_session`.
        """
        from marimo_engine.live.session import aopen_session

        live = await aopen_session(
            notebook,
            url=url,
            token=token,
            allow_remote=self.allow_remote,
            run_all=run_all,
            startup_timeout_s=self.startup_timeout_s,
        )
        known = KnownSession(
            session_id=live.session_id,
            url=live.url,
            token=live.token,
            notebook=str(live.notebook) if live.notebook else None,
            live=live,
            stable_id=live.stable_id,
        )
        self._sessions[known.session_id] = known
        return known

    async def _server_urls(self) -> dict[str, str | None]:
        """Every server worth asking: the ones of known sessions, then the registered ones."""
        from marimo_engine.live.discovery import list_servers

        urls: dict[str, str | None] = {s.url: s.token for s in self._sessions.values()}
        registered = await anyio.to_thread.run_sync(lambda: list_servers(self.registry_dir))
        for server in registered:
            urls.setdefault(server.url, None)
        return urls

    async def _sessions_of(self, url: str, token: str | None) -> list[Any] | None:
        """The sessions of one server, or `None` when it does not answer."""
        from marimo_engine.live.discovery import list_sessions

        def call() -> list[Any]:
            return list_sessions(url, token=token, allow_remote=self.allow_remote)

        try:
            return await anyio.to_thread.run_sync(call)
        except LiveError as exc:
            _LOG.info("marimo server %s did not list its sessions: %s", url, exc)
            return None

    async def list(self) -> list[dict[str, Any]]:
        """List every open session this process can reach, forgetting the ones that are gone.

        Returns:
            One `KnownSession.describe()` per session, those opened here first.
        """
        rows: dict[str, dict[str, Any]] = {}
        answered: set[str] = set()
        for url, token in (await self._server_urls()).items():
            sessions = await self._sessions_of(url, token)
            if sessions is None:
                continue
            answered.add(url)
            for info in sessions:
                known = self._sessions.get(info.session_id)
                if known is None:
                    known = _found(info, url, token)
                rows[info.session_id] = known.describe()
        for session_id, known in list(self._sessions.items()):
            if session_id in rows:
                continue
            if known.url in answered:
                await self.forget(session_id)  # its server no longer has it
            elif known.opened_here:
                # A busy server may miss one request: keep what we opened, say so.
                rows[session_id] = {**known.describe(), "state": "its server did not answer"}
            else:
                self._sessions.pop(session_id, None)
        return sorted(rows.values(), key=lambda row: not row["opened_here"])

    async def resolve(self, session: str) -> KnownSession:
        """Return the session a tool call names.

        Raises:
            ToolError: No reachable server has the session; the message says
                to call `list_sessions` (or `open_notebook`).
        """
        known = self._sessions.get(session) or next(
            (k for k in self._sessions.values() if k.stable_id == session), None
        )
        if known is not None:
            return known
        if not session.strip():
            raise ToolError("Name the session: call list_sessions to see the open sessions.")
        for url, token in (await self._server_urls()).items():
            for info in await self._sessions_of(url, token) or []:
                if session in (info.session_id, info.stable_id):
                    known = _found(info, url, token)
                    self._sessions[known.session_id] = known
                    return known
        raise ToolError(gone_session_message(session))

    def client(self, known: KnownSession) -> LiveClient:
        """Return a `LiveClient` on the session (close it with `async with`)."""
        from marimo_engine.live.client import LiveClient

        return LiveClient(
            known.url,
            known.session_id,
            token=known.token,
            allow_remote=self.allow_remote,
            stable_id=known.stable_id,
        )

    async def forget(self, session: str) -> KnownSession | None:
        """Drop a session from the table, closing what this server opened for it.

        Returns:
            The session, or `None` when the table did not have it.
        """
        known = self._sessions.pop(session, None)
        if known is not None and known.live is not None:
            await anyio.to_thread.run_sync(known.live.close)
        return known

    def close_all(self, timeout_s: float = 30.0) -> None:
        """Close every session this server opened and stop the servers it started (blocking).

        Every started server's process group gets SIGTERM first, at once, so
        that none outlives this process even if it is killed while waiting
        (an MCP client kills its server a few seconds after closing stdin);
        then the sessions are closed in parallel, each within `timeout_s`.
        """
        import contextlib
        import os
        import signal
        import threading

        sessions, self._sessions = list(self._sessions.values()), {}
        owned = [known.live for known in sessions if known.live is not None]
        for live in owned:
            pid = live.server.pid if live.server is not None else None
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)

        def close(live: LiveSession) -> None:
            try:
                live.close()
            except Exception:
                _LOG.exception("closing session %s failed", live.session_id)

        threads = [
            threading.Thread(target=close, args=(live,), name="marimo-engine-mcp-close")
            for live in owned
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout_s)
