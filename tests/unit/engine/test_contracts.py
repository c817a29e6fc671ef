"""Plan language 2 in the engine: output contracts (`expect`, `schema`) and markdown steps."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import (
    Event,
    EventType,
    ExecutionResult,
    Verdict,
    execute_plan_sync,
    plan_to_notebook,
)
from marimo_engine.engine.compiler import compile_plan
from tests.processes import run_process

from . import notebook_tools
from .conftest import types

REPO = Path(__file__).resolve().parents[3]
TOOLS = {"record": notebook_tools.record}


class Counter:
    """A tool returning `{"rows": rows, "level": level}` and counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rows: int = 3, level: float = 50.0) -> dict[str, Any]:
        self.calls += 1
        return {"rows": rows, "level": level}


def _plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "contracts", "steps": list(steps)}


def _run(plan: dict[str, Any], tools: Any) -> tuple[list[Event], ExecutionResult]:
    events: list[Event] = []
    result = execute_plan_sync(plan, tools, on_event=events.append)
    assert events[-1].type is EventType.FINISH
    return events, result


def test_a_kept_contract_completes_the_step() -> None:
    tool = Counter()
    plan = _plan(
        {
            "id": "s1",
            "tool": "count",
            "expect": ["$self.rows > 0", "$self.level >= 0 and $self.level <= 100"],
            "schema": {
                "type": "object",
                "required": ["rows", "level"],
                "properties": {"rows": {"type": "integer"}, "level": {"type": "number"}},
            },
        }
    )
    events, result = _run(plan, {"count": tool})
    assert types(events, "s1") == [EventType.STEP_START, EventType.STEP_COMPLETE]
    assert result.outputs == {"s1": {"rows": 3, "level": 50.0}}


def test_a_false_expectation_is_a_contract_error_with_the_values_and_no_retry() -> None:
    tool = Counter()
    plan = _plan(
        {
            "id": "s1",
            "tool": "count",
            "args": {"rows": 0},
            "retries": 3,
            "expect": ["$self.level <= 100", "$self.rows > 0"],
        },
        {"id": "s2", "tool": "count", "args": {"rows": "$s1.rows"}},
    )
    events, result = _run(plan, {"count": tool})
    assert tool.calls == 1  # the tool answered: asking again gives the same answer
    assert types(events, "s1") == [EventType.STEP_START, EventType.ERROR]
    error = events[-2].error
    assert error is not None
    assert error.type == "ContractError"
    assert error.step_id == "s1"
    assert error.message == (
        "The output of step 's1' breaks its contract: expect[1] '$self.rows > 0' is false; "
        "seen: $self.rows = 0."
    )
    assert result.verdict is Verdict.FAILURE
    assert "s2" not in result.outputs and "s1" not in result.outputs


def test_an_expectation_that_cannot_be_evaluated_breaks_the_contract() -> None:
    plan = _plan({"id": "s1", "tool": "count", "expect": ["$self.levl > 0"]})
    _, result = _run(plan, {"count": Counter()})
    assert result.error is not None and result.error.type == "ContractError"
    assert "expect[0] '$self.levl > 0' could not be evaluated" in result.error.message
    assert "has no key 'levl'" in result.error.message


def test_expect_may_compare_with_another_steps_output() -> None:
    plan = _plan(
        {"id": "s1", "tool": "count", "args": {"rows": 5}},
        {"id": "s2", "tool": "count", "args": {"rows": 2}, "expect": ["$self.rows >= $s1.rows"]},
    )
    _, result = _run(plan, {"count": Counter()})
    assert result.error is not None
    assert result.error.message.endswith("seen: $self.rows = 2, $s1.rows = 5.")


def test_a_schema_mismatch_is_a_contract_error_naming_the_place() -> None:
    plan = _plan(
        {
            "id": "s1",
            "tool": "count",
            "args": {"level": 150},
            "schema": {
                "type": "object",
                "properties": {"level": {"type": "number", "maximum": 100}},
            },
        }
    )
    _, result = _run(plan, {"count": Counter()})
    assert result.error is not None and result.error.type == "ContractError"
    assert result.error.message == (
        "The output of step 's1' does not match its schema: at $self.level, 150 is greater "
        "than the maximum of 100 (schema rule 'properties/level/maximum')."
    )


