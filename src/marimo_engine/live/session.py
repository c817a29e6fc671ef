"""Headless marimo sessions: start `marimo edit --headless`, hold the kernel's websocket.

A marimo kernel session exists only while a client holds the notebook's
websocket (`/ws?session_id=...`, marimo `_server/api/endpoints/ws_endpoint.py`).
`SessionHolder` is that client, in Python, with no browser: a background
thread keeps the socket open and drains the kernel's messages (an unread
socket would stall the server). `HeadlessServer` starts and stops a
`marimo edit --headless` process in its own process group.

A person sees what the agent did by opening the server's URL in a browser:
while the holder is connected, the browser joins the same kernel as a
viewer that sees every cell and output as they change (marimo's
"another tab is editing" banner offers to take over editing); after the
holder closes, the next browser that opens the notebook resumes the same
kernel session, variables included, within marimo's session TTL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from marimo_engine.errors import LiveConnectionError, LiveError, UsageError
from marimo_engine.live import _http
from marimo_engine.live.server import HeadlessServer, free_port  # the server half, re-exported

if TYPE_CHECKING:
    from types import TracebackType

    from marimo_engine.live.client import LiveClient
    from marimo_engine.live.sync_client import LiveClientSync

_COMPLETED_RUN = '{"op": "completed-run"'
"""How marimo's `completed-run` message starts (it ends every command's run;
marimo `_server/api/endpoints/ws/ws_formatter.py`)."""

__all__ = [
    "HeadlessServer",
    "LiveSession",
    "SessionHolder",
    "aopen_session",
    "free_port",
    "open_session",
]


class SessionHolder:
    """Holds a notebook's websocket open from Python, so that its kernel session exists.

    Attributes:
        url: The server URL.
        session_id: The session id this holder connected with.
        kernel_ready: The `kernel-ready` message's data (cell ids, codes, names...).
    """

    def __init__(
        self,
        url: str,
        *,
        session_id: str | None = None,
        file: str | None = None,
        token: str | None = None,
        allow_remote: bool = False,
        open_timeout_s: float = 60.0,
    ) -> None:
        """Describe the connection; nothing opens until `open()`.

        Args:
            url: The server URL.
            session_id: The id to create the session under; `None` makes one
                (`"s_"` plus random hex, like marimo's frontend).
            file: The notebook path, for servers serving a folder; `None`
                lets a single-notebook server pick its notebook.
            token: Access token; `None` uses `MARIMO_TOKEN`.
            allow_remote: Allow a host other than loopback.
            open_timeout_s: Seconds to wait for the kernel to be ready.
        """
        self.url = _http.check_host(url, allow_remote=allow_remote)
        self.session_id = session_id or f"s_{secrets.token_hex(6)}"
        self.file = file
        self.token = _http.resolve_token(token)
        self.open_timeout_s = open_timeout_s
        self.kernel_ready: dict[str, Any] = {}
        self.messages_received = 0
        self.completed_runs = 0
        self._runs_changed = threading.Condition()
        self._ws: Any = None
        self._thread: threading.Thread | None = None
        self._closed_reason: str | None = None
        self._closing = threading.Event()

    @property
    def ws_url(self) -> str:
        """The websocket URL (`ws://.../ws?session_id=...`)."""
        query = {"session_id": self.session_id}
        if self.file:
            query["file"] = self.file
        base = "ws" + self.url.removeprefix("http")
        return f"{base}/ws?{urlencode(query)}"

    @property
    def is_open(self) -> bool:
        """Whether the websocket is connected and being drained."""
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> SessionHolder:
        """Connect and wait for `kernel-ready`; a daemon thread then drains messages.

        Returns:
            `self`.

        Raises:
            LiveConnectionError: The server refused or closed the socket, or
                the kernel was not ready within `open_timeout_s`.
            UsageError: Already opened.
        """
        if self._thread is not None:
            raise UsageError("This SessionHolder is already open.")
        self._closing.clear()
        ready = threading.Event()
        failure: list[LiveConnectionError] = []
        self._thread = threading.Thread(
            target=self._run,
            args=(ready, failure),
            name=f"marimo-engine-ws-{self.session_id}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(self.open_timeout_s + 5.0):
            failure.append(
                LiveConnectionError(
                    f"The kernel of {self.url} was not ready after {self.open_timeout_s} s; "
                    "raise open_timeout_s on a busy machine."
                )
            )
        if failure:
            self.close()
            raise failure[0]
        return self

    def _run(self, ready: threading.Event, failure: list[LiveConnectionError]) -> None:
        """Thread body: connect, wait for `kernel-ready`, then read until the socket closes."""
        from websockets.exceptions import ConnectionClosed, InvalidHandshake
        from websockets.sync.client import connect

        try:
            with connect(
                self.ws_url,
                additional_headers=_http.auth_headers(self.token),
                open_timeout=self.open_timeout_s,
                max_size=None,
            ) as ws:
                self._ws = ws
                if self._closing.is_set():  # close() came while we were connecting
                    return
                try:
                    self._wait_kernel_ready(ws)
                except LiveConnectionError as exc:
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                for message in ws:  # drain: an unread socket would stall the server
                    self.messages_received += 1
                    if isinstance(message, str) and message.startswith(_COMPLETED_RUN):
                        with self._runs_changed:
                            self.completed_runs += 1
                            self._runs_changed.notify_all()
        except ConnectionClosed as exc:
            self._closed_reason = str(exc)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            refusal = self._file_refusal() if isinstance(exc, InvalidHandshake) else None
            failure.append(
                LiveConnectionError(
                    refusal
                    or f"Could not open the notebook's websocket at {self.ws_url}: "
                    f"{type(exc).__name__}: {exc}; is the server running, and is the token right?"
                )
            )
        finally:
            ready.set()

    def _wait_kernel_ready(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + self.open_timeout_s
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                message = json.loads(ws.recv(timeout=remaining))
                self.messages_received += 1
                if message.get("op") == "kernel-ready":
                    self.kernel_ready = dict(message.get("data") or {})
                    break
        except ConnectionClosed as exc:
            refusal = self._file_refusal()
            if refusal is not None:
                raise LiveConnectionError(refusal) from exc
            reason = exc.rcvd.reason if exc.rcvd is not None else "no reason"
            raise LiveConnectionError(
                f"marimo closed the websocket of session {self.session_id!r} at {self.url}: "
                f"{reason!r}. Another client may own the notebook; use its session instead."
            ) from exc
        except TimeoutError as exc:
            raise LiveConnectionError(
                f"The kernel of {self.url} was not ready after {self.open_timeout_s} s; "
                "raise open_timeout_s on a busy machine."
            ) from exc
        if self.kernel_ready.get("kiosk"):
            raise LiveConnectionError(
                f"The notebook at {self.url} already has a live editor, so this connection "
                "would only watch. Use that session: 'marimo-engine live sessions'."
            )

    def _file_refusal(self) -> str | None:
        """Why the server will not open `file`, from its notebook page; `None` when it would.

        marimo refuses the websocket (403) or closes it without a reason (a
        file that does not exist) when it cannot open the file; its page
        (`GET /?file=...`) answers 403 or 404 with the reason.
        """
        if not self.file:
            return None
        try:
            status, text = _http.stdlib_request(
                "GET", f"{self.url}/?{urlencode({'file': self.file})}",
                headers=_http.auth_headers(self.token), timeout_s=10.0,
            )  # fmt: skip
        except LiveError:
            return None
        if status not in (403, 404):
            return None
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not marimo's JSON
            text = str(json.loads(text)["detail"])
        return (
            f"marimo at {self.url} will not open the notebook {self.file!r}: {text!r} "
            f"(HTTP {status}). Give a notebook this server serves (one started on a folder "
            "serves that folder only), or start 'marimo edit' on the notebook's folder."
        )

    def run_all(self, timeout_s: float | None = None) -> None:
        """Run every cell as a browser opening the notebook does, and wait until they ran.

        Sends marimo's own `POST /api/kernel/instantiate` with `autoRun`
        (what the frontend sends on connecting; marimo
        `_server/api/endpoints/execution.py`), then waits for the run's
        `completed-run` message on this websocket. Standard library only, so
        a process that just holds a session stays small.

        Args:
            timeout_s: Seconds to wait; `None` uses `open_timeout_s`.

        Raises:
            UsageError: The holder is not open.
            LiveConnectionError: The request failed, or the run did not
                complete in time (the cells may still be running).
        """
        import re

        if not self.is_open:
            raise UsageError("open() the SessionHolder before run_all().")
        limit = self.open_timeout_s if timeout_s is None else timeout_s
        headers = _http.auth_headers(self.token, self.session_id)
        query = f"?{urlencode({'file': self.file})}" if self.file else ""
        status, page = _http.stdlib_request(
            "GET", f"{self.url}/{query}", headers=headers, timeout_s=limit
        )
        match = re.search(r'marimo-server-token data-token="([^"]+)"', page)
        if status != 200 or match is None:
            raise LiveConnectionError(
                f"Could not read the notebook page of {self.url} (HTTP {status}) to run its "
                "cells; is it a marimo edit server, and is the token right?"
            )
        headers |= {"Marimo-Server-Token": match.group(1), "Content-Type": "application/json"}
        body = json.dumps({"objectIds": [], "values": [], "autoRun": True}).encode()
        with self._runs_changed:
            before = self.completed_runs
        status, text = _http.stdlib_request(
            "POST", f"{self.url}/api/kernel/instantiate{query}", headers=headers, body=body,
            timeout_s=limit,
        )  # fmt: skip
        if status != 200:
            raise LiveConnectionError(
                f"marimo answered {status} to running the notebook's cells at {self.url}: "
                f"{text[:200]}"
            )
        with self._runs_changed:
            if not self._runs_changed.wait_for(
                lambda: self.completed_runs > before or not self.is_open, timeout=limit
            ):
                raise LiveConnectionError(
                    f"The notebook's cells at {self.url} did not finish running within "
                    f"{limit} s; raise startup_timeout_s, or open it with run_all=False."
                )

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the websocket (the session then lives on for marimo's TTL). Safe to call twice."""
        self._closing.set()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> SessionHolder:
        return self.open() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LiveSession:
    """A live kernel session the agent drives: a server URL and a session id.

    Made by `open_session()`; it may own a `HeadlessServer` and a
    `SessionHolder`, which `close()` stops. Use it as a context manager.

    Attributes:
        url: The server URL.
        session_id: The session id (`Marimo-Session-Id`).
        notebook: The notebook path, when known.
        server: The server this session started, or `None` when it joined a running one.
        holder: The websocket holder, or `None` when a client (a browser) already held it.
        token: The access token in use, or `None`.
        stable_id: marimo's stable id of the session (it survives a tab
            reload), or `None` when the server did not say.
        open_duration_s: Seconds `open_session()` took, on a monotonic clock.
        open_phases: Where those seconds went: `"server_s"` (start `marimo
            edit` until `/health` answers; 0 when joining a server),
            `"kernel_s"` (open the websocket until the kernel is ready),
            `"run_all_s"` (run the cells); phases that did not happen are absent.
    """

    def __init__(
        self,
        *,
        url: str,
        session_id: str,
        notebook: Path | None = None,
        server: HeadlessServer | None = None,
        holder: SessionHolder | None = None,
        token: str | None = None,
        allow_remote: bool = False,
        stable_id: str | None = None,
    ) -> None:
        self.url = url
        self.session_id = session_id
        self.notebook = notebook
        self.server = server
        self.holder = holder
        self.token = token
        self.allow_remote = allow_remote
        self.open_duration_s = 0.0
        self.open_phases: dict[str, float] = {}
        self.stable_id: str | None = stable_id
        if stable_id is None and holder is not None:
            self.stable_id = holder.kernel_ready.get("stable_session_id") or None

    @property
    def browser_url(self) -> str:
        """The URL a person opens to see the notebook (`?access_token=` added with a token)."""
        from urllib.parse import urlencode

        if self.token:
            return f"{self.url}/?{urlencode({'access_token': self.token})}"
        return f"{self.url}/"

    def client(self, **options: Any) -> LiveClient:
        """Return an async `LiveClient` on this session (`options` go to its constructor)."""
        from marimo_engine.live.client import LiveClient

        options.setdefault("token", self.token)
        options.setdefault("allow_remote", self.allow_remote)
        options.setdefault("stable_id", self.stable_id)
        return LiveClient(self.url, self.session_id, **options)

    def sync_client(self, **options: Any) -> LiveClientSync:
        """Return a blocking `LiveClientSync` on this session (close it when done)."""
        from marimo_engine.live.sync_client import LiveClientSync

        options.setdefault("token", self.token)
        options.setdefault("allow_remote", self.allow_remote)
        options.setdefault("stable_id", self.stable_id)
        return LiveClientSync(self.url, self.session_id, **options)

    def close(self) -> None:
        """Close the websocket and stop the server if this session started them. Idempotent."""
        if self.holder is not None:
            self.holder.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import anyio

        await anyio.to_thread.run_sync(self.close)


def open_session(
    notebook: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    session_id: str | None = None,
    token: str | None = None,
    allow_remote: bool = False,
    port: int | None = None,
    run_all: bool = True,
    startup_timeout_s: float = 60.0,
    session_ttl_s: int | None = None,
    env: dict[str, str] | None = None,
) -> LiveSession:
    """Open a live kernel session on a notebook, headless: no browser needed.

    Without `url`, starts `marimo edit --headless` for `notebook` on a free
    loopback port. With `url`, uses that running server: an existing session
    of the notebook (a person's browser) is joined as is; otherwise a new
    session is opened by holding its websocket from Python.

    Args:
        notebook: The notebook `.py` path (created if missing; with `url`,
            when the server is on this machine). Required without `url`;
            with `url` it picks the session or the file to open.
        url: A running server's URL; `None` starts a new server.
        session_id: Session id to create; `None` makes one.
        token: Access token (the new server requires it when given); `None`
            uses `MARIMO_TOKEN` for a running server and `--no-token` for a
            new one.
        allow_remote: Allow a `url` whose host is not loopback.
        port: Port for a new server; `None` picks a free one.
        run_all: Run every cell once the session is new, as a browser
            opening the notebook would, so their variables exist.
        startup_timeout_s: Seconds to wait for the server and the kernel.
        session_ttl_s: For a new server, seconds marimo keeps the session
            after the websocket closes.
        env: Environment of a new server; `None` inherits ours.

    Returns:
        The open `LiveSession`; close it (or use `with`) to release it.

    Raises:
        UsageError: Neither `notebook` nor `url`, a remote host, or a
            missing notebook whose folder does not exist.
        LiveConnectionError: The server did not start or refused the session
            (such as a notebook outside the folder a server was started on).
        LiveError: Running the cells failed at the transport level.
    """
    started = time.monotonic()
    phases: dict[str, float] = {}
    path = Path(notebook).expanduser().resolve() if notebook is not None else None
    server: HeadlessServer | None = None
    holder: SessionHolder | None = None
    created = False
    if url is None:
        if path is None:
            raise UsageError("open_session() needs a notebook path or the url= of a server.")
        server = HeadlessServer(
            path,
            port=port,
            token=token,
            session_ttl_s=session_ttl_s,
            startup_timeout_s=startup_timeout_s,
            env=env,
        ).start()
        phases["server_s"] = time.monotonic() - started
        base_url = server.url
        token_in_use = token
    else:
        base_url = _http.check_host(url, allow_remote=allow_remote)
        token_in_use = _http.resolve_token(token)
    try:
        existing = None
        if server is None:
            from marimo_engine.live.discovery import list_sessions, select_session

            sessions = list_sessions(base_url, token=token_in_use, allow_remote=allow_remote)
            if session_id is not None or path is not None:
                with contextlib.suppress(LiveError):
                    existing = select_session(sessions, session_id=session_id, file=path)
        if existing is not None:
            live = LiveSession(
                url=base_url, session_id=existing.session_id, notebook=path, server=None,
                holder=None, token=token_in_use, allow_remote=allow_remote,
                stable_id=existing.stable_id,
            )  # fmt: skip
        else:
            if server is None and path is not None:
                created = _create_missing_notebook(path, base_url)
            holder = SessionHolder(
                base_url,
                session_id=session_id,
                file=str(path) if (path is not None and server is None) else None,
                token=token_in_use,
                allow_remote=allow_remote,
                open_timeout_s=startup_timeout_s,
            ).open()
            phases["kernel_s"] = time.monotonic() - started - sum(phases.values())
            live = LiveSession(
                url=base_url, session_id=holder.session_id, notebook=path, server=server,
                holder=holder, token=token_in_use, allow_remote=allow_remote,
            )  # fmt: skip
            if run_all:
                holder.run_all(startup_timeout_s)
                phases["run_all_s"] = time.monotonic() - started - sum(phases.values())
    except BaseException:
        if holder is not None:
            holder.close()
        if server is not None:
            server.stop()
        if created and path is not None:
            with contextlib.suppress(OSError):  # ours, and still empty: no stray file left
                if path.stat().st_size == 0:
                    path.unlink()
        raise
    live.open_duration_s = time.monotonic() - started
    live.open_phases = phases
    return live


def _create_missing_notebook(path: Path, url: str) -> bool:
    """Create `path` as an empty file when a server on this machine is to open it and it is missing.

    A server started on a folder opens only notebooks that exist (marimo
    answers 404 otherwise); `marimo edit new.py` creates its file, and an
    empty file opens as a new notebook (one blank cell), so this gives a
    running server the same promise. A server on another machine reads its
    own disk: nothing is created for it.

    Args:
        path: The notebook path, absolute.
        url: The server URL.

    Returns:
        Whether the file was created (the caller removes it if the session
        does not open).

    Raises:
        UsageError: The notebook's folder does not exist.
    """
    if path.exists() or not _http.is_loopback_host(urlsplit(url).hostname or ""):
        return False
    if not path.parent.is_dir():
        raise UsageError(
            f"The folder of the notebook {str(path)!r} does not exist; create it, "
            "or give a notebook in an existing folder."
        )
    path.touch(exist_ok=False)
    return True


async def aopen_session(
    notebook: str | os.PathLike[str] | None = None, **options: Any
) -> LiveSession:
    """`open_session()` for async code: the same arguments, run on a worker thread.

    Returns:
        The open `LiveSession`; use `async with` on it to close it.
    """
    import anyio

    def call() -> LiveSession:
        return open_session(notebook, **options)

    return await anyio.to_thread.run_sync(call)
