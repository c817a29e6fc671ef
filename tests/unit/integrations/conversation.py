"""A bot conversation for tests: the pipeline around an LLM, a scripted person, the engine's events.

The pipeline is what a bot has around its LLM: the user and assistant
context aggregators, the LLM service (scripted, or a real one against a
loopback server), and between the LLM and the assistant aggregator a
`Person` (the package's `ScriptedCaller`) that records every frame the LLM
pushes downstream and plays the person: it answers a question when one is
spoken, interrupts the bot or hangs up when a given step starts.
Everything it does follows a frame, never a sleep, so the frames are the
same on a loaded machine; every run is bounded by a generous deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    CancelWorkerFrame,
    EndWorkerFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallResultFrame,
    InterruptionWorkerFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.tests.utils import run_test

from marimo_engine.engine.events import Event, EventType
from marimo_engine.examples import load_example
from marimo_engine.integrations.pipecat import (
    PlanEventFrame,
    PlanEventLogger,
    PlanFunctions,
    PlanProgressFrame,
    PlanQuestionFrame,
)
from marimo_engine.integrations.pipecat.testing import (
    Say,
    ScriptedCaller,
    ScriptedLLMService,
    tool_result,
)
from marimo_engine.tools.examples import analyze_atmosphere, check_oxygen, scan_hull

DEADLINE_S = 90.0
"""Seconds one conversation may take on a loaded machine before the test fails."""


def hull_check() -> dict[str, Any]:
    """hull-check-7 with its steps in a chain, so that events come in one order."""
    plan = load_example("hull-check-7")
    plan["steps"][1]["depends_on"] = ["s1"]
    return plan


class Holder:
    """A tool that holds until cancelled, and says whether it was."""

    def __init__(self) -> None:
        self.cancelled = False

    async def hold_line(self, seconds: float = 600.0) -> str:
        """Wait `seconds` (a long call), unless cancelled first."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "held"


class Person(ScriptedCaller):
    """The scripted caller, who may also interrupt, hang up or cut the call at a step.

    Args:
        answers: What the person says to each question, in order.
        interrupt_at: Interrupt the bot when this step starts (then, at
            `FINISH`, end the call).
        hang_up_at: End the call when this step starts (`EndWorkerFrame`).
        cancel_at: Cancel the pipeline when this step starts (`CancelWorkerFrame`).
        end_on_timeout: End the call once the bot says a question went unanswered.
        late_answer: What the person says once the bot said a question went unanswered.
    """

    def __init__(
        self,
        answers: Sequence[str] = (),
        *,
        interrupt_at: str | None = None,
        hang_up_at: str | None = None,
        cancel_at: str | None = None,
        end_on_timeout: bool = False,
        late_answer: str | None = None,
    ) -> None:
        super().__init__(answers)
        self.late_answer = late_answer
        self.interrupt_at = interrupt_at
        self.hang_up_at = hang_up_at
        self.cancel_at = cancel_at
        self.end_on_timeout = end_on_timeout

    async def heard(self, frame: Frame) -> None:
        if isinstance(frame, PlanProgressFrame) and frame.text.startswith("No answer came"):
            if self.end_on_timeout:
                await self.push_frame(EndWorkerFrame())
            elif self.late_answer:
                said = {"role": "user", "content": self.late_answer}
                await self.push_frame(
                    LLMMessagesAppendFrame([said], run_llm=True), FrameDirection.UPSTREAM
                )
        elif isinstance(frame, PlanEventFrame):
            event = frame.event
            if event.type is EventType.STEP_START and event.step_id == self.interrupt_at:
                await self.push_frame(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)
            elif event.type is EventType.STEP_START and event.step_id == self.hang_up_at:
                await self.push_frame(EndWorkerFrame())
            elif event.type is EventType.STEP_START and event.step_id == self.cancel_at:
                await self.push_frame(CancelWorkerFrame(), FrameDirection.UPSTREAM)
            elif event.type is EventType.FINISH and self.interrupt_at:
                await self.push_frame(EndWorkerFrame())


