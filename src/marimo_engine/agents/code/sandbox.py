"""`--sandbox`: the kernel that runs generated code runs under bubblewrap, with OS limits.

The whole `marimo edit` server (and so its kernel) runs in a bubblewrap
sandbox (Debian package `bubblewrap`, `/usr/bin/bwrap`):

- no network: a network namespace of its own, with only its loopback;
- a read-only view of the system (`--ro-bind / /`), a private `/tmp`,
  `/proc` and `/dev`; `HOME` and marimo's state and cache folders on tmpfs;
- writes only in the working directory (the notebook's folder, bound
  read-write);
- limits set with `prlimit` (setrlimit): address space (memory), CPU
  seconds and processes. Linux does not apply the process limit to root's
  real user id, so it binds only when the agent runs as another user.

The person's browser and the live bridge reach the server through a Unix
socket in a folder bound into the sandbox: a relay inside forwards it to
the server's port, and `TcpToUnixRelay` outside forwards a free loopback
port of the host to it.

A Python-level filter is not a sandbox (smolagents CVE-2025-5120 and
CVE-2025-9959); the policy in `policy.py` is a review aid, this is the
isolation. A person's own session is never sandboxed by us.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.live.server import ServerProcess
    from marimo_engine.live.session import LiveSession

__all__ = ["BWRAP", "SandboxLimits", "SandboxedServer", "open_sandboxed_session"]

BWRAP = "bwrap"
"""The bubblewrap program (Debian: `apt-get install bubblewrap`)."""

_INNER_PORT = 2718


@dataclass(frozen=True)
class SandboxLimits:
    """OS limits of the sandboxed server and kernel (each process; setrlimit).

    Attributes:
        memory_bytes: Address space per process (`RLIMIT_AS`), bytes.
        cpu_s: CPU seconds per process (`RLIMIT_CPU`); past it the kernel is killed.
        processes: Processes of the user (`RLIMIT_NPROC`; not applied to root).
        open_files: Open files per process (`RLIMIT_NOFILE`).
    """

    memory_bytes: int = 4 * 1024**3
    cpu_s: int = 1800
    processes: int = 256
    open_files: int = 4096

    def describe(self) -> str:
        """The limits in words, for error reports."""
        return (
            f"memory {self.memory_bytes / 1024**3:.1f} GiB of address space per process, "
            f"{self.cpu_s} CPU seconds per process, {self.processes} processes, no network, "
            "writes only in the working directory"
        )


def _bwrap() -> str:
    found = shutil.which(BWRAP)
    if found is None:
        raise UsageError(
            "--sandbox needs bubblewrap ('bwrap'), which is not installed: "
            "apt-get install bubblewrap (Debian/Ubuntu), or run without --sandbox."
        )
    return found


def _interpreter_paths_under_tmp() -> list[Path]:
    """The folders this Python runs from that lie under `/tmp`, outermost only.

    The sandbox replaces `/tmp` with an empty tmpfs, so a virtual environment
    or a source checkout under `/tmp` (a CI clone, say) would vanish inside
    it and the interpreter could not start. These are bound back read-only:
    `sys.prefix`, `sys.base_prefix`, the interpreter's folder and every
    folder on `sys.path` (an editable install's source among them).
    """
    tmp = Path("/tmp")
    found: set[Path] = set()
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, Path(sys.executable).parent]
    for entry in [*candidates, *sys.path]:
        if not entry:
            continue
        path = Path(entry).resolve()
        if path.is_dir() and path != tmp and path.is_relative_to(tmp):
            found.add(path)
    # Outermost only: binding a folder brings what is below it.
    return sorted(p for p in found if not any(p != q and p.is_relative_to(q) for q in found))


class SandboxedServer:
    """A `marimo edit --headless` server running under bubblewrap, reached through a relay.

    Has the parts of `HeadlessServer` that `LiveSession` uses: `url`, `pid`, `stop()`.

    Attributes:
        notebook: The notebook path.
        workdir: The only folder the sandbox may write (the notebook's folder by default).
        limits: The OS limits.
        read_only: Files or folders bound read-only at their own path (data
            files under `/tmp`, which the sandbox otherwise replaces with its own).
    """

    def __init__(
        self,
        notebook: str | os.PathLike[str],
        *,
        workdir: str | os.PathLike[str] | None = None,
        limits: SandboxLimits | None = None,
        startup_timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        read_only: tuple[str | os.PathLike[str], ...] = (),
    ) -> None:
        self.notebook = Path(notebook).expanduser().resolve()
        self.read_only = tuple(Path(p).expanduser().resolve() for p in read_only)
        self.workdir = Path(workdir).resolve() if workdir else self.notebook.parent
        self.limits = limits or SandboxLimits()
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self._server: ServerProcess | None = None
        self._relay: Any = None
        self._socket_dir: str | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """The host-side URL of the server (the relay's loopback port)."""
        if self._relay is None:
            raise UsageError("The sandboxed server is not started.")
        return f"http://127.0.0.1:{self._relay.port}"

    @property
    def pid(self) -> int | None:
        """The process id of bubblewrap (the sandbox's root), or `None`."""
        return self._server.process.pid if self._server is not None else None

    def command(self, socket_path: str) -> list[str]:
        """The command line: bwrap, prlimit, the relay, then `marimo edit`."""
        limits = self.limits
        marimo = [
            sys.executable, "-m", "marimo", "edit", "--headless", "--no-token",
            "--skip-update-check", "--host", "127.0.0.1", "--port", str(_INNER_PORT),
            str(self.notebook),
        ]  # fmt: skip
        inner = [
            "prlimit", f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_s}",
            f"--nproc={limits.processes}", f"--nofile={limits.open_files}", "--",
            sys.executable, "-m", "marimo_engine.agents.code._relay", socket_path,
            str(_INNER_PORT), "--", *marimo,
        ]  # fmt: skip
        socket_dir = str(Path(socket_path).parent)
        extra: list[str] = []
        for path in (*_interpreter_paths_under_tmp(), *self.read_only):
            extra += ["--ro-bind", str(path), str(path)]
        return [
            _bwrap(), "--die-with-parent", "--unshare-all", "--new-session",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            *extra,
            "--bind", str(self.workdir), str(self.workdir),
            "--bind", socket_dir, socket_dir,
            "--setenv", "HOME", "/tmp/home", "--setenv", "XDG_STATE_HOME", "/tmp/state",
            "--setenv", "XDG_CACHE_HOME", "/tmp/cache", "--setenv", "XDG_CONFIG_HOME",
            "/tmp/config", "--setenv", "TMPDIR", "/tmp",
            "--chdir", str(self.workdir), "--", *inner,
        ]  # fmt: skip

    def start(self) -> SandboxedServer:
        """Start the sandbox and the relay; wait until marimo answers `/health`.

        Raises:
            UsageError: bubblewrap is not installed, or the notebook's folder is missing.
            LiveConnectionError: The server did not answer within `startup_timeout_s`;
                the message ends with its log. The sandbox is stopped whenever
                `start()` raises, Ctrl-C included; while it runs, SIGTERM or
                SIGHUP to this process stops it first (`track_server`).
        """
        from marimo_engine.agents.code._relay import TcpToUnixRelay
        from marimo_engine.live.server import ServerProcess, track_server

        if not self.workdir.is_dir():
            raise UsageError(f"The working directory {str(self.workdir)!r} does not exist.")
        self._socket_dir = tempfile.mkdtemp(prefix="marimo-engine-sandbox-")
        socket_path = os.path.join(self._socket_dir, "server.sock")
        try:
            self._server = ServerProcess(
                self.command(socket_path), env=self.env, log_prefix="marimo-engine-sandbox-"
            )
        except BaseException:
            self.stop()
            raise
        self.log_path = self._server.log_path
        track_server(self)
        try:
            self._relay = TcpToUnixRelay(socket_path).start()
            self._wait_until_healthy()
        except BaseException:  # Ctrl-C during start-up included: no sandbox left behind
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        """Poll `/health` until it answers 200; raise `LiveConnectionError` as `start()` says."""
        from marimo_engine.live.server import wait_until_healthy

        assert self._server is not None
        wait_until_healthy(
            self._server.process,
            self.url,
            self.startup_timeout_s,
            what="the sandboxed marimo server",
            log_path=self.log_path,
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the sandbox's process group, the relay and remove temporary files. Idempotent."""
        from marimo_engine.live.server import untrack_server

        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout_s)
        untrack_server(self)
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def open_sandboxed_session(
    notebook: str | os.PathLike[str],
    *,
    workdir: str | os.PathLike[str] | None = None,
    limits: SandboxLimits | None = None,
    startup_timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
    read_only: tuple[str | os.PathLike[str], ...] = (),
) -> LiveSession:
    """Open a headless live session whose server and kernel run in the sandbox.

    Args:
        notebook: The notebook path (created if missing); its folder is the
            working directory unless `workdir` is given.
        workdir: The one folder the sandbox may write.
        limits: Memory, CPU-time and process limits.
        startup_timeout_s: Seconds to wait for the server and the kernel.
        env: Environment of the sandbox; `None` inherits ours.
        read_only: Data files or folders to bind read-only (needed for paths
            under `/tmp`; the rest of the system is visible read-only anyway).

    Returns:
        A `LiveSession`; closing it stops the sandbox.

    Raises:
        UsageError: bubblewrap is missing.
        LiveConnectionError: The sandboxed server did not start.
    """
    from marimo_engine.live.session import open_session

    server = SandboxedServer(
        notebook,
        workdir=workdir,
        limits=limits,
        startup_timeout_s=startup_timeout_s,
        env=env,
        read_only=read_only,
    ).start()
    try:
        live = open_session(server.notebook, url=server.url, startup_timeout_s=startup_timeout_s)
    except BaseException:
        server.stop()
        raise
    live.server = server  # type: ignore[assignment]  # LiveSession.close() stops it
    return live
