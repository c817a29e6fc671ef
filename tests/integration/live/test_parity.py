"""Parity: the same plans give the same events and verdicts in all three places a plan runs.

In process (`execute_plan`), as a standalone notebook (`python nb.py`, its
events appended to `$MARIMO_ENGINE_EVENTS`), and in a live kernel of a real
`marimo edit` server (`run_plan_live`). All three are hosts of one step
runtime (`engine.step.run_step`); this test is what keeps them one.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.engine.compiler import plan_to_notebook
from marimo_engine.engine.events import Event, EventFold, Verdict
from marimo_engine.engine.executor import execute_plan
from marimo_engine.engine.live_run import run_plan_live
from marimo_engine.engine.runtime import EVENTS_FILE_VARIABLE
from marimo_engine.live.session import LiveSession
from marimo_engine.tools.registry import ToolRegistry
from tests.processes import run_process

from .conftest import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

BLOCK_S = 4.0  # the blocking tool's sleep: far past its 0.5 s timeout and the 1 s grace

TOOLS_MODULE = """
import pathlib
import time


def block(marker: str, seconds: float) -> str:
    \"\"\"Block in C (time.sleep), logging each start, so a second copy would show.\"\"\"
    with open(marker, "a", encoding="utf-8") as log:
        log.write("start\\n")
    time.sleep(seconds)
    return "late"


def flaky(marker: str, fail_times: int) -> dict:
    \"\"\"Fail the first `fail_times` calls (counted in a file), then answer.\"\"\"
    path = pathlib.Path(marker)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise RuntimeError(f"glitch {calls + 1}")
    return {"value": 42, "tries": calls + 1}


def reading(level: float) -> dict:
    \"\"\"A sensor reading.\"\"\"
    return {"level": level}


def echo(value: object = None) -> object:
    \"\"\"Return `value`.\"\"\"
    return value
"""


def _plans(markers: Path) -> dict[str, tuple[dict[str, Any], Verdict]]:
    """Each plan with its verdict; `markers` is a folder of the mode's own counter files."""
    return {
        "timeout": (
            {"steps": [
                {"id": "stuck", "tool": "block", "timeout_s": 0.5, "retries": 2,
                 "args": {"marker": str(markers / "block.log"), "seconds": BLOCK_S}},
                {"id": "after", "tool": "echo", "args": {"value": "$stuck"}},
            ]},
            Verdict.FAILURE,
        ),
        "retries": (
            {"steps": [
                {"id": "r", "tool": "flaky", "retries": 2,
                 "args": {"marker": str(markers / "flaky.count"), "fail_times": 2}},
                {"id": "use", "tool": "echo", "args": {"value": "$r.value"}, "key_finding": True},
            ]},
            Verdict.SUCCESS,
        ),
        "run-if": (
            {"steps": [
                {"id": "a", "tool": "reading", "args": {"level": 20}},
                {"id": "b", "tool": "echo", "args": {"value": 1}, "run_if": "$a.level < 15"},
                {"id": "c", "tool": "echo", "args": {"value": "$b"}},
                {"id": "d", "tool": "echo", "args": {"value": "$c"}},
                {"id": "e", "tool": "echo", "args": {"value": "$a.level"}},
            ]},
            Verdict.SUCCESS,
        ),
        "intervention": (
            {"steps": [
                {"id": "a", "tool": "reading", "args": {"level": 12},
                 "intervention_if": "$a.level < 15"},
                {"id": "b", "tool": "echo", "args": {"value": "$a.level"}},
            ]},
            Verdict.INTERVENTION_NEEDED,
        ),
        "bad-reference": (
            {"steps": [
                {"id": "a", "tool": "reading", "args": {"level": 20}},
                {"id": "b", "tool": "echo", "args": {"value": "$a.missing"}},
                {"id": "c", "tool": "echo", "args": {"value": "$b"}},
            ]},
            Verdict.FAILURE,
        ),
        "missing-tool": (
            {"steps": [
                {"id": "a", "tool": "reading", "args": {"level": 20}},
                {"id": "b", "tool": "gone", "args": {"value": "$a"}},
            ]},
            Verdict.FAILURE,
        ),
    }  # fmt: skip


