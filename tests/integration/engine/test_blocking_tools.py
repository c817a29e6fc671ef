"""The `marimo-engine` command with tools that block, and under a profiler (issue 9, items 3, 7).

Each test starts the command with `tests/processes.py`: in its own process
group, with SIGINT at its default action, stopped whatever happens.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.processes import started_process

pytestmark = pytest.mark.integration

BOUND_S = 90.0  # generous: without the fixes these commands run for an hour or forever

TOOLS = """
import threading
import time


def forever() -> None:
    threading.Event().wait()


def hour() -> None:
    time.sleep(3600)


def add(x: int) -> int:
    return x + 1
"""


def _started(args: list[str], cwd: Path) -> Any:
    return started_process(
        [sys.executable, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _write(tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    (tmp_path / "tools.py").write_text(TOOLS, encoding="utf-8")
    (tmp_path / "plan.json").write_text(json.dumps({"steps": steps}), encoding="utf-8")


CLI = ["-m", "marimo_engine.cli.main", "run", "plan.json", "--tools", "tools.py", "--json"]


@pytest.mark.parametrize("tool", ["forever", "hour"])
def test_a_blocking_tool_past_its_timeout_ends_the_command(tmp_path: Path, tool: str) -> None:
    _write(tmp_path, [{"id": "stuck", "tool": tool, "timeout_s": 0.5}])
    with _started(CLI, tmp_path) as process:
        out, err = process.communicate(timeout=BOUND_S)
    assert process.returncode == 1, err
    events = [json.loads(line) for line in out.splitlines()]
    error = next(e for e in events if e["type"] == "ERROR")
    assert error["error"]["type"] == "TimeoutError"
    assert events[-1]["type"] == "FINISH"
    assert events[-1]["verdict"] == "FAILURE"
    assert events[-1]["abandoned"] == ["stuck"]


def test_one_ctrl_c_ends_a_run_whose_tool_blocks_forever(tmp_path: Path) -> None:
    _write(tmp_path, [{"id": "stuck", "tool": "forever"}])
    with _started(CLI, tmp_path) as process:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["type"] == "START"
        assert json.loads(process.stdout.readline())["type"] == "STEP_START"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=BOUND_S)
    assert process.returncode == 130, err
    finish = json.loads(out.splitlines()[-1])
    assert (finish["type"], finish["verdict"]) == ("FINISH", "FAILURE")
    assert finish["abandoned"] == ["stuck"]


def test_the_command_runs_under_cprofile(tmp_path: Path) -> None:
    steps = [{"id": "a", "tool": "add", "args": {"x": 1}}]
    steps += [
        {"id": f"s{i}", "tool": "add", "args": {"x": f"$s{i - 1}" if i else "$a"}} for i in range(5)
    ]
    _write(tmp_path, steps)
    with _started(["-m", "cProfile", "-o", "profile.out", *CLI], tmp_path) as process:
        out, err = process.communicate(timeout=BOUND_S)
    assert process.returncode == 0, err
    finish = json.loads(out.splitlines()[-1])
    assert finish["verdict"] == "SUCCESS"
    assert finish["outputs"]["s4"] == 7
    assert (tmp_path / "profile.out").stat().st_size > 0
