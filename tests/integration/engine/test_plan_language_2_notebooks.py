"""Compiled notebooks of map and sub-plan steps: `python nb.py` and a real `marimo edit`."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import Verdict, execute_plan_sync, plan_to_notebook
from marimo_engine.plans.subplans import PlanLibrary
from tests.processes import run_process
from tests.unit.engine import map_tools

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TOOLS = {
    "listing": map_tools.listing,
    "measure": map_tools.measure,
    "double": map_tools.double,
    "add": map_tools.add,
}
CHILD = {
    "id": "child",
    "inputs": {"n": {}},
    "steps": [
        {"id": "c1", "tool": "double", "args": {"x": "$input.n"}, "output": True},
        {"id": "c2", "tool": "add", "args": {"values": ["$c1", 1]}},
    ],
}
PLAN: dict[str, Any] = {
    "id": "language-2",
    "steps": [
        {"id": "files", "tool": "listing", "args": {"count": 3}},
        {
            "id": "sizes",
            "tool": "measure",
            "map": "$files",
            "args": {"name": "$item", "position": "$index"},
        },
        {"id": "sub", "plan": "child.json", "args": {"n": "$sizes.2.size"}},
        {"id": "last", "tool": "add", "args": {"values": ["$sub.c1", 100]}},
    ],
}


def _write(tmp_path: Path) -> Path:
    (tmp_path / "child.json").write_text(json.dumps(CHILD), encoding="utf-8")
    notebook = tmp_path / "nb.py"
    source = plan_to_notebook(PLAN, TOOLS, plans=PlanLibrary(base_dir=tmp_path))
    notebook.write_text(source, encoding="utf-8")
    return notebook


def test_the_engine_runs_the_plan(tmp_path: Path) -> None:
    _write(tmp_path)
    result = execute_plan_sync(PLAN, TOOLS, plans=PlanLibrary(base_dir=tmp_path))
    assert result.verdict is Verdict.SUCCESS
    assert result.outputs["sub"] == {"c1": 12}
    assert result.outputs["last"] == 112
    assert "SUBPLANS = {" in (result.notebook or "")


def test_python_nb_py_maps_and_embeds_the_sub_plan(tmp_path: Path) -> None:
    notebook = _write(tmp_path)
    events_file = tmp_path / "events.jsonl"
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        "MARIMO_ENGINE_EVENTS": str(events_file),
    }
    proc = run_process([sys.executable, str(notebook)], timeout_s=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert printed == [
        "Step 'files' completed in T s.",
        "Step 'sizes' completed in T s (3 items).",
        "Step 'c1' completed in T s.",
        "Step 'c2' completed in T s.",
        "Step 'sub' completed in T s (sub-plan).",
        "Step 'last' completed in T s.",
        "Plan 'language-2' finished: SUCCESS in T s.",
    ]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    nested = [e for e in events if e.get("parent_step_id") == "sub"]
    assert [(e["type"], e["step_id"], e["plan_id"]) for e in nested] == [
        ("STEP_START", "c1", "child"),
        ("STEP_COMPLETE", "c1", "child"),
        ("STEP_START", "c2", "child"),
        ("STEP_COMPLETE", "c2", "child"),
    ]
    last = next(e for e in events if e["type"] == "STEP_COMPLETE" and e["step_id"] == "last")
    assert last["output"] == 112


def test_the_notebook_of_a_run_with_inputs_runs_with_its_values(tmp_path: Path) -> None:
    """`result.notebook` reproduces the run: its inputs cell holds the run's input values."""
    plan = {**CHILD, "inputs": {"n": {}, "tag": {"required": False, "default": "x"}}}
    result = execute_plan_sync(plan, TOOLS, inputs={"n": 7, "tag": object()})
    assert result.verdict is Verdict.SUCCESS
    assert result.outputs == {"c1": 14, "c2": 15}
    notebook = tmp_path / "run.py"
    notebook.write_text(result.notebook or "", encoding="utf-8")
    assert "'tag'" in (result.notebook or "") and "not JSON" in (result.notebook or "")
    events_file = tmp_path / "events.jsonl"
    env = {
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        "MARIMO_ENGINE_EVENTS": str(events_file),
    }
    proc = run_process([sys.executable, str(notebook)], timeout_s=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # without the run's n, the required input fails
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    completed = {e["step_id"]: e["output"] for e in events if e["type"] == "STEP_COMPLETE"}
    assert completed == {"c1": 14, "c2": 15}


def test_marimo_edit_runs_the_map_and_the_embedded_sub_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marimo_engine.live.session import open_session

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    notebook = _write(tmp_path)
    with open_session(notebook) as live, live.sync_client() as client:
        deadline = time.monotonic() + 180
        cells = client.cells()
        while (
            any(c.status in {"queued", "running"} for c in cells) or not cells
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
            cells = client.cells()
        by_name = {c.name: c for c in cells if c.name}
        for name in ("files", "sizes", "sub", "last"):
            assert by_name[name].status == "idle" and not by_name[name].errors, by_name[name]
        result = client.execute("print(json.dumps([sizes[2]['size'], sub, last]))")
        assert result.success, result
        assert json.loads(result.stdout.strip()) == [6, {"c1": 12}, 112]
        # Run the sub-plan's cell again: the same inputs, the same answer (marimo's cache).
        change = client.run_cell(by_name["sub"].id)
        assert change.status != "exception" and not change.errors, change
        result = client.execute("print(json.dumps([sub, last]))")
        assert json.loads(result.stdout.strip()) == [{"c1": 12}, 112]


def test_python_nb_py_reports_a_failing_sub_plan_and_a_failing_item(tmp_path: Path) -> None:
    failing_child = {
        "id": "failing-child",
        "steps": [{"id": "f1", "tool": "measure", "args": {"name": "bad.csv"}}],
    }
    (tmp_path / "failing.json").write_text(json.dumps(failing_child), encoding="utf-8")
    library = PlanLibrary(base_dir=tmp_path)
    for plan, line in (
        (
            {"id": "p", "steps": [{"id": "sub", "plan": "failing.json"}]},
            "Step 'sub' failed: SubPlanError: the sub-plan 'failing.json' failed at step 'f1': "
            "ValueError: cannot read bad.csv",
        ),
        (
            {
                "id": "p",
                "steps": [
                    {"id": "names", "tool": "listing", "args": {"count": 2}},
                    {"id": "each", "tool": "measure", "map": "$names", "args": {"name": "bad"}},
                ],
            },
            "Step 'each' failed: ValueError: item 0: cannot read bad",
        ),
    ):
        assert execute_plan_sync(plan, TOOLS, plans=library).verdict is Verdict.FAILURE
        notebook = tmp_path / "failing_nb.py"
        notebook.write_text(plan_to_notebook(plan, TOOLS, plans=library), encoding="utf-8")
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        proc = run_process([sys.executable, str(notebook)], timeout_s=180, env=env, cwd=tmp_path)
        assert line in proc.stdout.splitlines(), (proc.stdout, proc.stderr)
        assert "Plan 'p' finished: FAILURE" in proc.stdout
