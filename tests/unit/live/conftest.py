"""A real loopback HTTP server whose answers each test scripts (for protocol code)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Request:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Request], tuple[int, str, list[bytes]]]
"""Answers a request with (status, content type, body chunks)."""


@dataclass
class ScriptedServer:
    """A loopback HTTP/1.1 server: `routes[(method, path)]` answers; requests are recorded."""

    url: str
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def json_route(self, method: str, path: str, body: Any, status: int = 200) -> None:
        payload = json.dumps(body).encode()
        self.routes[(method, path)] = lambda _r: (status, "application/json", [payload])

    def sse_route(self, path: str, events: Callable[[Request], list[tuple[str, Any]]]) -> None:
        def answer(request: Request) -> tuple[int, str, list[bytes]]:
            chunks = [
                f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                for name, data in events(request)
            ]
            return 200, "text/event-stream", chunks

        self.routes[("POST", path)] = answer


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server_state: dict[str, ScriptedServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=self.path,
                headers={k: v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            scripted = server_state["server"]
            scripted.requests.append(request)
            route = scripted.routes.get((self.command, self.path.split("?")[0]))
            if route is None:
                status, content_type, chunks = 404, "application/json", [b'{"detail": "Not Found"}']
            else:
                status, content_type, chunks = route(request)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = _handle
        do_POST = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    scripted = ScriptedServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    server_state["server"] = scripted
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