def test_a_schema_is_checked_on_the_json_form_of_a_dataclass() -> None:
    from marimo_engine.tools.examples import example_registry

    plan = _plan(
        {
            "id": "s2",
            "tool": "check_oxygen",
            "schema": {"type": "object", "required": ["level", "status"]},
            "expect": ["$self.level > 0"],
        }
    )
    _, result = _run(plan, example_registry())
    assert result.verdict is Verdict.SUCCESS, result.error


def test_self_in_intervention_if_is_the_steps_output() -> None:
    plan = _plan({"id": "s1", "tool": "count", "intervention_if": "$self.rows < 5"})
    _, result = _run(plan, {"count": Counter()})
    assert result.verdict is Verdict.INTERVENTION_NEEDED


def test_a_markdown_step_fills_in_references_and_its_output_is_the_text() -> None:
    plan = _plan(
        {"id": "s1", "tool": "count", "args": {"rows": 7}},
        {
            "id": "report",
            "description": "What a person reads",
            "markdown": "## Report\n\n**$s1.rows** rows, level $s1.level %; costs $$5.",
            "expect": ["'rows' in $self"],
        },
    )
    events, result = _run(plan, {"count": Counter()})
    assert types(events, "report") == [EventType.STEP_START, EventType.STEP_COMPLETE]
    start = next(e for e in events if e.step_id == "report")
    assert start.msg == "Step 'report' started: What a person reads."
    assert start.tool is None
    assert result.verdict is Verdict.SUCCESS, result.error
    assert result.outputs["report"] == "## Report\n\n**7** rows, level 50.0 %; costs $5."


def test_a_markdown_step_alone_and_a_skipped_one() -> None:
    plan = _plan(
        {"id": "intro", "markdown": "No references at all."},
        {"id": "s1", "tool": "count"},
        {"id": "never", "markdown": "Shown when $s1.rows > 10", "run_if": "$s1.rows > 10"},
    )
    _, result = _run(plan, {"count": Counter()})
    assert result.outputs["intro"] == "No references at all."
    assert result.skipped == ["never"]


def test_a_markdown_step_naming_a_missing_field_fails_like_a_reference() -> None:
    plan = _plan(
        {"id": "s1", "tool": "count"},
        {"id": "md", "markdown": "Level: $s1.levl"},
    )
    _, result = _run(plan, {"count": Counter()})
    assert result.error is not None
    assert (result.error.type, result.error.step_id) == ("UnknownReferenceError", "md")
    assert "'levl'" in result.error.message


def test_the_compiled_notebook_shows_a_markdown_step_as_its_own_hidden_cell() -> None:
    plan = _plan(
        {"id": "s1", "tool": "count", "expect": ["$self.rows > 0"]},
        {"id": "md", "markdown": "Rows: $s1.rows"},
    )
    ir = compile_plan(plan, {"count": Counter()})
    kinds = [(cell.kind, cell.step_id) for cell in ir.cells]
    assert kinds == [("markdown", "s1"), ("step", "s1"), ("step", "md")]
    md_cell = ir.step_cells["md"]
    assert md_cell.hide_code and md_cell.refs == ("s1",)
    assert md_cell.code == 'md = await plan_run.step("md", s1)'.replace('"', "'")
    assert "expects `$self.rows > 0`" in ir.cells[0].code


def test_execute_plan_sync_runs_contracts_and_markdown() -> None:
    plan = _plan(
        {"id": "s1", "tool": "count", "expect": "$self.rows == 3"},
        {"id": "md", "markdown": "$s1.rows"},
    )
    result = execute_plan_sync(plan, {"count": Counter()})
    assert result.outputs == {"s1": {"rows": 3, "level": 50.0}, "md": "3"}


