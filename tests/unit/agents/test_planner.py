"""The planner agent's loop with pydantic-ai's FunctionModel: repair, replan, intervene, limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.agents import (
    AgentEventType,
    InterventionDecision,
    InterventionRequest,
    PlannerAgent,
    PlannerOptions,
    read_audit_log,
)
from marimo_engine.engine.events import EventType, Verdict
from marimo_engine.errors import ModelConfigError, UsageError
from marimo_engine.llm import ModelLimits
from tests.unit.agents.scripted import ScriptedPlanner
from tests.unit.agents.tools import GOOD, MISSPELT, planner_registry

T = AgentEventType

DIVIDES_BY_ZERO = {
    "name": "zero",
    "steps": [
        {"id": "s1", "tool": "divide", "args": {"a": 1, "b": 0}},
        {"id": "s2", "tool": "summarize", "args": {"value": "$s1"}},
    ],
}
LOW_OXYGEN = {
    "name": "oxygen",
    "steps": [
        {
            "id": "o2",
            "tool": "read_oxygen",
            "args": {"level": 12.5},
            "intervention_if": "$o2.level < 15",
        },
        {"id": "note", "tool": "summarize", "args": {"value": "$o2.level"}},
    ],
}


async def _collect(
    agent: PlannerAgent, goal: str = "a quarter, summarised", **kw: Any
) -> list[Any]:
    return [event async for event in agent.events(goal, **kw)]


def _agent_types(events: list[Any]) -> list[str]:
    """Agent event types, with engine events shown as their own type."""
    return [e.event.type.value if e.type is T.ENGINE_EVENT else e.type.value for e in events]


@pytest.mark.anyio
async def test_invalid_plan_is_repaired_from_its_problems(tmp_path: Path) -> None:
    script = ScriptedPlanner([MISSPELT, GOOD])
    agent = PlannerAgent(script.model(), planner_registry(), audit_path=tmp_path / "audit.jsonl")
    events = await _collect(agent)
    assert _agent_types(events) == [
        "PLANNING", "PLAN_PROPOSED", "PLAN_REJECTED",
        "PLANNING", "PLAN_PROPOSED", "PLAN_ACCEPTED",
        "START", "STEP_START", "STEP_COMPLETE", "STEP_START", "STEP_COMPLETE", "FINISH",
        "DONE",
    ]  # fmt: skip
    rejected = events[2]
    assert [(p.step_id, p.field, p.code.value) for p in rejected.problems] == [
        ("s1", "tool", "unknown_tool")
    ]
    # The problems went back to the model as JSON, as the answer to its plan.
    told = script.told(1)
    assert "Fix every problem" in told
    sent = json.loads(told[told.index("{") :])
    assert sent == {
        "problems": [
            {
                "step_id": "s1",
                "field": "tool",
                "code": "unknown_tool",
                "message": "Tool 'divde' is not registered. Did you mean 'divide'?",
            }
        ]
    }
    result = events[-1].result
    assert result.verdict is Verdict.SUCCESS
    assert [p.is_accepted for p in result.plans] == [False, True]
    assert result.execution.outputs == {"s1": 0.25, "s2": "quarter: 0.25"}
    assert result.usage.requests == 2


@pytest.mark.anyio
async def test_what_the_model_sees_tool_schemas_and_plan_schema() -> None:
    script = ScriptedPlanner([GOOD])
    await PlannerAgent(script.model(), planner_registry()).run("goal", context={"rows": 3})
    info = script.infos[0]
    assert [t.name for t in info.output_tools] == ["submit_plan"]
    schema = info.output_tools[0].parameters_json_schema
    assert schema["required"] == ["steps"]
    assert "id" not in schema["properties"]
    assert info.instructions is not None
    assert json.dumps(planner_registry().schemas(), indent=1) in info.instructions
    first = script.told(0)
    assert first.startswith("Goal: goal")
    assert '"rows": 3' in first


@pytest.mark.anyio
async def test_failing_tool_is_followed_by_a_replan_that_succeeds() -> None:
    script = ScriptedPlanner([DIVIDES_BY_ZERO, GOOD])
    events = await _collect(PlannerAgent(script.model(), planner_registry()))
    assert _agent_types(events) == [
        "PLANNING", "PLAN_PROPOSED", "PLAN_ACCEPTED",
        "START", "STEP_START", "ERROR", "FINISH",
        "REPLAN",
        "PLANNING", "PLAN_PROPOSED", "PLAN_ACCEPTED",
        "START", "STEP_START", "STEP_COMPLETE", "STEP_START", "STEP_COMPLETE", "FINISH",
        "DONE",
    ]  # fmt: skip
    told = script.told(1)
    report = json.loads(told[told.index("{") :])
    assert report["verdict"] == "FAILURE"
    assert report["error"]["type"] == "ZeroDivisionError"
    assert report["error"]["step_id"] == "s1"
    assert report["not_run"] == ["s2"]
    result = events[-1].result
    assert (result.verdict, result.stop_reason) == (Verdict.SUCCESS, "succeeded")
    assert [p.execution.verdict for p in result.plans] == [Verdict.FAILURE, Verdict.SUCCESS]


@pytest.mark.anyio
async def test_failure_without_replans_left_ends_the_run() -> None:
    script = ScriptedPlanner([DIVIDES_BY_ZERO])
    options = PlannerOptions(max_replans=0)
    result = await PlannerAgent(script.model(), planner_registry(), options=options).run("goal")
    assert (result.verdict, result.stop_reason) == (Verdict.FAILURE, "failed after 0 replan(s)")
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_intervention_is_handed_to_the_callback() -> None:
    asked: list[InterventionRequest] = []

    def decide(request: InterventionRequest) -> InterventionDecision:
        asked.append(request)
        if len(asked) == 1:
            return InterventionDecision("replan", note="Oxygen was refilled; read it again at 20.")
        return InterventionDecision("stop")

    script = ScriptedPlanner([LOW_OXYGEN, LOW_OXYGEN])
    agent = PlannerAgent(
        script.model(),
        planner_registry(),
        options=PlannerOptions(max_replans=2),
        on_intervention=decide,
    )
    events = await _collect(agent)
    assert _agent_types(events)[:8] == [
        "PLANNING", "PLAN_PROPOSED", "PLAN_ACCEPTED",
        "START", "STEP_START", "STEP_COMPLETE", "INTERVENTION_NEEDED", "FINISH",
    ]  # fmt: skip
    decisions = [(e.decision, e.replan) for e in events if e.type is T.INTERVENTION]
    assert decisions == [("replan", 0), ("stop", 1)]
    assert asked[0].result.intervention.step_id == "o2"
    assert asked[0].result.intervention.output == {"level": 12.5}
    assert asked[0].replans_left == 2
    assert "Oxygen was refilled" in script.told(1)
    result = events[-1].result
    assert (result.verdict, result.stop_reason) == (
        Verdict.INTERVENTION_NEEDED,
        "stopped for a person",
    )


@pytest.mark.anyio
async def test_intervention_without_a_callback_returns() -> None:
    script = ScriptedPlanner([LOW_OXYGEN])
    result = await PlannerAgent(script.model(), planner_registry()).run("goal")
    assert result.verdict is Verdict.INTERVENTION_NEEDED
    assert result.execution.intervention.expression == "$o2.level < 15"
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_async_callback_and_bad_answer(tmp_path: Path) -> None:
    async def bad(request: InterventionRequest) -> Any:
        return "continue"

    script = ScriptedPlanner([LOW_OXYGEN])
    path = tmp_path / "audit.jsonl"
    agent = PlannerAgent(script.model(), planner_registry(), on_intervention=bad, audit_path=path)
    with pytest.raises(UsageError, match=r"callback returned 'continue'; return an Interv"):
        await agent.run("goal")
    end = read_audit_log(path)[-1]
    assert (end["kind"], end["stop_reason"]) == ("run_end", "crashed")
    assert end["error"].startswith("UsageError: The intervention callback returned 'continue'")


@pytest.mark.anyio
async def test_repairs_are_limited() -> None:
    script = ScriptedPlanner([MISSPELT])
    options = PlannerOptions(max_repairs=2)
    events = await _collect(PlannerAgent(script.model(), planner_registry(), options=options))
    assert [e.type for e in events].count(T.PLAN_REJECTED) == 3  # 1 proposal + 2 repairs
    result = events[-1].result
    assert (result.verdict, result.stop_reason) == (
        Verdict.FAILURE,
        "no valid plan after 2 repair(s)",
    )
    assert result.execution is None
    assert len(script.requests) == 3


@pytest.mark.anyio
async def test_request_limit_stops_a_runaway_model() -> None:
    script = ScriptedPlanner([DIVIDES_BY_ZERO])  # fails forever, replans forever
    options = PlannerOptions(max_replans=10, limits=ModelLimits(request_limit=3))
    result = await PlannerAgent(script.model(), planner_registry(), options=options).run("goal")
    assert (result.verdict, result.stop_reason) == (Verdict.FAILURE, "model error")
    assert "request_limit of 3" in result.error
    assert len(script.requests) == 3
    assert len(result.plans) == 3


@pytest.mark.anyio
async def test_token_limit_stops_a_runaway_model() -> None:
    script = ScriptedPlanner([MISSPELT])
    options = PlannerOptions(max_repairs=10, limits=ModelLimits(total_tokens_limit=400))
    result = await PlannerAgent(script.model(), planner_registry(), options=options).run("goal")
    assert result.verdict is Verdict.FAILURE
    assert "total_tokens_limit of 400" in result.error
    assert result.usage.input_tokens + result.usage.output_tokens > 400
    assert len(script.requests) < 10


def test_budget_needs_a_priced_model() -> None:
    script = ScriptedPlanner([GOOD])
    options = PlannerOptions(limits=ModelLimits(budget_usd=0.5))
    with pytest.raises(ModelConfigError, match=r"budget of \$0.5 is set but model 'function:"):
        PlannerAgent(script.model(), planner_registry(), options=options)


@dataclass(frozen=True)
class OptionCase:
    id: str
    kwargs: dict[str, Any]
    match: str


OPTION_CASES = [
    OptionCase("repairs", {"max_repairs": -1}, r"max_repairs is -1; use an integer 0 to 10"),
    OptionCase("replans", {"max_replans": 11}, r"max_replans is 11; use an integer 0 to 10"),
    OptionCase("context", {"max_context_chars": 10}, r"max_context_chars is 10; use 200"),
    OptionCase("timeout-zero", {"timeout_s": 0}, r"timeout_s is 0; use a positive number of"),
    OptionCase("timeout-text", {"timeout_s": "5"}, r"timeout_s is '5'; use a positive number"),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=[c.id for c in OPTION_CASES])
def test_options_are_checked(case: OptionCase) -> None:
    with pytest.raises(UsageError, match=case.match):
        PlannerOptions(**case.kwargs)


@pytest.mark.anyio
async def test_audit_log_holds_one_record_per_action(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    script = ScriptedPlanner([MISSPELT, DIVIDES_BY_ZERO, GOOD])
    events = await _collect(PlannerAgent(script.model(), planner_registry(), audit_path=path))
    records = read_audit_log(path)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert {r["run_id"] for r in records} == {records[0]["run_id"]}
    kinds = [r["kind"] for r in records]
    engine = [e for e in events if e.type is T.ENGINE_EVENT]
    assert kinds.count("run_start") == kinds.count("run_end") == 1
    assert kinds.count("model_request") == kinds.count("model_response") == 3
    assert kinds.count("plan_proposed") == kinds.count("validation") == 3
    assert kinds.count("plan_accepted") == 2
    assert kinds.count("engine_event") == len(engine)
    decisions = [r["decision"] for r in records if r["kind"] == "decision"]
    assert decisions == ["repair", "replan", "stop"]
    assert [r["event"]["type"] for r in records if r["kind"] == "engine_event"] == [
        e.event.type.value for e in engine
    ]
    rejected = next(r for r in records if r["kind"] == "validation")
    assert rejected["valid"] is False
    assert rejected["problems"][0]["code"] == "unknown_tool"
    end = records[-1]
    assert (end["kind"], end["verdict"], end["plans"]) == ("run_end", "SUCCESS", 3)
    assert end["usage"]["cost_usd"] == "unpriced"
    # A second run appends to the same file.
    await PlannerAgent(ScriptedPlanner([GOOD]).model(), planner_registry(), audit_path=path).run(
        "g"
    )
    again = read_audit_log(path)
    assert len({r["run_id"] for r in again}) == 2


@pytest.mark.anyio
async def test_events_are_json_lines_and_done_is_last() -> None:
    script = ScriptedPlanner([DIVIDES_BY_ZERO, GOOD])
    events = await _collect(PlannerAgent(script.model(), planner_registry()))
    assert events[-1].type is T.DONE
    assert [e.type for e in events].count(T.DONE) == 1
    for event in events:
        line = json.loads(event.to_json_line())
        assert line["type"] == event.type.value
        assert "result" not in line
    finish = [e for e in events if e.type is T.ENGINE_EVENT and e.event.type is EventType.FINISH]
    assert len(finish) == 2


@pytest.mark.anyio
async def test_empty_goal_is_refused() -> None:
    agent = PlannerAgent(ScriptedPlanner([GOOD]).model(), planner_registry())
    with pytest.raises(UsageError, match=r"The goal is empty"):
        await agent.run("  ")


@pytest.mark.anyio
async def test_closing_the_stream_early_stops_the_run_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    agent = PlannerAgent(ScriptedPlanner([GOOD]).model(), planner_registry(), audit_path=path)
    stream = agent.events("goal")
    async for event in stream:
        if event.type is T.PLAN_ACCEPTED:
            break
    await stream.aclose()
    end = read_audit_log(path)[-1]
    assert (end["kind"], end["verdict"], end["stop_reason"]) == (
        "run_end",
        "FAILURE",
        "interrupted",
    )


BROKEN_CONTRACT = {
    "name": "contract",
    "steps": [
        {"id": "s1", "tool": "read_oxygen", "args": {"level": 12},
         "expect": ["$self.level >= 19.5"]},
        {"id": "s2", "tool": "summarize", "args": {"value": "$s1.level"}},
    ],
}  # fmt: skip
"""A plan whose first step's output breaks its `expect`."""

