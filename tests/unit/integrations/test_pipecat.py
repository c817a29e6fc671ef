"""The plan functions in a real Pipecat pipeline, driven by a scripted LLM (`run_test`).

The conversation harness is `conversation.py`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pipecat", reason="pip install 'marimo-engine[pipecat]'")

from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from marimo_engine.engine.events import Event, EventType
from marimo_engine.errors import UsageError
from marimo_engine.integrations.pipecat import (
    PlanEventLogger,
    PlanFunctions,
    PlanProgressFrame,
    PlanQuestionFrame,
)
from marimo_engine.integrations.pipecat.testing import (
    Call,
    ScriptedLLMService,
    tool_result,
)
from marimo_engine.tools.examples import check_oxygen, scan_hull
from tests.unit.integrations.conversation import (
    ANSWERS,
    DEADLINE_S,
    HULL_DONE,
    LOW_O2,
    O2_LOW,
    QUESTION,
    START,
    Conversation,
    Holder,
    Person,
    hull_check,
    say_summary,
)

pytestmark = pytest.mark.anyio


async def test_a_successful_run_speaks_its_progress_and_returns_verdict_and_findings() -> None:
    talk = Conversation(
        [
            Call(
                "run_plan", {"plan_name": "hull-check", "changes": {"s2.args.simulated_level": 18}}
            ),
            say_summary,
        ]
    )
    await talk.run()
    summary = (
        "Hull and air diagnostics finished successfully. 3 steps done. Check oxygen: level 18, "
        "pressure 18.24 kilopascals, status low."
    )
    assert talk.heard() == [
        START,
        HULL_DONE,
        ("progress", "Check oxygen: level 18, pressure 18.24 kilopascals, status low."),
        ("progress", "Analyze atmosphere: done."),
        ("result", ("finished", "SUCCESS")),
        ("bot", summary),
    ]
    (result,) = talk.results()
    assert result["summary"] == summary
    assert result["key_findings"] == [
        {
            "step": "Check oxygen",
            "step_id": "s2",
            "value": "level 18, pressure 18.24 kilopascals, status low",
            "output": {
                "level": 18.0,
                "pressure_kpa": 18.24,
                "sensor_id": "O2-BRIDGE-1",
                "status": "low",
            },
        }
    ]
    assert (result["skipped"], result["error"]) == ([], None)
    assert talk.event_types() == [
        (EventType.START, None),
        (EventType.STEP_START, "s1"),
        (EventType.STEP_COMPLETE, "s1"),
        (EventType.STEP_START, "s2"),
        (EventType.STEP_COMPLETE, "s2"),
        (EventType.STEP_START, "s3"),
        (EventType.STEP_COMPLETE, "s3"),
        (EventType.FINISH, None),
    ]
    # The observer saw every event once, as PlanEventFrames.
    assert [e.type for e in talk.logged] == [e.type for e in talk.events]
    # The LLM saw the result as the function's result in its context.
    assert tool_result(talk.llm.seen[-1])["verdict"] == "SUCCESS"


async def test_a_failing_step_is_spoken_and_the_failure_returned() -> None:
    talk = Conversation(
        [
            Call("run_plan", {"plan_name": "hull-check", "changes": {"s1.args.sections": []}}),
            say_summary,
        ]
    )
    await talk.run()
    assert talk.heard() == [
        START,
        ("progress", "Scan the hull failed: sections is empty."),
        ("result", ("finished", "FAILURE")),
        ("bot", "Hull and air diagnostics failed at Scan the hull: sections is empty."),
    ]
    (result,) = talk.results()
    assert result["error"]["type"] == "ValueError"
    assert result["error"]["step"] == "Scan the hull"
    assert talk.event_types() == [
        (EventType.START, None),
        (EventType.STEP_START, "s1"),
        (EventType.ERROR, "s1"),
        (EventType.FINISH, None),
    ]


async def test_an_invalid_plan_returns_its_problems_and_the_llm_fixes_it() -> None:
    bad = {"name": "Quick hull scan", "steps": [{"id": "s1", "tool": "scan_hul"}]}

    def fix(messages: list[dict[str, Any]]) -> Call:
        (problem,) = tool_result(messages)["problems"]
        assert problem["code"] == "unknown_tool"
        assert "Did you mean 'scan_hull'?" in problem["message"]
        return Call("run_plan", {"plan": {**bad, "steps": [{"id": "s1", "tool": "scan_hull"}]}})

    talk = Conversation([Call("run_plan", {"plan": bad}), fix, say_summary])
    await talk.run()
    assert talk.heard() == [
        ("result", ("invalid_plan", None)),
        ("progress", "Starting Quick hull scan: 1 step."),
        ("progress", "Scan hull: done."),  # no description: the tool's name in words
        ("result", ("finished", "SUCCESS")),
        ("bot", "Quick hull scan finished successfully. 1 step done."),
    ]
    invalid = talk.results()[0]
    assert invalid["message"] == "The plan has 1 problem; nothing ran. Fix each one and call again."
    assert invalid["problems"][0]["step_id"] == "s1"
    # Nothing ran for the invalid plan: one run only.
    assert [e.type for e in talk.events].count(EventType.START) == 1


def _answer(decision: str, **extra: Any) -> Callable[[list[dict[str, Any]]], Call]:
    def turn(messages: list[dict[str, Any]]) -> Call:
        waiting = tool_result(messages)
        assert waiting["status"] == "waiting_for_person"
        assert messages[-1] == {"role": "user", "content": ANSWERS[decision]}
        args = {"decision": decision, "intervention_id": waiting["intervention_id"], **extra}
        return Call("answer_intervention", args)

    return turn


async def test_an_intervention_answered_yes_resumes_the_run() -> None:
    talk = Conversation(
        [Call("run_plan", LOW_O2), _answer("approve"), say_summary],
        Person([ANSWERS["approve"]]),
    )
    await talk.run()
    assert talk.heard() == [
        START,
        HULL_DONE,
        O2_LOW,
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "Analyze atmosphere: done."),
        ("result", ("finished", "SUCCESS")),
        (
            "bot",
            "Hull and air diagnostics finished successfully. 3 steps done. Check oxygen: "
            "level 12, pressure 12.16 kilopascals, status critical.",
        ),
    ]
    waiting = talk.results()[0]
    assert waiting["decisions"] == ["approve", "reject", "answer", "cancel"]
    assert waiting["question"] == QUESTION
    assert waiting["kind"] == "condition"
    # One run, resumed in place: the engine's on_intervention had the answer.
    assert [t for t, _ in talk.event_types()].count(EventType.START) == 1
    assert (EventType.INTERVENTION_NEEDED, "s2") not in talk.event_types()
    assert talk.event_types()[-3:] == [
        (EventType.STEP_START, "s3"),
        (EventType.STEP_COMPLETE, "s3"),
        (EventType.FINISH, None),
    ]


async def test_an_intervention_answered_no_ends_the_run_as_rejected() -> None:
    talk = Conversation(
        [Call("run_plan", LOW_O2), _answer("reject", reason="too risky"), say_summary],
        Person([ANSWERS["reject"]]),
    )
    await talk.run()
    assert talk.heard() == [
        START,
        HULL_DONE,
        O2_LOW,
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "Check oxygen failed: A person rejected the run at Check oxygen: too risky."),
        ("result", ("finished", "FAILURE")),
        (
            "bot",
            "Hull and air diagnostics failed at Check oxygen: A person rejected the run at "
            "Check oxygen: too risky. 2 steps done. Check oxygen: level 12, pressure 12.16 "
            "kilopascals, status critical.",
        ),
    ]
    assert talk.results()[-1]["error"]["type"] == "InterventionRejectedError"
    assert talk.event_types()[-2:] == [(EventType.ERROR, "s2"), (EventType.FINISH, None)]


async def test_an_approval_answered_no_skips_the_step_and_the_run_succeeds() -> None:
    plan = {
        "name": "Air check",
        "steps": [
            {"id": "s1", "tool": "check_oxygen", "description": "Read the oxygen sensor"},
            {
                "id": "s2",
                "tool": "analyze_atmosphere",
                "description": "Vent the cabin",
                "args": {"o2_level": "$s1.level", "context": "venting"},
                "requires_approval": True,
            },
        ],
    }
    talk = Conversation(
        [Call("run_plan", {"plan": plan}), _answer("reject"), say_summary],
        Person([ANSWERS["reject"]]),
    )
    await talk.run()
    assert talk.heard() == [
        ("progress", "Starting Air check: 2 steps."),
        ("progress", "Read the oxygen sensor: done."),
        ("result", ("waiting_for_person", None)),
        (
            "question",
            "Vent the cabin needs your approval before it runs, with o2 level 20.9, "
            "context venting. Shall I go ahead?",
        ),
        ("progress", "Vent the cabin: skipped as you asked."),
        ("result", ("finished", "SUCCESS")),
        ("bot", "Air check finished successfully. 1 step done; skipped: Vent the cabin."),
    ]
    waiting = talk.results()[0]
    assert (waiting["kind"], waiting["decisions"]) == ("approval", ["approve", "reject", "cancel"])
    assert waiting["args"] == {"o2_level": 20.9, "context": "venting"}
    assert talk.event_types()[-2:] == [(EventType.STEP_SKIPPED, "s2"), (EventType.FINISH, None)]


def _scan_then(name: str, tool: str, description: str) -> dict[str, Any]:
    """A plan `name`: scan the hull (`s1`), then `tool` (`s2`, described as `description`)."""
    return {
        "name": name,
        "steps": [
            {"id": "s1", "tool": "scan_hull", "description": "Scan the hull"},
            {"id": "s2", "tool": tool, "description": description, "depends_on": ["s1"]},
        ],
    }


async def test_interrupting_the_bot_cancels_the_run_with_one_finish() -> None:
    holder = Holder()
    plan = _scan_then("Long watch", "hold_line", "Watch the line")
    talk = Conversation(
        [Call("run_plan", {"plan": plan})],
        Person(interrupt_at="s2"),
        tools={"scan_hull": scan_hull, "hold_line": holder.hold_line},
    )
    await talk.run()
    assert talk.heard() == [
        ("progress", "Starting Long watch: 2 steps."),
        HULL_DONE,
        ("cancelled", "run_plan"),
    ]
    assert holder.cancelled
    assert talk.event_types() == [
        (EventType.START, None),
        (EventType.STEP_START, "s1"),
        (EventType.STEP_COMPLETE, "s1"),
        (EventType.STEP_START, "s2"),
        (EventType.FINISH, None),
    ]
    finish = talk.events[-1]
    assert finish.verdict is not None and finish.verdict.value == "FAILURE"
    assert "cancelled" in (finish.reason or "")


@pytest.mark.parametrize("how", ["hang_up_at", "cancel_at"])
async def test_the_call_ending_mid_run_cancels_it_with_one_finish(how: str) -> None:
    holder = Holder()
    plan = {"steps": [{"id": "s1", "tool": "hold_line"}]}
    talk = Conversation(
        [Call("run_plan", {"plan": plan})],
        Person(**{how: "s1"}),
        tools={"hold_line": holder.hold_line},
    )
    await talk.run()
    assert holder.cancelled
    assert talk.event_types() == [
        (EventType.START, None),
        (EventType.STEP_START, "s1"),
        (EventType.FINISH, None),
    ]
    assert talk.events[-1].verdict is not None
    assert talk.events[-1].verdict.value == "FAILURE"
    assert not talk.results()  # the LLM got no result: the call is over


async def test_a_question_nobody_answers_ends_the_run_as_needing_intervention() -> None:
    talk = Conversation(
        [Call("run_plan", LOW_O2)], Person(end_on_timeout=True), answer_timeout_s=0.5
    )
    await talk.run()
    assert talk.heard() == [
        START,
        HULL_DONE,
        O2_LOW,
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "No answer came, so Hull and air diagnostics stopped at Check oxygen."),
    ]
    assert talk.event_types()[-2:] == [
        (EventType.INTERVENTION_NEEDED, "s2"),
        (EventType.FINISH, None),
    ]
    assert talk.events[-1].verdict is not None
    assert talk.events[-1].verdict.value == "INTERVENTION_NEEDED"


async def test_a_late_answer_resumes_the_journaled_run_where_it_stopped(tmp_path: Any) -> None:
    def late(messages: list[dict[str, Any]]) -> Call:
        assert messages[-1] == {"role": "user", "content": "Sorry, yes, carry on."}
        waiting = tool_result(messages)
        return Call(
            "answer_intervention",
            {"decision": "approve", "intervention_id": waiting["intervention_id"]},
        )

    talk = Conversation(
        [Call("run_plan", LOW_O2), late, say_summary],
        Person(late_answer="Sorry, yes, carry on."),
        answer_timeout_s=0.5,
        journal=str(tmp_path / "runs.sqlite3"),
    )
    await talk.run()
    assert talk.heard() == [
        START,
        HULL_DONE,
        O2_LOW,
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "No answer came, so Hull and air diagnostics stopped at Check oxygen."),
        # The resumed run: the steps done before the pause are not run (nor said) again.
        ("progress", "Carrying on with Hull and air diagnostics."),
        ("progress", "Analyze atmosphere: done."),
        ("result", ("finished", "SUCCESS")),
        (
            "bot",
            "Hull and air diagnostics finished successfully. 3 steps done. Check oxygen: "
            "level 12, pressure 12.16 kilopascals, status critical.",
        ),
    ]
    finishes = [e for e in talk.events if e.type is EventType.FINISH]
    assert [f.verdict.value for f in finishes if f.verdict] == ["INTERVENTION_NEEDED", "SUCCESS"]
    assert len({e.run_id for e in talk.events}) == 1  # one run, resumed
    reused = [e.step_id for e in talk.events if e.reused_from]
    assert reused == ["s1", "s2"]


async def test_progress_faster_than_speech_is_said_together_before_the_question() -> None:
    talk = Conversation(
        [Call("run_plan", LOW_O2), _answer("approve"), say_summary],
        Person([ANSWERS["approve"]]),
        speech_interval_s=3600,
    )
    await talk.run()
    assert talk.heard()[:4] == [
        START,
        # Kept while the first sentence was said, then said together before the question.
        ("progress", "Scan the hull and Check oxygen: done."),
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
    ]
    # After the answer, what finished within the interval is not spoken: the
    # LLM says the result.
    assert [k for k, _ in talk.heard()[4:]] == ["result", "bot"]


class Gate:
    """A tool that waits until the test opens it, and a clock that moves when told."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def wait_for_crew(self) -> str:
        """Wait until the crew reports (the test opens the gate)."""
        await self.opened.wait()
        return "ready"


