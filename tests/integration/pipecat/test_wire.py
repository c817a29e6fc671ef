"""The plan functions behind Pipecat's real OpenAI LLM service, over the real wire.

A scripted OpenAI-compatible server on loopback stands in for the model:
Pipecat's `OpenAILLMService` sends it the function schemas, streams its tool
calls back, runs our handlers, and sends their results in the next request,
as it would with a real model.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("pipecat", reason="pip install 'marimo-engine[pipecat]'")

from pipecat.frames.frames import EndWorkerFrame, Frame, LLMFullResponseEndFrame, LLMTextFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService

from tests.unit.integrations.conversation import (
    HULL_DONE,
    LOW_O2,
    O2_LOW,
    QUESTION,
    START,
    Conversation,
    Person,
)
from tests.unit.llm.openai_server import RecordedRequest, scripted_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class HangsUpAfterTheReply(Person):
    """Answers questions, and ends the call once the bot's reply is complete."""

    replied = False

    async def heard(self, frame: Frame) -> None:
        await super().heard(frame)
        if isinstance(frame, LLMTextFrame):
            self.replied = True
        elif isinstance(frame, LLMFullResponseEndFrame) and self.replied:
            await self.push_frame(EndWorkerFrame(), FrameDirection.DOWNSTREAM)


def _tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [
        json.loads(m["content"])
        for m in request.body["messages"]
        if m.get("role") == "tool" and str(m.get("content", "")).startswith("{")
    ]


async def test_a_real_openai_service_runs_a_plan_and_answers_its_question() -> None:
    script = [
        {"tool": "run_plan", "tool_args": LOW_O2},
        {"tool": "answer_intervention", "tool_args": {"decision": "approve"}},
        {"text": "The hull check is done: oxygen is low, and the air was analysed."},
    ]
    with scripted_server(script) as server:
        llm = OpenAILLMService(
            api_key="test-key",
            base_url=server.base_url,
            settings=OpenAILLMService.Settings(model="gpt-test"),
        )
        talk = Conversation([], HangsUpAfterTheReply(["Yes, carry on."]), llm=llm)
        await talk.run()
        requests = list(server.requests)

    heard = talk.heard()
    spoken = "".join(text for kind, text in heard if kind == "bot")
    assert [item for item in heard if item[0] != "bot"] == [
        START,
        HULL_DONE,
        O2_LOW,
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "Analyze atmosphere: done."),
        ("result", ("finished", "SUCCESS")),
    ]
    assert spoken == "The hull check is done: oxygen is low, and the air was analysed."

    # What went over the wire: the schemas, then each result in the next request.
    assert len(requests) == 3
    first = requests[0]
    assert first.tool_names == ["run_plan", "answer_intervention"]
    parameters = first.body["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["plan_name"]["enum"] == ["hull-check"]
    waiting = _tool_messages(requests[1])[-1]
    assert waiting["status"] == "waiting_for_person"
    assert waiting["question"] == QUESTION
    assert requests[1].body["messages"][-1] == {"role": "user", "content": "Yes, carry on."}
    finished = _tool_messages(requests[2])[-1]
    assert (finished["status"], finished["verdict"]) == ("finished", "SUCCESS")
    assert finished["run_id"] == waiting["run_id"]
