"""A Pipecat LLM service that follows a script: run a plan bot without a model or keys.

Each inference (an `LLMContextFrame` reaching the service) takes the next
turn of the script. A turn is a `Say`, a `Call`, or a function of the
context's messages returning one (to use what a function returned, such as
an `intervention_id`). Function calls go through Pipecat's own
`run_function_calls`, so registered handlers run exactly as they would
behind a real model; `End` ends the pipeline (`EndWorkerFrame`).

    llm = ScriptedLLMService([
        Call("run_plan", {"plan_name": "hull-check"}),
        lambda messages: Say(tool_result(messages)["summary"], end=True),
    ])

`ScriptedCaller` plays the person on the call: placed right after the LLM,
it answers each question a plan asks with the next of its answers, as if
they had been transcribed.

Used by the example bot (examples/pipecat_bot.py) with `pipecat.tests.utils.run_test`,
and by this package's tests.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    EndWorkerFrame,
    ErrorFrame,
    Frame,
    FunctionCallFromLLM,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings

__all__ = [
    "SCRIPT_ENDED",
    "Call",
    "End",
    "Say",
    "ScriptedCaller",
    "ScriptedLLMService",
    "Turn",
    "tool_result",
]

SCRIPT_ENDED = "The scripted LLM has no turn left for this inference."


@dataclass(frozen=True)
class Say:
    """Answer with text (what the bot says), then end the pipeline when `end`."""

    text: str
    end: bool = False


@dataclass(frozen=True)
class Call:
    """Call function `name` with `arguments`."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class End:
    """Say nothing and end the pipeline."""


Turn = Say | Call | End | Callable[[list[dict[str, Any]]], "Say | Call | End"]


def tool_result(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last function result in a context's messages, parsed from its JSON.

    Args:
        messages: `LLMContext.get_messages()`.

    Returns:
        The result object.

    Raises:
        LookupError: No `tool` message holds a JSON object.
    """
    for message in reversed(messages):
        if message.get("role") != "tool":
            continue
        try:
            value = json.loads(str(message.get("content")))
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise LookupError("The context has no function result yet.")


class ScriptedLLMService(LLMService):
    """An LLM service that plays a script of turns (module docstring).

    Args:
        turns: One turn per inference, in order.
        **kwargs: Passed to `LLMService`.

    Attributes:
        seen: The context's messages at each inference (copies), for checks.
        errors: Problems met (a turn that raised, no turn left); each also
            goes into the pipeline as a non-fatal `ErrorFrame`.
    """

    def __init__(self, turns: Sequence[Turn], **kwargs: Any) -> None:
        names = [f.name for f in dataclasses.fields(LLMSettings) if f.name not in ("extra",)]
        settings = LLMSettings(**{name: None for name in names})
        settings.model = "scripted"
        super().__init__(settings=settings, **kwargs)
        self._turns = list(turns)
        self.seen: list[list[dict[str, Any]]] = []
        self.errors: list[str] = []

    @property
    def turns_left(self) -> int:
        """Turns not yet played."""
        return len(self._turns)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Play the next turn on an `LLMContextFrame`; pass every other frame on."""
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        messages = [dict(m) for m in frame.context.get_messages() if isinstance(m, Mapping)]
        self.seen.append(messages)
        await self.push_frame(LLMFullResponseStartFrame())
        try:
            end = await self._play(messages, frame)
        finally:
            await self.push_frame(LLMFullResponseEndFrame())
        if end:
            await self.push_frame(EndWorkerFrame())

    async def _play(self, messages: list[dict[str, Any]], frame: LLMContextFrame) -> bool:
        """Play one turn; returns whether the pipeline should end after it."""
        if not self._turns:
            await self._fail(SCRIPT_ENDED)
            return False
        turn: Any = self._turns.pop(0)
        if callable(turn) and not isinstance(turn, Say | Call | End):
            try:
                turn = turn(messages)
            except Exception as exc:
                await self._fail(f"Turn {len(self.seen)} raised {type(exc).__name__}: {exc}")
                return False
        if isinstance(turn, Call):
            call = FunctionCallFromLLM(
                function_name=turn.name,
                tool_call_id=f"call_{uuid.uuid4().hex[:12]}",
                arguments=dict(turn.arguments),
                context=frame.context,
            )
            await self.run_function_calls([call])
            return False
        if isinstance(turn, Say):
            await self.push_frame(LLMTextFrame(turn.text))
            return turn.end
        if isinstance(turn, End):
            return True
        await self._fail(f"Turn {len(self.seen)} is {turn!r}, not Say, Call or End.")
        return False

    async def _fail(self, message: str) -> None:
        self.errors.append(message)
        await self.push_frame(ErrorFrame(message))


class ScriptedCaller(FrameProcessor):
    """The person on the call, scripted: answers each spoken plan question in turn.

    Place it right after the LLM service (before the assistant context
    aggregator). It records every frame going downstream and, after a
    `PlanQuestionFrame` passed, sends the next answer upstream as the
    user's words (`LLMMessagesAppendFrame(..., run_llm=True)`), which the
    user context aggregator adds to the context before the LLM runs, as a
    transcription would be.

    Args:
        answers: What the person says to each question, in order; a question
            after the last answer goes unanswered.

    Attributes:
        frames: Every frame that went downstream through it, in order.
    """

    def __init__(self, answers: Sequence[str] = ()) -> None:
        super().__init__()
        self.answers = list(answers)
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Record and pass the frame on; answer a question that went by."""
        from marimo_engine.integrations.pipecat.frames import PlanQuestionFrame

        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        self.frames.append(frame)
        if isinstance(frame, PlanQuestionFrame) and self.answers:
            said = {"role": "user", "content": self.answers.pop(0)}
            await self.push_frame(
                LLMMessagesAppendFrame([said], run_llm=True), FrameDirection.UPSTREAM
            )
        await self.heard(frame)

    async def heard(self, frame: Frame) -> None:
        """Called after each downstream frame went by; override to act on it."""
