"""The CLI's exit codes and error reporting, in one place for every command.

Exit codes (`ExitCode`): 0 success, 1 a run that ended in `FAILURE` (or an
error of ours that is not the input's fault), 2 bad input (an unreadable
file, invalid JSON, an invalid plan, an unknown `--tools` module, a bad
option or configuration), 3 a run that ended in `INTERVENTION_NEEDED`, 130
interrupted with Ctrl-C, 128 + N a run cancelled on signal N (143 for
SIGTERM, 129 for SIGHUP: `note_exit_signal`).

`main` runs every command through `run_handler`, so a command (`run`,
`live ...`, `agent`) returns a code or raises; it never prints its own
`error:` line for an exception.

Imports nothing heavy: `marimo-engine --help` loads this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any

__all__ = [
    "ExitCode",
    "InterruptNotice",
    "exit_code_for",
    "note_exit_signal",
    "print_error",
    "report_error",
    "run_handler",
    "selecting",
]


class ExitCode(IntEnum):
    """The process exit codes of `marimo-engine`."""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    INTERVENTION_NEEDED = 3
    INTERRUPTED = 130


_exit_signal: int | None = None
"""The signal (SIGTERM, SIGHUP) a command took as its Ctrl-C, if one came."""


def note_exit_signal(signum: int) -> None:
    """Record that `signum` asked the command to stop, as Ctrl-C does.

    The command then ends as interrupted, with exit code 128 + `signum` (the
    code a shell gives a process that signal ended; systemd and container
    runtimes count it as a clean stop) instead of 130.

    Args:
        signum: The signal's number.
    """
    global _exit_signal
    _exit_signal = signum


def _interrupted() -> int:
    """Print the interrupted line; the exit code: 130, or 128 + the signal noted."""
    if _exit_signal is None:
        print_error("interrupted")
        return ExitCode.INTERRUPTED
    import signal

    print_error(f"stopped by {signal.Signals(_exit_signal).name}")
    return 128 + _exit_signal


def exit_code_for(verdict: Any) -> ExitCode:
    """The exit code of a run's verdict.

    Args:
        verdict: A `Verdict`, its string value, or `None` (no run finished).

    Returns:
        `OK` for `SUCCESS`, `INTERVENTION_NEEDED` for `INTERVENTION_NEEDED`,
        `FAILURE` otherwise.
    """
    value = getattr(verdict, "value", verdict)
    if value == "SUCCESS":
        return ExitCode.OK
    if value == "INTERVENTION_NEEDED":
        return ExitCode.INTERVENTION_NEEDED
    return ExitCode.FAILURE


def print_error(message: str) -> None:
    """Print `error: MESSAGE` on stderr as one line (whitespace runs become one space)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


def report_error(
    exc: BaseException, *, debug: bool, reword: Callable[[str], str] | None = None
) -> ExitCode:
    """Present an exception as the CLI does and return its exit code.

    Args:
        exc: What a command raised.
        debug: Whether `--debug` was given (the traceback is printed first).
        reword: Rewrites a message written for Python callers for the
            command line (a command group's `reword_error` default, such as
            `cli.live.cli_wording`: `url=` becomes `--url`).

    Returns:
        `BAD_INPUT` for a `PlanValidationError` (its problems printed one per
        line), a `UsageError`, a `ModelConfigError` or a `LiveSelectionError`;
        `FAILURE` for any other `EngineError` (one line) and for an
        unexpected exception (one line naming its type, with a hint to use
        `--debug`).
    """
    import traceback

    from marimo_engine.errors import (
        EngineError,
        LiveSelectionError,
        ModelConfigError,
        PlanValidationError,
        UsageError,
    )

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, PlanValidationError):
        from marimo_engine.cli.output import print_problems

        print_problems(exc.problems, source=None)
        return ExitCode.BAD_INPUT
    message = " ".join(str(exc).split()) or type(exc).__name__
    if reword is not None:
        message = reword(message)
    if isinstance(exc, UsageError | LiveSelectionError | ModelConfigError):
        print_error(message)
        return ExitCode.BAD_INPUT
    if isinstance(exc, EngineError):
        print_error(message)
        return ExitCode.FAILURE
    hint = "" if debug else " (run again with --debug for the traceback)"
    print_error(f"unexpected {type(exc).__name__}: {message}{hint}")
    return ExitCode.FAILURE


