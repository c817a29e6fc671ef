"""The package's public API: the spec's "Python API" list, and light imports."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import marimo_engine
from tests.processes import run_process

SPEC_PYTHON_API = [
    "execute_plan",
    "execute_plan_sync",
    "validate_plan",
    "plan_to_notebook",
    "Plan",
    "Step",
    "Event",
    "EventType",
    "Verdict",
    "ExecutionResult",
    "ToolRegistry",
    "PlanValidationError",
    "resume_run",
    "rerun",
    "list_runs",
    "Decision",
]
"""The names of the plan language spec's "Python API" section, in its order."""

ISSUE_2_NAMES = ["validate_plan", "Plan", "Step", "ToolRegistry", "PlanValidationError"]
"""The names of that list that issue 2 (the plan language) builds."""

HEAVY_MODULES = [
    "marimo", "pydantic_ai", "httpx", "rich", "duckdb", "pandas", "altair", "pipecat",
]  # fmt: skip


def test_root_all_is_the_spec_python_api() -> None:
    assert sorted(marimo_engine.__all__) == sorted(SPEC_PYTHON_API)
    assert len(marimo_engine.__all__) == len(set(marimo_engine.__all__))


@pytest.mark.parametrize("name", ISSUE_2_NAMES)
def test_issue_2_names_are_importable_from_the_root(name: str) -> None:
    value = getattr(marimo_engine, name)
    assert value is not None
    namespace: dict[str, object] = {}
    exec(f"from marimo_engine import {name}", namespace)
    assert namespace[name] is value


def test_root_names_are_the_package_objects() -> None:
    from marimo_engine.errors import PlanValidationError
    from marimo_engine.plans.schema import Plan, Step
    from marimo_engine.tools.registry import ToolRegistry
    from marimo_engine.tools.validation import validate_plan

    assert marimo_engine.Plan is Plan
    assert marimo_engine.Step is Step
    assert marimo_engine.validate_plan is validate_plan
    assert marimo_engine.ToolRegistry is ToolRegistry
    assert marimo_engine.PlanValidationError is PlanValidationError


def test_unknown_root_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'marimo_engine' has no attribute 'nope'"):
        _ = marimo_engine.nope  # type: ignore[attr-defined]


@pytest.mark.integration
def test_import_and_validate_do_not_import_heavy_modules() -> None:
    code = textwrap.dedent(
        f"""
        import json, sys
        import marimo_engine
        from marimo_engine import validate_plan
        from marimo_engine.examples import load_example
        from marimo_engine.tools.examples import example_registry

        problems = validate_plan(load_example("hull-check-7"), example_registry())
        bad = validate_plan({{"steps": [{{"id": "s1", "tool": "scan_hul"}}]}}, example_registry())
        heavy = {HEAVY_MODULES!r}
        roots = {{module.split(".")[0] for module in sys.modules}}
        loaded = sorted(name for name in heavy if name in roots)
        print(json.dumps({{"problems": len(problems), "bad": len(bad), "loaded": loaded}}))
        """
    )
    result = run_process([sys.executable, "-c", code], timeout_s=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"problems": 0, "bad": 1, "loaded": []}
