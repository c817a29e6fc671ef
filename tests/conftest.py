"""Shared pytest configuration.

- anyio runs async tests on asyncio.
- Hypothesis runs bounded work with no per-example deadline (`suite`
  profile): a loaded 2-core machine can be many times slower than a
  developer's, and a deadline would turn that into flaky failures. Every
  property test also states its own `max_examples` and bounds its input
  sizes, so that its work is fixed, far inside the per-test timeout.
- Processes that tests start are stopped whatever ends the run
  (`tests/processes.py`); its exit and signal cleanup is installed here,
  from the main thread, before any test runs.
- A test that starts a subprocess or a server (a socket that listens) must
  be marked `integration` (`uv run pytest -m "not integration"` skips them):
  an audit hook sees every process start and every `listen`, and a test
  that is not marked fails with a message saying so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings

from tests import processes

settings.register_profile(
    "suite",
    deadline=None,
    max_examples=100,
    database=None,  # no replay of examples saved by another run: the same work every run
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("suite")

# `marimo-engine run` keeps a run journal by default: never in the user's
# own state directory during tests (subprocesses inherit this too).
if "MARIMO_ENGINE_JOURNAL" not in os.environ:
    os.environ["MARIMO_ENGINE_JOURNAL"] = os.path.join(
        tempfile.mkdtemp(prefix="marimo-engine-tests-"), "journal.sqlite3"
    )

_AUDITED = {
    "subprocess.Popen": "starts a subprocess",
    "os.posix_spawn": "starts a subprocess",
    "os.spawn": "starts a subprocess",
    "os.system": "starts a subprocess",
    "os.fork": "forks a process",
    "os.forkpty": "forks a process",
    "socket.listen": "starts a server (a socket that listens)",
}


class _Audit:
    """What the current unmarked test did that only integration tests may do."""

    active = False
    seen: ClassVar[list[str]] = []

    @classmethod
    def hook(cls, event: str, args: tuple[object, ...]) -> None:
        if cls.active and event in _AUDITED:
            cls.seen.append(_AUDITED[event])


def _socket_listen_event() -> None:
    """`socket.listen` raises no audit event of its own: make `listen` raise one."""
    import socket

    original = socket.socket.listen

    def listen(self: socket.socket, *args: int) -> None:
        sys.audit("socket.listen", self)
        original(self, *args)

    socket.socket.listen = listen  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    processes.install_cleanup()
    processes.watch_headless_servers()
    sys.addaudithook(_Audit.hook)
    _socket_listen_event()


@pytest.fixture(autouse=True)
def _integration_marker_audit(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("integration") is not None:
        try:
            yield
        finally:
            processes.stop_test_processes()
        return
    _Audit.seen = []
    _Audit.active = True
    try:
        yield
    finally:
        _Audit.active = False
    if _Audit.seen:
        pytest.fail(
            f"This test {_Audit.seen[0]} but is not marked integration; add "
            "@pytest.mark.integration (or pytestmark) and start processes with "
            "tests/processes.py.",
            pytrace=False,
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
