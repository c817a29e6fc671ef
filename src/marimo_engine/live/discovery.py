"""Find running marimo servers and their kernel sessions, and pick one.

Servers started with `--no-token` register themselves in
`<marimo state dir>/servers/*.json` (marimo `_server/server_registry.py`;
the state dir is `$XDG_STATE_HOME/marimo`, else `~/.local/state/marimo`,
`~/.marimo` on Windows). Entries of servers that died without cleaning up
are dropped: their process is gone or (optionally) their health route does
not answer.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from marimo_engine.errors import LiveError, LiveSelectionError, UsageError
from marimo_engine.live import _http
from marimo_engine.live.protocol import ServerInfo, SessionInfo, parse_sessions

__all__ = [
    "find_session",
    "list_servers",
    "list_sessions",
    "marimo_registry_dir",
    "select_server",
    "select_session",
]


def marimo_registry_dir() -> Path:
    """Return marimo's server registry folder, computed as marimo does (without importing it)."""
    if os.name == "posix":
        state = os.environ.get("XDG_STATE_HOME", "").strip()
        base = Path(state) if state else Path.home() / ".local" / "state"
        return base / "marimo" / "servers"
    return Path.home() / ".marimo" / "servers"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(url: str, timeout_s: float) -> bool:
    import httpx

    try:
        response = httpx.get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def list_servers(
    registry_dir: str | os.PathLike[str] | None = None,
    *,
    check_health: bool = False,
    timeout_s: float = 2.0,
) -> list[ServerInfo]:
    """List running marimo servers from marimo's registry, dropping dead entries.

    Args:
        registry_dir: The registry folder; `None` uses `marimo_registry_dir()`.
        check_health: Also ask each server's `/health` route and drop those
            that do not answer 200.
        timeout_s: Seconds each health request may take.

    Returns:
        Live servers, sorted by port. Unreadable or malformed entries are
        skipped; so are servers whose process no longer exists.
    """
    folder = Path(registry_dir) if registry_dir is not None else marimo_registry_dir()
    if not folder.is_dir():
        return []
    servers = []
    for path in sorted(folder.glob("*.json")):
        try:
            server = ServerInfo.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        if not _pid_alive(server.pid):
            continue
        if check_health and not _healthy(server.url, timeout_s):
            continue
        servers.append(server)
    return sorted(servers, key=lambda s: (s.port, s.host))


def list_sessions(
    url: str,
    *,
    token: str | None = None,
    allow_remote: bool = False,
    timeout_s: float = _http.DEFAULT_TIMEOUT_S,
) -> list[SessionInfo]:
    """List the kernel sessions of one server (`GET /api/sessions`).

    Args:
        url: The server URL, such as `"http://127.0.0.1:2718"`.
        token: Access token; `None` uses `MARIMO_TOKEN` if set.
        allow_remote: Allow a host other than loopback.
        timeout_s: Seconds the request may take.

    Returns:
        The sessions; empty when no notebook is open.

    Raises:
        UsageError: A remote host without `allow_remote`.
        LiveConnectionError, LiveTimeoutError, LiveHTTPError: The request failed.
    """
    import httpx

    url = _http.check_host(url, allow_remote=allow_remote)
    endpoint = f"{url}/api/sessions"
    headers = _http.auth_headers(_http.resolve_token(token))
    with _http.translate_errors(endpoint, action="list sessions", timeout_s=timeout_s):
        response = httpx.get(endpoint, headers=headers, timeout=timeout_s)
    _http.raise_for_status(response, action="list sessions")
    try:
        return parse_sessions(response.json())
    except ValueError as exc:
        raise LiveError(f"Unexpected answer from {endpoint}: {exc}") from exc


def _describe_server(server: ServerInfo) -> str:
    return f"{server.url} (pid {server.pid}, marimo {server.version})"


def select_server(
    servers: Sequence[ServerInfo], *, url: str | None = None, port: int | None = None
) -> ServerInfo:
    """Pick one server by URL or port, or the only one.

    Args:
        servers: Candidates, as from `list_servers()`.
        url: Match this URL (scheme, host and port; `localhost` matches `127.0.0.1`).
        port: Match this port.

    Returns:
        The one matching server.

    Raises:
        LiveSelectionError: None matched, or several did (the message lists them).
    """
    chosen = list(servers)
    if url is not None:
        want = _http.normalize_url(url)
        chosen = [s for s in chosen if _same_server(s.url, want)]
    if port is not None:
        chosen = [s for s in chosen if s.port == port]
    candidates = [_describe_server(s) for s in servers]
    if not chosen:
        wanted = " ".join(p for p in (url and f"url={url}", port and f"port={port}") if p)
        known = "; ".join(candidates) if candidates else "none are registered"
        raise LiveSelectionError(
            f"No running marimo server{' matches ' + wanted if wanted else ''}. "
            f"Running servers: {known}. Start one with "
            "'marimo-engine live open NOTEBOOK.py' or 'marimo edit --headless --no-token', "
            "or pass url= for a server started with a token.",
            candidates=candidates,
        )
    if len(chosen) > 1:
        raise LiveSelectionError(
            f"{len(chosen)} marimo servers are running: "
            + "; ".join(_describe_server(s) for s in chosen)
            + ". Pick one with url= or port= (CLI: --url, --port).",
            candidates=[_describe_server(s) for s in chosen],
        )
    return chosen[0]


