"""A scripted model for planner tests: pydantic-ai's FunctionModel answering plans in order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel


class ScriptedPlanner:
    """Answers each model request with the next plan of `plans` (the last one repeats).

    Attributes:
        requests: The messages of every request, in order.
        infos: pydantic-ai's `AgentInfo` of every request (tools, instructions).
    """

    def __init__(self, plans: Sequence[dict[str, Any]]) -> None:
        self.plans = list(plans)
        self.requests: list[list[ModelMessage]] = []
        self.infos: list[AgentInfo] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        self.infos.append(info)
        plan = self.plans[min(len(self.requests), len(self.plans)) - 1]
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, plan)])

    def model(self) -> FunctionModel:
        """The pydantic-ai model answering from this script."""
        return FunctionModel(self, model_name="scripted-planner")

    def last_request_parts(self, index: int = -1) -> list[Any]:
        """The parts of the last message of request `index` (what the model was just told)."""
        return list(self.requests[index][-1].parts)

    def told(self, index: int = -1) -> str:
        """The text contents of the last message of request `index`, joined."""
        return "\n".join(str(getattr(p, "content", "")) for p in self.last_request_parts(index))


def paced_stream(
    plan: dict[str, Any], pieces: int = 12, delay_s: float = 0.1
) -> Callable[[list[ModelMessage], AgentInfo], AsyncIterator[Any]]:
    """A `FunctionModel` stream function sending `plan` to the output tool in `pieces`,
    `delay_s` seconds apart: a model whose answer takes a while to arrive."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        args = json.dumps(plan)
        size = -(-len(args) // pieces)
        yield {0: DeltaToolCall(name=info.output_tools[0].name)}
        for start in range(0, len(args), size):
            await anyio.sleep(delay_s)
            yield {0: DeltaToolCall(json_args=args[start : start + size])}

    return stream
