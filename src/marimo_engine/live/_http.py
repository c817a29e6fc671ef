"""The HTTP boundary of the live bridge: host checks, headers, timeouts, error translation.

httpx errors are translated here, once, into `LiveError` subclasses; the
rest of `marimo_engine.live` catches only our own types.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from marimo_engine.errors import LiveConnectionError, LiveHTTPError, LiveTimeoutError, UsageError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SESSION_HEADER",
    "STABLE_SESSION_HEADER",
    "auth_headers",
    "check_host",
    "is_loopback_host",
    "normalize_url",
    "raise_for_status",
    "resolve_token",
    "stdlib_request",
    "translate_errors",
]

DEFAULT_TIMEOUT_S = 10.0
"""Seconds a plain request (not a streamed run) may take."""

SESSION_HEADER = "Marimo-Session-Id"
"""The header naming the kernel session (marimo `_server/api/deps.py`)."""

STABLE_SESSION_HEADER = "Marimo-Stable-Session-Id"
"""The header naming a session by its stable id, which survives a tab reload (marimo 0.25)."""


def is_loopback_host(host: str) -> bool:
    """Return whether `host` names this machine only: every address it resolves to is loopback.

    An IP literal is checked as is. A name (`localhost`, `app.localhost`,
    anything else) is resolved with the system resolver and counts only when
    it resolves and every address is loopback: RFC 6761 reserves
    `*.localhost` for loopback, but a resolver or `/etc/hosts` may map such
    a name elsewhere, and code sent there would run on that machine.

    Args:
        host: A host name or IP address, brackets allowed for IPv6 (`"[::1]"`).
    """
    host = host.strip("[]").lower().rstrip(".")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return _resolves_to_loopback(host)


def _resolves_to_loopback(host: str) -> bool:
    import socket

    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    try:
        return bool(addresses) and all(
            ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
        )
    except ValueError:
        return False


def normalize_url(url: str) -> str:
    """Return a server URL without a trailing slash, adding `http://` when no scheme is given.

    Raises:
        UsageError: The URL has no host or a scheme other than http/https.
    """
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"Bad marimo server URL {url!r}: expected http://HOST:PORT, "
            "such as 'http://127.0.0.1:2718'."
        )
    return url.rstrip("/")


def check_host(url: str, *, allow_remote: bool = False) -> str:
    """Refuse servers that are not on this machine unless `allow_remote` is set.

    Args:
        url: The server URL.
        allow_remote: Whether a host other than loopback is acceptable.

    Returns:
        The normalized URL.

    Raises:
        UsageError: The host is not loopback and `allow_remote` is false.
    """
    url = normalize_url(url)
    host = urlsplit(url).hostname or ""
    if not allow_remote and not is_loopback_host(host):
        raise UsageError(
            f"Refusing marimo server {url!r}: {host!r} is not a loopback host (it is not a "
            "loopback address, or does not resolve to loopback addresses only), and code "
            "sent there runs with that machine's rights. Pass allow_remote=True "
            "(CLI: --allow-remote) if you trust it."
        )
    return url


def resolve_token(token: str | None) -> str | None:
    """Return the access token to send: the argument, else `MARIMO_TOKEN`, else `None`."""
    if token:
        return token
    return os.environ.get("MARIMO_TOKEN") or None


def auth_headers(token: str | None, session_id: str | None = None) -> dict[str, str]:
    """Return request headers: `Authorization: Bearer` when a token is set, and the session id.

    Source: marimo `_server/api/auth.py` accepts a bearer token for servers
    started with `--token`.
    """
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session_id:
        headers[SESSION_HEADER] = session_id
    return headers


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            if key in body:
                return str(body[key])[:200]
    return str(body)[:200]


def raise_for_status(response: httpx.Response, *, action: str) -> None:
    """Raise `LiveHTTPError` for a 4xx/5xx answer, with a hint for the usual causes.

    Args:
        response: The answer; its body must have been read.
        action: What was being done, such as `"list sessions"`.

    Raises:
        LiveHTTPError: The status is 400 or more.
    """
    status = response.status_code
    if status < 400:
        return
    url = str(response.request.url)
    detail = _detail(response)
    if status in (401, 403):
        hint = "the server wants a token: pass token= or set MARIMO_TOKEN."
    elif status == 404:
        hint = "the server has no such route; is it marimo >= 0.21 running 'marimo edit'?"
    elif "session" in detail.lower():
        hint = "the session is gone: list sessions again and pick a live one."
    else:
        hint = "see the server's log."
    raise LiveHTTPError(
        f"marimo answered {status} to {action} at {url}: {detail or 'no detail'}; {hint}",
        status=status,
        url=url,
    )


@contextmanager
def translate_errors(url: str, *, action: str, timeout_s: float | None) -> Iterator[None]:
    """Translate httpx exceptions raised inside the block into `LiveError`s.

    Args:
        url: The URL being requested (for the message).
        action: What was being done, such as `"execute code"`.
        timeout_s: The timeout in force (for the message), `None` if none.

    Raises:
        LiveTimeoutError: An httpx timeout.
        LiveConnectionError: Refused, reset or any other transport error.
    """
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        limit = timeout_s if timeout_s is not None else 0.0
        raise LiveTimeoutError(
            f"Timed out after {limit} s trying to {action} at {url}; the server is busy or "
            "gone: check it with 'marimo-engine live servers' or raise the timeout.",
            timeout_s=limit,
        ) from exc
    except httpx.TransportError as exc:
        raise LiveConnectionError(
            f"Could not {action} at {url}: {type(exc).__name__}: {exc or 'connection failed'}; "
            "is the marimo server running? Start one with 'marimo edit --headless' "
            "or 'marimo-engine live open NOTEBOOK.py'."
        ) from exc


def stdlib_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[int, str]:
    """Send one small request with the standard library only (no httpx, no ssl import).

    For the few requests of a process that only holds a session open (`live
    open`): its health checks and the notebook's first run, so that it does
    not load httpx, pydantic and anyio.

    Args:
        method: `"GET"` or `"POST"`.
        url: The full URL (http only).
        headers: Request headers.
        body: The request body, or `None`.
        timeout_s: Seconds for connecting and for each read.

    Returns:
        `(status, body text)`.

    Raises:
        LiveConnectionError: Refused, reset, timed out, or not http.
    """
    import http.client

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LiveConnectionError(f"Cannot send {method} to {url!r}: only http:// URLs here.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        raise LiveConnectionError(
            f"Could not {method} {url}: {type(exc).__name__}: {exc or 'connection failed'}."
        ) from exc
    finally:
        connection.close()
