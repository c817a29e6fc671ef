"""A Pipecat voice bot whose LLM runs the hull-check plan, without a model or keys.

    uv sync --extra pipecat          # or: pip install "marimo-engine[pipecat]"
    uv run python examples/pipecat_bot.py                    # all is well
    uv run python examples/pipecat_bot.py --oxygen 12        # a step needs the person: yes
    uv run python examples/pipecat_bot.py --oxygen 12 --answer "No, stop there."

The bot's pipeline is the part of a real bot around its LLM: the user and
assistant context aggregators with the LLM between them, whose context
advertises `run_plan` and `answer_intervention` (`PlanFunctions`). Here a
`ScriptedLLMService` plays the LLM (it calls `run_plan`, answers a question
with what the caller said, then reads the summary out) and a
`ScriptedCaller` plays the person; Pipecat's own `run_test` runs the
pipeline. The script prints what the person would hear, and the engine's
events as the observer logs them (with `--events`).

For a real bot, keep `PlanFunctions` and the context, and put a transport,
STT, a real LLM service (say `OpenAILLMService`) and TTS around them; the
progress and question frames are `TTSSpeakFrame`s, so the TTS says them.
See docs/pipecat.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, LLMMessagesAppendFrame, LLMTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.tests.utils import run_test

from marimo_engine.examples import load_example
from marimo_engine.integrations.pipecat import (
    PlanEventLogger,
    PlanFunctions,
    PlanProgressFrame,
    PlanQuestionFrame,
)
from marimo_engine.integrations.pipecat.testing import (
    Call,
    Say,
    ScriptedCaller,
    ScriptedLLMService,
    tool_result,
)
from marimo_engine.tools.examples import example_registry

SYSTEM = (
    "You are the ship's voice assistant. When asked to check the ship, call run_plan with "
    "plan_name 'hull-check'. If it returns waiting_for_person, wait for the person's reply "
    "and call answer_intervention with their decision. Then read the summary out."
)


def llm_script(oxygen: float | None) -> list[Any]:
    """The turns of the scripted LLM: what a real model would do in this conversation."""
    arguments: dict[str, Any] = {"plan_name": "hull-check"}
    if oxygen is not None:
        arguments["changes"] = {"s2.args.simulated_level": oxygen}

    def after_run(messages: list[dict[str, Any]]) -> Call | Say:
        result = tool_result(messages)
        if result["status"] != "waiting_for_person":
            return Say(result.get("summary") or result["message"], end=True)
        said = str(messages[-1].get("content", "")).lower()
        decision = "approve" if said.startswith(("yes", "go", "sure", "ok")) else "reject"
        return Call(
            "answer_intervention",
            {
                "decision": decision,
                "intervention_id": result["intervention_id"],
                "reason": messages[-1].get("content"),
            },
        )

    def read_out(messages: list[dict[str, Any]]) -> Say:
        result = tool_result(messages)
        return Say(result.get("summary") or result["message"], end=True)

    turns: list[Any] = [Call("run_plan", arguments), after_run]
    if oxygen is not None:
        turns.append(read_out)
    return turns


class ConsoleCaller(ScriptedCaller):
    """The scripted person, printing what they hear as it is said."""

    def __init__(self, answers: list[str], show: Callable[[str], None]) -> None:
        super().__init__(answers)
        self._show = show
        self._answers_left = list(answers)

    async def heard(self, frame: Frame) -> None:
        if isinstance(frame, PlanQuestionFrame):
            self._show(f"bot (asks): {frame.text}")
            if self._answers_left:
                self._show(f"person: {self._answers_left.pop(0)}")
        elif isinstance(frame, PlanProgressFrame):
            self._show(f"bot (progress): {frame.text}")
        elif isinstance(frame, LLMTextFrame):
            self._show(f"bot: {frame.text}")


async def converse(
    *, oxygen: float | None = None, answer: str = "Yes, carry on.", show_events: bool = False
) -> list[str]:
    """Run one conversation; returns the lines printed (what was said, by whom).

    Args:
        oxygen: The oxygen level the sensor reports (percent); below 15 the
            plan stops for the person. `None`: normal air.
        answer: What the person says to a question.
        show_events: Also print every engine event the observer logs.
    """
    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    functions = PlanFunctions(
        example_registry(),
        plans={"hull-check": load_example("hull-check-7")},
        speech_interval_s=0,  # no TTS here to wait for: say every sentence
        answer_timeout_s=60,
    )
    context = LLMContext(
        messages=[{"role": "system", "content": SYSTEM}], tools=functions.tools_schema()
    )
    aggregators = LLMContextAggregatorPair(context)
    caller = ConsoleCaller([answer], show)
    llm = ScriptedLLMService(llm_script(oxygen))
    pipeline = Pipeline([aggregators.user(), llm, caller, aggregators.assistant()])
    observers = [PlanEventLogger(lambda e: show(f"  [event] {e.to_json_line()}"))]
    first = "Please check the hull and the air."
    show(f"person: {first}")
    await run_test(
        pipeline,
        frames_to_send=[LLMMessagesAppendFrame([{"role": "user", "content": first}], run_llm=True)],
        send_end_frame=False,  # the scripted LLM ends the call after its last turn
        start_timeout=60,
        observers=observers if show_events else [],
    )
    if llm.errors:
        raise SystemExit("The scripted LLM went off script: " + "; ".join(llm.errors))
    return lines


def main() -> None:
    """Parse the command line and run one conversation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oxygen", type=float, help="oxygen level the sensor reports (percent)")
    parser.add_argument("--answer", default="Yes, carry on.", help="the person's answer")
    parser.add_argument("--events", action="store_true", help="also print the engine's events")
    args = parser.parse_args()
    logger.remove()  # Pipecat logs every frame at DEBUG: keep its warnings only
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(converse(oxygen=args.oxygen, answer=args.answer, show_events=args.events))


if __name__ == "__main__":
    main()
