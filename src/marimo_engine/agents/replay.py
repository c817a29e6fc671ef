"""`replay:AUDIT.jsonl`: a model that answers from the responses recorded in an audit log.

Every `model_response` record of the audit log holds the model's whole
answer as pydantic-ai's message JSON (`response`). A replay model gives
those answers back, in order, one per request, so a recorded agent run can
be run again offline: no key, no server, the same plans. The rest (plan
validation, the engine, the tools) runs for real. What the replay is asked
is not compared with what was recorded: if a tool or a goal changed, the
recorded plans are simply checked against the new tools.

A model string is `replay:PATH`, which replays the last run of the file
that has model responses, or `replay:PATH#RUN_ID` for a given run (the
`run_id` of its records, such as `agent-1a2b3c4d`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marimo_engine.agents.audit import read_audit_log
from marimo_engine.errors import ModelConfigError, UsageError

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage, ModelResponse
    from pydantic_ai.models import Model
    from pydantic_ai.models.function import AgentInfo

__all__ = ["REPLAY_PREFIX", "is_replay_model", "recorded_responses", "replay_model"]

REPLAY_PREFIX = "replay:"
"""The model string prefix of a replay: `replay:PATH` or `replay:PATH#RUN_ID`."""

_STREAM_PIECE_CHARS = 16
"""Characters of text or tool arguments per streamed piece of a replayed answer."""


def is_replay_model(model: object) -> bool:
    """Whether `model` is a `replay:` model string.

    Args:
        model: A model string or a pydantic-ai model.

    Returns:
        `True` for a string starting with `replay:` (any case).
    """
    return isinstance(model, str) and model.strip().lower().startswith(REPLAY_PREFIX)


def recorded_responses(path: str | Path, run_id: str | None = None) -> list[ModelResponse]:
    """Return the model responses recorded in an audit log, in order.

    Args:
        path: An audit log written by `AuditLog`.
        run_id: The run to take; `None` takes the last run with model responses.

    Returns:
        The responses of that run as pydantic-ai `ModelResponse`s, without
        the failed fallback attempts listed on them.

    Raises:
        ModelConfigError: The file cannot be read, holds no recorded
            responses (written before responses were recorded whole, or no
            model answered), or has no run `run_id`; the message lists the
            runs that have responses.
    """
    from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelResponse

    try:
        records = read_audit_log(path)
    except UsageError as exc:
        raise ModelConfigError(f"Cannot replay: {exc}") from exc
    by_run: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("kind") == "model_response" and isinstance(record.get("response"), dict):
            by_run.setdefault(str(record.get("run_id")), []).append(record["response"])
    if not by_run:
        raise ModelConfigError(
            f"The audit log {str(path)!r} has no recorded model responses to replay; record a "
            "run with --audit first (logs written before responses were recorded whole cannot "
            "be replayed)."
        )
    if run_id is None:
        run_id = list(by_run)[-1]
    elif run_id not in by_run:
        known = ", ".join(repr(r) for r in by_run)
        raise ModelConfigError(
            f"The audit log {str(path)!r} has no model responses of run {run_id!r}; "
            f"runs with responses: {known}."
        )
    messages = ModelMessagesTypeAdapter.validate_python(by_run[run_id])
    responses = [m for m in messages if isinstance(m, ModelResponse)]
    for response in responses:
        response.failed_attempts = None  # what failed then is not part of the answer
    return responses


def replay_model(text: str) -> Model:
    """Build the model of a `replay:PATH` or `replay:PATH#RUN_ID` model string.

    Args:
        text: The model string (see the module docs).

    Returns:
        A pydantic-ai `FunctionModel` (system `replay`, model name the file
        name, so `describe_model` gives `replay:AUDIT.jsonl`) that answers
        request N with recorded response N, plain or streamed; a request
        past the last recorded response fails as a provider error
        (`ModelAPIError`) that says how many were recorded.

    Raises:
        ModelConfigError: As for `recorded_responses`, or no path is given.
    """
    source = text.strip()[len(REPLAY_PREFIX) :]
    path, _, run_id = source.partition("#")
    if not path:
        raise ModelConfigError(
            f"Model {text!r} names no audit log; use 'replay:AUDIT.jsonl' or "
            "'replay:AUDIT.jsonl#RUN_ID'."
        )
    responses = recorded_responses(path, run_id or None)
    return _build_replay(responses, Path(path).name)


def _replay_class() -> type[Model]:
    from pydantic_ai.models.function import FunctionModel

    class ReplayModel(FunctionModel):
        """A `FunctionModel` answering from recorded responses; its `system` is `replay`."""

        @property
        def system(self) -> str:
            return "replay"

    return ReplayModel


def _build_replay(responses: list[ModelResponse], name: str) -> Model:
    import dataclasses

    from pydantic_ai.exceptions import ModelAPIError
    from pydantic_ai.models.function import DeltaToolCall

    served = 0

    def next_response() -> ModelResponse:
        nonlocal served
        if served >= len(responses):
            raise ModelAPIError(
                model_name=name,
                message=f"the recording has no answer for request {served + 1}: "
                f"{len(responses)} model response(s) were recorded",
            )
        served += 1
        # A copy: pydantic-ai sets the model name on it, the recording stays as it was.
        # No provider: the usage report names the replay by its file, unpriced.
        return dataclasses.replace(responses[served - 1], provider_name=None, provider_url=None)

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return next_response()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        from pydantic_ai.messages import TextPart, ToolCallPart

        response = next_response()
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                for start in range(0, len(part.content), _STREAM_PIECE_CHARS):
                    yield part.content[start : start + _STREAM_PIECE_CHARS]
            elif isinstance(part, ToolCallPart):
                args = part.args_as_json_str()
                yield {index: DeltaToolCall(name=part.tool_name, tool_call_id=part.tool_call_id)}
                for start in range(0, len(args), _STREAM_PIECE_CHARS):
                    piece = args[start : start + _STREAM_PIECE_CHARS]
                    yield {index: DeltaToolCall(json_args=piece)}

    return _replay_class()(answer, stream_function=stream, model_name=name)
