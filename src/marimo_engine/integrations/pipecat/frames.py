"""The frames a plan run puts into a Pipecat pipeline, and an observer that logs its events.

- `PlanProgressFrame`: a progress sentence (a `TTSSpeakFrame`, so any TTS
  service speaks it).
- `PlanQuestionFrame`: the question for a person when a step needs one
  (also a `TTSSpeakFrame`), with the `intervention_id` it asks about.
- `PlanEventFrame`: every engine `Event`, unchanged, as a `SystemFrame`
  (interruptions do not drop it), for observers and logging.

All three are pushed downstream by the LLM service that called the function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipecat.frames.frames import SystemFrame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event

__all__ = ["PlanEventFrame", "PlanEventLogger", "PlanProgressFrame", "PlanQuestionFrame"]

_log = logging.getLogger("marimo_engine.integrations.pipecat")


@dataclass
class PlanProgressFrame(TTSSpeakFrame):
    """A short sentence about a running plan, for text-to-speech.

    Parameters:
        run_id: The run the sentence is about.
    """

    run_id: str | None = None


@dataclass
class PlanQuestionFrame(TTSSpeakFrame):
    """A question for the person: a step needs their decision (docs/pipecat.md).

    Parameters:
        run_id: The run that waits.
        intervention_id: What `answer_intervention` answers.
        step_id: The step that needs the person.
        kind: `condition` (an `intervention_if` was true) or `approval`.
    """

    run_id: str | None = None
    intervention_id: str | None = None
    step_id: str | None = None
    kind: str = "condition"


@dataclass
class PlanEventFrame(SystemFrame):
    """One engine event of a plan run, as the engine emitted it.

    Parameters:
        event: The `marimo_engine.engine.events.Event` (`event.to_json()`
            is its JSON form).
    """

    event: Event


class PlanEventLogger(BaseObserver):
    """A pipeline observer that hands every plan event to a callback, once.

    Pass it to `PipelineWorker(..., observers=[PlanEventLogger()])`. A frame is
    pushed once by each processor it passes; only its first push counts.

    Args:
        callback: Called with each `Event`; by default the event's JSON line
            is logged at INFO on the `marimo_engine.integrations.pipecat`
            logger (`logging`).
        **kwargs: Passed to `BaseObserver`.
    """

    def __init__(self, callback: Callable[[Event], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callback = callback

    async def on_push_frame(self, data: FramePushed) -> None:
        """Pass a `PlanEventFrame`'s event on, the first time the frame is pushed."""
        frame = data.frame
        if not isinstance(frame, PlanEventFrame) or not data.first_push:
            return
        if self._callback is None:
            _log.info("%s", frame.event.to_json_line())
            return
        outcome = self._callback(frame.event)
        if hasattr(outcome, "__await__"):
            await outcome
