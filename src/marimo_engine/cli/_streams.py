"""The standard streams of a CLI command: quiet when the reader goes away, a debug log.

`cli/main.py` wraps every command in both context managers, so that each
command gets the same behaviour without handling it itself.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from marimo_engine.cli.output import silence_stream

__all__ = ["debug_log_to_stderr", "quiet_when_reader_gone"]

LOGGER = "marimo_engine"
"""The logger whose records `--debug` prints (the engine logs a failing tool's traceback there)."""


class ReaderGoneGuard:
    """A text stream that goes quiet once its reader has gone away.

    `marimo-engine live cells | head -1`: `head` exits, the next write to
    stdout raises `BrokenPipeError`. Like other Unix tools the command must
    stop complaining, whichever command it is and whatever catches
    exceptions inside it: from then on this stream drops its writes and its
    file descriptor points at `os.devnull` (so that Python's flush at exit
    is quiet too), and the command ends normally with its own exit code.

    Args:
        stream: The stream to guard; every other attribute is its own.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        """Write `text`; once the reader is gone, drop it. Returns `len(text)` then."""
        if not self.reader_gone:
            try:
                return int(self.stream.write(text))
            except BrokenPipeError:
                self._gone()
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each line of `lines`."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush, unless the reader is gone."""
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.reader_gone = True
        silence_stream(self.stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def quiet_when_reader_gone() -> Iterator[None]:
    """Guard `sys.stdout` and `sys.stderr` with `ReaderGoneGuard` for the block.

    The streams are put back afterwards, unless someone else replaced them
    meanwhile (a test harness, say).
    """
    previous = (sys.stdout, sys.stderr)
    sys.stdout = ReaderGoneGuard(previous[0])  # type: ignore[assignment]
    sys.stderr = ReaderGoneGuard(previous[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        for name, stream in zip(("stdout", "stderr"), previous, strict=True):
            current = getattr(sys, name)
            if isinstance(current, ReaderGoneGuard) and current.stream is stream:
                setattr(sys, name, stream)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records to whatever `sys.stderr` is when they come (rich's live view swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def debug_log_to_stderr(*, enabled: bool) -> Iterator[None]:
    """With `enabled` (`--debug`), print the `marimo_engine` debug log to stderr in the block.

    Each record is one `debug: LOGGER: message` line, followed by the
    traceback when the record carries one (a failing tool's). The logger's
    level and handlers are as before afterwards.
    """
    if not enabled:
        yield
        return
    logger = logging.getLogger(LOGGER)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
