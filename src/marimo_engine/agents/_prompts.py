"""What the planner's model reads: instructions, the plan schema, and reports cut to a budget."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from marimo_engine._json import to_jsonable
from marimo_engine.engine.events import ExecutionResult
from marimo_engine.plans.problems import Problem

__all__ = [
    "OUTPUT_TOOL_NAME",
    "cut_json",
    "failure_report",
    "goal_prompt",
    "instructions",
    "intervention_report",
    "plan_output_schema",
    "problems_report",
]

OUTPUT_TOOL_NAME = "submit_plan"
"""The tool the model calls with its plan (pydantic-ai's output tool)."""

_LANGUAGE = """\
You are a planner. You turn a goal into a plan of tool calls that an engine runs as a
marimo notebook. Answer by calling the `submit_plan` tool with the plan; write no prose.

The plan language (version 2):
- A plan is {"name": "...", "steps": [...]}. Each step has a unique "id" (1-64 characters
  of A-Z a-z 0-9 _ -), a "tool" (one of the tools below), and "args" (the tool's keyword
  arguments, JSON values).
- A string arg that is exactly "$ID" or "$ID.PATH" is replaced by the output of step ID
  (or a path into it: "$s1.items.0.name"), keeping its type. "$ID" inside other text is
  interpolated with str(). "$$" is a literal "$".
- Optional step fields: "description"; "run_if" (expression: run only when true);
  "intervention_if" (expression evaluated after the step, may use the step's own output:
  stop for a person when true); "key_finding" (true: the output is a key finding);
  "depends_on" (ids to run after without using their output); "timeout_s" (> 0);
  "retries" (0-10).
- Output contracts: "expect" is a list of expressions over the step's own output, "$self"
  ("$self.rows > 0"); "schema" is a JSON schema the output must match. A broken contract
  fails the step with ContractError (not retried) and names the expression and the values.
- A markdown step has "markdown" (text with references filled in: "Level: $s2.level %")
  instead of "tool", and no args; its output is the text. Write "$$" for a literal "$".
- Where a tool lists "returns" (the JSON schema of its output), every "$ID.PATH" into its
  output must follow it (a misspelt field is an unknown_field problem), and a reference
  passed as an argument must fit the argument's type (else type_mismatch).
- Expressions: literals (numbers, quoted strings, true/false, null, lists), references,
  comparisons (< <= > >= == != in, not in), and/or/not, parentheses, + - * / % on numbers.
  Nothing else: no calls, no subscripts outside a reference path.
- Steps run in dependency order; independent steps may run at the same time. No cycles.
- Use only the tools listed, with their argument names and types. Unknown fields are errors.
- map (plan language 2): a step with "map": "$ID.PATH" (a reference to a list) calls its
  tool once per item, at the same time; in its "args", "run_if" and "intervention_if",
  "$item" is the item and "$index" its position from 0. Its output is the list of results
  in item order ([] for an empty list). A failing item fails the step, unless
  "map_errors": "collect" (then {"error", "message", "index"} takes its place). Optional
  "map_concurrency": most items at once. Use map instead of one step per item.
- Sub-plans: a step with "plan": "NAME" (instead of "tool") runs another plan as one step;
  its "args" are that plan's inputs; its output maps the sub-plan's step ids to outputs.
"""


def plan_output_schema() -> dict[str, Any]:
    """Return the JSON schema of the plan the model submits: the published plan schema.

    Returns:
        `marimo_engine.plans.json_schema.model_plan_schema()`: the file that
        `marimo-engine schema` prints, without the parts that describe the
        file (`$schema`, `$id`) and the plan's `id` (the engine generates one).
    """
    from marimo_engine.plans.json_schema import model_plan_schema

    return model_plan_schema()


def instructions(tool_schemas: Sequence[Mapping[str, Any]]) -> str:
    """Return the system instructions: the plan language and the tools' JSON schemas.

    Args:
        tool_schemas: `ToolRegistry.schemas()`: `{"name", "description",
            "parameters"}` per tool.

    Returns:
        The instructions text.
    """
    tools = json.dumps(list(tool_schemas), indent=1, ensure_ascii=False)
    return (
        f'{_LANGUAGE}\nThe tools (JSON schemas of their keyword arguments, "parameters", '
        f'and of their output, "returns", where declared):\n{tools}\n'
    )


def cut_json(value: object, max_chars: int) -> Any:
    """Return a JSON form of `value` whose text is at most about `max_chars` characters.

    Args:
        value: Any Python object (made JSON by `to_jsonable`).
        max_chars: The size budget of the JSON text, in characters.

    Returns:
        The JSON value itself when it fits; else a mapping is cut member by
        member (each gets an equal share), and anything else becomes
        `{"__cut__": N, "preview": "<first characters of its JSON>"}` where
        `N` is the full length in characters.
    """
    data = to_jsonable(value)
    text = json.dumps(data, ensure_ascii=False)
    if len(text) <= max_chars:
        return data
    if isinstance(data, dict) and data:
        share = max(max_chars // len(data), 40)
        return {key: cut_json(item, share) for key, item in data.items()}
    return {"__cut__": len(text), "preview": text[: max(max_chars - 40, 20)]}


def goal_prompt(goal: str, context: object | None, max_context_chars: int) -> str:
    """Return the first user prompt: the goal, and the context cut to its budget.

    Args:
        goal: The goal in words.
        context: Anything useful to plan with (such as `describe()` outputs
            of dataframes); `None` for none.
        max_context_chars: Size budget of the context's JSON text.

    Returns:
        The prompt text.
    """
    prompt = f"Goal: {goal}"
    if context is not None:
        ctx = json.dumps(cut_json(context, max_context_chars), indent=1, ensure_ascii=False)
        prompt += f"\n\nContext (JSON):\n{ctx}"
    return prompt + "\n\nSubmit a plan that reaches the goal."


def problems_report(problems: Sequence[Problem]) -> str:
    """Return what a rejected plan's model is told: the problems as JSON.

    Args:
        problems: The validation problems.

    Returns:
        A line of instruction and `{"problems": [...]}` (each with `step_id`,
        `field`, `code`, `message`).
    """
    body = json.dumps(
        {"problems": [p.model_dump(mode="json") for p in problems]}, ensure_ascii=False
    )
    return (
        "The plan is invalid; nothing ran. Fix every problem and submit the whole plan again.\n"
        + body
    )


def failure_report(
    plan: Mapping[str, Any],
    result: ExecutionResult,
    max_output_chars: int,
) -> str:
    """Return what the model is told after a plan failed, for a replan.

    Args:
        plan: The plan that ran (JSON).
        result: The engine's result (verdict `FAILURE`).
        max_output_chars: Size budget of the outputs' JSON text.

    Returns:
        The error (with the failing step), the outputs so far (cut to the
        budget), the skipped steps and the steps that did not run, as JSON
        after one line of instruction.
    """
    steps = [s.get("id") for s in plan.get("steps", []) if isinstance(s, Mapping)]
    done = set(result.outputs) | set(result.skipped)
    if result.error is not None and result.error.step_id is not None:
        done.add(result.error.step_id)
    report = {
        "plan_id": result.plan_id,
        "verdict": result.verdict.value,
        "error": None if result.error is None else result.error.model_dump(mode="json"),
        "outputs": cut_json(result.outputs, max_output_chars),
        "skipped": list(result.skipped),
        "not_run": [s for s in steps if s not in done],
    }
    return (
        "The plan failed. Outputs are not kept between plans: a new plan starts from scratch. "
        "Submit a new plan that reaches the goal despite this error.\n"
        + json.dumps(report, ensure_ascii=False)
    )


def intervention_report(result: ExecutionResult, note: str, max_output_chars: int) -> str:
    """Return what the model is told when a person asked for a new plan after an intervention.

    Args:
        result: The engine's result (verdict `INTERVENTION_NEEDED`).
        note: The person's decision in words.
        max_output_chars: Size budget of the outputs' JSON text.

    Returns:
        The intervention, the outputs so far and the person's note.
    """
    intervention = (
        None if result.intervention is None else result.intervention.model_dump(mode="json")
    )
    report = {
        "plan_id": result.plan_id,
        "verdict": result.verdict.value,
        "intervention": cut_json(intervention, max_output_chars // 4),
        "outputs": cut_json(result.outputs, max_output_chars),
        "person_says": note,
    }
    return (
        "The plan stopped for a person, who asks for a new plan. Outputs are not kept "
        "between plans. Submit a new plan.\n" + json.dumps(report, ensure_ascii=False)
    )