@pytest.mark.integration
def test_python_file_runs_contracts_and_markdown_steps(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.txt")
    plan = _plan(
        {"id": "s1", "tool": "record", "args": {"journal": journal, "label": "one", "level": 42},
         "expect": ["$self.level > 0"], "schema": {"type": "object", "required": ["level"]}},
        {"id": "report", "markdown": "Level **$s1.level** from $s1.label"},
        {"id": "bad", "tool": "record", "args": {"journal": journal, "label": "two"},
         "expect": ["$self.level > $s1.level"], "depends_on": ["report"]},
    )  # fmt: skip
    path = tmp_path / "nb.py"
    path.write_text(plan_to_notebook(plan, TOOLS), encoding="utf-8")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = run_process([sys.executable, str(path)], timeout_s=120, env=env, cwd=tmp_path)
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert printed == [
        "Step 's1' completed in T s.",
        "Step 'report' completed in T s.",
        "Step 'bad' failed: ContractError: The output of step 'bad' breaks its contract: "
        "expect[0] '$self.level > $s1.level' is false; seen: $self.level = 20.0, "
        "$s1.level = 42.",
        "Plan 'contracts' finished: FAILURE in T s.",
    ], proc.stderr
    assert Path(journal).read_text().splitlines() == ["one", "two"]  # tried once, not retried


def test_the_air_report_example_keeps_its_contracts_and_writes_its_report() -> None:
    from marimo_engine.examples import load_example
    from marimo_engine.tools.examples import example_registry

    plan = load_example("air-report")
    used = {key for step in plan["steps"] for key in step}
    assert {"expect", "schema", "markdown"} <= used
    _, result = _run(plan, example_registry())
    assert result.verdict is Verdict.SUCCESS, result.error
    report = result.outputs["report"]
    assert report.startswith("## Air report\n\nBreach: **stern**")
    assert "Oxygen at O2-STERN-2: **17.8 %** (low)" in report
    assert result.key_findings == {"report": report}


@pytest.mark.integration
def test_the_air_report_notebook_runs_with_python(tmp_path: Path) -> None:
    from marimo_engine.examples import load_example
    from marimo_engine.tools.examples import example_registry

    path = tmp_path / "air.py"
    path.write_text(plan_to_notebook(load_example("air-report"), example_registry()), "utf-8")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = run_process([sys.executable, str(path)], timeout_s=120, env=env, cwd=tmp_path)
    printed = re.sub(r"in \d+\.\d+ s", "in T s", proc.stdout).splitlines()
    assert printed[-1] == "Plan 'air-report' finished: SUCCESS in T s.", proc.stderr
    assert "Step 'report' completed in T s (key finding)." in printed


def test_a_map_step_keeps_its_contract_on_the_list_of_results() -> None:
    def files() -> list[str]:
        return ["a.csv", "bb.csv"]

    def size(name: str) -> int:
        return len(name)

    plan = _plan(
        {"id": "s1", "tool": "files"},
        {"id": "s2", "tool": "size", "map": "$s1", "args": {"name": "$item"},
         "expect": ["$self.0 > 0", "$self.1 > 10"]},
        {"id": "md", "markdown": "Sizes: $s2.0 and $s2.1"},
    )  # fmt: skip
    _, result = _run(plan, {"files": files, "size": size})
    assert result.error is not None and result.error.type == "ContractError"
    assert result.error.message == (
        "The output of step 's2' breaks its contract: expect[1] '$self.1 > 10' is false; "
        "seen: $self.1 = 6."
    )
    plan["steps"][1]["expect"] = ["$self.1 == 6"]
    _, result = _run(plan, {"files": files, "size": size})
    assert result.outputs["md"] == "Sizes: 5 and 6"


def test_a_contract_pickles_and_checks_the_same_where_it_is_unpickled() -> None:
    import pickle
    from types import SimpleNamespace

    from marimo_engine.errors import ContractError
    from marimo_engine.plans.contracts import Contract

    step = SimpleNamespace(id="s", expect=["$self.rows > 2"], output_schema={"required": ["level"]})
    contract = Contract.of(step)
    assert contract is not None
    again = pickle.loads(pickle.dumps(contract))  # a Dask worker gets it so (dask_host)
    assert again.step_id == "s" and again.schema == {"required": ["level"]}
    again.check({"rows": 3, "level": 1.0}, {})
    for output in ({"rows": 1, "level": 1.0}, {"rows": 3}):
        with pytest.raises(ContractError) as there:
            again.check(output, {})
        with pytest.raises(ContractError) as here:
            contract.check(output, {})
        assert str(there.value) == str(here.value)
        assert there.value.values == here.value.values
