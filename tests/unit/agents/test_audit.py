"""The audit log: append-only JSON lines, fsynced per record, complete after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from marimo_engine.agents import AuditLog, read_audit_log
from marimo_engine.errors import UsageError
from tests.processes import run_process, start_process, stop_process

ROOT = Path(__file__).resolve().parents[3]


def test_records_are_numbered_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    with AuditLog(path, run_id="r1") as log:
        first = log.write("run_start", goal="g", data={1, 2}, when=object())
        log.write("decision", decision="stop")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert first["kind"] == "run_start" and first["run_id"] == "r1"
    assert first["data"] == [1, 2]
    assert first["when"]["__type__"] == "builtins.object"  # the documented JSON fallback
    assert read_audit_log(path) == [json.loads(line) for line in lines]


def test_closed_log_and_unknown_kind_are_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", run_id="r1")
    with pytest.raises(UsageError, match=r"Audit record kind 'note' is unknown; use one of"):
        log.write("note")
    log.close()
    log.close()
    with pytest.raises(UsageError, match=r"audit.jsonl' is closed; open a new AuditLog"):
        log.write("run_end")


def test_unwritable_path_says_which(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match=r"Cannot open the audit log .*file/audit.jsonl"):
        AuditLog(blocker / "audit.jsonl", run_id="r1")


def test_leaked_log_warns(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", run_id="r1")
    with pytest.warns(ResourceWarning, match=r"was not closed"):
        log.__del__()
    assert not log.is_open


def test_broken_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"seq": 1}\n{"seq": 2}\n{"seq": 3, "kin')
    records = read_audit_log(path)
    assert records == [{"seq": 1}, {"seq": 2}]
    assert records.broken_lines == [3]
    path.write_bytes(b'{"seq": 1}\nnot json\n\n{"seq": 2, "k\xc3\n[1, 2]\n{"seq": 3}\n')
    records = read_audit_log(path)
    assert records == [{"seq": 1}, {"seq": 3}]
    assert records.broken_lines == [2, 4, 5]  # text, a cut UTF-8 character, not an object
    with pytest.raises(UsageError, match=r"Cannot read the audit log .*missing.jsonl"):
        read_audit_log(tmp_path / "missing.jsonl")


def test_seq_continues_in_a_reopened_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, run_id="r1") as log:
        log.write("run_start")
        log.write("run_end")
    with AuditLog(path, run_id="r2") as log:
        assert log.write("run_start")["seq"] == 3
    big = "x" * 200_000  # the last record longer than the tail block read on open
    with AuditLog(path, run_id="r3") as log:
        log.write("engine_event", payload=big)
    with AuditLog(path, run_id="r4") as log:
        log.write("run_end")
    records = read_audit_log(path)
    assert [(r["run_id"], r["seq"]) for r in records] == [
        ("r1", 1), ("r1", 2), ("r2", 3), ("r3", 4), ("r4", 5)
    ]  # fmt: skip
    assert records.broken_lines == []


PARTIAL_WRITER = """
import resource, signal, sys
from marimo_engine.agents import AuditLog
log = AuditLog(sys.argv[1], run_id="crashed")
log.write("run_start", goal="g")
log.write("model_request", parts=[])
size = log.path.stat().st_size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a short write and EFBIG, not a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, size + 1000))
try:
    log.write("model_response", parts=[{"content": "y" * 100_000}])
except OSError as exc:
    print(exc.errno, log.path.stat().st_size - size, flush=True)
    sys.exit(0)
