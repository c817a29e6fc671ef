"""`Plan`, `Step` and `load_plan`: the spec's table, and problems that say what to change."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from marimo_engine.errors import PlanValidationError, UsageError
from marimo_engine.examples import load_example
from marimo_engine.plans.schema import Plan, Step, load_plan

SEED = load_example("hull-check-7")  # the spec's example plan, verbatim


def step(**fields: Any) -> dict[str, Any]:
    return {"id": "s1", "tool": "scan_hull", **fields}


def plan_of(*steps: Any, **fields: Any) -> dict[str, Any]:
    return {"steps": list(steps), **fields}


@dataclass(frozen=True)
class Case:
    id: str
    source: Any
    problems: list[tuple[str | None, str | None, str]]  # (step_id, field, code)
    match: str


INVALID = [
    Case("json-syntax", '{"steps": [}', [(None, None, "invalid_plan")], r"line 1, column 12"),
    Case("json-list", "[1, 2]", [(None, None, "invalid_plan")], r"must be an object.*got a list"),
    Case("python-list", [1], [(None, None, "invalid_plan")], r"got a list"),
    Case("not-utf8", b"\xff{}", [(None, None, "invalid_plan")], r"not UTF-8"),
    Case("number", 5, [(None, None, "invalid_plan")], r"got 5 \(an integer\)"),
    Case("no-steps", {}, [(None, "steps", "invalid_plan")], r"no 'steps'; add a list"),
    Case("empty-steps", plan_of(), [(None, "steps", "invalid_plan")], r"'steps' list is empty"),
    Case("steps-not-list", {"steps": "s1"}, [(None, "steps", "invalid_plan")], r"must be a list"),
    Case("step-not-object", plan_of(3), [(None, "steps.0", "invalid_plan")], r"index 0 must be"),
    Case(
        "unknown-plan-field",
        {**plan_of(step()), "stepz": []},
        [(None, "stepz", "invalid_plan")],
        r"unknown field 'stepz'\. Did you mean 'steps'\? Allowed fields: 'id', 'name', 'steps'",
    ),
    Case(
        "unknown-step-field",
        plan_of(step(tiemout_s=3)),
        [("s1", "tiemout_s", "invalid_plan")],
        r"Step 's1' has an unknown field 'tiemout_s'\. Did you mean 'timeout_s'\? "
        r"Allowed fields: 'id', 'tool', .*'retries', 'requires_approval'(, '[a-z_]+')*\.",
    ),
    Case(
        "unknown-field-no-close-name",
        plan_of(step(colour="red")),
        [("s1", "colour", "invalid_plan")],
        r"unknown field 'colour'\. Allowed fields:",
    ),
    Case("plan-id-type", {**plan_of(step()), "id": 5}, [(None, "id", "invalid_plan")], r"'id'"),
    Case("plan-id-empty", {**plan_of(step()), "id": ""}, [(None, "id", "invalid_plan")], r"'id'"),
    Case(
        "plan-name-type",
        {**plan_of(step()), "name": 1},
        [(None, "name", "invalid_plan")],
        r"The plan's 'name' must be a string; got 1",
    ),
    Case(
        "bad-id",
        plan_of(step(id="bad id!")),
        [(None, "steps.0.id", "invalid_id")],
        r"'bad id!'.*1-64 characters of A-Z a-z 0-9 _ -, such as 'bad_id'",
    ),
    Case(
        "id-too-long",
        plan_of(step(id="a" * 65)),
        [(None, "steps.0.id", "invalid_id")],
        r"1-64 characters",
    ),
    Case(
        "id-empty",
        plan_of(step(id="")),
        [(None, "steps.0.id", "invalid_id")],
        r"has the id '' \(a string\); a step id must be 1-64 characters.*such as 's1'",
    ),
    Case(
        "id-newline",
        plan_of(step(id="s1\n")),
        [(None, "steps.0.id", "invalid_id")],
        r"such as 's1'",
    ),
    Case(
        "id-unicode",
        plan_of(step(id="schritt-ä")),
        [(None, "steps.0.id", "invalid_id")],
        r"such as 'schritt'",
    ),
    Case("id-number", plan_of(step(id=7)), [(None, "steps.0.id", "invalid_id")], r"7 \("),
    Case(
        "id-missing",
        plan_of({"tool": "t"}, {"tool": "t"}),
        [(None, "steps.0.id", "invalid_id"), (None, "steps.1.id", "invalid_id")],
        r"no 'id'; add one such as 's1'",
    ),
    Case("tool-missing", plan_of({"id": "s1"}), [("s1", "tool", "invalid_plan")], r"no 'tool'"),
    Case("tool-type", plan_of(step(tool=3)), [("s1", "tool", "invalid_plan")], r"'tool' must"),
    Case("args-type", plan_of(step(args=[1])), [("s1", "args", "invalid_plan")], r"an object"),
    Case(
        "args-key-type",
        plan_of(step(args={1: "x"})),
        [("s1", "args", "invalid_plan")],
        r"'args' keys must be strings",
    ),
    Case(
        "run-if-type",
        plan_of(step(run_if=True)),
        [("s1", "run_if", "invalid_plan")],
        r"'run_if' must be an expression in a string; got True",
    ),
    Case(
        "intervention-type",
        plan_of(step(intervention_if=1)),
        [("s1", "intervention_if", "invalid_plan")],
        r"'intervention_if' must be an expression",
    ),
    Case(
        "description-type",
        plan_of(step(description=[])),
        [("s1", "description", "invalid_plan")],
        r"'description' must be a string; got a list",
    ),
    Case(
        "key-finding-int",
        plan_of(step(key_finding=1)),
        [("s1", "key_finding", "invalid_plan")],
        r"true or false",
    ),
    Case(
        "key-finding-str",
        plan_of(step(key_finding="true")),
        [("s1", "key_finding", "invalid_plan")],
        r"'key_finding' must be true or false; got 'true'",
    ),
    Case(
        "depends-on-type",
        plan_of(step(depends_on="s0")),
        [("s1", "depends_on", "invalid_plan")],
        r"'depends_on' must be a list of step ids",
    ),
    Case(
        "depends-on-item",
        plan_of(step(depends_on=["s0", 2])),
        [("s1", "depends_on.1", "invalid_plan")],
        r"'depends_on\.1' must be a step id",
    ),
    Case(
        "timeout-zero",
        plan_of(step(timeout_s=0)),
        [("s1", "timeout_s", "invalid_plan")],
        r"greater than 0",
    ),
    Case(
        "timeout-negative",
        plan_of(step(timeout_s=-1.5)),
        [("s1", "timeout_s", "invalid_plan")],
        r"'timeout_s' must be a number of seconds greater than 0; got -1.5",
    ),
    Case(
        "timeout-text",
        plan_of(step(timeout_s="5")),
        [("s1", "timeout_s", "invalid_plan")],
        r"got '5' \(a string\)",
    ),
    Case(
        "timeout-bool",
        plan_of(step(timeout_s=True)),
        [("s1", "timeout_s", "invalid_plan")],
        r"got True \(a boolean\)",
    ),
    Case(
        "timeout-nan",
        plan_of(step(timeout_s=float("nan"))),
        [("s1", "timeout_s", "invalid_plan")],
        r"got nan",
    ),
    Case(
        "timeout-inf",
        plan_of(step(timeout_s=float("inf"))),
        [("s1", "timeout_s", "invalid_plan")],
        r"got inf",
    ),
    Case(
        "retries-high",
        plan_of(step(retries=11)),
        [("s1", "retries", "invalid_plan")],
        r"from 0 to 10; got 11",
    ),
    Case(
        "retries-negative",
        plan_of(step(retries=-1)),
        [("s1", "retries", "invalid_plan")],
        r"from 0 to 10; got -1",
    ),
    Case(
        "retries-float",
        plan_of(step(retries=2.0)),
        [("s1", "retries", "invalid_plan")],
        r"from 0 to 10; got 2.0 \(a number\)",
    ),
    Case(
        "retries-bool",
        plan_of(step(retries=True)),
        [("s1", "retries", "invalid_plan")],
        r"from 0 to 10; got True",
    ),
    Case(
        "field-path-when-id-unreadable",
        plan_of(step(id="bad id", retries=99)),
        [(None, "steps.0.id", "invalid_id"), (None, "steps.0.retries", "invalid_plan")],
        r"index 0",
    ),
    Case(
        "every-problem-at-once",
        plan_of(step(retries=11), {"id": "s2", "tool": "t", "colour": 1}, 4),
        [
            ("s1", "retries", "invalid_plan"),
            ("s2", "colour", "invalid_plan"),
            (None, "steps.2", "invalid_plan"),
        ],
        r"The plan has 3 problems: step 's1', field 'retries'",
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_plans_give_the_spec_problems(case: Case) -> None:
    with pytest.raises(PlanValidationError, match=case.match) as raised:
        load_plan(case.source)
    found = [(p.step_id, p.field, p.code.value) for p in raised.value.problems]
    assert found == case.problems
    for problem in raised.value.problems:
        assert problem.message and "\n" not in problem.message
    json.dumps(raised.value.problems_json())  # problems are plain JSON


@dataclass(frozen=True)
class ValidCase:
    id: str
    source: Any
    check: dict[str, Any] = field(default_factory=dict)


def as_json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


VALID = [
    ValidCase("seed-dict", SEED, {"id": "hull-check-7", "step_ids": ["s1", "s2", "s3"]}),
    ValidCase("seed-json", json.dumps(SEED), {"name": "Hull and air diagnostics"}),
    ValidCase("seed-bytes", as_json_bytes(SEED), {"step_ids": ["s1", "s2", "s3"]}),
    ValidCase("mapping", MappingProxyType(plan_of(step())), {"step_ids": ["s1"]}),
    ValidCase("int-timeout", plan_of(step(timeout_s=5)), {}),
    ValidCase("float-timeout", plan_of(step(timeout_s=0.25)), {}),
    ValidCase("retries-bounds", plan_of(step(retries=0), step(id="s2", retries=10)), {}),
    ValidCase("id-charset", plan_of(step(id="A-z_0-9")), {"step_ids": ["A-z_0-9"]}),
    ValidCase("id-64", plan_of(step(id="a" * 64)), {}),
    ValidCase("null-plan-id", {**plan_of(step()), "id": None}, {}),
    ValidCase(
        "duplicates-are-not-checked-here", plan_of(step(), step()), {"step_ids": ["s1", "s1"]}
    ),
]


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_plans_load(case: ValidCase) -> None:
    plan = load_plan(case.source)
    assert isinstance(plan, Plan)
    for name, expected in case.check.items():
        assert getattr(plan, name) == expected


def test_defaults_follow_the_spec_table() -> None:
    plan = load_plan(plan_of(step()))
    s1 = plan.steps[0]
    assert (s1.description, s1.args, s1.run_if, s1.intervention_if) == (None, {}, None, None)
    assert (s1.key_finding, s1.depends_on, s1.timeout_s, s1.retries) == (False, [], None, 0)
    assert re.fullmatch(r"plan-[0-9a-f]{8}", plan.id)
    assert plan.name is None


def test_generated_plan_ids_differ() -> None:
    ids = {load_plan(plan_of(step())).id for _ in range(20)}
    assert len(ids) == 20


def test_a_plan_model_is_returned_as_is() -> None:
    plan = load_plan(SEED)
    assert load_plan(plan) is plan


def test_seed_fields_are_read() -> None:
    plan = load_plan(SEED)
    assert plan.step("s2").key_finding is True
    assert plan.step("s2").intervention_if == "$s2.level < 15"
    assert plan.step("s3").args == {"o2_level": "$s2.level"}
    assert plan.model_dump(mode="json")["steps"][2]["run_if"] == SEED["steps"][2]["run_if"]


def test_step_lookup_suggests_close_ids() -> None:
    plan = load_plan(SEED)
    with pytest.raises(UsageError, match=r"has no step 's4'\. Did you mean 's3' or 's2' or 's1'\?"):
        plan.step("s4")
    with pytest.raises(UsageError, match=r"has no step 'zzz'\. Steps: 's1', 's2', 's3'\."):
        plan.step("zzz")


def test_a_plan_object_stays_well_formed() -> None:
    plan = load_plan(SEED)
    with pytest.raises(ValidationError):
        plan.steps[0].id = "not valid!"
    with pytest.raises(ValidationError):
        plan.steps[0].retries = 11
    with pytest.raises(ValidationError):
        Step(id="s1", tool="t", surprise=1)  # type: ignore[call-arg]


def test_json_schema_documents_every_step_field() -> None:
    step_schema = Plan.model_json_schema()["$defs"]["Step"]
    properties: Mapping[str, Any] = step_schema["properties"]
    assert set(properties) == {info.alias or name for name, info in Step.model_fields.items()}
    assert all(p.get("description") for p in properties.values())
    assert properties["id"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert step_schema["additionalProperties"] is False