WITH_MARKDOWN = {
    "name": "report",
    "steps": [
        {"id": "s1", "tool": "read_oxygen", "args": {"level": 21}, "expect": ["$self.level > 0"],
         "schema": {"type": "object", "required": ["level"]}},
        {"id": "s2", "markdown": "Oxygen: **$s1.level** %"},
    ],
}  # fmt: skip


@pytest.mark.anyio
async def test_a_broken_contract_is_in_the_replan_request_with_expression_and_values() -> None:
    script = ScriptedPlanner([BROKEN_CONTRACT, WITH_MARKDOWN])
    result = await PlannerAgent(script.model(), planner_registry()).run("oxygen report")
    told = script.told(1)
    report = json.loads(told[told.index("{") :])
    assert report["error"] == {
        "type": "ContractError",
        "message": "The output of step 's1' breaks its contract: expect[0] "
        "'$self.level >= 19.5' is false; seen: $self.level = 12.",
        "step_id": "s1",
        "problems": None,
    }
    assert report["not_run"] == ["s2"]
    assert result.verdict is Verdict.SUCCESS
    assert result.execution.outputs["s2"] == "Oxygen: **21** %"


@pytest.mark.anyio
async def test_the_model_sees_the_published_plan_schema_with_contracts_and_markdown() -> None:
    from marimo_engine.plans.json_schema import model_plan_schema

    script = ScriptedPlanner([GOOD])
    await PlannerAgent(script.model(), planner_registry()).run("goal")
    info = script.infos[0]
    schema = info.output_tools[0].parameters_json_schema
    step = schema["properties"]["steps"]["items"]  # pydantic-ai inlines the $defs
    assert {"expect", "schema", "markdown"} <= set(step["properties"])
    assert step["oneOf"] == [{"required": [kind]} for kind in ("tool", "plan", "markdown")]
    assert step == model_plan_schema()["$defs"]["Step"]
    assert info.instructions is not None and '"expect"' in info.instructions
    # Each tool's output schema, where declared, so that the model writes paths that exist.
    oxygen = next(t for t in planner_registry().schemas() if t["name"] == "read_oxygen")
    assert oxygen["returns"]["properties"]["level"]["type"] == "number"
    assert json.dumps(planner_registry().schemas(), indent=1) in info.instructions
    assert '"title": "OxygenLevel"' in info.instructions


MISSPELT_FIELD = {
    "name": "typo",
    "steps": [
        {"id": "s1", "tool": "read_oxygen", "args": {"level": 21}},
        {"id": "s2", "tool": "summarize", "args": {"value": "$s1.levl"}},
    ],
}


@pytest.mark.anyio
async def test_a_misspelt_field_is_repaired_from_its_unknown_field_problem() -> None:
    fixed = {**MISSPELT_FIELD, "steps": [MISSPELT_FIELD["steps"][0],
             {"id": "s2", "tool": "summarize", "args": {"value": "$s1.level"}}]}  # fmt: skip
    script = ScriptedPlanner([MISSPELT_FIELD, fixed])
    result = await PlannerAgent(script.model(), planner_registry()).run("oxygen")
    told = script.told(1)
    problems = json.loads(told[told.index("{") :])["problems"]
    assert [(p["step_id"], p["field"], p["code"]) for p in problems] == [
        ("s2", "args.value", "unknown_field")
    ]
    assert "Did you mean 'level'?" in problems[0]["message"]
    assert result.verdict is Verdict.SUCCESS
    assert result.execution.outputs["s2"] == "result: 21"
