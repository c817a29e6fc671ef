"""The JSON schemas of the plan functions, as Pipecat `FunctionSchema`s with their handlers.

What the LLM reads: each function's description says when to call it and
what comes back (`_results`), the parameters name the known plans and the
decisions, and `run_plan`'s description lists the tools a plan may call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marimo_engine.integrations.pipecat._results import DECISIONS

if TYPE_CHECKING:
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

    from marimo_engine.integrations.pipecat.functions import PlanFunctions

__all__ = ["function_schemas"]


def function_schemas(functions: PlanFunctions) -> list[FunctionSchema]:
    """`[run_plan, answer_intervention]` of `functions`, each with its handler."""
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

    tools = "; ".join(f"{s['name']}: {s['description']}" for s in functions.registry.schemas())
    names = sorted(functions.plans)
    plan_name: dict[str, Any] = {
        "type": "string",
        "description": "The name of a known plan to run.",
    }
    if names:
        plan_name["enum"] = names
    run = FunctionSchema(
        name=functions.run_function_name,
        description=(
            "Run a diagnostic plan and get its verdict (SUCCESS, FAILURE or "
            "INTERVENTION_NEEDED), a short summary and its key findings. Give plan_name "
            "(a known plan) or plan (a plan you write). Progress is spoken to the person "
            "while it runs. If status is invalid_plan, fix every problem listed and call "
            "again. If status is waiting_for_person, the person has been asked the "
            f"question: wait for their reply, then call {functions.answer_function_name}. "
            f"Tools a plan can use: {tools}"
        ),
        properties={
            "plan_name": plan_name,
            "plan": {
                "type": "object",
                "description": (
                    'A plan: {"name": "...", "steps": [{"id": "s1", "tool": "...", '
                    '"description": "...", "args": {...}, "run_if": "...", '
                    '"intervention_if": "...", "key_finding": true}]}. "$s1.field" in '
                    "args or conditions refers to step s1's output."
                ),
            },
            "changes": {
                "type": "object",
                "description": (
                    'Argument values to set, as {"STEP.args.NAME": value}, e.g. '
                    '{"s2.args.sensor_id": "O2-AFT-2"}.'
                ),
            },
        },
        required=[],
        handler=functions.run_handler,
    )
    answer = FunctionSchema(
        name=functions.answer_function_name,
        description=(
            "Give the person's answer to the question a running plan asked. approve: go "
            "on (run the step, or keep its result); reject: refuse (skip the step, or stop "
            "the plan), with the person's reason; answer: use value as the step's result "
            "(conditions only); cancel: stop the whole plan now. Returns what "
            f"{functions.run_function_name} returns."
        ),
        properties={
            "decision": {"type": "string", "enum": list(DECISIONS)},
            "intervention_id": {
                "type": "string",
                "description": "The intervention_id of the question being answered.",
            },
            "reason": {"type": "string", "description": "Why, in the person's words."},
            "value": {"description": "decision 'answer': the value the person gave."},
        },
        required=["decision"],
        handler=functions.answer_handler,
    )
    return [run, answer]