sys.exit("the big record was written whole")
"""


@pytest.mark.integration
def test_a_record_cut_by_a_real_partial_write_is_ended_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    done = run_process([sys.executable, "-c", PARTIAL_WRITER, str(path)], cwd=ROOT, timeout_s=120)
    assert done.returncode == 0, done.stderr
    errno_, partial = map(int, done.stdout.split())
    assert (errno_, partial) == (27, 1000)  # EFBIG after exactly the 1,000 bytes allowed
    assert not path.read_bytes().endswith(b"\n")
    with AuditLog(path, run_id="next") as log:  # the next run, as after a kill -9
        assert log.write("run_start", goal="again")["seq"] == 3
    records = read_audit_log(path)
    assert [(r["run_id"], r["seq"], r["kind"]) for r in records] == [
        ("crashed", 1, "run_start"),
        ("crashed", 2, "model_request"),
        ("next", 3, "run_start"),
    ]
    assert records.broken_lines == [3]
    lines = path.read_bytes().split(b"\n")
    assert len(lines[2]) == 1000 and lines[3].startswith(b'{"seq":3,')


def test_every_string_of_a_record_is_redacted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    body = (
        '{"error": {"message": "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",'
        ' "sent": "Authorization: Bearer tok_9f8e7d6c5b4a"}}'
    )
    with AuditLog(path, run_id="r1", secrets=["custom-secret-value"]) as log:
        log.write(
            "run_end",
            error=f"model 'm' answered HTTP 401: {body}",
            nested={"custom-secret-value": ["x custom-secret-value y"]},
        )
    text = path.read_text()
    for secret in ("sk-proj-abcdefghijklmnop1234", "tok_9f8e7d6c5b4a", "custom-secret-value"):
        assert secret not in text
    record = read_audit_log(path)[0]
    assert record["error"] == (
        'model \'m\' answered HTTP 401: {"error": {"message": "Incorrect API key provided: '
        '[REDACTED]", "sent": "Authorization: Bearer [REDACTED]"}}'
    )
    assert record["nested"] == {"[REDACTED]": ["x [REDACTED] y"]}


def _wait_for(path: Path, predicate: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and predicate in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError(f"{predicate!r} never appeared in {path}")


@pytest.mark.integration
def test_audit_log_survives_a_writer_killed_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(
        f"""
        from marimo_engine.agents import AuditLog
        log = AuditLog({str(path)!r}, run_id="crash")
        i = 0
        while True:
            i += 1
            log.write("engine_event", n=i, payload="x" * (i % 5000))
        """
    )
    proc = start_process([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        _wait_for(path, '"n":200,', proc, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        stop_process(proc)
        proc.stderr.close() if proc.stderr else None
    records = read_audit_log(path)
    assert len(records) >= 200
    assert [r["n"] for r in records] == list(range(1, len(records) + 1))
    lines = path.read_bytes().split(b"\n")
    for line in lines[:-1]:  # every line but a possibly cut last one is complete JSON
        json.loads(line)


PLANNER_SCRIPT = """
import sys, time
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.function import FunctionModel
from marimo_engine.agents import PlannerAgent
from marimo_engine.tools.registry import ToolRegistry

def hold(seconds: float) -> str:
    \"\"\"Wait.

    Args:
        seconds: How long.
    \"\"\"
    time.sleep(seconds)
    return "held"

def plan(messages, info):
    steps = [{"id": "h", "tool": "hold", "args": {"seconds": 600}}]
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"steps": steps})])

tools = ToolRegistry.from_mapping({"hold": hold})
PlannerAgent(FunctionModel(plan), tools, audit_path=sys.argv[1]).run_sync("hold on")
"""


@pytest.mark.integration
def test_audit_log_of_an_agent_killed_mid_run(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    proc = start_process(
        [sys.executable, "-c", PLANNER_SCRIPT, str(path)], cwd=ROOT, stderr=subprocess.PIPE
    )
    try:
        _wait_for(path, '"type":"STEP_START"', proc, 90)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        stop_process(proc)
        if proc.stderr:
            proc.stderr.close()
    records = read_audit_log(path)
    assert [r["kind"] for r in records] == [
        "run_start",
        "model_request",
        "model_response",
        "plan_proposed",
        "validation",
        "plan_accepted",
        "engine_event",
        "engine_event",
    ]
    assert [r["event"]["type"] for r in records[-2:]] == ["START", "STEP_START"]
    assert path.read_bytes().endswith(b"\n")
