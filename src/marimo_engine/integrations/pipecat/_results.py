"""What the LLM gets back from the plan functions, and how its arguments are read.

Every result is a JSON object with a `status`:

- `finished`: `run_id`, `verdict`, `summary` (sentences to say), `key_findings`
  (`step`, `step_id`, `value` in words, `output` as JSON cut to a budget),
  `skipped` (step names), `error` (`step`, `type`, `message`) and `duration_s`;
- `waiting_for_person`: `run_id`, `intervention_id`, `kind`, `step`, the
  `question` the person hears, the `decisions` that fit, the step's `output`
  (a condition) or `args` (an approval);
- `invalid_plan`: `message` and every validation `problem` (`step_id`,
  `field`, `code`, `message`), so the LLM can fix the plan and call again;
- `error`: `message`, one line saying what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import UsageError
from marimo_engine.integrations.speech import describe_value
from marimo_engine.mcp_server._results import clip_json

if TYPE_CHECKING:
    from marimo_engine.engine.durable import Decision
    from marimo_engine.engine.events import ExecutionResult, InterventionInfo
    from marimo_engine.integrations.speech import PlanWords
    from marimo_engine.plans.problems import Problem

__all__ = ["DECISIONS", "decision_of", "failure", "finished", "invalid_plan", "waiting"]

DECISIONS = ("approve", "reject", "answer", "cancel")
"""What `answer_intervention` takes as `decision`."""

MAX_OUTPUT_CHARS = 1000
"""Characters of JSON each output may take in a result before it is cut."""


def failure(message: str) -> dict[str, Any]:
    """`{"status": "error", "message": message}`."""
    return {"status": "error", "message": message}


def invalid_plan(problems: Sequence[Problem]) -> dict[str, Any]:
    """The result for a plan with problems: nothing ran."""
    count = len(problems)
    return {
        "status": "invalid_plan",
        "message": (
            f"The plan has {count} problem{'s' if count != 1 else ''}; nothing ran. Fix each "
            "one and call again."
        ),
        "problems": [p.model_dump(mode="json", exclude_none=True) for p in problems],
    }


def waiting(
    words: PlanWords, run_id: str | None, info: InterventionInfo, question: str
) -> dict[str, Any]:
    """The result when a step needs the person: the question they are asked."""
    options = ["approve", "reject", "cancel"]
    if info.kind != "approval":
        options.insert(2, "answer")
    return {
        "status": "waiting_for_person",
        "run_id": run_id,
        "intervention_id": info.intervention_id,
        "kind": info.kind,
        "step": words.label(info.step_id),
        "question": question,
        "decisions": options,
        "output": clip_json(info.output, MAX_OUTPUT_CHARS),
        "args": clip_json(info.args, MAX_OUTPUT_CHARS),
    }


def finished(
    words: PlanWords, result: ExecutionResult, *, note: str | None = None
) -> dict[str, Any]:
    """The result of a finished run: verdict, summary, key findings, what was skipped, the error."""
    error = result.error
    return {
        "status": "finished",
        "run_id": result.run_id,
        "verdict": result.verdict.value,
        "summary": words.summary(result, note=note),
        "key_findings": [
            {
                "step": words.label(sid),
                "step_id": sid,
                "value": describe_value(value),
                "output": clip_json(value, MAX_OUTPUT_CHARS),
            }
            for sid, value in result.key_findings.items()
        ],
        "skipped": [words.label(sid) for sid in result.skipped],
        "error": None
        if error is None
        else {
            "step": words.label(error.step_id) if error.step_id else None,
            "type": error.type,
            "message": error.message,
        },
        "duration_s": round(result.duration_s, 3),
    }


def decision_of(arguments: Mapping[str, Any]) -> Decision | None:
    """The engine `Decision` for `answer_intervention`'s arguments; `None` for `cancel`.

    Raises:
        UsageError: An unknown `decision`, or `answer` without `value`.
    """
    from marimo_engine.engine.durable import Decision

    action = arguments.get("decision")
    if action not in DECISIONS:
        choices = ", ".join(repr(d) for d in DECISIONS)
        raise UsageError(f"decision {action!r} is not one of {choices}.")
    reason = arguments.get("reason")
    reason = str(reason) if reason else None
    if action == "approve":
        return Decision.approve()
    if action == "reject":
        return Decision.reject(reason)
    if action == "answer":
        if "value" not in arguments:
            raise UsageError("decision 'answer' needs value: the value the person gave.")
        return Decision.answer(arguments["value"])
    return None
