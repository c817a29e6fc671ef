"""Model requests seen from the planner: the deadline, streamed progress, and replay.

pydantic-ai's `FunctionModel` scripts the model; the engine and the tools are real.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from marimo_engine.agents import AgentEventType, PlannerAgent, PlannerOptions, read_audit_log
from marimo_engine.engine.events import Verdict
from marimo_engine.errors import ModelConfigError
from tests.unit.agents.scripted import ScriptedPlanner, paced_stream
from tests.unit.agents.tools import GOOD, MISSPELT, planner_registry

T = AgentEventType


async def _never_answers(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await anyio.sleep(3600)
    raise AssertionError("the deadline should have cancelled this request")


async def _trickles(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    name = info.output_tools[0].name
    yield {0: DeltaToolCall(name=name, json_args='{"steps": [')}
    while True:  # a keep-alive space every 0.5 s, for ever: no read ever waits long
        await anyio.sleep(0.5)
        yield {0: DeltaToolCall(json_args=" ")}


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_timeout_s_ends_a_request_that_never_finishes(stream: bool) -> None:
    slow = FunctionModel(_never_answers, stream_function=_trickles, model_name="slow")
    options = PlannerOptions(timeout_s=1.0, stream=stream)
    result = await PlannerAgent(slow, planner_registry(), options=options).run("a quarter")
    assert (result.verdict, result.stop_reason) == (Verdict.FAILURE, "model error")
    assert result.error == (
        "The model provider failed: model 'slow' did not finish its answer within the deadline "
        "of 1 s (raise it with --timeout or PlannerOptions.timeout_s). Check the key and "
        "endpoint, or add a --fallback model."
    )


@pytest.mark.anyio
async def test_timeout_s_moves_on_to_the_fallback() -> None:
    slow = FunctionModel(_never_answers, model_name="slow")
    spare = ScriptedPlanner([GOOD])
    options = PlannerOptions(timeout_s=1.0)
    agent = PlannerAgent(slow, planner_registry(), fallbacks=[spare.model()], options=options)
    result = await agent.run("a quarter")
    assert result.verdict is Verdict.SUCCESS
    assert [(m.model, m.requests, m.failed_attempts) for m in result.usage.models] == [
        ("function:slow", 0, 1),  # pydantic-ai names a failed attempt by its system
        ("scripted-planner", 1, 0),
    ]


@pytest.mark.anyio
async def test_a_streamed_answer_reports_progress_while_it_arrives() -> None:
    script = ScriptedPlanner([GOOD])
    model = FunctionModel(script, stream_function=paced_stream(GOOD), model_name="paced")
    agent = PlannerAgent(model, planner_registry(), options=PlannerOptions(stream=True))
    events = [e async for e in agent.events("a quarter")]
    types = [e.type for e in events]
    first, last = (
        types.index(T.MODEL_PROGRESS),
        len(types) - 1 - types[::-1].index(T.MODEL_PROGRESS),
    )
    assert types[first - 1] is T.PLANNING and types[last + 1] is T.PLAN_PROPOSED
    progress = [e.progress for e in events if e.type is T.MODEL_PROGRESS]
    assert len(progress) >= 2  # 12 pieces over about 1.2 s: at least one before the end
    chars = [p["chars"] for p in progress]
    assert chars == sorted(chars) and chars[-1] == len(json.dumps(GOOD))
    assert [p["done"] for p in progress][-1] is True
    assert all(not p["tokens_estimated"] for p in progress)  # FunctionModel counts as it goes
    assert events[-1].result.verdict is Verdict.SUCCESS
    assert script.requests == []  # streamed: the plain function was never asked


@pytest.mark.anyio
async def test_a_plain_request_has_no_progress_events() -> None:
    events = [e async for e in PlannerAgent(ScriptedPlanner([GOOD]).model(), planner_registry())
              .events("a quarter")]  # fmt: skip
    assert T.MODEL_PROGRESS not in {e.type for e in events}


def _written(result: Any) -> list[dict[str, Any]]:
    """The plans as the model wrote them (an accepted plan also gets a fresh `id`)."""
    return [{k: v for k, v in p.plan.items() if k != "id"} for p in result.plans]


@pytest.mark.anyio
async def test_replay_answers_from_the_recorded_responses(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    first = await PlannerAgent(
        ScriptedPlanner([MISSPELT, GOOD]).model(), planner_registry(), audit_path=audit
    ).run("a quarter")
    second = await PlannerAgent(
        ScriptedPlanner([GOOD]).model(), planner_registry(), audit_path=audit
    ).run("a quarter")
    runs = list(dict.fromkeys(r["run_id"] for r in read_audit_log(audit)))
    assert len(runs) == 2
    for model, expected in (
        (f"replay:{audit}", second),  # the last run of the file
        (f"replay:{audit}#{runs[0]}", first),
    ):
        for stream in (False, True):
            agent = PlannerAgent(model, planner_registry(), options=PlannerOptions(stream=stream))
            assert agent.model_label == "replay:audit.jsonl"
            replayed = await agent.run("a quarter")
            assert _written(replayed) == _written(expected)
            assert replayed.verdict is Verdict.SUCCESS
    with pytest.raises(ModelConfigError, match=r"has no model responses of run 'agent-nope'; runs"):
        PlannerAgent(f"replay:{audit}#agent-nope", planner_registry())
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"seq": 1, "kind": "run_start"}\n')
    with pytest.raises(ModelConfigError, match=r"has no recorded model responses to replay"):
        PlannerAgent(f"replay:{empty}", planner_registry())


@pytest.mark.anyio
@pytest.mark.integration
async def test_a_key_given_in_env_is_redacted_from_the_result_and_the_audit(
    tmp_path: Path,
) -> None:
    from tests.unit.llm.openai_server import scripted_server

    key = "opaque-Gateway-Credential-77"  # not key-shaped: found by its value
    echo = {"error": {"message": f"credential {key} is revoked"}}
    audit = tmp_path / "audit.jsonl"
    with scripted_server([{"status": 403, "body": echo}]) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key}
        agent = PlannerAgent("openai:m", planner_registry(), env=env, audit_path=audit)
        result = await agent.run("a quarter")
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert result.error is not None and "credential [REDACTED] is revoked" in result.error
    assert key not in audit.read_text()
    assert "credential [REDACTED] is revoked" in read_audit_log(audit)[-1]["error"]
