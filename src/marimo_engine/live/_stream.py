"""Reading `/api/kernel/execute`'s event stream within a memory bound.

A kernel may print without limit; the client keeps the tail of each channel
(`Tail`) and reads lines with a cap (`aiter_capped_lines`), so that 50 MB of
output costs a bounded amount of memory. A console event whose line is over
the cap keeps the tail of its text (`recover_console_tail`), and the count
of dropped characters is reported.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator

from marimo_engine.live.protocol import SSEEvent, SSEParser

__all__ = ["Tail", "aiter_capped_lines", "aiter_sse", "recover_console_tail"]


class Tail:
    """The last `max_chars` characters of a text written in pieces, and how many were dropped.

    Attributes:
        max_chars: Characters kept at most.
        dropped_chars: Characters dropped from the start so far.
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.dropped_chars = 0
        self._parts: deque[str] = deque()
        self._size = 0

    def add(self, text: str, *, dropped_before: int = 0) -> None:
        """Append `text`; `dropped_before` counts characters lost before it (an over-long event)."""
        self.dropped_chars += dropped_before
        if len(text) > self.max_chars:
            self.dropped_chars += len(text) - self.max_chars
            text = text[-self.max_chars :] if self.max_chars else ""
        self._parts.append(text)
        self._size += len(text)
        while self._size > self.max_chars and self._parts:
            excess = self._size - self.max_chars
            head = self._parts[0]
            if len(head) <= excess:
                self._parts.popleft()
                self._size -= len(head)
                self.dropped_chars += len(head)
            else:
                self._parts[0] = head[excess:]
                self._size -= excess
                self.dropped_chars += excess

    def text(self) -> str:
        """The kept text."""
        return "".join(self._parts)


async def aiter_capped_lines(
    chunks: AsyncIterator[bytes], max_line_bytes: int
) -> AsyncIterator[tuple[str, int]]:
    """Split a byte stream into lines, keeping at most the last `max_line_bytes` of each.

    Yields:
        `(line, dropped_bytes)`: the line without its ending (`\\n`, `\\r\\n`),
        decoded as UTF-8, and how many bytes of its start were dropped.
    """
    buffer = bytearray()
    dropped = 0
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            buffer += piece
            if len(buffer) > max_line_bytes:
                excess = len(buffer) - max_line_bytes
                del buffer[:excess]
                dropped += excess
            if end < 0:
                break
            yield bytes(buffer).rstrip(b"\r").decode("utf-8", errors="replace"), dropped
            buffer.clear()
            dropped = 0
            start = end + 1
    if buffer or dropped:
        yield bytes(buffer).rstrip(b"\r").decode("utf-8", errors="replace"), dropped


async def aiter_sse(lines: AsyncIterator[tuple[str, int]]) -> AsyncIterator[tuple[SSEEvent, int]]:
    """Group capped lines into server-sent events, with `protocol.SSEParser`.

    Yields:
        `(event, dropped_bytes)`: the event, and bytes dropped from its data lines.
    """
    parser = SSEParser()
    async for line, cut in lines:
        dropped = parser.dropped + cut
        if (event := parser.feed(line, cut)) is not None:
            parser.dropped = 0
            yield event, dropped
    if (event := parser.feed(None)) is not None:
        yield event, parser.dropped


def recover_console_tail(data: str) -> str:
    """Return the text at the end of a cut console event's JSON (`...tail of text"}`).

    marimo writes console events as `{"data": "<JSON string>"}` (ASCII, escaped).
    The cut may fall inside an escape sequence, so a few starting offsets are
    tried; at worst one character at the cut is misread.

    Returns:
        The decoded tail, or `""` when it cannot be read.
    """
    body = data.rstrip()
    if not body.endswith('"}'):
        return ""
    body = body[:-2]
    for skip in range(7):
        try:
            value = json.loads('"' + body[skip:] + '"')
        except json.JSONDecodeError:
            continue
        return str(value)
    return ""