def _shape(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per step, what each event says (not its message, time or duration)."""
    steps: dict[str, list[tuple[Any, ...]]] = {}
    for e in events:
        if e["step_id"] is None:
            continue
        error = e.get("error") or {}
        steps.setdefault(e["step_id"], []).append(
            (
                e["type"],
                e.get("attempt"),
                error.get("type"),
                e.get("reason"),
                e.get("expression"),
                json.dumps(e.get("output"), sort_keys=True),
                e.get("key_finding"),
            )
        )
    return steps


def _as_json(events: list[Event]) -> list[dict[str, Any]]:
    return [json.loads(e.to_json_line()) for e in events]


def _verdict(events: list[dict[str, Any]]) -> Verdict:
    fold = EventFold()
    for e in events:
        fold.add(Event.model_validate(e))
    return fold.verdict()


def _registry(module: Any, *, with_gone: bool) -> ToolRegistry:
    tools = {n: getattr(module, n) for n in ("block", "flaky", "reading", "echo")}
    if with_gone:

        def gone(value: object = None) -> object:  # registered, but importable nowhere
            return value

        tools["gone"] = gone
    return ToolRegistry.from_mapping(tools)


def _run_notebook(source: str, folder: Path, name: str) -> list[dict[str, Any]]:
    notebook = folder / f"{name}.py"
    notebook.write_text(source, encoding="utf-8")
    events_file = folder / f"{name}.events.jsonl"
    env = {**os.environ, EVENTS_FILE_VARIABLE: str(events_file), "PYTHONPATH": str(folder)}
    result = run_process([sys.executable, str(notebook)], timeout_s=180, cwd=folder, env=env)
    out, err = result.stdout, result.stderr
    assert events_file.exists(), f"the notebook recorded no events: {out[-2000:]} {err[-2000:]}"
    return [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]


async def test_the_three_hosts_agree(
    live_session: LiveSession,
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = live_server.notebook.parent  # marimo puts the notebook's folder on sys.path
    (folder / "parity_tools.py").write_text(TOOLS_MODULE, encoding="utf-8")
    (tmp_path / "parity_tools.py").write_text(TOOLS_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "parity_tools", raising=False)
    module = importlib.import_module("parity_tools")
    for mode in ("engine", "notebook", "live"):
        (tmp_path / mode).mkdir()

    shapes: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Verdict]] = {}
    async with live_session.client() as client:
        for name in _plans(tmp_path):
            runs: dict[str, list[dict[str, Any]]] = {}
            plan, _ = _plans(tmp_path / "engine")[name]
            plan = {"id": f"parity-{name}", **plan}
            run = execute_plan(plan, _registry(module, with_gone=False))
            runs["engine"] = _as_json([e async for e in run])
            assert run.result.verdict.value == runs["engine"][-1]["verdict"]

            plan, _ = _plans(tmp_path / "notebook")[name]
            source = plan_to_notebook(
                {"id": f"parity-{name}", **plan}, _registry(module, with_gone=True)
            )
            runs["notebook"] = _run_notebook(source, tmp_path, name.replace("-", "_"))

            plan, _ = _plans(tmp_path / "live")[name]
            live = run_plan_live(
                {"id": f"parity-{name}", **plan}, _registry(module, with_gone=True), client
            )
            runs["live"] = _as_json([e async for e in live])
            assert live.result.verdict.value == runs["live"][-1]["verdict"]

            shapes[name] = {mode: _shape(events) for mode, events in runs.items()}
            verdicts[name] = {mode: _verdict(events) for mode, events in runs.items()}

    for name, (_, verdict) in _plans(tmp_path).items():
        assert verdicts[name] == dict.fromkeys(("engine", "notebook", "live"), verdict), name
        if name == "missing-tool":
            continue  # checked below: where the tool is missing differs by nature
        engine = shapes[name]["engine"]
        assert shapes[name]["notebook"] == engine, name
        assert shapes[name]["live"] == engine, name

    # A timed-out blocking tool is interrupted, not retried beside itself.
    stuck = shapes["timeout"]["engine"]["stuck"]
    assert [s[0] for s in stuck] == ["STEP_START", "ERROR"]
    assert stuck[1][2] == "TimeoutError"
    assert "after" not in shapes["timeout"]["engine"]
    for mode in ("engine", "notebook", "live"):
        starts = (tmp_path / mode / "block.log").read_text(encoding="utf-8").splitlines()
        assert starts == ["start"], mode
    assert [s[0] for s in shapes["retries"]["engine"]["r"]] == [
        "STEP_START", "STEP_RETRY", "STEP_RETRY", "STEP_COMPLETE",
    ]  # fmt: skip
    run_if = shapes["run-if"]["engine"]
    assert run_if["b"][-1][0] == "STEP_SKIPPED" and run_if["b"][-1][4] == "$a.level < 15"
    assert run_if["d"][-1][3] == "dependency 'c' was skipped"
    assert shapes["bad-reference"]["engine"]["b"][-1][2] == "UnknownReferenceError"
    assert "c" not in shapes["bad-reference"]["engine"]

    # A missing tool. In process, the registry is where tools are found: a
    # plan naming one it lacks is invalid (START, ERROR, FINISH; no step
    # runs). A notebook or a kernel finds tools by import: a registered tool
    # that is not importable fails its step there with UnknownToolError.
    missing = shapes["missing-tool"]
    assert missing["engine"] == {}
    assert missing["notebook"] == missing["live"]
    assert missing["notebook"]["b"][-1][:3] == ("ERROR", None, "UnknownToolError")
    assert [s[0] for s in missing["notebook"]["a"]] == ["STEP_START", "STEP_COMPLETE"]
