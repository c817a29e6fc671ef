"""Byte relays between a TCP port and a Unix socket, for the sandboxed marimo server.

Inside the sandbox (no network namespace shared with the host), `python -m
marimo_engine.agents.code._relay SOCKET PORT -- COMMAND...` starts COMMAND
(the `marimo edit` server listening on 127.0.0.1:PORT inside the sandbox)
and forwards every connection made to the Unix socket SOCKET (a file in a
folder bound into the sandbox) to that port; it exits with the command.
Outside, `TcpToUnixRelay` listens on a free loopback port of the host and
forwards to the same socket, so the live bridge talks HTTP and websockets
to the server as if it were local.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading

__all__ = ["TcpToUnixRelay", "main"]

_CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _join(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    opener: object,
) -> None:
    try:
        upstream_reader, upstream_writer = await opener()  # type: ignore[operator]
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
    )


class TcpToUnixRelay:
    """Listens on `127.0.0.1:port` and forwards each connection to a Unix socket.

    Runs its own event loop in a daemon thread. Use `start()` and `stop()`.

    Attributes:
        socket_path: The Unix socket forwarded to.
        port: The loopback TCP port (chosen free when 0).
    """

    def __init__(self, socket_path: str, port: int = 0) -> None:
        self.socket_path = socket_path
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> TcpToUnixRelay:
        """Start listening; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def serve() -> None:
                async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                    await _join(r, w, lambda: asyncio.open_unix_connection(self.socket_path))

                self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
                self.port = self._server.sockets[0].getsockname()[1]

            try:
                loop.run_until_complete(serve())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="marimo-engine-relay", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening and end the thread. Safe to call twice."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        def close() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(5)


async def _inside(socket_path: str, port: int, command: list[str]) -> int:
    process = subprocess.Popen(command)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _join(r, w, lambda: asyncio.open_connection("127.0.0.1", port))

    server = await asyncio.start_unix_server(handle, socket_path)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, process.terminate)
    try:
        while process.poll() is None:
            await asyncio.sleep(0.2)
    finally:
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
    return process.returncode or 0


def main(argv: list[str] | None = None) -> int:
    """`SOCKET PORT -- COMMAND...`: run COMMAND and relay SOCKET to 127.0.0.1:PORT."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        print("usage: python -m marimo_engine.agents.code._relay SOCKET PORT -- COMMAND...",
              file=sys.stderr)  # fmt: skip
        return 2
    return asyncio.run(_inside(args[0], int(args[1]), args[3:]))


if __name__ == "__main__":
    sys.exit(main())
