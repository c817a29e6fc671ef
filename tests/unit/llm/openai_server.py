"""A small OpenAI-compatible chat completions server on loopback, answering from a script.

`ScriptedOpenAIServer` answers `POST /v1/chat/completions`, plain or
streamed (server-sent events, when the request says `"stream": true`), with
the next item of its script, and records every request it received. Script
items are dicts:

- `{"tool_args": {...}}`: call the request's first tool (the agent's output
  tool) with these arguments; `"tool": NAME` picks another tool.
- `{"text": "..."}`: answer with text.
- `{"status": 429, "body": {...}}`: answer with that HTTP error.
- `{"raw": "<html>...", "content_type": "text/html"}`: answer HTTP 200 with
  that body as is (a broken gateway); `content_type` defaults to JSON.
- any item may carry `"usage": {"prompt_tokens": N, "completion_tokens": M}`,
  or `"omit_usage": true` to send no usage at all (as some servers do);
- `"trickle_s": S` (with `"trickle_for_s": T`, default 60): send the headers,
  then one keep-alive byte every S seconds for T seconds (whitespace before
  the JSON, or a server-sent-event comment), then the answer: a slow server
  that never lets a per-read timeout fire;
- `"chunk_delay_s": S`: on a streamed answer, wait S seconds between chunks.

Waits end early when the server stops, so a test never leaves a handler
thread writing after it.

When the script runs out, the last item is repeated if `repeat_last`, else
the server answers 500 `script exhausted`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedRequest", "ScriptedOpenAIServer", "scripted_server"]


@dataclass
class RecordedRequest:
    """One request the server received: path, headers and the JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def is_stream(self) -> bool:
        """Whether the client asked for server-sent events."""
        return bool(self.body.get("stream"))

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools declared in the request."""
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    def text(self) -> str:
        """All message contents of the request joined, for searching."""
        parts = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
            for call in message.get("tool_calls") or []:
                parts.append(call["function"]["arguments"])
        return "\n".join(parts)


@dataclass
class ScriptedOpenAIServer:
    """The server's state: its script, what it received, and its base URL once started."""

    script: list[dict[str, Any]]
    repeat_last: bool = False
    model_name: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    base_url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _served: int = 0

    def next_item(self) -> dict[str, Any] | None:
        with self._lock:
            if self._served < len(self.script):
                item = self.script[self._served]
            elif self.repeat_last and self.script:
                item = self.script[-1]
            else:
                item = None
            self._served += 1
            return item


def _usage(item: dict[str, Any]) -> dict[str, int] | None:
    if item.get("omit_usage"):
        return None
    usage = dict(item.get("usage") or {"prompt_tokens": 50, "completion_tokens": 20})
    usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    return usage


def _message(item: dict[str, Any], body: dict[str, Any], n: int) -> dict[str, Any]:
    if "tool_args" in item:
        name = item.get("tool") or body["tools"][0]["function"]["name"]
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(item["tool_args"])},
                }
            ],
        }
    return {"role": "assistant", "content": item.get("text", "")}


def _make_handler(state: ScriptedOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            self._send_raw(status, json.dumps(payload).encode(), "application/json")

        def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _trickle(self, item: dict[str, Any], content_type: str, byte: bytes) -> bool:
            """Send headers, then `byte` every `trickle_s`; False when the client left."""
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            deadline = time.monotonic() + float(item.get("trickle_for_s", 60.0))
            try:
                self.wfile.flush()
                while time.monotonic() < deadline:
                    if state.stopping.wait(float(item["trickle_s"])):
                        return False
                    self.wfile.write(byte)
                    self.wfile.flush()
            except OSError:  # the client gave up: what a deadline should do
                return False
            return True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            body = json.loads(raw or b"{}")
            state.requests.append(
                RecordedRequest(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            n = len(state.requests)
            if not self.path.endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            item = state.next_item()
            if item is None:
                exhausted = {"message": "script exhausted", "type": "server_error"}
                self._send_json(500, {"error": exhausted})
                return
            if "status" in item:
                self._send_json(
                    item["status"],
                    item.get("body")
                    or {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}},
                )
                return
            if "raw" in item:
                content_type = item.get("content_type", "application/json")
                self._send_raw(200, item["raw"].encode(), content_type)
                return
            model = state.model_name or body.get("model", "scripted")
            message = _message(item, body, n)
            finish = "tool_calls" if "tool_calls" in message else "stop"
            stream = bool(body.get("stream"))
            trickled = "trickle_s" in item
            if trickled:
                content_type = "text/event-stream" if stream else "application/json"
                if not self._trickle(item, content_type, b":\n\n" if stream else b" "):
                    return
            if stream:
                try:
                    self._stream(model, message, finish, _usage(item), n, item, trickled)
                except OSError:  # the client left, or the server is stopping
                    self.close_connection = True
                return
            answer = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
            usage = _usage(item)
            if usage is not None:
                answer["usage"] = usage
            if trickled:  # the headers are sent: the body follows the keep-alive bytes
                self.wfile.write(json.dumps(answer).encode())
                self.wfile.flush()
                return
            self._send_json(200, answer)

        def _stream(
            self,
            model: str,
            message: dict[str, Any],
            finish: str,
            usage: dict[str, int] | None,
            n: int,
            item: dict[str, Any],
            headers_sent: bool,
        ) -> None:
            if not headers_sent:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
            delay_s = float(item.get("chunk_delay_s", 0.0))
            base = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }

            def send(choices: list[dict[str, Any]], **extra: Any) -> None:
                if delay_s and state.stopping.wait(delay_s):
                    raise ConnectionAbortedError("the server is stopping")
                chunk = {**base, "choices": choices, **extra}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            if "tool_calls" in message:
                call = message["tool_calls"][0]
                args = call["function"]["arguments"]
                send(
                    [
                        {
                            "index": 0,
                            "delta": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {
                                            "name": call["function"]["name"],
                                            "arguments": "",
                                        },
                                    }
                                ],
                            },
                            "finish_reason": None,
                        }
                    ]
                )
                for start in range(0, len(args), 16):
                    piece = args[start : start + 16]
                    send(
                        [
                            {
                                "index": 0,
                                "delta": {
                                    "tool_calls": [{"index": 0, "function": {"arguments": piece}}]
                                },
                                "finish_reason": None,
                            }
                        ]
                    )
            else:
                text = message["content"] or ""
                first = {"role": "assistant", "content": ""}
                send([{"index": 0, "delta": first, "finish_reason": None}])
                for start in range(0, len(text), 8):
                    send(
                        [
                            {
                                "index": 0,
                                "delta": {"content": text[start : start + 8]},
                                "finish_reason": None,
                            }
                        ]
                    )
            send([{"index": 0, "delta": {}, "finish_reason": finish}])
            if usage is not None:
                send([], usage=usage)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


@contextmanager
def scripted_server(
    script: Sequence[dict[str, Any]],
    *,
    repeat_last: bool = False,
    model_name: str | None = None,
) -> Iterator[ScriptedOpenAIServer]:
    """Run a scripted OpenAI-compatible server on 127.0.0.1 (a free port) in a thread.

    Args:
        script: The answers, in order (see the module docs).
        repeat_last: Repeat the last item when the script runs out.
        model_name: The model name the server reports; `None` echoes the request's.

    Yields:
        The server state; `base_url` is `http://127.0.0.1:PORT/v1`.
    """
    state = ScriptedOpenAIServer(
        script=list(script), repeat_last=repeat_last, model_name=model_name
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, name="scripted-openai", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
