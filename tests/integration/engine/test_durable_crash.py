"""Crash recovery with real processes: `kill -9` mid-run, then `marimo-engine resume`.

A completed step never runs again (exactly once); the step that was running
when the process died runs again (at least once); two processes resuming
the same run: one proceeds, the other gets a one-line error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marimo_engine.engine.journal import SqliteJournal
from tests.processes import run_process, start_process, stop_process
from tests.unit.engine import durable_tools
from tests.unit.engine.durable_tools import counts

pytestmark = pytest.mark.integration

TOOLS = str(Path(durable_tools.__file__))
PLAN = {
    "id": "crash",
    "steps": [
        {"id": "a", "tool": "first", "args": {"x": 1}},
        {"id": "s1", "tool": "slow", "args": {"z": "$a", "name": "s1"}},
        {"id": "s2", "tool": "slow", "args": {"z": "$s1", "name": "s2"}},
        {"id": "c", "tool": "last", "args": {"z": "$s2"}},
    ],
}
DEADLINE_S = 120.0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "marimo_engine.cli.main", *args]


def _wait_for(path: Path, name: str, times: int = 1) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while counts(path).get(name, 0) < times:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not logged {times} time(s): {counts(path)}")
        time.sleep(0.05)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    gates = tmp_path / "gates"
    gates.mkdir()
    return {
        **os.environ,
        "SIDE_LOG": str(tmp_path / "side.log"),
        "GATE_DIR": str(gates),
        "MARIMO_ENGINE_JOURNAL": str(tmp_path / "journal.sqlite3"),
    }


def _start_run(tmp_path: Path, env: dict[str, str], run_id: str) -> subprocess.Popen[str]:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    return start_process(
        _cli("run", str(plan), "--tools", TOOLS, "--json", "--run-id", run_id),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _kill9(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=DEADLINE_S)  # reaped: no zombie keeps its pid alive
    stop_process(process)


@pytest.mark.parametrize("killed_in", ["s1", "s2"])
def test_resume_after_kill9_runs_only_unfinished_steps(
    tmp_path: Path, env: dict[str, str], killed_in: str
) -> None:
    log = Path(env["SIDE_LOG"])
    gates = Path(env["GATE_DIR"])
    if killed_in == "s2":
        (gates / "s1").touch()
    process = _start_run(tmp_path, env, "crash-1")
    _wait_for(log, f"{killed_in}-start")
    _kill9(process)

    with SqliteJournal(env["MARIMO_ENGINE_JOURNAL"]) as journal:
        record = journal.get_run("crash-1")
    assert record is not None and record.status == "running"
    assert {s.step_id: s.status for s in record.steps}[killed_in] == "running"

    (gates / "s1").touch()
    (gates / "s2").touch()
    done = run_process(
        _cli("resume", "crash-1", "--tools", TOOLS, "--json"),
        env=env,
        timeout_s=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    finish = json.loads(done.stdout.splitlines()[-1])
    assert finish["verdict"] == "SUCCESS" and finish["run_id"] == "crash-1"
    assert finish["outputs"] == {"a": 2, "s1": 2, "s2": 2, "c": 2}
    seen = counts(log)
    assert seen["first"] == 1  # completed before the kill: exactly once
    assert seen[f"{killed_in}-start"] == 2  # running at the kill: at least once, here twice
    assert seen["last"] == 1
    if killed_in == "s2":
        assert seen["s1-start"] == 1  # completed before the kill


def test_two_resumers_one_proceeds_the_other_gets_one_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    log = Path(env["SIDE_LOG"])
    gates = Path(env["GATE_DIR"])
    process = _start_run(tmp_path, env, "crash-2")
    _wait_for(log, "s1-start")
    _kill9(process)

    first = start_process(
        _cli("resume", "crash-2", "--tools", TOOLS, "--json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(log, "s1-start", times=2)  # the first resumer holds the lease, mid-step
        second = run_process(
            _cli("resume", "crash-2", "--tools", TOOLS),
            env=env,
            timeout_s=DEADLINE_S,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "is being run by process" in lines[0], second.stderr
        (gates / "s1").touch()
        (gates / "s2").touch()
        stdout, stderr = first.communicate(timeout=DEADLINE_S)
        assert first.returncode == 0, stderr
        assert json.loads(stdout.splitlines()[-1])["verdict"] == "SUCCESS"
    finally:
        stop_process(first)
    assert counts(log)["first"] == 1


_RUN_WITH_INPUTS = """
import json, sys
from marimo_engine import execute_plan_sync
from tests.unit.engine import durable_tools as t
execute_plan_sync(
    json.loads(sys.argv[1]),
    {"first": t.first, "slow": t.slow, "last": t.last},
    journal=sys.argv[2],
    run_id=sys.argv[3],
    inputs={"x": 10},
)
"""


def test_resume_after_kill9_runs_with_the_runs_inputs(tmp_path: Path, env: dict[str, str]) -> None:
    plan = {
        "id": "crash-inputs",
        "inputs": {"x": {"required": False, "default": 1}},
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": "$input.x"}},
            {"id": "s1", "tool": "slow", "args": {"z": "$a", "name": "s1"}},
            {"id": "c", "tool": "last", "args": {"z": "$input.x"}, "depends_on": ["s1"]},
        ],
    }
    log = Path(env["SIDE_LOG"])
    root = Path(__file__).resolve().parents[3]  # `tests` importable by the run
    process = start_process(
        [
            sys.executable,
            "-c",
            _RUN_WITH_INPUTS,
            json.dumps(plan),
            env["MARIMO_ENGINE_JOURNAL"],
            "crash-in",
        ],
        env={**env, "PYTHONPATH": str(root)},
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    _wait_for(log, "s1-start")
    _kill9(process)

    (Path(env["GATE_DIR"]) / "s1").touch()
    # The resume is another process that was never told the inputs: the CLI has no option for them.
    done = run_process(
        _cli("resume", "crash-in", "--tools", TOOLS, "--json"), env=env, timeout_s=DEADLINE_S
    )
    assert done.returncode == 0, done.stderr
    finish = json.loads(done.stdout.splitlines()[-1])
    assert finish["verdict"] == "SUCCESS"
    assert finish["outputs"] == {"a": 11, "s1": 11, "c": 10}  # not the default 1
    assert counts(log)["first"] == 1
