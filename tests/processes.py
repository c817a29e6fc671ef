"""Start and stop the processes tests need, so that none outlives the test run.

Every process a test starts goes through `start_process` (or `run_process`,
or `started_process` for a `with` block):

- It runs in its own process group and session (`start_new_session=True`),
  so stopping it stops what it started too (a `marimo edit` server and its
  kernels, `uv run` and the command under it).
- It starts with the default disposition of SIGINT (the action a terminal's
  Ctrl-C has), whatever the test run inherited: a non-interactive shell
  starts its background children with SIGINT ignored, and a child that
  inherits that cannot be interrupted.
- It is stopped by its own group id (SIGTERM, then SIGKILL after a grace
  period) when the test is done with it, at the latest when the test ends
  (`stop_test_processes`; `outlive_test=True` for a session fixture's
  server) or when the test run ends: at interpreter exit (`atexit`), on
  SIGTERM or SIGHUP to the test run, and even when the test run dies
  without running any Python cleanup
  (`pytest-timeout` ends a hung run with `os._exit`; `kill -9`): a small
  watchdog process, in its own session, holds the other end of a pipe from
  the test run, notices the pipe close and stops every group still
  registered, and every process that carries the run's marker
  (`RUN_MARKER`) in its environment.

The marker is set in the test run's own environment when it starts
(`install_cleanup`), so every process the run starts inherits it, however
deep and in whatever session: a `marimo edit` server that a `marimo-engine`
command under test starts in a session of its own, and that server's
kernels. No test needs to know such a process exists for it to be stopped
when the run is killed.

Processes that a started process starts in a session of their own (a server
that `marimo-engine live open` launches) can be handed over with
`adopt_group`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "RUN_MARKER",
    "STOP_GRACE_S",
    "adopt_group",
    "install_cleanup",
    "release_group",
    "run_process",
    "start_process",
    "started_process",
    "stop_group",
    "stop_process",
    "stop_test_processes",
    "watch_headless_servers",
]

STOP_GRACE_S = 10.0
"""Seconds a process group has to exit after SIGTERM before it gets SIGKILL."""

RUN_MARKER = "MARIMO_ENGINE_TEST_RUN"
"""The environment variable naming the test run every process it starts descends from."""

_WATCHDOG = r"""
import os, signal, sys, time
marker = sys.argv[1].encode()  # NAME=TOKEN, as it appears in /proc/PID/environ
groups = set()
for line in sys.stdin:
    sign, pgid = line[0], int(line[1:])
    (groups.add if sign == "+" else groups.discard)(pgid)

def marked():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            pass  # gone meanwhile, or not ours to read
    return found

for number in (signal.SIGTERM, signal.SIGKILL):
    pids = marked()
    for pgid in groups:
        try:
            os.killpg(pgid, number)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, number)
        except OSError:
            pass
    if (groups or pids) and number == signal.SIGTERM:
        time.sleep(3)
"""

_lock = threading.RLock()  # a signal's cleanup may run on a thread that holds it
_groups: set[int] = set()
_test_groups: set[int] = set()
"""Groups to stop when the current test ends (all but those of session fixtures)."""
_watchdog: subprocess.Popen[bytes] | None = None
_handlers_installed = False


def _start_watchdog() -> subprocess.Popen[bytes]:
    """The watchdog of this run (started once): see the module docstring."""
    global _watchdog
    if _watchdog is None:
        # This run's own token, replacing one inherited from a test run that started it.
        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        os.environ[RUN_MARKER] = token
        _watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, f"{RUN_MARKER}={token}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or kill of our group does not reach it
        )
    return _watchdog


def _tell_watchdog(sign: str, pgid: int) -> None:
    watchdog = _start_watchdog()
    assert watchdog.stdin is not None
    with contextlib.suppress(OSError):
        watchdog.stdin.write(f"{sign}{pgid}\n".encode())
        watchdog.stdin.flush()


def _register(pgid: int, *, outlive_test: bool = False) -> None:
    with _lock:
        _install_handlers()
        _groups.add(pgid)
        if not outlive_test:
            _test_groups.add(pgid)
        _tell_watchdog("+", pgid)


def _unregister(pgid: int) -> None:
    with _lock:
        _test_groups.discard(pgid)
        if pgid in _groups:
            _groups.discard(pgid)
            _tell_watchdog("-", pgid)


def stop_test_processes() -> None:
    """Stop every group started during the current test that is still running.

    Called when each test ends (`tests/conftest.py`), so a test needs no
    `try`/`finally` of its own: a process it started, or a server the
    library started for it, never outlives it.
    """
    with _lock:
        groups = list(_test_groups)
    for pgid in groups:
        stop_group(pgid)


def _kill_group(pgid: int, number: int) -> bool:
    """Send a signal to a group; `False` when the group is gone."""
    try:
        os.killpg(pgid, number)
    except ProcessLookupError:
        return False
    except PermissionError:  # a zombie leader on some systems; treat as gone
        return False
    return True


def stop_group(pgid: int, *, process: subprocess.Popen[Any] | None = None) -> None:
    """Stop a process group: SIGTERM, up to `STOP_GRACE_S` seconds, then SIGKILL.

    Args:
        pgid: The group id (the pid of a process started in a new session).
        process: The group leader's `Popen`, when we started it (reaped here).
    """
    if _kill_group(pgid, signal.SIGTERM):
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            leader_running = process is not None and process.poll() is None
            # Once the leader is reaped, the rest of its group may still run.
            if not leader_running and not _kill_group(pgid, 0):
                break
            time.sleep(0.05)
        _kill_group(pgid, signal.SIGKILL)  # whatever is left of the group
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
    _unregister(pgid)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Stop a process from `start_process` and its whole group, and close its pipes.

    Safe to call twice; read what you need from its pipes before.
    """
    stop_group(process.pid, process=process)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def adopt_group(pgid: int) -> None:
    """Make sure a process group that a started process launched is stopped with the rest."""
    _register(pgid)


