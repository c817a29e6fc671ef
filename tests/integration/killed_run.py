"""A test run that is killed with SIGKILL while it holds marimo servers (not collected alone).

`tests/test_processes.py` runs this module in a pytest of its own, waits
for the report it writes, and kills that pytest with `kill -9`: the run's
watchdog must then stop everything the run started. The test holds the
run's shared servers (`live_server` with its session, `notebook_server`
with a session of its own) and a `marimo edit` server started the way a
`marimo-engine` command under test starts one: by another process, in a
session of its own, registered nowhere.

Its name does not start with `test_`, so a normal run does not collect it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marimo_engine.live.server import HeadlessServer
from marimo_engine.live.session import LiveSession, open_session
from tests.integration.conftest import STARTUP_TIMEOUT_S, LiveServer, notebook_file
from tests.processes import RUN_MARKER

REPORT_VARIABLE = "MARIMO_ENGINE_KILLED_RUN_REPORT"
"""Where the test writes what it holds (JSON), once everything is up."""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        REPORT_VARIABLE not in os.environ,
        reason=f"run by tests/test_processes.py, which sets {REPORT_VARIABLE}",
    ),
]

_COMMAND_SERVER = (
    "import sys, time\n"
    "from marimo_engine.live.server import HeadlessServer\n"
    "server = HeadlessServer(sys.argv[1], startup_timeout_s=float(sys.argv[2])).start()\n"
    "print(server.pid, flush=True)\n"
    "time.sleep(900)\n"
)


def test_hold_servers_until_killed(
    notebook_server: HeadlessServer,
    live_server: LiveServer,
    live_session: LiveSession,
    tmp_path: Path,
) -> None:
    report = os.environ[REPORT_VARIABLE]
    notebook = notebook_file(notebook_server, tmp_path, "held.py")
    with open_session(notebook, url=notebook_server.url, startup_timeout_s=STARTUP_TIMEOUT_S):
        command = subprocess.Popen(
            [sys.executable, "-c", _COMMAND_SERVER, str(tmp_path / "command.py"),
             str(STARTUP_TIMEOUT_S)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert command.stdout is not None
        command_server = int(command.stdout.readline())
        held = {
            "marker": os.environ[RUN_MARKER],
            "servers": [notebook_server.pid, live_server.pid, command_server],
            "command": command.pid,
        }
        Path(report).write_text(json.dumps(held), encoding="utf-8")
        time.sleep(900)  # until killed