def _same_server(a: str, b: str) -> bool:
    from urllib.parse import urlsplit

    pa, pb = urlsplit(a), urlsplit(b)
    host_a = "127.0.0.1" if pa.hostname == "localhost" else pa.hostname
    host_b = "127.0.0.1" if pb.hostname == "localhost" else pb.hostname
    return (host_a, pa.port) == (host_b, pb.port)


def _describe_session(session: SessionInfo) -> str:
    return f"{session.session_id} ({session.path or session.filename or 'unsaved notebook'})"


def select_session(
    sessions: Sequence[SessionInfo],
    *,
    session_id: str | None = None,
    file: str | os.PathLike[str] | None = None,
    url: str = "",
) -> SessionInfo:
    """Pick one session by id or notebook file, or the only one.

    Args:
        sessions: Candidates, as from `list_sessions()`.
        session_id: Match the session id or marimo's stable id.
        file: Match the notebook path (resolved) or its file name.
        url: The server URL, for messages.

    Returns:
        The one matching session.

    Raises:
        LiveSelectionError: None matched, or several did.
    """
    chosen = list(sessions)
    if session_id is not None:
        chosen = [s for s in chosen if session_id in (s.session_id, s.stable_id)]
    if file is not None:
        want = Path(file).expanduser()
        resolved = str(want.resolve())
        chosen = [
            s
            for s in chosen
            if (s.path and str(Path(s.path).resolve()) == resolved)
            or (not want.parent.parts and s.filename and Path(s.filename).name == want.name)
        ]
    where = f" on {url}" if url else ""
    candidates = [_describe_session(s) for s in sessions]
    if not chosen:
        if not sessions:
            raise LiveSelectionError(
                f"No notebook session is open{where}: a session exists only while a client "
                "holds its websocket. Open the notebook in a browser, or run "
                "'marimo-engine live open NOTEBOOK.py' (Python: open_session()).",
                candidates=[],
            )
        wanted = " ".join(
            p for p in (session_id and f"session_id={session_id}", file and f"file={file}") if p
        )
        raise LiveSelectionError(
            f"No session{where} matches {wanted}. Open sessions: {'; '.join(candidates)}.",
            candidates=candidates,
        )
    if len(chosen) > 1:
        raise LiveSelectionError(
            f"{len(chosen)} sessions are open{where}: "
            + "; ".join(_describe_session(s) for s in chosen)
            + ". Pick one with session_id= or file= (CLI: --session, --file).",
            candidates=[_describe_session(s) for s in chosen],
        )
    return chosen[0]


def find_session(
    *,
    url: str | None = None,
    port: int | None = None,
    file: str | os.PathLike[str] | None = None,
    session_id: str | None = None,
    token: str | None = None,
    allow_remote: bool = False,
    registry_dir: str | os.PathLike[str] | None = None,
    timeout_s: float = _http.DEFAULT_TIMEOUT_S,
) -> tuple[str, SessionInfo]:
    """Find one live session: the server by URL/port (or the only registered one), then the session.

    With `url` the registry is not consulted, so servers started with a
    token (which do not register) are reachable too.

    Args:
        url: The server URL; `None` searches the registry.
        port: Pick the registered server on this port.
        file: Pick the session of this notebook.
        session_id: Pick this session.
        token: Access token; `None` uses `MARIMO_TOKEN`.
        allow_remote: Allow a host other than loopback.
        registry_dir: The registry folder (default: marimo's).
        timeout_s: Seconds each request may take.

    Returns:
        `(server_url, session)`.

    Raises:
        LiveSelectionError: No server or session matched, or several did.
        UsageError: A remote host without `allow_remote`, or a bad URL.
        LiveError: A request failed.
    """
    if url is None:
        servers = list_servers(registry_dir)
        if file is not None and port is None and len(servers) > 1:
            # Several servers: the notebook decides.
            matches = []
            for server in servers:
                try:
                    sessions = list_sessions(
                        server.url, token=token, allow_remote=allow_remote, timeout_s=timeout_s
                    )
                    matches.append((server.url, select_session(sessions, file=file)))
                except LiveError:
                    continue
            if len(matches) == 1:
                return matches[0]
        server_url = select_server(servers, port=port).url
    else:
        if port is not None:
            raise UsageError("Pass url= or port=, not both.")
        server_url = url
    server_url = _http.check_host(server_url, allow_remote=allow_remote)
    sessions = list_sessions(
        server_url, token=token, allow_remote=allow_remote, timeout_s=timeout_s
    )
    return server_url, select_session(sessions, session_id=session_id, file=file, url=server_url)