def keep_past_test(pgid: int) -> None:
    """Let an adopted group outlive the test that started it.

    For a fixture shared by several tests (module or session scope), which
    stops the group itself; it is still stopped when the run ends or is killed.
    """
    with _lock:
        _test_groups.discard(pgid)


def release_group(pgid: int) -> None:
    """Forget an adopted group once its owner has stopped it (its id may be reused later)."""
    _unregister(pgid)


class _RegisteringSubprocess:
    """`subprocess` with a `Popen` that adopts every new session it starts."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(*args, **kwargs)
        if kwargs.get("start_new_session"):
            adopt_group(process.pid)
        return process


def watch_headless_servers() -> None:
    """Register the `marimo edit` servers that the library itself starts (`HeadlessServer`).

    A test that opens a session on a notebook (`open_session(path)`) starts
    a server through the library, not through `start_process`; its process
    group is adopted the moment it starts and released when the library
    has stopped it, so a run killed during a test still stops it.
    """
    from marimo_engine.live import server

    if isinstance(server.subprocess, _RegisteringSubprocess):
        return
    server.subprocess = _RegisteringSubprocess()  # type: ignore[assignment]
    stop = server.HeadlessServer.stop

    def stop_and_release(self: server.HeadlessServer, timeout_s: float = 10.0) -> None:
        pid = self.pid
        stop(self, timeout_s)
        if pid is not None:
            release_group(pid)

    server.HeadlessServer.stop = stop_and_release  # type: ignore[method-assign]


_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
"""Set SIGINT to its default action, then become the command (same pid, same group).

An ignored signal stays ignored across `exec`, so this is how the child gets
the disposition a Ctrl-C test needs whatever the test run inherited;
`preexec_fn` would do the same but may deadlock a parent with threads."""


def start_process(
    command: Sequence[str], *, outlive_test: bool = False, **popen_kwargs: Any
) -> subprocess.Popen[Any]:
    """Start a process for a test, registered to be stopped whatever happens to the run.

    Args:
        command: The program and its arguments.
        outlive_test: Keep it running after the test that started it ends
            (for session-scoped fixtures, which stop it themselves); it is
            still stopped when the run ends.
        **popen_kwargs: As for `subprocess.Popen`, but `start_new_session`
            is set here and `preexec_fn` is not allowed. The command starts
            with SIGINT at its default action (`_SIGINT_DEFAULT`).

    Returns:
        The `Popen`. Stop it with `stop_process` (or use `started_process`).
    """
    if "start_new_session" in popen_kwargs or "preexec_fn" in popen_kwargs:
        raise TypeError("start_process sets start_new_session itself; it takes no preexec_fn")
    with _lock:
        _install_handlers()
    process = subprocess.Popen(
        [sys.executable, "-c", _SIGINT_DEFAULT, *command],
        start_new_session=True,
        **popen_kwargs,
    )
    _register(process.pid, outlive_test=outlive_test)
    return process


@contextlib.contextmanager
def started_process(command: Sequence[str], **popen_kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """`start_process` in a `with` block: the process group is stopped when the block ends."""
    process = start_process(command, **popen_kwargs)
    try:
        yield process
    finally:
        stop_process(process)


def run_process(
    command: Sequence[str],
    *,
    timeout_s: float,
    input: str | None = None,
    text: bool = True,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run a command to its end, like `subprocess.run(capture_output=True)`.

    Args:
        command: The program and its arguments.
        timeout_s: Seconds to wait for it; past that the group is stopped
            and `subprocess.TimeoutExpired` raised. Be generous: the test
            machine may be loaded.
        input: Text for its standard input (else it reads nothing).
        text: Decode the output as text.
        **popen_kwargs: As for `subprocess.Popen` (`env`, `cwd`, ...).

    Returns:
        The `CompletedProcess` with `returncode`, `stdout` and `stderr`.
    """
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    with started_process(
        command,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        **popen_kwargs,
    ) as process:
        stdout, stderr = process.communicate(input, timeout=timeout_s)
        return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)


# --- cleanup when the run ends ----------------------------------------------------


def _stop_all() -> None:
    with _lock:
        groups = list(_groups)
    for pgid in groups:
        stop_group(pgid)


_stopping = False


def _on_signal(number: int, frame: Any) -> None:
    global _stopping
    if _stopping:  # a second signal during the first one's cleanup: that cleanup goes on
        return
    _stopping = True
    _stop_all()
    previous = _previous_handlers.get(number)
    if callable(previous):
        previous(number, frame)
    else:  # the default action: die of the same signal
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)


_previous_handlers: dict[int, Any] = {}


def install_cleanup() -> None:
    """Install the exit and signal cleanup now (call it from the main thread, early).

    Also marks the run (`RUN_MARKER` in `os.environ`, inherited by every
    process started from now on) and starts its watchdog, so that even a
    process started without this module is stopped when the run is killed.
    """
    with _lock:
        _install_handlers()
        _start_watchdog()


def _install_handlers() -> None:
    """Install the exit and signal cleanup once (from the main thread, when possible)."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; the watchdog covers it
    for number in (signal.SIGTERM, signal.SIGHUP):
        _previous_handlers[number] = signal.getsignal(number)
        signal.signal(number, _on_signal)
