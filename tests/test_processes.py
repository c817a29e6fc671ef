"""The test suite's own process helper: nothing a test starts outlives the run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import killed_run
from tests.processes import RUN_MARKER, run_process, start_process, stop_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

# A stand-in for a test run: starts a long-lived process through the helper,
# prints its pid, then ends the way the argument says.
FAKE_RUN = textwrap.dedent(
    """
    import os, signal, sys, time
    from tests.processes import install_cleanup, start_process

    install_cleanup()
    child = start_process([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    how = sys.argv[1]
    if how == "os._exit":  # what pytest-timeout does to a hung run
        os._exit(1)
    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "SIGTERM":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    sys.exit(0)  # a normal end: atexit
    """
)


def _gone(pgid: int, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["exit", "SIGTERM", "os._exit", "SIGKILL"])
def test_a_started_process_does_not_outlive_the_run(how: str) -> None:
    result = run_process(
        [sys.executable, "-c", FAKE_RUN, how],
        timeout_s=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.stdout.strip(), result.stderr
    child = int(result.stdout.split()[0])
    try:
        assert _gone(child), f"the process group {child} outlived a run ended by {how}"
    finally:
        if not _gone(child, 0):
            os.killpg(child, signal.SIGKILL)


def test_the_child_gets_the_default_sigint_whatever_we_inherited() -> None:
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = run_process([sys.executable, "-c", probe], timeout_s=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.stdout.strip() == "True", result.stderr


def test_stopping_stops_the_whole_group() -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    process = start_process([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    grandchild = int(process.stdout.readline())
    stop_process(process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the grandchild survived")


def _marked(marker: str) -> list[int]:
    """The processes whose environment carries `RUN_MARKER=marker`."""
    wanted = f"{RUN_MARKER}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(name))
    return found


@pytest.mark.timeout(900)
def test_kill_9_of_pytest_leaves_no_marimo_server(tmp_path: Path) -> None:
    # A real pytest run of tests/integration/killed_run.py: it starts the shared
    # servers of tests/integration/conftest.py and a server no test registered.
    report = tmp_path / "held.json"
    env = {**os.environ, killed_run.REPORT_VARIABLE: str(report)}
    process = start_process(
        [sys.executable, "-m", "pytest", "tests/integration/killed_run.py", "-q",
         "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "run")],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    held: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 600  # three marimo servers on a loaded machine
        while not report.exists():
            assert process.poll() is None, "the run ended before it held its servers"
            assert time.monotonic() < deadline, "the run did not start its servers"
            time.sleep(0.5)
        held = json.loads(report.read_text(encoding="utf-8"))
        assert len(held["servers"]) == 3 and _marked(held["marker"])
        os.kill(process.pid, signal.SIGKILL)  # pytest alone, as `kill -9 PID` does
        process.wait(timeout=60)
        for server in held["servers"]:
            assert _gone(server), f"marimo server {server} outlived the killed run"
        deadline = time.monotonic() + 60
        while (left := _marked(held["marker"])) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"processes of the killed run still running: {left}"
    finally:
        stop_process(process)
        for pid in [*held.get("servers", []), *(_marked(held["marker"]) if held else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
