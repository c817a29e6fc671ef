"""The engine inside a Pipecat voice bot: an LLM function that runs plans (docs/pipecat.md).

Needs the `pipecat` extra: `pip install "marimo-engine[pipecat]"`.

    from marimo_engine.integrations.pipecat import PlanFunctions

    functions = PlanFunctions(my_tools, plans={"hull-check": plan})
    context = LLMContext(messages, tools=functions.tools_schema())

- `PlanFunctions`: `run_plan` and `answer_intervention`, their schemas and
  handlers (`functions.py`).
- `PlanProgressFrame`, `PlanQuestionFrame` (both `TTSSpeakFrame`s),
  `PlanEventFrame` and the `PlanEventLogger` observer (`frames.py`).
- `testing.ScriptedLLMService`: an LLM service that follows a script, to run
  a bot without a model or keys (Pipecat's `run_test`).
"""

from __future__ import annotations

try:
    import pipecat  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "marimo_engine.integrations.pipecat needs pipecat-ai: pip install 'marimo-engine[pipecat]'."
    ) from exc

from marimo_engine.integrations.pipecat.frames import (
    PlanEventFrame,
    PlanEventLogger,
    PlanProgressFrame,
    PlanQuestionFrame,
)
from marimo_engine.integrations.pipecat.functions import (
    DECISIONS,
    DEFAULT_ANSWER_TIMEOUT_S,
    PlanFunctions,
)

__all__ = [
    "DECISIONS",
    "DEFAULT_ANSWER_TIMEOUT_S",
    "PlanEventFrame",
    "PlanEventLogger",
    "PlanFunctions",
    "PlanProgressFrame",
    "PlanQuestionFrame",
]
