"""The real wire path: pydantic-ai models built from model strings, against a loopback server."""

from __future__ import annotations

import time

import pytest
from pydantic_ai import Agent

from marimo_engine.errors import ModelError
from marimo_engine.llm import UsageTracker, build_model, model_errors
from tests.unit.llm.openai_server import scripted_server

pytestmark = pytest.mark.integration


@pytest.mark.anyio
async def test_openai_compatible_server_plain_and_streamed() -> None:
    with scripted_server([{"text": "plain answer"}, {"text": "streamed answer"}]) as server:
        model = build_model("openai:local-model", env={"OPENAI_BASE_URL": server.base_url})
        agent = Agent(model, instructions="Be brief.")
        result = await agent.run("first")
        async with agent.run_stream("second") as stream:
            streamed = await stream.get_output()
    assert result.output == "plain answer"
    assert streamed == "streamed answer"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 2
    assert [r.is_stream for r in server.requests] == [False, True]
    first = server.requests[0].body
    assert first["model"] == "local-model"
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert server.requests[0].headers["authorization"] == "Bearer api-key-not-set"


@pytest.mark.anyio
async def test_ollama_model_goes_through_ollama_base_url() -> None:
    with scripted_server([{"text": "from ollama"}]) as server:
        model = build_model("ollama:llama3.2", env={"OLLAMA_BASE_URL": server.base_url})
        result = await Agent(model).run("hi")
    assert result.output == "from ollama"
    assert server.requests[0].body["model"] == "llama3.2"


@pytest.mark.anyio
async def test_fallback_moves_on_after_one_429_without_sdk_retries() -> None:
    with (
        scripted_server([{"status": 429}], repeat_last=True) as limited,
        scripted_server([{"text": "second model"}], model_name="gpt-4o-mini-2024-07-18") as spare,
    ):
        first = build_model("openai:gpt-4o-mini", env={"OPENAI_BASE_URL": limited.base_url})
        second = build_model("openai:gpt-4o-mini", env={"OPENAI_BASE_URL": spare.base_url})
        started = time.monotonic()
        result = await Agent(build_model(first, [second])).run("hi")
        elapsed = time.monotonic() - started
    assert result.output == "second model"
    assert len(limited.requests) == 1  # max_retries=0: no SDK retry burning the rate limit
    assert len(spare.requests) == 1
    assert elapsed < 5.0
    tracker = UsageTracker()
    for message in result.all_messages():
        if message.kind == "response":
            tracker.record(message)
    report = tracker.report().to_json()
    assert report["models"] == [
        {
            "model": "openai:gpt-4o-mini",
            "requests": 0,
            "failed_attempts": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
        },
        {
            "model": "openai:gpt-4o-mini-2024-07-18",
            "requests": 1,
            "failed_attempts": 0,
            "input_tokens": 50,
            "output_tokens": 20,
            "cost_usd": pytest.approx(50 * 0.15e-6 + 20 * 0.6e-6),
        },
    ]


@pytest.mark.anyio
async def test_every_model_failing_is_one_model_error() -> None:
    with (
        scripted_server([{"status": 429}], repeat_last=True) as a,
        scripted_server([{"status": 503, "body": {"error": {"message": "down"}}}]) as b,
    ):
        chain = build_model(
            build_model("openai:model-a", env={"OPENAI_BASE_URL": a.base_url}),
            [build_model("openai:model-b", env={"OPENAI_BASE_URL": b.base_url})],
        )
        both = (
            r"^All 2 models failed: model 'model-a' answered HTTP 429.*'model-b' answered HTTP 503"
        )
        with pytest.raises(ModelError, match=both), model_errors():
            await Agent(chain).run("hi")
    assert (len(a.requests), len(b.requests)) == (1, 1)
