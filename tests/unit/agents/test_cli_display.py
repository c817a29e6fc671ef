"""The agent command's terminal display and its light import."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

from marimo_engine.agents import PlannerAgent
from marimo_engine.cli.agent import _RichDisplay
from tests.processes import run_process
from tests.unit.agents.scripted import ScriptedPlanner
from tests.unit.agents.tools import planner_registry

ROOT = Path(__file__).resolve().parents[3]

MISSPELT = {"name": "typo", "steps": [{"id": "s1", "tool": "divde", "args": {"a": 1, "b": 4}}]}
GOOD = {
    "name": "quarter",
    "steps": [
        {"id": "s1", "tool": "divide", "args": {"a": 1, "b": 4}},
        {"id": "s2", "tool": "summarize", "args": {"value": "$s1", "label": "quarter"}},
    ],
}


@pytest.mark.anyio
async def test_rich_display_shows_the_planner_and_the_steps() -> None:
    out = io.StringIO()
    display = _RichDisplay("scripted", console=Console(file=out, width=120, color_system=None))
    agent = PlannerAgent(ScriptedPlanner([MISSPELT, GOOD]).model(), planner_registry())
    try:
        async for event in agent.events("a quarter [with brackets]"):
            display.handle(event)
    finally:
        display.close()
    text = out.getvalue()
    for expected in (
        "planner model scripted",
        "▸ Plan 1 rejected: 1 problem(s)\n",
        "    step 's1', field 'tool': Tool 'divde' is not registered. Did you mean 'divide'?",
        "▸ Plan 2 accepted; running it",
        "quarter: 0.25",
        "▸ Done: SUCCESS (succeeded)",
        "scripted-planner: 2 requests",
    ):
        assert expected in text, text


@pytest.mark.anyio
async def test_rich_display_shows_a_spinner_with_tokens_while_the_model_answers() -> None:
    from pydantic_ai.models.function import FunctionModel

    from marimo_engine.agents import PlannerOptions
    from tests.unit.agents.scripted import paced_stream

    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    display = _RichDisplay("paced", console=console)
    model = FunctionModel(
        ScriptedPlanner([GOOD]), stream_function=paced_stream(GOOD), model_name="p"
    )
    agent = PlannerAgent(model, planner_registry(), options=PlannerOptions(stream=True))
    try:
        async for event in agent.events("a quarter"):
            display.handle(event)
            if event.type.value == "MODEL_PROGRESS" and not event.progress["done"]:
                assert display.waiting is not None  # the spinner runs while it arrives
    finally:
        display.close()
    assert display.waiting is None
    text = out.getvalue()
    assert "waiting for paced" in text  # the spinner's first line, before any token
    assert "function:p answering: " in text and " tokens so far (" in text
    assert "  function:p answered: " in text  # kept as a line once the answer is complete
    assert "▸ Done: SUCCESS (succeeded)" in text


@pytest.mark.integration
def test_modules_import_nothing_heavy() -> None:
    code = (
        "import sys, marimo_engine.cli.agent, marimo_engine.agents, marimo_engine.llm\n"
        "heavy = {'pydantic_ai', 'rich', 'httpx', 'marimo', 'openai', 'anthropic'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = run_process([sys.executable, "-c", code], cwd=ROOT, timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.anyio
async def test_rich_display_keeps_colons_and_brackets_of_model_and_plan_text() -> None:
    from pydantic_ai.models.function import FunctionModel

    from marimo_engine.agents import PlannerOptions
    from tests.unit.agents.scripted import paced_stream

    named = {**GOOD, "name": "quarter :x: [bold]not bold[/bold]"}
    out = io.StringIO()
    # The console rich makes by default (emoji and markup on), as on a terminal.
    display = _RichDisplay("ollama:x:", console=Console(file=out, width=200, color_system=None))
    model = FunctionModel(
        ScriptedPlanner([named]), stream_function=paced_stream(named), model_name="x:"
    )
    agent = PlannerAgent(model, planner_registry(), options=PlannerOptions(stream=True))
    try:
        async for event in agent.events("a quarter :x:"):
            display.handle(event)
    finally:
        display.close()
    text = out.getvalue()
    assert "❌" not in text, text
    assert "planner model ollama:x:" in text
    assert "function:x: answered: " in text  # the model's progress line
    assert "quarter :x: [bold]not bold[/bold]" in text  # the plan's name in the summary
