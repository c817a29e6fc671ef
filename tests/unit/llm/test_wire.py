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


TRICKLE = {"text": "too late", "trickle_s": 0.5, "trickle_for_s": 60.0}


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_timeout_is_a_whole_request_deadline_against_a_trickling_server(
    stream: bool,
) -> None:
    # The server sends a keep-alive byte every 0.5 s for 60 s: a per-read timeout of
    # 2 s never fires. The deadline covers the whole request, so the chain moves on.
    with (
        scripted_server([TRICKLE]) as slow,
        scripted_server([{"text": "in time"}]) as spare,
    ):
        chain = build_model(
            build_model("openai:slow", env={"OPENAI_BASE_URL": slow.base_url}, timeout_s=2),
            [build_model("openai:spare", env={"OPENAI_BASE_URL": spare.base_url})],
        )
        agent = Agent(chain)
        started = time.monotonic()
        if stream:
            async with agent.run_stream("hi") as streamed:
                output = await streamed.get_output()
        else:
            output = (await agent.run("hi")).output
        elapsed = time.monotonic() - started
    assert output == "in time"
    assert (len(slow.requests), len(spare.requests)) == (1, 1)
    assert elapsed < 40.0  # far below the 60 s the trickle lasts, even on a loaded machine


@pytest.mark.anyio
async def test_a_timed_out_request_says_which_deadline() -> None:
    with scripted_server([TRICKLE]) as slow:
        model = build_model("openai:slow", env={"OPENAI_BASE_URL": slow.base_url}, timeout_s=1.5)
        with pytest.raises(ModelError) as info, model_errors():
            await Agent(model).run("hi")
    assert str(info.value) == (
        "The model provider failed: model 'slow' did not finish its answer within the deadline "
        "of 1.5 s (raise it with --timeout or PlannerOptions.timeout_s). Check the key and "
        "endpoint, or add a --fallback model."
    )


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("content_type", ["text/html", "application/json"])
async def test_an_html_page_with_http_200_falls_back(stream: bool, content_type: str) -> None:
    page = {"raw": "<html><body><h1>502 Bad Gateway</h1></body></html>"}
    with (
        scripted_server([{**page, "content_type": content_type}]) as broken,
        scripted_server([{"text": "from the fallback"}]) as spare,
    ):
        chain = build_model(
            build_model("openai:broken", env={"OPENAI_BASE_URL": broken.base_url}),
            [build_model("openai:spare", env={"OPENAI_BASE_URL": spare.base_url})],
        )
        agent = Agent(chain)
        if stream:
            async with agent.run_stream("hi") as streamed:
                output = await streamed.get_output()
        else:
            output = (await agent.run("hi")).output
    assert output == "from the fallback"
    assert (len(broken.requests), len(spare.requests)) == (1, 1)


@pytest.mark.anyio
async def test_a_key_echoed_in_an_error_body_is_redacted() -> None:
    key = "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4"
    echo = {
        "error": {
            "message": f"Incorrect API key provided: {key}. Header was 'Bearer {key}'.",
            "type": "invalid_request_error",
        }
    }
    with scripted_server([{"status": 401, "body": echo}]) as server:
        model = build_model(
            "openai:m", env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key}
        )
        with pytest.raises(ModelError) as info, model_errors([key]):
            await Agent(model).run("hi")
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"  # it did go out
    message = str(info.value)
    assert key not in message and key[:12] not in message
    assert "Incorrect API key provided: [REDACTED]" in message
    assert "answered HTTP 401" in message
