"""Whole-document checks: tool names, lone surrogates, nesting limits, `$schema`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marimo_engine import PlanValidationError, validate_plan
from marimo_engine.plans.document import MAX_VALUE_DEPTH, has_lone_surrogate
from marimo_engine.plans.problems import Problem, ProblemCode
from marimo_engine.plans.schema import Plan, Step, load_plan
from marimo_engine.plans.validation import check_plan

INJECTED_TOOL = "x\nimport os; os.system('id')\n#"


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def as_json(problems: list[Problem]) -> str:
    """Serialise problems the way events and `--json` do: must be valid UTF-8 JSON."""
    text = json.dumps([p.model_dump(mode="json") for p in problems], ensure_ascii=False)
    text.encode("utf-8")  # raises for a lone surrogate
    return text


# --- tool names ------------------------------------------------------------------


def test_the_injection_repro_is_a_validation_problem_without_a_registry() -> None:
    plan = {"steps": [{"id": "s1", "tool": INJECTED_TOOL}]}
    problems = validate_plan(plan)
    assert [(p.step_id, p.field, p.code) for p in problems] == [
        ("s1", "tool", ProblemCode.INVALID_PLAN)
    ]
    assert "1-64 characters of A-Z a-z 0-9 _ -" in problems[0].message
    assert "\n" not in problems[0].message


@pytest.mark.parametrize(
    "tool",
    ["a b", "a\rb", "a\x00", "a.b", "é", "", "x" * 65, "scan_hull\n", "a;b", "a\u2028b"],
)
def test_tool_names_outside_the_pattern_are_rejected(tool: str) -> None:
    with pytest.raises(PlanValidationError, match=r"'tool' must be a tool name") as info:
        check_plan({"steps": [{"id": "s1", "tool": tool}]})
    assert [p.field for p in info.value.problems] == ["tool"]


@pytest.mark.parametrize("tool", ["scan_hull", "load-csv", "T0", "x" * 64, "_private"])
def test_tool_names_in_the_pattern_are_accepted(tool: str) -> None:
    assert validate_plan({"steps": [{"id": "s1", "tool": tool}]}) == []


def test_registered_names_follow_the_same_pattern() -> None:
    from marimo_engine.errors import UsageError
    from marimo_engine.tools.registry import ToolRegistry

    with pytest.raises(UsageError, match="is invalid"):
        ToolRegistry().register(lambda: 1, name="scan_hull\n")


# --- lone surrogates ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    plan_json: str
    step_id: str | None
    field: str


STEP = '{"steps":[{"id":"s1","tool":"t",%s}]}'
"""A one-step plan's JSON text around the step fields written in place of `%s`."""

SURROGATE_CASES = [
    Case("description", STEP % '"description":"a\\ud800"', "s1", "description"),
    Case("arg-value", STEP % '"args":{"a":["x","\\udfff"]}', "s1", "args.a.1"),
    Case("arg-key", STEP % '"args":{"k\\ud800":1}', "s1", "args.k\\ud800"),
    Case("run_if", STEP % '"run_if":"\'\\ud800\' == 1"', "s1", "run_if"),
    Case("depends_on", STEP % '"depends_on":["\\ud800"]', "s1", "depends_on.0"),
    Case("name", '{"name":"\\ud800","steps":[{"id":"s1","tool":"t"}]}', None, "name"),
    Case("plan-id", '{"id":"p\\udc00","steps":[{"id":"s1","tool":"t"}]}', None, "id"),
    Case("tool", '{"steps":[{"id":"s1","tool":"\\ud800"}]}', "s1", "tool"),
    Case("no-id", '{"steps":[{"tool":"t","description":"\\ud800"}]}', None, "steps.0.description"),
    Case("plan-key", '{"\\ud800":1,"steps":[{"id":"s1","tool":"t"}]}', None, "\\ud800"),
]


@pytest.mark.parametrize("case", SURROGATE_CASES, ids=[c.id for c in SURROGATE_CASES])
def test_lone_surrogates_are_rejected_with_the_field_named(case: Case) -> None:
    problems = validate_plan(case.plan_json)
    found = [p for p in problems if "lone surrogate" in p.message]
    assert [(p.step_id, p.field, p.code) for p in found] == [
        (case.step_id, case.field, ProblemCode.INVALID_PLAN)
    ]
    as_json(problems)  # every problem serialises, whatever it quotes
    # Also for a dict, and for the bytes of the JSON text.
    assert validate_plan(json.loads(case.plan_json)) == problems
    assert validate_plan(case.plan_json.encode()) == problems


def test_a_surrogate_pair_is_a_character_not_a_problem() -> None:
    plan = '{"steps":[{"id":"s1","tool":"t","description":"\\ud83d\\ude00"}]}'
    assert validate_plan(plan) == []
    assert load_plan(plan).steps[0].description == "😀"


