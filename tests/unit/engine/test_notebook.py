"""The compiled notebook: marimo loads it, its graph is the plan's, it runs standalone."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import PlanValidationError, Verdict, execute_plan_sync, plan_to_notebook
from marimo_engine.engine.compiler import compile_plan, safe_variable_names
from tests.processes import run_process

from . import notebook_tools

REPO = Path(__file__).resolve().parents[3]
TOOLS = {"record": notebook_tools.record, "arecord": notebook_tools.arecord}


def journal_plan(journal: Path) -> dict[str, Any]:
    j = str(journal)
    return {
        "id": "journal",
        "name": "Journal plan",
        "steps": [
            {"id": "fetch-data", "tool": "record", "args": {"journal": j, "label": "fetch"}},
            {"id": "1st", "tool": "arecord", "args": {"journal": j, "label": "first"}},
            {
                "id": "class",
                "tool": "record",
                "description": 'Uses both; "quotes" and a \\ backslash <b>here</b>',
                "args": {
                    "journal": j,
                    "label": "both $fetch-data.label $1st",
                    "level": "$fetch-data.level",
                },
            },
            {
                "id": "skipped",
                "tool": "record",
                "args": {"journal": j, "label": "never"},
                "run_if": "$class.level > 100",
            },
            {
                "id": "after-skip",
                "tool": "record",
                "args": {"journal": j, "label": "never-either"},
                "depends_on": ["skipped"],
            },
        ],
    }


def load_with_marimo(path: Path) -> Any:
    from marimo._ast.app import InternalApp
    from marimo._ast.load import load_app

    app = load_app(path)
    assert app is not None
    return InternalApp(app)


def test_safe_variable_names_are_deterministic_and_unique() -> None:
    ids = [
        "s1",
        "fetch-data",
        "fetch_data",
        "1st",
        "class",
        "list",
        "_private",
        "mo",
        "scan_hull",
        "a.b",
    ]
    names = safe_variable_names(ids, reserved={"scan_hull"})
    assert names == {
        "s1": "s1",
        "fetch-data": "fetch_data",
        "fetch_data": "fetch_data_2",
        "1st": "step_1st",
        "class": "class_step",
        "list": "list_step",
        "_private": "step__private",
        "mo": "mo_step",
        "scan_hull": "scan_hull_step",
        "a.b": "a_b",
    }
    assert safe_variable_names(ids, reserved={"scan_hull"}) == names
    assert all(n.isidentifier() for n in names.values())


def test_one_cell_per_step_named_after_it_with_the_plans_edges(tmp_path: Path) -> None:
    plan = journal_plan(tmp_path / "journal.txt")
    ir = compile_plan(plan, TOOLS)
    path = tmp_path / "nb.py"
    path.write_text(plan_to_notebook(plan, TOOLS), encoding="utf-8")
    app = load_with_marimo(path)
    graph = app.graph
    by_name: dict[str, str] = {}
    for cell_id, cell in graph.cells.items():
        for name in cell.defs:
            by_name[name] = cell_id
    for step_id, variable in ir.variables.items():
        cell_id = by_name[variable]
        step_parents = [p for p in graph.parents[cell_id] if p != "setup"]
        assert all(len(graph.cells[p].defs) == 1 for p in step_parents)
        parents = {next(iter(graph.cells[p].defs)) for p in step_parents}
        assert parents == {ir.variables[d] for d in ir.dependencies[step_id]}, step_id
    names = [c.name for c in ir.cells if c.kind == "step"]
    assert names == ["fetch_data", "step_1st", "class_step", "skipped", "after_skip"]
    md = [c.code for c in ir.cells if c.kind == "markdown"]
    assert len(md) == 5 and all(code.startswith("mo.md(") for code in md)
    assert "&lt;b&gt;here&lt;/b&gt;" in md[2]


@pytest.mark.integration
def test_python_file_reruns_the_plan_and_marimo_skips_what_depends_on_a_skip(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.txt"
    path = tmp_path / "nb.py"
    path.write_text(plan_to_notebook(journal_plan(journal), TOOLS), encoding="utf-8")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = run_process([sys.executable, str(path)], timeout_s=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(journal.read_text().splitlines())
    assert lines == ["both fetch first", "fetch", "first"]
    # Each step's outcome as it ends, then the steps marimo did not run, then the verdict.
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert sorted(printed[:4]) == [
        "Step '1st' completed in T s.",
        "Step 'class' completed in T s.",
        "Step 'fetch-data' completed in T s.",
        "Step 'skipped' skipped: run_if is false: $class.level > 100.",
    ]
    assert printed[4:] == [
        "Step 'after-skip' skipped: dependency 'skipped' was skipped.",
        "Plan 'journal' finished: SUCCESS in T s.",
    ]


@pytest.mark.integration
def test_python_file_prints_a_failure_and_an_intervention(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.txt")
    plan = {
        "id": "broken",
        "steps": [
            {"id": "low", "tool": "record", "args": {"journal": journal, "level": 5, "label": "l"},
             "intervention_if": "$low.level < 10", "key_finding": True},
            {"id": "after-low", "tool": "record", "args": {"journal": journal, "label": "x"},
             "depends_on": ["low"]},
            {"id": "bad", "tool": "broken", "args": {"journal": journal}, "depends_on": ["low"]},
        ],
    }  # fmt: skip
    tools = {**TOOLS, "broken": notebook_tools.broken}
    path = tmp_path / "nb.py"
    path.write_text(plan_to_notebook(plan, tools), encoding="utf-8")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = run_process([sys.executable, str(path)], timeout_s=120, env=env, cwd=tmp_path)
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert printed == [
        "Step 'low' completed in T s (key finding).",
        "Step 'low' needs a person: $low.level < 10 is true.",
        "Step 'after-low' was not run: step 'low' needs a person.",
        "Step 'bad' was not run: step 'low' needs a person.",
        "Plan 'broken' finished: INTERVENTION_NEEDED in T s.",
    ], proc.stderr
    plan["steps"][0].pop("intervention_if")
    path.write_text(plan_to_notebook(plan, tools), encoding="utf-8")
    proc = run_process([sys.executable, str(path)], timeout_s=120, env=env, cwd=tmp_path)
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert "Step 'bad' failed: ValueError: bad sensor" in printed, proc.stderr
    assert printed[-1] == "Plan 'broken' finished: FAILURE in T s."
    assert "ValueError: bad sensor" in proc.stderr  # marimo's script runner shows the traceback


def test_the_engine_and_the_notebook_agree(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    result = execute_plan_sync(journal_plan(journal), TOOLS)
    assert result.verdict is Verdict.SUCCESS, result.error
    assert result.skipped == ["skipped", "after-skip"]
    assert result.outputs["class"] == {"label": "both fetch first", "level": 20.0}
    assert result.notebook == plan_to_notebook(journal_plan(journal), TOOLS)


def test_tools_not_importable_by_module_path_are_named_in_the_notebook() -> None:
    plan = {"steps": [{"id": "a", "tool": "inline"}]}
    source = plan_to_notebook(plan, {"inline": lambda: 1})
    assert "# Not importable by module path, so not callable here: 'inline'" in source
    assert execute_plan_sync(plan, {"inline": lambda: 1}).outputs == {"a": 1}


def test_an_invalid_plan_cannot_be_compiled() -> None:
    with pytest.raises(PlanValidationError, match=r"not registered") as info:
        plan_to_notebook({"steps": [{"id": "a", "tool": "missing"}]}, TOOLS)
    assert [p.code for p in info.value.problems] == ["unknown_tool"]


@pytest.mark.integration
def test_marimo_exports_the_compiled_notebook_to_html(tmp_path: Path) -> None:
    from marimo_engine.examples import load_example
    from marimo_engine.tools.examples import example_registry

    path = tmp_path / "hull.py"
    path.write_text(
        plan_to_notebook(load_example("breach-response"), example_registry()), encoding="utf-8"
    )
    out = tmp_path / "hull.html"
    proc = run_process(
        [sys.executable, "-m", "marimo", "export", "html", str(path), "-o", str(out)],
        timeout_s=180,
    )
    assert proc.returncode == 0, proc.stderr
    html = out.read_text(encoding="utf-8")
    assert "breach" in html.lower()
