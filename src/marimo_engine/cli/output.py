"""Plain-text output helpers of the CLI: problems, and files written atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from marimo_engine.plans.problems import Problem

__all__ = ["format_problem", "print_problems", "silence_stream", "write_text_atomic"]


def format_problem(problem: Problem) -> str:
    """Return one line for a problem: where, what to change, and its code.

    Args:
        problem: A validation problem.

    Returns:
        For example `step 's3', field 'run_if': ... [unknown_reference]`, or
        `plan: ... [invalid_plan]` for a problem of the whole plan.
    """
    where = []
    if problem.step_id is not None:
        where.append(f"step {problem.step_id!r}")
    if problem.field is not None:
        where.append(f"field {problem.field!r}")
    place = ", ".join(where) if where else "plan"
    return f"{place}: {problem.message} [{problem.code.value}]"


def print_problems(
    problems: Sequence[Problem], *, source: str | None, file: TextIO | None = None
) -> None:
    """Print a one-line header and every problem, one per line, to stderr.

    Args:
        problems: The problems, in the order validation found them.
        source: Where the plan came from (a path), or `None`.
        file: The stream; `None` means `sys.stderr`.
    """
    stream = file or sys.stderr
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    where = f"{source} " if source else "the plan "
    print(f"error: {where}has {count} {noun}; nothing was run:", file=stream)
    for problem in problems:
        print(f"  {format_problem(problem)}", file=stream)


def silence_stream(stream: object) -> None:
    """Point `stream`'s file descriptor at `os.devnull`, after its reader went away.

    Python flushes `sys.stdout` at exit; with the reader of a pipe gone that
    flush would print "Exception ignored ... BrokenPipeError". A stream with
    no file descriptor (a `StringIO`) is left as it is.
    """
    try:
        fileno = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` under a temporary name, then rename it into place.

    A reader never sees a half-written file, and an existing file is
    replaced only once the new one is complete.

    Args:
        path: The destination; its folder must exist.
        text: The content, written as UTF-8.

    Returns:
        The destination path.

    Raises:
        OSError: The folder does not exist or is not writable.
    """
    destination = Path(path).expanduser()
    handle, temporary = tempfile.mkstemp(
        dir=destination.parent or Path("."), prefix=f".{destination.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
