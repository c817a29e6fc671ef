"""What the runs UI does: resume, re-run, run a proposed plan, propose one (`ui.actions`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.agents.planner import PROPOSED_ONLY, PlannerAgent
from marimo_engine.engine.durable import Decision
from marimo_engine.engine.journal import open_journal
from marimo_engine.errors import PlanValidationError, UsageError
from marimo_engine.ui import actions

from .conftest import TOOLS_FILE, registry, wait_until

APPROVAL = {
    "id": "needs-ok",
    "steps": [
        {"id": "s1", "tool": "scan_hull"},
        {"id": "s2", "tool": "check_oxygen", "requires_approval": True},
        {"id": "s3", "tool": "analyze_atmosphere", "args": {"o2_level": "$s2.level"}},
    ],
}


def _config(journal: str) -> actions.UIConfig:
    return actions.UIConfig(journal=journal, tools=(str(TOOLS_FILE),))


def _status(journal: str, run_id: str) -> str | None:
    with open_journal(journal) as store:
        record = store.get_run(run_id, steps=False)
    return None if record is None else record.status


def test_config_travels_in_the_environment() -> None:
    config = actions.UIConfig(
        journal="/tmp/j.sqlite3", tools=("a.tools", "./b.py"), model="openai:m", fallbacks=("x",)
    )
    env = config.to_env()
    assert env["MARIMO_ENGINE_JOURNAL"] == "/tmp/j.sqlite3"
    assert actions.UIConfig.from_env(env) == config
    assert actions.UIConfig.from_env({}) == actions.UIConfig()
    with pytest.raises(UsageError, match=r"\$MARIMO_ENGINE_UI is not a JSON object"):
        actions.UIConfig.from_env({"MARIMO_ENGINE_UI": "[1]"})


def test_rerun_changes() -> None:
    old = {"a": 1, "b": "x"}
    assert actions.rerun_changes("s", old, {"a": 2, "b": "x"}) == {"s.args.a": 2}
    assert actions.rerun_changes("s", old, {"a": 1, "b": "x", "c": [1]}) == {"s.args.c": [1]}
    with pytest.raises(UsageError, match=r"did not change"):
        actions.rerun_changes("s", old, dict(old))
    with pytest.raises(UsageError, match=r"Arguments 'b' of step 's' were removed"):
        actions.rerun_changes("s", old, {"a": 1})


def test_approve_resumes_in_the_background(journal_path: str) -> None:
    result = execute_plan_sync(APPROVAL, tools=registry(), journal=journal_path)
    assert result.verdict.value == "INTERVENTION_NEEDED"
    assert result.run_id is not None and result.intervention is not None
    config = _config(journal_path)
    with pytest.raises(UsageError, match=r"is stale"):
        actions.resume(config, result.run_id, Decision.approve(), intervention_id="old")
    assert _status(journal_path, result.run_id) == "INTERVENTION_NEEDED"  # nothing ran
    returned = actions.resume(
        config,
        result.run_id,
        Decision.approve(),
        intervention_id=result.intervention.intervention_id,
    )
    assert returned == result.run_id
    wait_until(
        lambda: _status(journal_path, result.run_id) == "SUCCESS", what="the resumed run ends"
    )
    assert result.run_id not in actions.background_errors()


def test_reject_a_condition_fails_the_run_with_the_reason(journal_path: str) -> None:
    from marimo_engine.examples import load_example

    result = execute_plan_sync(load_example("oxygen-watch"), tools=registry(), journal=journal_path)
    assert result.verdict.value == "INTERVENTION_NEEDED" and result.run_id is not None
    actions.resume(
        _config(journal_path), result.run_id, Decision.reject("too risky"), intervention_id=None
    )
    wait_until(lambda: _status(journal_path, result.run_id) == "FAILURE", what="rejected")
    with open_journal(journal_path) as store:
        record = store.get_run(result.run_id)
    assert record is not None
    errors = [s.error for s in record.steps if s.error]
    assert errors and "too risky" in errors[0]["message"]


def test_an_answer_that_does_not_fit_is_refused_in_the_pages_words(journal_path: str) -> None:
    from marimo_engine.examples import load_example

    result = execute_plan_sync(load_example("oxygen-watch"), tools=registry(), journal=journal_path)
    assert result.run_id is not None
    with pytest.raises(UsageError, match=r"^The answer does not fit the output of step 'o2'"):
        actions.resume(
            _config(journal_path), result.run_id, Decision.answer({"level": "high"}),
            intervention_id=None,
        )  # fmt: skip
    assert _status(journal_path, result.run_id) == "INTERVENTION_NEEDED"


def test_rerun_runs_only_the_changed_step_and_its_dependents(journal_path: str) -> None:
    plan = {
        "id": "chain",
        "steps": [
            {"id": "a", "tool": "scale", "args": {"value": 1}},
            {"id": "b", "tool": "scale", "args": {"value": 10}},
            {"id": "c", "tool": "scale", "args": {"value": "$b.value"}},
        ],
    }
    first = execute_plan_sync(plan, tools=registry(), journal=journal_path)
    assert first.run_id is not None
    config = _config(journal_path)
    new_id = actions.rerun(config, first.run_id, {"b.args.value": 20})
    wait_until(lambda: _status(journal_path, new_id) == "SUCCESS", what="the re-run ends")
    with open_journal(journal_path) as store:
        record = store.get_run(new_id)
        outputs = store.outputs(new_id)
    assert record is not None and record.parent_run_id == first.run_id
    reused = {s.step_id: s.reused_from for s in record.steps}
    assert reused == {"a": first.run_id, "b": None, "c": None}
    from marimo_engine.engine._journal_codec import decode_output

    assert decode_output(outputs["c"][1], outputs["c"][2]) == {"value": 80.0}


def test_start_plan_runs_with_the_journal(journal_path: str) -> None:
    config = _config(journal_path)
    run_id = actions.start_plan(config, {"id": "ok", "steps": [{"id": "x", "tool": "scan_hull"}]})
    wait_until(lambda: _status(journal_path, run_id) == "SUCCESS", what="the approved plan ends")
    with pytest.raises(PlanValidationError):
        actions.start_plan(config, {"steps": [{"id": "x", "tool": "scan_hul"}]})


@pytest.mark.anyio
async def test_propose_needs_a_model(journal_path: str) -> None:
    with pytest.raises(UsageError, match=r"marimo-engine ui --model MODEL"):
        await actions.propose_plan(_config(journal_path), "check the hull")


def test_planner_proposes_without_running() -> None:
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    plan = {"steps": [{"id": "hull", "tool": "scan_hull"}]}
    calls: list[Any] = []

    def answer(messages: list[Any], info: AgentInfo) -> ModelResponse:
        calls.append(messages)
        tool = info.output_tools[0].name
        return ModelResponse(parts=[ToolCallPart(tool, json.dumps(plan))])

    agent = PlannerAgent(FunctionModel(answer), registry())
    result = agent.run_sync("check the hull", run_plans=False)
    assert result.stop_reason == PROPOSED_ONLY
    assert result.verdict.value == "SUCCESS"
    assert result.execution is None
    assert result.plans[-1].plan["steps"] == plan["steps"]
    assert result.plans[-1].plan["id"].startswith("plan-")
    assert len(calls) == 1


def test_tools_file_is_loaded_once(journal_path: str) -> None:
    config = _config(journal_path)
    assert config.registry() is config.registry()
    assert "wait_for_file" in config.registry()
    with pytest.raises(UsageError):
        actions.UIConfig(tools=(str(Path(journal_path).parent / "missing.py"),)).registry()