@contextlib.contextmanager
def selecting() -> Iterator[None]:
    """Treat a server that cannot be reached, while finding what the options name, as bad input.

    Wrap the part of a command that finds or opens the server and session
    its options (`--url`, `--port`, `--session`) name: a connection refused
    there means the option names no running server (`BAD_INPUT`, as any
    option that matches nothing), while the same error later, once the
    command works on the session, is a failure of the run (`FAILURE`).

    Raises:
        LiveSelectionError: For a `LiveConnectionError` raised in the block
            (a kernel that ended, `LiveSessionEndedError`, passes unchanged).
    """
    from marimo_engine.errors import (
        LiveConnectionError,
        LiveSelectionError,
        LiveSessionEndedError,
    )

    try:
        yield
    except LiveSessionEndedError:
        raise
    except LiveConnectionError as exc:
        raise LiveSelectionError(str(exc)) from exc


def run_handler(handler: Callable[[Any], int], args: Any, *, debug: bool) -> int:
    """Run one command's handler and turn what it raises into an exit code.

    Args:
        handler: The command; returns an exit code.
        args: Its parsed arguments.
        debug: Whether `--debug` was given.

    Returns:
        The handler's code; `INTERRUPTED` after Ctrl-C (128 + the signal
        when `note_exit_signal` noted one); `FAILURE` when the
        reader of stdout went away (`marimo-engine ... | head`), quietly;
        else what `report_error` says (with the command group's
        `args.reword_error`, if it set one).
    """
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        code = _interrupted()
        if _busy_threads():
            # A second Ctrl-C while a blocking tool still runs in a worker
            # thread that is not a daemon: leave now instead of joining it at exit.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except BrokenPipeError:
        # Written past `main`'s guard (to a raw file descriptor, say): the same quiet end.
        from marimo_engine.cli.output import silence_stream

        silence_stream(sys.stdout)
        return ExitCode.FAILURE
    except Exception as exc:
        return report_error(exc, debug=debug, reword=getattr(args, "reword_error", None))


def _busy_threads() -> bool:
    main_thread = threading.main_thread()
    return any(t is not main_thread and not t.daemon for t in threading.enumerate())


class InterruptNotice:
    """Says at once that Ctrl-C was heard, then lets asyncio cancel the run.

    `asyncio.run` answers the first Ctrl-C by cancelling the run (running
    steps are cancelled, `FINISH` is still emitted), which can take as long
    as a blocking tool needs to return; a second Ctrl-C raises
    `KeyboardInterrupt`, and `main` then exits without waiting for worker
    threads. This wraps asyncio's handler to print one line on the first.
    Call `install()` from inside the run (asyncio's handler is in place then:
    the first event is a good moment) and `restore()` after it.

    SIGTERM and SIGHUP (`kill`, `docker stop`, systemd, a closed terminal)
    are taken as Ctrl-C too, when their action is still the default: the run
    is cancelled and ends with its `FINISH` (its journal says so) instead of
    the process ending mid-step; the exit code is then 128 + the signal
    (`note_exit_signal`). A second one quits at once.
    """

    def __init__(self) -> None:
        self._installed: Any = None
        self._taken: list[int] = []  # the exit signals this notice handles
        self._interrupts = 0

    def install(self) -> None:
        if self._installed is not None or threading.current_thread() is not threading.main_thread():
            return
        from marimo_engine.live.server import EXIT_SIGNALS

        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return

        def handler(signum: int, frame: Any) -> None:
            self._interrupts += 1
            if signum != signal.SIGINT:
                note_exit_signal(signum)
            if self._interrupts == 1:
                heard = "" if signum == signal.SIGINT else f"{signal.Signals(signum).name}: "
                print(
                    f"\n{heard}cancelling the run: waiting for running steps to stop "
                    "(press Ctrl-C again to quit at once)",
                    file=sys.stderr,
                    flush=True,
                )
            previous(signal.SIGINT, frame)

        signal.signal(signal.SIGINT, handler)
        for signum in EXIT_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, handler)
                self._taken.append(signum)
        self._installed = handler

    def restore(self) -> None:
        if self._installed is not None:
            if signal.getsignal(signal.SIGINT) is self._installed:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            for signum in self._taken:
                if signal.getsignal(signum) is self._installed:
                    signal.signal(signum, signal.SIG_DFL)
        self._installed = None
        self._taken = []
