"""A scripted model for code agent tests: pydantic-ai's FunctionModel answering turns in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

Answer = tuple[str, dict[str, Any]] | Callable[[list[ModelMessage]], tuple[str, dict[str, Any]]]


def patch(*ops: dict[str, Any], summary: str = "") -> tuple[str, dict[str, Any]]:
    """An `apply_patch` answer."""
    return ("apply_patch", {"ops": list(ops), "summary": summary})


def create(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A create operation."""
    return {"op": "create", "name": name, "code": code, **extra}


def edit(target: str, code: str) -> dict[str, Any]:
    """An edit operation."""
    return {"op": "edit", "target": target, "code": code}


def delete(target: str) -> dict[str, Any]:
    """A delete operation."""
    return {"op": "delete", "target": target}


def finish(answer: str, *cells: str) -> tuple[str, dict[str, Any]]:
    """A `finish` answer."""
    return ("finish", {"answer": answer, "cells": list(cells)})


class ScriptedCoder:
    """Answers each model request with the next answer of the script (an error past its end).

    Attributes:
        requests: The messages of every request, in order.
    """

    def __init__(self, answers: Sequence[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[list[ModelMessage]] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        if len(self.requests) > len(self.answers):
            raise AssertionError(f"the script has {len(self.answers)} answers; asked once more")
        answer = self.answers[len(self.requests) - 1]
        tool, args = answer(messages) if callable(answer) else answer
        assert tool in {t.name for t in info.output_tools}, info.output_tools
        return ModelResponse(parts=[ToolCallPart(tool, args)])

    def model(self) -> FunctionModel:
        """The pydantic-ai model answering from this script."""
        return FunctionModel(self, model_name="scripted-coder")

    def told(self, index: int = -1) -> str:
        """Everything in the last message of request `index`, joined as text."""
        parts = self.requests[index][-1].parts
        return "\n".join(str(getattr(p, "content", "")) for p in parts)
