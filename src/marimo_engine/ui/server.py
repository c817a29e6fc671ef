"""Serve the runs app with marimo's own server, in run mode, with its auth token on.

marimo's public `marimo.create_asgi_app(token=...)` builds the server
`marimo run` uses (read-only app, one kernel per browser session); uvicorn
serves it in this process, so stopping this process stops the server and
its kernels. The socket is bound before the server starts (port 0 picks a
free one), so the printed URL is the one that answers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.ui.actions import UIConfig

__all__ = ["DEFAULT_HOST", "TOKEN_ENV", "app_url", "bind_socket", "check_host", "serve"]

DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "MARIMO_ENGINE_UI_TOKEN"
"""Environment variable with the access token to use (default: a new random one)."""

MIN_TOKEN_CHARS = 16


def check_host(host: str, *, allow_remote: bool) -> None:
    """Refuse a bind address that is not loopback, unless `allow_remote`.

    Raises:
        UsageError: `host` is not a loopback address and `allow_remote` is false.
    """
    from marimo_engine.live._http import is_loopback_host

    if not allow_remote and not is_loopback_host(host):
        raise UsageError(
            f"Refusing to listen on {host!r}: it is not a loopback address, and whoever "
            "reaches the app can resume runs and run plans with your tools. Use "
            "--host 127.0.0.1, or pass --allow-remote if you mean it (the token still applies)."
        )


def check_token(token: str) -> None:
    """Refuse a token shorter than `MIN_TOKEN_CHARS` characters (`UsageError`)."""
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"The access token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            f"(or unset {TOKEN_ENV} and one is made for you)."
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (`port` 0: a free one).

    Raises:
        UsageError: The address is taken or cannot be bound; the message says which.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"Cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
            "(0 picks a free one)."
        ) from exc
    sock.set_inheritable(False)
    return sock


def app_url(host: str, port: int, token: str) -> str:
    """The URL to open: `http://HOST:PORT/?access_token=TOKEN` (marimo's token parameter)."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?access_token={quote(token, safe='')}"


def serve(
    config: UIConfig,
    sock: socket.socket,
    token: str,
    *,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve the runs app on `sock` until SIGINT or SIGTERM.

    Args:
        config: The app's settings; written to this process's environment,
            which the app's kernels (threads of this process) read.
        sock: A listening socket (`bind_socket`).
        token: marimo's access token: a browser must bring it once
            (`app_url`), then holds a session cookie.
        on_ready: Called once the server accepts connections.
    """
    import asyncio

    import marimo
    import uvicorn

    from marimo_engine.ui import APP_PATH

    os.environ.update(config.to_env())
    app = (
        marimo.create_asgi_app(quiet=True, token=token, include_code=False)
        .with_app(path="", root=str(APP_PATH))
        .build()
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    )

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready()
        await task

    asyncio.run(main())