class Listener(Person):
    """Once the sentence kept for later is said, lets time pass and opens the gate."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def heard(self, frame: Frame) -> None:
        if isinstance(frame, PlanProgressFrame) and frame.text == "Scan the hull: done.":
            self.gate.now += 1000.0
            self.gate.opened.set()


async def test_a_sentence_kept_for_later_is_said_when_its_time_comes() -> None:
    gate = Gate()
    plan = _scan_then("Crew check", "wait_for_crew", "Wait for the crew")
    talk = Conversation(
        [Call("run_plan", {"plan": plan}), say_summary],
        Listener(gate),
        tools={"scan_hull": scan_hull, "wait_for_crew": gate.wait_for_crew},
        speech_interval_s=0.2,
        clock=gate.clock,
    )
    await talk.run()
    assert talk.heard() == [
        ("progress", "Starting Crew check: 2 steps."),  # said at once
        HULL_DONE,  # within the interval on the clock: kept, then said by the timer
        ("progress", "Wait for the crew: done."),  # the clock moved on: said at once
        ("result", ("finished", "SUCCESS")),
        ("bot", "Crew check finished successfully. 2 steps done."),
    ]


async def test_answers_that_do_not_fit_are_returned_to_the_llm() -> None:
    def wrong_id(messages: list[dict[str, Any]]) -> Call:
        return Call("answer_intervention", {"decision": "approve", "intervention_id": "nope"})

    def bad_decision(messages: list[dict[str, Any]]) -> Call:
        assert "is not the open question" in tool_result(messages)["message"]
        return Call("answer_intervention", {"decision": "maybe"})

    def cancel(messages: list[dict[str, Any]]) -> Call:
        assert tool_result(messages)["message"] == (
            "decision 'maybe' is not one of 'approve', 'reject', 'answer', 'cancel'."
        )
        return Call("answer_intervention", {"decision": "cancel"})

    talk = Conversation(
        [
            Call("answer_intervention", {"decision": "approve"}),
            lambda m: Call("run_plan", LOW_O2),
            wrong_id,
            bad_decision,
            cancel,
            say_summary,
        ],
        Person(["Hm, wait."]),
    )
    await talk.run()
    first = talk.results()[0]
    assert first == {
        "status": "error",
        "message": "No plan is waiting for an answer; nothing to answer.",
    }
    assert talk.results()[-1]["verdict"] == "FAILURE"
    assert [t for t, _ in talk.event_types()].count(EventType.FINISH) == 1


async def test_handlers_registered_with_register_function_work_the_same() -> None:
    talk = Conversation([Call("run_plan", {"plan_name": "hull-check"}), say_summary])
    await talk.run(register=True)
    assert [kind for kind, _ in talk.heard()] == ["progress"] * 4 + ["result", "bot"]
    assert talk.results()[0]["verdict"] == "SUCCESS"


def test_the_schemas_say_what_to_call_and_carry_their_handlers() -> None:
    functions = PlanFunctions(
        {"scan_hull": scan_hull},
        plans={"b": hull_check(), "a": hull_check()},
        run_function_name="run_check",
    )
    run, answer = functions.function_schemas()
    assert (run.name, answer.name) == ("run_check", "answer_intervention")
    assert run.properties["plan_name"]["enum"] == ["a", "b"]
    assert "scan_hull: Scan the ship's hull" in run.description
    assert "call answer_intervention" in run.description
    assert answer.properties["decision"]["enum"] == ["approve", "reject", "answer", "cancel"]
    assert (run.required, answer.required) == ([], ["decision"])
    assert run.handler is functions.run_handler
    assert answer.handler is functions.answer_handler
    # Both carry the teardown hook Pipecat awaits when the pipeline ends.
    assert run.handler._pipecat_cleanup == functions.aclose
    assert [t.name for t in functions.tools_schema().standard_tools] == [run.name, answer.name]


def test_bad_settings_are_refused_with_what_to_change() -> None:
    with pytest.raises(UsageError, match="answer_timeout_s 0 must be more than 0 seconds"):
        PlanFunctions({}, answer_timeout_s=0)
    with pytest.raises(UsageError, match="speech_interval_s -1 must be 0 or more seconds"):
        PlanFunctions({}, speech_interval_s=-1)


def test_a_missing_extra_fails_with_its_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("marimo_engine.integrations.pipecat")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pipecat", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'marimo-engine\[pipecat\]'"):
        importlib.import_module("marimo_engine.integrations.pipecat")


async def test_the_example_bot_runs_the_hull_check_without_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(__file__).parents[3] / "examples" / "pipecat_bot.py"
    spec = importlib.util.spec_from_file_location("pipecat_bot_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    lines = await asyncio.wait_for(example.converse(oxygen=12), DEADLINE_S)
    assert lines == [
        "person: Please check the hull and the air.",
        "bot (progress): Starting Hull and air diagnostics: 3 steps.",
        "bot (progress): Scan the hull: done.",
        "bot (progress): " + O2_LOW[1],
        "bot (asks): " + QUESTION,
        "person: Yes, carry on.",
        "bot (progress): Analyze atmosphere: done.",
        "bot: Hull and air diagnostics finished successfully. 3 steps done. Check oxygen: level "
        "12, pressure 12.16 kilopascals, status critical.",
    ]
    assert capsys.readouterr().out.splitlines() == lines


async def test_a_person_can_answer_with_the_value_the_step_should_have_had() -> None:
    corrected = {"level": 20.4, "pressure_kpa": 20.67, "sensor_id": "O2-AFT-2", "status": "nominal"}
    talk = Conversation(
        [Call("run_plan", LOW_O2), _answer("answer", value=corrected), say_summary],
        Person([ANSWERS["answer"]]),
    )
    await talk.run()
    assert talk.heard()[3:] == [
        ("result", ("waiting_for_person", None)),
        ("question", QUESTION),
        ("progress", "Check oxygen: level 20.4, pressure 20.67 kilopascals, status nominal."),
        ("progress", "Analyze atmosphere: skipped."),  # run_if saw the corrected level
        ("result", ("finished", "SUCCESS")),
        (
            "bot",
            "Hull and air diagnostics finished successfully. 2 steps done; skipped: Analyze "
            "atmosphere. Check oxygen: level 20.4, pressure 20.67 kilopascals, status "
            "nominal.",
        ),
    ]
    assert talk.results()[-1]["key_findings"][0]["output"] == corrected


async def test_an_approval_cannot_be_answered_with_a_value() -> None:
    plan = {"steps": [{"id": "s1", "tool": "scan_hull", "requires_approval": True}]}

    def with_value(messages: list[dict[str, Any]]) -> Call:
        return Call("answer_intervention", {"decision": "answer", "value": 3})

    def approve(messages: list[dict[str, Any]]) -> Call:
        assert tool_result(messages)["message"] == (
            "This question asks for approval: decide approve or reject."
        )
        return Call("answer_intervention", {"decision": "approve"})

    talk = Conversation(
        [Call("run_plan", {"plan": plan}), with_value, approve, say_summary],
        Person(["Use three."]),
    )
    await talk.run()
    assert [r["status"] for r in talk.results()] == ["waiting_for_person", "error", "finished"]
    assert talk.results()[-1]["verdict"] == "SUCCESS"


async def test_the_event_logger_logs_each_event_once_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = PlanEventLogger()
    talk = Conversation([Call("run_plan", {"plan_name": "hull-check"}), say_summary])
    caplog.set_level(logging.INFO, logger="marimo_engine.integrations.pipecat")
    await talk.run(observers=[logger])
    logged = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "marimo_engine.integrations.pipecat"
    ]
    assert [e["type"] for e in logged] == [e.type.value for e in talk.events]


async def test_a_question_that_cannot_be_spoken_still_times_out() -> None:
    # Without an assistant context aggregator nothing puts the result into a
    # context, so the question is never spoken: the run must not wait forever.
    events: list[Event] = []
    functions = PlanFunctions(
        {"check_oxygen": check_oxygen}, answer_timeout_s=0.3, on_event=events.append
    )
    plan = {
        "steps": [
            {
                "id": "s1",
                "tool": "check_oxygen",
                "args": {"simulated_level": 12},
                "intervention_if": "$s1.level < 15",
            }
        ]
    }
    llm = ScriptedLLMService([Call("run_plan", {"plan": plan})])
    person = Person(end_on_timeout=True)
    context = LLMContext(
        messages=[{"role": "user", "content": "Check the air."}], tools=functions.tools_schema()
    )
    await asyncio.wait_for(
        run_test(
            Pipeline([llm, person]),
            frames_to_send=[LLMContextFrame(context)],
            send_end_frame=False,
            start_timeout=DEADLINE_S,
        ),
        DEADLINE_S,
    )
    said = [f.text for f in person.frames if isinstance(f, PlanProgressFrame | PlanQuestionFrame)]
    assert said == [
        "Starting the plan: 1 step.",
        "Check oxygen: done.",
        "No answer came, so the plan stopped at Check oxygen.",
    ]
    assert [e.type for e in events][-2:] == [EventType.INTERVENTION_NEEDED, EventType.FINISH]
