"""The real wire path: `marimo-engine agent` in a subprocess against a scripted loopback server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.agents import read_audit_log
from tests.processes import run_process, start_process
from tests.unit.agents.tools import GOOD, MISSPELT
from tests.unit.llm.openai_server import ScriptedOpenAIServer, scripted_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

DIVIDES_BY_ZERO = {
    "name": "zero",
    "steps": [{"id": "s1", "tool": "divide", "args": {"a": 1, "b": 0}}],
}
LOW_OXYGEN = {
    "name": "oxygen",
    "steps": [
        {
            "id": "o2",
            "tool": "read_oxygen",
            "args": {"level": 12.5},
            "intervention_if": "$o2.level < 15",
        }
    ],
}


def _agent_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "OLLAMA_"))
    }
    return run_process(
        [sys.executable, "-m", "marimo_engine.cli.main", "agent", *args],
        cwd=ROOT,
        env={**clean, **env},
        timeout_s=90,
    )


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _types(events: list[dict[str, Any]], *, progress: bool = False) -> list[str]:
    """Event types, engine events by their own type; `MODEL_PROGRESS` only with `progress`."""
    return [
        e["event"]["type"] if e["type"] == "ENGINE_EVENT" else e["type"]
        for e in events
        if progress or e["type"] != "MODEL_PROGRESS"
    ]


def _answers(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The `progress` of the `MODEL_PROGRESS` events after each `PLANNING`, per request."""
    answers: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "PLANNING":
            answers.append([])
        elif event["type"] == "MODEL_PROGRESS":
            answers[-1].append(event["progress"])
    return answers