def test_a_plan_object_with_a_lone_surrogate_is_rejected() -> None:
    plan = Plan(steps=[Step(id="s1", tool="t", args={"a": "\udc80"})])
    problems = validate_plan(plan)
    assert [(p.step_id, p.field) for p in problems] == [("s1", "args.a")]
    with pytest.raises(PlanValidationError):
        check_plan(plan)


def test_a_run_of_a_plan_with_a_lone_surrogate_ends_with_finish() -> None:
    from marimo_engine import EventType, execute_plan_sync

    plan = json.loads(SURROGATE_CASES[0].plan_json)
    result = execute_plan_sync(plan, tools={"t": lambda: 1})
    assert [e.type for e in result.events] == [EventType.START, EventType.ERROR, EventType.FINISH]
    for event in result.events:
        event.to_json_line().encode("utf-8")


def test_problems_always_serialise() -> None:
    problem = Problem(field="args.\udc80", code=ProblemCode.INVALID_PLAN, message="at \ud800")
    assert problem.field == "args.\\udc80"
    assert problem.message == "at \\ud800"
    as_json([problem])


@settings(max_examples=60, deadline=None, database=None)
@given(st.text(st.characters(exclude_categories=()), max_size=12))
def test_any_text_is_valid_or_named(text: str) -> None:
    plan = {"name": text, "steps": [{"id": "s1", "tool": "t", "description": text}]}
    problems = validate_plan(plan)
    as_json(problems)
    if has_lone_surrogate(text):
        assert {p.field for p in problems} == {"name", "description"}
    else:
        assert problems == []


# --- nesting -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_VALUE_DEPTH + 1, 5_000, 200_000])
def test_deep_args_are_a_problem_not_a_crash(depth: int) -> None:
    problems = validate_plan({"steps": [{"id": "s1", "tool": "t", "args": {"a": nested(depth)}}]})
    assert [(p.step_id, p.field, p.code) for p in problems] == [
        ("s1", "args.a", ProblemCode.INVALID_PLAN)
    ]
    assert f"nested deeper than {MAX_VALUE_DEPTH} levels" in problems[0].message


def test_args_at_the_limit_are_accepted() -> None:
    assert validate_plan({"steps": [{"id": "s1", "tool": "t", "args": {"a": nested(100)}}]}) == []


def test_deep_other_fields_are_a_problem_not_a_crash() -> None:
    problems = validate_plan({"name": nested(200_000), "steps": [{"id": "s1", "tool": "t"}]})
    assert {p.field for p in problems} == {"name"}


@pytest.mark.parametrize("depth", [150, 900, 5_000, 100_000])
def test_deep_json_text_is_a_problem_not_a_crash(depth: int) -> None:
    text = '{"steps":[{"id":"s1","tool":"t","args":{"a":' + "[" * depth + "]" * depth + "}}]}"
    problems = validate_plan(text)
    assert [p.code for p in problems] == [ProblemCode.INVALID_PLAN]
    assert "100 levels" in problems[0].message


def test_the_rest_of_a_step_with_deep_args_is_still_checked() -> None:
    plan = {"steps": [{"id": "s1", "tool": "t", "args": {"a": nested(150)}, "run_if": "$s9"}]}
    fields = sorted((p.field, p.code) for p in validate_plan(plan))
    assert fields == [("args.a", "invalid_plan"), ("run_if", "unknown_reference")]


# --- $schema -------------------------------------------------------------------------


def test_a_schema_key_is_accepted_and_ignored() -> None:
    plan = {"$schema": "https://example.org/plan.schema.json", "steps": [{"id": "s1", "tool": "t"}]}
    assert validate_plan(plan) == []
    assert validate_plan(json.dumps(plan)) == []
    assert load_plan(plan).step_ids == ["s1"]


def test_a_schema_key_must_be_a_string() -> None:
    problems = validate_plan({"$schema": 3, "steps": [{"id": "s1", "tool": "t"}]})
    assert [(p.field, p.code) for p in problems] == [("$schema", "invalid_plan")]


def test_a_schema_key_in_a_step_is_still_unknown() -> None:
    problems = validate_plan({"steps": [{"id": "s1", "tool": "t", "$schema": "x"}]})
    assert [(p.field, p.code) for p in problems] == [("$schema", "invalid_plan")]


def test_the_example_plans_stay_valid() -> None:
    from marimo_engine.examples import load_example

    for name in ("hull-check-7", "seattle-weather"):
        assert validate_plan(load_example(name)) == []


@pytest.mark.parametrize("command", ["validate", "run", "export"])
def test_the_cli_reports_deep_json_as_a_problem_with_exit_2(
    command: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from marimo_engine.cli.main import main

    path = tmp_path / "deep.json"
    depth = 100_000
    path.write_text(
        '{"steps":[{"id":"s1","tool":"scan_hull","args":{"a":' + "[" * depth + "]" * depth + "}}]}",
        encoding="utf-8",
    )
    extra = ["-o", str(tmp_path / "nb.py")] if command == "export" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "[invalid_plan]" in err
    assert "RecursionError" not in err
