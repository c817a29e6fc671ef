"""`HeadlessServer`: a `marimo edit --headless` process on a free loopback port.

The process runs in its own process group (marimo starts kernel
subprocesses), so that `stop()` ends all of it, by the server's process id.

A server in a group of its own does not get the signals sent to ours, and
the default action of SIGTERM and SIGHUP ends a process without running its
`finally` blocks, so a process killed that way would leave its servers
running. While a server runs, `track_server` makes those signals stop it
first (`_on_exit_signal`); Ctrl-C raises `KeyboardInterrupt`, whose unwinding
stops it through the context managers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from marimo_engine.errors import LiveConnectionError, UsageError
from marimo_engine.live import _http

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "EXIT_SIGNALS",
    "HeadlessServer",
    "ServerProcess",
    "free_port",
    "log_tail",
    "stop_process_group",
    "track_server",
    "untrack_server",
]

EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals whose default action ends the process at once: `kill`, `docker stop`,
systemd and CI runners send SIGTERM, a closed terminal SIGHUP."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class HeadlessServer:
    """A `marimo edit --headless` process serving one notebook on a loopback port.

    The process runs in its own process group; `stop()` ends the whole group
    (marimo starts kernel subprocesses). Use it as a context manager. While
    it runs, SIGTERM or SIGHUP to this process stops it first (`track_server`).

    Attributes:
        notebook: The notebook path (created by marimo if missing).
        host: The host it listens on.
        port: The TCP port (chosen free when not given).
        token: The access token, or `None` for `--no-token` (then the server
            registers itself in marimo's registry).
        log_path: File collecting the server's stdout and stderr.
    """

    def __init__(
        self,
        notebook: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        token: str | None = None,
        session_ttl_s: int | None = None,
        startup_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        """Describe the server; nothing starts until `start()`.

        Args:
            notebook: Path of the notebook `.py` file.
            port: TCP port; `None` picks a free one.
            host: A loopback host (`127.0.0.1`, `::1`, `localhost`).
            token: Access token to require; `None` starts with `--no-token`.
            session_ttl_s: Seconds marimo keeps a session after its last
                websocket closes; `None` keeps marimo's default (120 s).
            startup_timeout_s: Seconds `start()` waits for `/health`.
            env: Environment of the process; `None` inherits ours.

        Raises:
            UsageError: `host` is not loopback.
        """
        if not _http.is_loopback_host(host):
            raise UsageError(f"HeadlessServer listens on loopback only; got host {host!r}.")
        self.notebook = Path(notebook).expanduser().resolve()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.token = token
        self.session_ttl_s = session_ttl_s
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.log_path: Path | None = None
        self._server: ServerProcess | None = None

    @property
    def url(self) -> str:
        """The server's root URL, such as `"http://127.0.0.1:40123"`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process id, or `None` when not running."""
        return self._server.process.pid if self._server is not None else None

    @property
    def is_running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._server is not None and self._server.process.poll() is None

    def command(self) -> list[str]:
        """Return the command line that `start()` runs."""
        cmd = [
            sys.executable, "-m", "marimo", "edit", "--headless", "--skip-update-check",
            "--host", self.host, "--port", str(self.port),
        ]  # fmt: skip
        cmd += ["--token-password-file", "-"] if self.token else ["--no-token"]
        if self.session_ttl_s is not None:
            cmd += ["--session-ttl", str(int(self.session_ttl_s))]
        cmd.append(str(self.notebook))
        return cmd

    def start(self) -> HeadlessServer:
        """Start the process and wait until `/health` answers.

        Returns:
            `self`.

        Raises:
            UsageError: Already started.
            LiveConnectionError: The process exited or did not answer within
                `startup_timeout_s`; the message ends with its log's last lines.
                The process is stopped whenever `start()` raises, Ctrl-C included.
        """
        if self._server is not None:
            raise UsageError("This HeadlessServer was already started; make a new one.")
        self._server = ServerProcess(
            self.command(),
            env=self.env,
            log_prefix="marimo-engine-server-",
            stdin_data=self.token.encode() if self.token else None,
        )
        self.log_path = self._server.log_path
        track_server(self)
        try:
            self._wait_until_healthy()
        except BaseException:  # Ctrl-C during start-up included: no server left behind
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        """Poll `/health` until it answers 200; raise `LiveConnectionError` as `start()` says."""
        assert self._server is not None
        wait_until_healthy(
            self._server.process,
            self.url,
            self.startup_timeout_s,
            what=f"marimo edit serving {self.notebook}",
            log_path=self.log_path,
        )

    def log_tail(self, max_chars: int = 800) -> str:
        """Return the last `max_chars` characters of the server log, on one line."""
        return log_tail(self.log_path, max_chars)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after `timeout_s` seconds.

        Safe to call twice. The log file is removed.
        """
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout_s)
        untrack_server(self)

    def __enter__(self) -> HeadlessServer:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "_server", None) is not None and self.is_running:
            warnings.warn(
                f"HeadlessServer on port {self.port} was not stopped; stopping it now. "
                "Use it as a context manager or call stop().",
                ResourceWarning,
                stacklevel=1,
            )
            self.stop()


class ServerProcess:
    """A server's process in its own process group, its output in a temporary log file.

    What every server this package starts has in common (`HeadlessServer`,
    the code agent's `SandboxedServer`): the process starts at once, as the
    leader of a new process group, with stdout and stderr in a log file;
    `stop()` ends the whole group and removes the log.

    Attributes:
        process: The group's leader.
        log_path: The log file (stdout and stderr together).
    """

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None,
        log_prefix: str,
        stdin_data: bytes | None = None,
    ) -> None:
        """Start the process.

        Args:
            command: The command line.
            env: Its environment; `None` inherits ours.
            log_prefix: The log file's name prefix (in the temporary folder).
            stdin_data: Written to its stdin, which is then closed (a token);
                `None` gives it no stdin.

        Raises:
            OSError: The command could not be started (the log is removed).
        """
        fd, log_name = tempfile.mkstemp(prefix=log_prefix, suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
        self._log_file: Any = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            self._close_log()
            raise
        if stdin_data is not None and self.process.stdin is not None:
            try:
                self.process.stdin.write(stdin_data)
                self.process.stdin.close()
            except BaseException:
                self.stop()
                raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the process group (`stop_process_group`) and remove the log. Idempotent."""
        stop_process_group(self.process, timeout_s)
        self._close_log()

    def log_tail(self, max_chars: int = 800) -> str:
        """The last `max_chars` characters of the log on one line (`log_tail`)."""
        return log_tail(self.log_path, max_chars)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def stop_process_group(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """Stop a process started with `start_new_session=True`, and everything in its group.

    SIGTERM to the group, SIGKILL after `timeout_s` seconds, then SIGKILL to
    the group again so that no child (a kernel) outlives the leader.

    Args:
        process: The group's leader.
        timeout_s: Seconds to wait after each signal.
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class _Stoppable(Protocol):
    """A server this process started: `stop()` ends its process group and is idempotent."""

    def stop(self, timeout_s: float = 10.0) -> None: ...


_tracked: dict[int, _Stoppable] = {}
"""The servers to stop on an exit signal, by `id()`: started and not yet stopped."""
_tracked_lock = threading.RLock()  # re-entrant: the handler may interrupt its holder


def track_server(server: _Stoppable) -> None:
    """Stop `server` if this process gets one of `EXIT_SIGNALS` before `untrack_server`.

    Call it right after the server's process starts (`HeadlessServer.start`
    and the code agent's `SandboxedServer` do). From the main thread, a
    signal whose action is still the default gets `_on_exit_signal` as its
    handler, until the last tracked server is untracked. A signal the
    program handles itself (a Python handler, or ignored) is left to it, as
    everything is when the first server starts on another thread (Python
    sets handlers from the main thread only): such a program stops its
    servers itself (`marimo-engine mcp` and `live open` do).

    Args:
        server: Any object whose `stop()` ends its process group.
    """
    with _tracked_lock:
        _tracked[id(server)] = server
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_SIGNALS:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    signal.signal(signum, _on_exit_signal)


def untrack_server(server: _Stoppable) -> None:
    """Forget a stopped server; after the last one the signals get their default action back."""
    with _tracked_lock:
        _tracked.pop(id(server), None)
        if _tracked or threading.current_thread() is not threading.main_thread():
            return
        for signum in EXIT_SIGNALS:
            if signal.getsignal(signum) is _on_exit_signal:
                signal.signal(signum, signal.SIG_DFL)


def _on_exit_signal(signum: int, frame: object) -> None:
    """Stop every tracked server, then end the process by `signum`, as its default action does.

    The exit status is the signal's (a shell shows 128 + `signum`).
    """
    with _tracked_lock:
        servers = list(_tracked.values())
        for server in servers:
            with contextlib.suppress(Exception):  # the next one must still be stopped
                server.stop()
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def wait_until_healthy(
    process: subprocess.Popen[Any],
    url: str,
    timeout_s: float,
    *,
    what: str,
    log_path: Path | None,
) -> None:
    """Poll a marimo server's `/health` until it answers 200 (our servers' start-up wait).

    Args:
        process: The server's process.
        url: The server's base URL (`http://127.0.0.1:PORT`).
        timeout_s: Seconds to wait at most.
        what: What the server is, for the messages ("marimo edit serving nb.py").
        log_path: The server's log, whose tail the messages quote.

    Raises:
        LiveConnectionError: The process exited first, or the server did not
            answer within `timeout_s`; the message quotes the log's tail.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise LiveConnectionError(
                f"{what} exited with code {process.returncode} before answering on {url}. "
                f"Its log ends: {log_tail(log_path)}"
            )
        try:
            if _http.stdlib_request("GET", f"{url}/health", timeout_s=2.0)[0] == 200:
                return
        except LiveConnectionError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise LiveConnectionError(
                f"No answer from {what} at {url} after {timeout_s} s; raise "
                f"startup_timeout_s on a busy machine. Its log ends: {log_tail(log_path)}"
            )
        time.sleep(0.05)  # short and fixed: every poll late is start-up time lost


def log_tail(path: Path | None, max_chars: int = 800) -> str:
    """The last `max_chars` characters of a log file on one line (`" | "` between lines)."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace")[-max_chars:]
    return " | ".join(line.strip() for line in text.splitlines() if line.strip()) or "(empty)"