def _tool_message(server: ScriptedOpenAIServer, request: int) -> str:
    messages = server.requests[request].body["messages"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "tool")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_agent_cli_repairs_then_succeeds(tmp_path: Path, stream: bool) -> None:
    audit = tmp_path / "audit.jsonl"
    with scripted_server([{"tool_args": MISSPELT}, {"tool_args": GOOD}]) as server:
        flags = ["--stream"] if stream else []
        done = _agent_cli(
            "compute a quarter and summarise it",
            "--tools", "tests.unit.agents.tools",
            "--model", "openai:local-planner",
            "--audit", str(audit),
            "--json",
            *flags,
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    assert _types(events) == [
        "PLANNING", "PLAN_PROPOSED", "PLAN_REJECTED",
        "PLANNING", "PLAN_PROPOSED", "PLAN_ACCEPTED",
        "START", "STEP_START", "STEP_COMPLETE", "STEP_START", "STEP_COMPLETE", "FINISH",
        "DONE",
    ]  # fmt: skip
    if stream:  # each streamed answer ends with a progress event counting all of it
        sizes = [len(json.dumps(MISSPELT)), len(json.dumps(GOOD))]
        answers = _answers(events)
        assert [a[-1]["chars"] for a in answers] == sizes
        assert [a[-1]["done"] for a in answers] == [True, True]
        assert [a[-1]["tokens"] for a in answers] == [20, 20]  # the server's usage, at the end
    else:
        assert _answers(events) == [[], []]
    assert events[-1]["verdict"] == "SUCCESS"
    assert events[-1]["usage"]["models"][0]["model"] == "openai:local-planner"
    assert events[-1]["usage"]["cost_usd"] == "unpriced"
    # What went over the wire: the output tool with the plan schema, the tool schemas in
    # the instructions, and on repair the problems as JSON.
    assert [r.is_stream for r in server.requests] == [stream, stream]
    first = server.requests[0].body
    assert first["model"] == "local-planner"
    assert [t["function"]["name"] for t in first["tools"]] == ["submit_plan"]
    assert "steps" in first["tools"][0]["function"]["parameters"]["properties"]
    system = first["messages"][0]
    assert system["role"] == "system"
    for name in ("divide", "read_oxygen", "summarize", "scan_hull"):
        assert f'"name": "{name}"' in system["content"]
    assert '"b": {' in system["content"]  # divide's parameter schema
    goal = "Goal: compute a quarter and summarise it\n\nSubmit a plan that reaches the goal."
    assert first["messages"][-1] == {"role": "user", "content": goal}
    # pydantic-ai sends a retry as the output tool's answer: {"error": "<our text>"}.
    repair = json.loads(_tool_message(server, 1))["error"]
    assert repair.startswith("The plan is invalid; nothing ran. Fix every problem")
    problems = json.loads(repair[repair.index("{") :])["problems"]
    assert problems == [
        {
            "step_id": "s1",
            "field": "tool",
            "code": "unknown_tool",
            "message": "Tool 'divde' is not registered. Did you mean 'divide'?",
        }
    ]
    kinds = [r["kind"] for r in read_audit_log(audit)]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("model_request") == kinds.count("model_response") == 2


def test_agent_cli_replans_after_a_failing_tool_and_reports_failure() -> None:
    with scripted_server([{"tool_args": DIVIDES_BY_ZERO}, {"tool_args": GOOD}]) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--max-replans", "1",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "REPLAN" in _types(_events(done.stdout))
    report = server.requests[1].body["messages"][-1]["content"]
    assert report.startswith("The plan failed.")
    assert '"type": "ZeroDivisionError"' in report
    with scripted_server([{"tool_args": DIVIDES_BY_ZERO}]) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--max-replans", "0",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 1
    assert _events(done.stdout)[-1]["verdict"] == "FAILURE"


def test_agent_cli_intervention_exits_3() -> None:
    with scripted_server([{"tool_args": LOW_OXYGEN}]) as server:
        done = _agent_cli(
            "watch the oxygen", "--tools", "tests.unit.agents.tools", "--only-tools",
            "--model", "openai:m",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert _events(done.stdout)[-1]["verdict"] == "INTERVENTION_NEEDED"
    system = server.requests[0].body["messages"][0]["content"]
    assert '"name": "read_oxygen"' in system
    assert "scan_hull" not in system  # --only-tools: the built-in tools are not offered


def test_agent_cli_falls_back_from_a_429_server() -> None:
    with (
        scripted_server([{"status": 429}], repeat_last=True) as limited,
        scripted_server([{"tool_args": GOOD}]) as spare,
    ):
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools",
            "--model", "openai:first", "--fallback", "ollama:second",
            env={"OPENAI_BASE_URL": limited.base_url, "OLLAMA_BASE_URL": spare.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(limited.requests) == 1
    assert [r.body["model"] for r in spare.requests] == ["second"]
    usage = _events(done.stdout)[-1]["usage"]["models"]
    assert [(m["model"], m["requests"], m["failed_attempts"]) for m in usage] == [
        ("openai:first", 0, 1),
        ("ollama:second", 1, 0),
    ]


def test_agent_cli_budget_stops_a_priced_model() -> None:
    expensive = {"prompt_tokens": 2_000_000, "completion_tokens": 10}
    with scripted_server([{"tool_args": MISSPELT, "usage": expensive}], repeat_last=True) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools",
            "--model", "openai:gpt-4o-mini", "--budget-usd", "0.5",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 1
    assert len(server.requests) == 2  # $0.30 each at gpt-4o-mini's list price
    assert "error: The budget of $0.5 is spent ($0.600" in done.stderr
    assert _events(done.stdout)[-1]["usage"]["cost_usd"] == pytest.approx(2 * (0.30 + 10 * 0.6e-6))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--model", "openai:gpt-4o"],
            {},
            "error: Model 'openai:gpt-4o' has no key or endpoint: set OPENAI_API_KEY, or "
            "OPENAI_BASE_URL",
        ),
        (
            ["--model", "ollama:llama3.2", "--budget-usd", "1"],
            {"OLLAMA_BASE_URL": "http://127.0.0.1:9/v1"},
            "error: A budget of $1 is set but model 'ollama:llama3.2' has no known price",
        ),
        (["--model", "gpt-4o"], {}, "error: Model 'gpt-4o' is not of the form 'PROVIDER:NAME'"),
        (["--model", "openai:m", "--only-tools"], {}, "error: --only-tools needs at least one"),
    ],
    ids=["no-key", "unpriced-budget", "bad-model-string", "only-tools-without-tools"],
)
def test_agent_cli_configuration_errors_exit_2(
    args: list[str], env: dict[str, str], message: str
) -> None:
    done = _agent_cli("goal", *args, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


def _plans(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["plan"] for e in events if e["type"] == "PLAN_PROPOSED"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_recorded_run_replays_offline(tmp_path: Path, stream: bool) -> None:
    audit = tmp_path / "audit.jsonl"
    flags = ["--stream"] if stream else []
    with scripted_server([{"tool_args": MISSPELT}, {"tool_args": GOOD}]) as server:
        recorded = _agent_cli(
            "compute a quarter and summarise it", "--tools", "tests.unit.agents.tools",
            "--model", "openai:local-planner", "--audit", str(audit), *flags,
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    # The server is gone and no provider variable is set: only the audit log answers.
    replayed = _agent_cli(
        "compute a quarter and summarise it", "--tools", "tests.unit.agents.tools",
        "--model", f"replay:{audit}", *flags,
        env={},
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    before, after = _events(recorded.stdout), _events(replayed.stdout)
    assert _types(after) == _types(before)
    assert _plans(after) == _plans(before) == [MISSPELT, GOOD]
    assert after[-1]["verdict"] == "SUCCESS"
    usage = after[-1]["usage"]["models"]
    assert [(m["model"], m["requests"], m["cost_usd"]) for m in usage] == [
        ("audit.jsonl", 2, "unpriced")
    ]
    if stream:  # a replayed answer streams too, in pieces (its arguments as compact JSON)
        assert [a[-1]["chars"] for a in _answers(after)] == [
            len(json.dumps(MISSPELT, separators=(",", ":"))),
            len(json.dumps(GOOD, separators=(",", ":"))),
        ]


def test_a_replay_that_runs_out_of_answers_fails_and_says_why(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with scripted_server([{"tool_args": GOOD}]) as server:
        recorded = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--audit", str(audit), env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    # Without the test tools the recorded plan is invalid: the repair needs a 2nd answer.
    replayed = _agent_cli("a quarter", "--model", f"replay:{audit}", "--max-repairs", "1", env={})
    assert replayed.returncode == 1
    assert _types(_events(replayed.stdout))[:3] == ["PLANNING", "PLAN_PROPOSED", "PLAN_REJECTED"]
    assert "the recording has no answer for request 2: 1 model response(s) were recorded" in (
        replayed.stderr
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("replay:", "error: Model 'replay:' names no audit log; use 'replay:AUDIT.jsonl'"),
        ("replay:missing.jsonl", "error: Cannot replay: Cannot read the audit log 'missing.jsonl'"),
    ],
    ids=["no-path", "missing-file"],
)
def test_replay_configuration_errors_exit_2(model: str, message: str) -> None:
    done = _agent_cli("goal", "--model", model, env={})
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_agent_cli_timeout_is_per_whole_request_and_falls_back(tmp_path: Path) -> None:
    trickle = {"tool_args": GOOD, "trickle_s": 0.5, "trickle_for_s": 60.0}
    with (
        scripted_server([trickle]) as slow,
        scripted_server([{"tool_args": GOOD}]) as spare,
    ):
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools",
            "--model", "openai:slow", "--fallback", "ollama:spare", "--timeout", "2",
            env={"OPENAI_BASE_URL": slow.base_url, "OLLAMA_BASE_URL": spare.base_url},
        )  # fmt: skip
    # _agent_cli's 90 s limit would kill a run the 60 s trickle held: it ends well before.
    assert done.returncode == 0, done.stderr
    assert (len(slow.requests), len(spare.requests)) == (1, 1)
    usage = _events(done.stdout)[-1]["usage"]["models"]
    assert [(m["model"], m["requests"], m["failed_attempts"]) for m in usage] == [
        ("openai:slow", 0, 1),
        ("ollama:spare", 1, 0),
    ]


def test_agent_cli_falls_back_from_an_html_page() -> None:
    page = {"raw": "<!doctype html><title>502</title>", "content_type": "text/html"}
    with scripted_server([page]) as broken, scripted_server([{"tool_args": GOOD}]) as spare:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools",
            "--model", "openai:broken", "--fallback", "ollama:spare",
            env={"OPENAI_BASE_URL": broken.base_url, "OLLAMA_BASE_URL": spare.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (len(broken.requests), len(spare.requests)) == (1, 1)
    assert _events(done.stdout)[-1]["verdict"] == "SUCCESS"


def test_a_key_echoed_by_the_provider_is_redacted_everywhere(tmp_path: Path) -> None:
    key = "sk-live-0a1b2c3d4e5f6g7h8i9j"
    audit = tmp_path / "audit.jsonl"
    echo = {"error": {"message": f"Invalid key {key}; you sent 'Authorization: Bearer {key}'"}}
    with scripted_server([{"status": 401, "body": echo}]) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--audit", str(audit),
            env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key},
        )  # fmt: skip
    assert done.returncode == 1
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    for where, text in (
        ("stdout", done.stdout),
        ("stderr", done.stderr),
        ("audit", audit.read_text()),
    ):
        assert "0a1b2c3d4e5f" not in text, where
    assert "answered HTTP 401" in done.stderr
    assert "Invalid key [REDACTED]" in done.stderr
    assert "Invalid key [REDACTED]" in _events(done.stdout)[-1]["msg"]
    run_end = read_audit_log(audit)[-1]
    assert run_end["kind"] == "run_end" and "Invalid key [REDACTED]" in run_end["error"]


def test_a_server_without_usage_gets_one_notice_and_no_raw_warning() -> None:
    script = [{"tool_args": MISSPELT, "omit_usage": True}, {"tool_args": GOOD, "omit_usage": True}]
    with scripted_server(script) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--max-tokens", "100000",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    notices = [e["msg"] for e in events if e["type"] == "NOTICE"]
    assert notices == [
        "Model 'openai:m' reports no token usage, so the token limit (--max-tokens) cannot be "
        "enforced for it; the request limit (--max-requests) still applies."
    ]
    assert _types(events)[:3] == ["PLANNING", "NOTICE", "PLAN_PROPOSED"]
    assert "Warning" not in done.stderr and "usage" not in done.stderr, done.stderr


def test_a_slow_streamed_answer_shows_progress_in_json() -> None:
    slow = {"tool_args": GOOD, "chunk_delay_s": 0.1}  # about 20 pieces over 2 s
    with scripted_server([slow]) as server:
        done = _agent_cli(
            "a quarter", "--tools", "tests.unit.agents.tools", "--model", "openai:m",
            "--stream", "--json",
            env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    [progress] = _answers(events)
    assert len(progress) >= 2  # while it arrived, not only at the end
    chars = [p["chars"] for p in progress]
    assert chars == sorted(chars) and chars[0] < chars[-1] == len(json.dumps(GOOD))
    assert [p["done"] for p in progress] == [False] * (len(progress) - 1) + [True]
    assert progress[0]["tokens_estimated"] is True  # the server sends usage only at the end
    assert progress[-1]["tokens"] == 20 and progress[-1]["tokens_estimated"] is False
    first = next(e for e in events if e["type"] == "MODEL_PROGRESS")
    assert first["msg"].startswith("openai:m answering: ~")


def test_sigterm_cancels_the_agents_run_and_its_audit_log_ends(tmp_path: Path) -> None:
    """`kill` or `docker stop` mid-plan: cancelled as on Ctrl-C, the audit log closed, exit 143."""
    (tmp_path / "slow_tools.py").write_text(
        "import time\n\n\ndef slow(seconds: float) -> float:\n"
        '    """Wait."""\n    time.sleep(seconds)\n    return seconds\n',
        encoding="utf-8",
    )
    plan = {
        "name": "slow",
        "steps": [
            {"id": "s", "tool": "slow", "args": {"seconds": 3}},
            {"id": "t", "tool": "slow", "args": {"seconds": 0}, "depends_on": ["s"]},
        ],
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with scripted_server([{"tool_args": plan}]) as server:
        process = start_process(
            [sys.executable, "-m", "marimo_engine.cli.main", "agent", "wait a bit",
             "--tools", str(tmp_path / "slow_tools.py"), "--model", "openai:local-planner",
             "--json", "--audit", str(tmp_path / "audit.jsonl")],
            cwd=ROOT,
            env={**clean, "OPENAI_BASE_URL": server.base_url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:  # until the plan's first step runs
            event = json.loads(line)
            if event["type"] == "ENGINE_EVENT" and event["event"]["type"] == "STEP_START":
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: cancelling the run" in err
    records = read_audit_log(tmp_path / "audit.jsonl")
    last = records[-1]
    assert (last["kind"], last["verdict"], last["stop_reason"]) == (
        "run_end",
        "FAILURE",
        "interrupted",
    )
    started = [r["event"].get("step_id") for r in records if r["kind"] == "engine_event"]
    assert "t" not in started  # no step started after the signal
