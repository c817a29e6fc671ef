"""Serve the MCP server over stdio or streamable HTTP (with a bearer token).

stdio is what coding agents launch: the SDK's `stdio_server` points fd 1 at
stderr while serving, so a tool's stray `print` never corrupts the wire.

Streamable HTTP listens on loopback unless `allow_remote` is given, and
every HTTP request must carry `Authorization: Bearer <token>`, compared in
constant time; anything else gets 401 before the MCP app sees it. On
loopback the SDK also checks `Host` and `Origin` against DNS rebinding
(`mcp.server.transport_security`).
"""

from __future__ import annotations

import hmac
import json
import sys
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError
from marimo_engine.live._http import is_loopback_host

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = [
    "MCP_PATH",
    "TOKEN_ENV",
    "BearerTokenMiddleware",
    "check_bind",
    "serve_http",
    "serve_stdio",
]

MCP_PATH = "/mcp"
"""The streamable HTTP endpoint's path."""

TOKEN_ENV = "MARIMO_ENGINE_MCP_TOKEN"
"""Environment variable holding the HTTP bearer token (safer than `--token`, which `ps` shows)."""

MIN_TOKEN_CHARS = 16
"""A shorter token is refused: it could be guessed."""


class BearerTokenMiddleware:
    """ASGI middleware: refuse every HTTP request without `Authorization: Bearer <token>`.

    Lifespan and other non-HTTP scopes pass through. A refused request gets
    401 with `WWW-Authenticate: Bearer` (RFC 6750, section 3) and a JSON body
    saying what to send.
    """

    def __init__(self, app: Any, token: str) -> None:
        """Wrap `app` (an ASGI app) so that it requires `token`."""
        self.app = app
        self._token = token.encode("utf-8")

    def _authorized(self, scope: dict[str, Any]) -> bool:
        for name, value in scope.get("headers") or []:
            if name.lower() == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(credentials.strip(), self._token)
                return False
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "invalid_token",
                "error_description": (
                    "marimo-engine's MCP server needs 'Authorization: Bearer <token>': the "
                    f"token it printed at start, or the one in {TOKEN_ENV}."
                ),
            }
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"www-authenticate", b'Bearer realm="marimo-engine"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def check_bind(host: str, *, allow_remote: bool, token: str | None) -> None:
    """Refuse a bind that would expose the server, or a missing or weak token.

    Raises:
        UsageError: `host` is not loopback and `allow_remote` is false; or
            the token is missing or shorter than `MIN_TOKEN_CHARS`.
    """
    if not allow_remote and not is_loopback_host(host):
        raise UsageError(
            f"Refusing to listen on {host!r}: it is not a loopback address, and whoever "
            "reaches the server can run code in your notebooks. Use --host 127.0.0.1, or "
            "pass --allow-remote if you mean it (the bearer token still applies)."
        )
    if not token:
        raise UsageError(
            f"The HTTP transport needs a bearer token: pass --token or set {TOKEN_ENV}."
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"The bearer token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "(or leave it out and one is made for you)."
        )


async def serve_stdio(server: MCPServer) -> None:
    """Serve over the process's stdin and stdout until stdin closes."""
    await server.run_stdio_async()


async def serve_http(
    server: MCPServer,
    *,
    host: str,
    port: int,
    token: str,
    allow_remote: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve streamable HTTP at `http://host:port/mcp` until SIGINT or SIGTERM.

    Args:
        server: The MCP server.
        host: Address to listen on; loopback unless `allow_remote`.
        port: TCP port.
        token: The bearer token every request must carry.
        allow_remote: Allow a non-loopback `host`.
        log_level: uvicorn's log level (logs go to stderr).

    Raises:
        UsageError: See `check_bind`.
    """
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    check_bind(host, allow_remote=allow_remote, token=token)
    security = (
        None  # the SDK turns on its DNS rebinding checks for loopback hosts
        if is_loopback_host(host)
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security, host=host
    )
    config = uvicorn.Config(
        BearerTokenMiddleware(app, token),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
    )
    print(
        f"marimo-engine MCP server: http://{_url_host(host)}:{port}{MCP_PATH} "
        "(streamable HTTP, bearer token required)",
        file=sys.stderr,
        flush=True,
    )
    await uvicorn.Server(config).serve()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
