"""Usage reports, cost in US dollars (or unpriced), limits and the budget."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from marimo_engine.errors import ModelLimitError, UsageError
from marimo_engine.llm import ModelLimits, UsageTracker, model_errors


def _response(model: str, provider: str, inp: int, out: int) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart("ok")],
        model_name=model,
        provider_name=provider,
        usage=RequestUsage(input_tokens=inp, output_tokens=out),
    )


def test_priced_and_unpriced_models_in_one_report() -> None:
    tracker = UsageTracker()
    tracker.record(_response("gpt-4o-mini", "openai", 1_000_000, 0))
    tracker.record(_response("gpt-4o-mini", "openai", 0, 1_000_000))
    tracker.record(_response("llama3.2", "ollama", 300, 40))
    report = tracker.report()
    priced, unpriced = report.models
    assert (priced.model, priced.requests, priced.input_tokens, priced.output_tokens) == (
        "openai:gpt-4o-mini",
        2,
        1_000_000,
        1_000_000,
    )
    assert priced.cost_usd == pytest.approx(0.15 + 0.60)
    assert unpriced.model == "ollama:llama3.2"
    assert (unpriced.cost_usd, unpriced.is_priced) == (None, False)
    assert report.cost_usd is None  # never zero when a model is unpriced
    assert report.known_cost_usd == pytest.approx(0.75)
    as_json = report.to_json()
    assert as_json["cost_usd"] == "unpriced"
    assert as_json["models"][1]["cost_usd"] == "unpriced"
    assert as_json["unpriced_models"] == ["ollama:llama3.2"]
    assert report.describe().splitlines() == [
        "openai:gpt-4o-mini: 2 requests, 1,000,000 in / 1,000,000 out tokens, $0.750000",
        "ollama:llama3.2: 1 request, 300 in / 40 out tokens, unpriced",
        "total: 3 requests, 1,000,300 in / 1,000,040 out tokens, "
        "at least $0.750000 (some models unpriced)",
    ]


def test_budget_stops_when_spent() -> None:
    tracker = UsageTracker(budget_usd=0.20)
    tracker.record(_response("gpt-4o-mini", "openai", 1_000_000, 0))  # $0.15
    spent = r"budget of \$0.2 is spent \(\$0.750000 so far\)"
    with pytest.raises(ModelLimitError, match=spent) as info:
        tracker.record(_response("gpt-4o-mini", "openai", 0, 1_000_000))  # +$0.60
    assert info.value.limit == "budget_usd"


def test_budget_cannot_be_kept_with_an_unpriced_model() -> None:
    tracker = UsageTracker(budget_usd=1.0)
    unpriced = r"'ollama:llama3.2' cannot be priced, so the budget of \$1"
    with pytest.raises(ModelLimitError, match=unpriced):
        tracker.record(_response("llama3.2", "ollama", 10, 10))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"request_limit": 0}, r"ModelLimits.request_limit is 0; use a positive integer or None"),
        ({"budget_usd": -1.0}, r"ModelLimits.budget_usd is -1.0; use a positive number"),
    ],
)
def test_limits_are_checked(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        ModelLimits(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_request_limit_stops_a_runaway_model() -> None:
    calls: list[int] = []

    def chatty(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        from pydantic_ai.messages import ToolCallPart

        return ModelResponse(parts=[ToolCallPart("ping", {})])

    agent = Agent(FunctionModel(chatty))

    @agent.tool_plain
    def ping() -> str:
        """Answer pong."""
        return "pong"

    limits = ModelLimits(request_limit=3)
    limit = r"usage limit.*request_limit of 3"
    with pytest.raises(ModelLimitError, match=limit) as info, model_errors():
        await agent.run("go", usage_limits=limits.to_usage_limits())
    assert info.value.limit == "request_limit"
    assert len(calls) == 3


@pytest.mark.anyio
async def test_token_limit_stops_a_runaway_model() -> None:
    def wordy(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("word " * 500)])

    limits = ModelLimits(output_tokens_limit=100)
    with pytest.raises(ModelLimitError) as info, model_errors():
        await Agent(FunctionModel(wordy)).run("go", usage_limits=limits.to_usage_limits())
    assert info.value.limit == "output_tokens_limit"
