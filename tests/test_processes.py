"""The test suite's own process helper: nothing a test starts outlives the run."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.processes import run_process, start_process, stop_process

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
    import subprocess

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
