"""The published JSON schema of a plan: up to date, valid, accepts what `load_plan` accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from marimo_engine.cli.main import main
from marimo_engine.examples import example_names, load_example
from marimo_engine.plans.json_schema import (
    model_plan_schema,
    plan_json_schema,
    plan_json_schema_text,
    published_plan_schema_text,
)
from marimo_engine.plans.schema import load_plan

PUBLISHED = Path(__file__).resolve().parents[3] / "src/marimo_engine/plans/plan.schema.json"


def test_the_published_file_is_up_to_date_with_the_model() -> None:
    assert PUBLISHED.read_text(encoding="utf-8") == plan_json_schema_text(), (
        "plan.schema.json is stale; regenerate it: uv run python -m "
        "marimo_engine.plans.json_schema > src/marimo_engine/plans/plan.schema.json"
    )
    assert published_plan_schema_text() == plan_json_schema_text()


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = plan_json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _errors(plan: Any) -> list[str]:
    validator = Draft202012Validator(plan_json_schema())
    return [error.message for error in validator.iter_errors(plan)]


@pytest.mark.parametrize("name", example_names())
def test_every_example_plan_matches_the_schema(name: str) -> None:
    assert _errors(load_example(name)) == []


def test_plan_language_2_fields_and_an_editors_schema_key_match() -> None:
    plan = {
        "$schema": "./plan.schema.json",
        "steps": [
            {"id": "s1", "tool": "scan_hull", "expect": ["$self.integrity_percent > 0"],
             "schema": {"type": "object"}},
            {"id": "md", "markdown": "Integrity $s1.integrity_percent %"},
        ],
    }  # fmt: skip
    assert _errors(plan) == []
    assert [s.kind for s in load_plan(plan).steps] == ["tool", "markdown"]


@pytest.mark.parametrize(
    "step",
    [
        {"id": "s1"},  # neither kind
        {"id": "s1", "tool": "t", "markdown": "x"},  # both
        {"id": "s1", "tool": "t", "shema": {}},  # a typo
        {"id": "s1", "tool": "t", "expect": [1]},
    ],
)
def test_what_load_plan_refuses_the_schema_refuses(step: dict[str, Any]) -> None:
    plan = {"steps": [step]}
    assert _errors(plan)
    with pytest.raises(Exception, match="problem"):
        load_plan(plan)


def test_the_models_schema_is_the_published_one_without_the_files_parts() -> None:
    published = json.loads(published_plan_schema_text())
    model = model_plan_schema()
    assert "$schema" not in model and "$id" not in model
    assert set(published["properties"]) - set(model["properties"]) == {"$schema", "id"}
    assert model["$defs"] == published["$defs"]
    assert model["required"] == ["steps"]


def test_cli_schema_prints_the_published_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == PUBLISHED.read_text(encoding="utf-8")