class Conversation:
    """One bot conversation: the pipeline, what was said and done, and the engine's events."""

    def __init__(
        self,
        turns: Sequence[Any],
        person: Person | None = None,
        *,
        tools: dict[str, Callable[..., Any]] | None = None,
        llm: LLMService | None = None,
        **options: Any,
    ) -> None:
        self.events: list[Event] = []
        self.logged: list[Event] = []
        options.setdefault("speech_interval_s", 0)
        self.functions = PlanFunctions(
            tools
            or {
                "scan_hull": scan_hull,
                "check_oxygen": check_oxygen,
                "analyze_atmosphere": analyze_atmosphere,
            },
            plans={"hull-check": hull_check()},
            on_event=self.events.append,
            **options,
        )
        self.llm: LLMService = llm or ScriptedLLMService(turns)
        self.person = person or Person()

    async def run(
        self,
        says: str = "Please check the hull.",
        *,
        register: bool = False,
        observers: Sequence[Any] = (),
    ) -> None:
        if register:  # the classic way: llm.register_function, tools advertised apart
            self.functions.register(self.llm)
            context = LLMContext(
                tools=ToolsSchema(
                    standard_tools=[
                        FunctionSchema(s.name, s.description, s.properties, s.required)
                        for s in self.functions.function_schemas()
                    ]
                )
            )
        else:  # the schemas carry their handlers
            context = LLMContext(tools=self.functions.tools_schema())
        pair = LLMContextAggregatorPair(context)
        pipeline = Pipeline([pair.user(), self.llm, self.person, pair.assistant()])
        said = LLMMessagesAppendFrame([{"role": "user", "content": says}], run_llm=True)
        await asyncio.wait_for(
            run_test(
                pipeline,
                frames_to_send=[said],
                send_end_frame=False,
                start_timeout=DEADLINE_S,
                observers=[PlanEventLogger(self.logged.append), *observers],
            ),
            DEADLINE_S,
        )
        if isinstance(self.llm, ScriptedLLMService):
            assert self.llm.errors == []
            assert self.llm.turns_left == 0

    def heard(self) -> list[tuple[str, Any]]:
        """The frames that matter to the person and the LLM, in order, as (kind, content)."""
        out: list[tuple[str, Any]] = []
        for frame in self.person.frames:
            if isinstance(frame, PlanQuestionFrame):
                out.append(("question", frame.text))
            elif isinstance(frame, PlanProgressFrame):
                out.append(("progress", frame.text))
            elif isinstance(frame, FunctionCallResultFrame):
                result = frame.result
                out.append(("result", (result["status"], result.get("verdict"))))
            elif isinstance(frame, FunctionCallCancelFrame):
                out.append(("cancelled", frame.function_name))
            elif isinstance(frame, LLMTextFrame):
                out.append(("bot", frame.text))
        return out

    def event_types(self) -> list[tuple[EventType, str | None]]:
        return [(e.type, e.step_id) for e in self.events]

    def results(self) -> list[dict[str, Any]]:
        return [f.result for f in self.person.frames if isinstance(f, FunctionCallResultFrame)]


def say_summary(messages: list[dict[str, Any]]) -> Say:
    return Say(tool_result(messages)["summary"], end=True)


START = ("progress", "Starting Hull and air diagnostics: 3 steps.")
HULL_DONE = ("progress", "Scan the hull: done.")


ANSWERS = {
    "approve": "Yes, carry on.",
    "reject": "No, stop there.",
    "answer": "The aft sensor reads 20.4 percent, use that.",
}
LOW_O2 = {"plan_name": "hull-check", "changes": {"s2.args.simulated_level": 12}}
O2_LOW = ("progress", "Check oxygen: level 12, pressure 12.16 kilopascals, status critical.")
QUESTION = (
    "Check oxygen found level 12, pressure 12.16 kilopascals, status critical. Level is below "
    "15, so I need your decision. Shall I carry on?"
)
