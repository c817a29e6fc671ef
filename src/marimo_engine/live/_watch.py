"""Which session a client talks to, and whether its kernel is still there.

marimo (0.25, PR #10906) gives every session a server-owned *stable id*
(`"sess-..."`), listed by `GET /api/sessions` next to the browser's session
id. The browser's id changes when the person reloads the tab (marimo resumes
the same kernel under the new id); the stable id does not. So a client
resolves its session once, then addresses `/api/kernel/execute` with the
`Marimo-Stable-Session-Id` header (marimo `_server/api/deps.py`), and looks up
the current browser id only for routes that need it (`/api/kernel/status`).

While a run streams, `session_state` is polled: marimo closes a session when
its kernel is restarted (`/api/kernel/restart_session`) or dies (its kernel
heartbeat), and `/api/kernel/status` says `"stopped"` in between. The
execute stream itself never ends in either case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from marimo_engine.errors import LiveError, LiveHTTPError, LiveSelectionError
from marimo_engine.live import _http
from marimo_engine.live.protocol import SessionInfo, parse_sessions

if TYPE_CHECKING:
    import httpx

__all__ = ["SessionRef", "list_sessions_async", "match_session", "session_state"]


@dataclass(frozen=True)
class SessionRef:
    """The session a client uses, as the server lists it now.

    Attributes:
        key: The browser's session id (`Marimo-Session-Id`) at the time of listing.
        stable_id: marimo's stable id, or `None` for a server that has none.
    """

    key: str
    stable_id: str | None

    def headers(self) -> dict[str, str]:
        """The session header for `/api/kernel/execute`: the stable id when there is one."""
        if self.stable_id:
            return {_http.STABLE_SESSION_HEADER: self.stable_id}
        return {_http.SESSION_HEADER: self.key}


async def list_sessions_async(
    http: httpx.AsyncClient, url: str, *, timeout_s: float
) -> list[SessionInfo] | None:
    """`GET /api/sessions` on an open client; `None` when the server has no such route.

    Raises:
        LiveTimeoutError, LiveConnectionError, LiveHTTPError: The request failed.
        LiveError: The answer is not a session list.
    """
    endpoint = f"{url}/api/sessions"
    with _http.translate_errors(endpoint, action="list sessions", timeout_s=timeout_s):
        response = await http.get(endpoint, timeout=timeout_s)
    if response.status_code in (404, 405):
        return None
    _http.raise_for_status(response, action="list sessions")
    try:
        return parse_sessions(response.json())
    except ValueError as exc:
        raise LiveError(f"Unexpected answer from {endpoint}: {exc}") from exc


def match_session(sessions: list[SessionInfo], wanted: str) -> SessionRef | None:
    """Find the session named by a browser session id or a stable id."""
    for info in sessions:
        if wanted in (info.session_id, info.stable_id):
            return SessionRef(key=info.session_id, stable_id=info.stable_id)
    return None


def unknown_session(url: str, wanted: str, sessions: list[SessionInfo]) -> LiveSelectionError:
    """The error for a session id the server does not list."""
    known = "; ".join(
        f"{s.session_id} (stable id {s.stable_id}, {s.path or s.filename or 'unsaved'})"
        for s in sessions
    )
    return LiveSelectionError(
        f"No session {wanted!r} on {url}. Open sessions: {known or 'none'}. "
        "List them with 'marimo-engine live sessions'.",
        candidates=[s.session_id for s in sessions],
    )


async def session_state(
    http: httpx.AsyncClient, url: str, ref: SessionRef, *, timeout_s: float
) -> tuple[str | None, SessionRef]:
    """Ask the server whether the session and its kernel still exist.

    Args:
        http: An open client (auth headers set).
        url: The server URL.
        ref: The session as last resolved.
        timeout_s: Seconds each request may take.

    Returns:
        `(reason, ref)`: `reason` is `None` while the kernel runs,
        `"session-closed"` when the server no longer lists the session, or
        `"kernel-stopped"` when its kernel process is not running; `ref` is
        the session as listed now (its browser id may have changed).

    Raises:
        LiveError: The server did not answer (see `list_sessions_async`).
    """
    sessions = await list_sessions_async(http, url, timeout_s=timeout_s)
    if sessions is not None:
        current = match_session(sessions, ref.stable_id or ref.key)
        if current is None:
            return "session-closed", ref
        ref = current
    endpoint = f"{url}/api/kernel/status"
    with _http.translate_errors(endpoint, action="read the kernel status", timeout_s=timeout_s):
        response = await http.get(
            endpoint, headers={_http.SESSION_HEADER: ref.key}, timeout=timeout_s
        )
    if response.status_code in (404, 405):  # a server without the route: nothing more to learn
        return None, ref
    try:
        _http.raise_for_status(response, action="read the kernel status")
    except LiveHTTPError as exc:
        if "session" in str(exc).lower():
            return "session-closed", ref
        raise
    try:
        state = response.json().get("state")
    except (ValueError, AttributeError):
        return None, ref
    return ("kernel-stopped" if state == "stopped" else None), ref
