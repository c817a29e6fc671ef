"""A run in words: sentences from events, pacing on a given clock, questions, summaries."""

from __future__ import annotations

import dataclasses

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.engine.durable import Decision
from marimo_engine.engine.events import Event, EventType, InterventionInfo
from marimo_engine.examples import load_example
from marimo_engine.integrations.speech import (
    PlanWords,
    SpeechPacer,
    Utterance,
    describe_value,
    join_words,
    step_label,
)
from marimo_engine.plans.schema import load_plan
from marimo_engine.tools.examples import OxygenReading, example_registry


def _words(plan: dict | None = None) -> PlanWords:
    return PlanWords(load_plan(plan or load_example("hull-check-7")))


def test_steps_are_named_by_description_else_by_tool_in_words() -> None:
    plan = load_plan(
        {
            "steps": [
                {"id": "s1", "tool": "scan_hull", "description": "Scan the hull."},
                {"id": "s2", "tool": "check-oxygen"},
            ]
        }
    )
    assert [step_label(s) for s in plan.steps] == ["Scan the hull", "Check oxygen"]


def test_values_are_read_as_plain_words_never_json() -> None:
    reading = OxygenReading(level=12.0, pressure_kpa=12.16, sensor_id="O2-1", status="critical")
    assert describe_value(reading) == "level 12, pressure 12.16 kilopascals, status critical"
    assert describe_value({"breach_sections": ["bow", "stern"], "ok": False}) == (
        "breach sections bow and stern, ok no"
    )
    assert describe_value(list(range(7))) == "7 items"
    assert describe_value(float("nan")) == ""
    assert describe_value({"nested": {"a": 1}}) == ""
    assert join_words(["a", "b", "c"]) == "a, b and c"


def test_each_event_worth_hearing_has_one_sentence() -> None:
    words = _words()
    result = execute_plan_sync(load_example("hull-check-7"), example_registry())
    said = [u.text for e in result.events if (u := words.utterance(e)) is not None]
    assert said == [
        "Starting Hull and air diagnostics: 3 steps.",
        "Scan the hull: done.",
        "Check oxygen: level 20.9, pressure 21.18 kilopascals, status nominal.",
        "Analyze atmosphere: skipped.",
    ]


def test_a_failure_is_said_with_the_first_sentence_of_its_message() -> None:
    plan = load_example("hull-check-7")
    plan["steps"][0]["args"] = {"sections": []}
    plan["steps"][1]["depends_on"] = ["s1"]  # so it never starts
    result = execute_plan_sync(plan, example_registry())
    said = [u.text for e in result.events if (u := _words(plan).utterance(e)) is not None]
    assert said == [
        "Starting Hull and air diagnostics: 3 steps.",
        "Scan the hull failed: sections is empty.",
    ]
    assert _words(plan).summary(result) == (
        "Hull and air diagnostics failed at Scan the hull: sections is empty."
    )


def test_questions_name_the_step_its_finding_and_the_condition_in_words() -> None:
    words = _words()
    reading = OxygenReading(level=12.0, pressure_kpa=12.16, sensor_id="O2-1", status="critical")
    condition = InterventionInfo(step_id="s2", expression="$s2.level < 15", output=reading)
    assert words.question(condition) == (
        "Check oxygen found level 12, pressure 12.16 kilopascals, status critical. Level is "
        "below 15, so I need your decision. Shall I carry on?"
    )
    approval = InterventionInfo(
        step_id="s1", expression="", kind="approval", args={"breach_sections": ["bow"]}
    )
    assert words.question(approval) == (
        "Scan the hull needs your approval before it runs, with breach sections bow. "
        "Shall I go ahead?"
    )
    assert words.condition_words("$s1.breach_detected or $s2.level >= 19.5", "s2") == (
        "Scan the hull's breach detected or level is at least 19.5"
    )


def test_the_summary_says_verdict_counts_skips_and_key_findings() -> None:
    result = execute_plan_sync(load_example("hull-check-7"), example_registry())
    assert _words().summary(result) == (
        "Hull and air diagnostics finished successfully. 2 steps done; skipped: Analyze "
        "atmosphere. Check oxygen: level 20.9, pressure 21.18 kilopascals, status nominal."
    )


def test_a_rejected_run_summary_says_where_it_stopped() -> None:
    plan = load_example("hull-check-7")
    plan["steps"][1]["args"] = {"simulated_level": 12}
    result = execute_plan_sync(
        plan, example_registry(), on_intervention=lambda info: Decision.reject("not now")
    )
    assert (
        _words(plan)
        .summary(result)
        .startswith("Hull and air diagnostics failed at Check oxygen: A person rejected the run")
    )


def _u(label: str, kind: str = "done") -> Utterance:
    return Utterance(f"{label}: {kind}.", kind, label)


def test_the_pacer_says_one_sentence_per_interval_and_the_rest_together() -> None:
    pacer = SpeechPacer(4.0)
    assert pacer.offer(Utterance("Starting the plan: 4 steps.", "start"), now=100.0) == (
        "Starting the plan: 4 steps."
    )
    assert pacer.offer(_u("Scan the hull"), now=100.5) is None
    assert pacer.offer(_u("Check oxygen"), now=101.0) is None
    assert pacer.offer(_u("Vent", "skipped"), now=101.5) is None
    assert pacer.offer(_u("Seal", "failed"), now=102.0) is None
    assert (pacer.kept, pacer.due_at) == (4, 104.0)
    assert pacer.flush(now=104.0) == (
        "Scan the hull and Check oxygen: done; Vent: skipped; Seal: failed."
    )
    assert pacer.flush(now=104.1) is None
    # Within the interval after a flush, the next one waits again.
    assert pacer.offer(_u("Report"), now=105.0) is None
    assert pacer.flush(now=108.0) == "Report: done."
    # After a quiet interval, a sentence is said at once.
    assert pacer.offer(_u("Log"), now=200.0) == "Log: done."


def test_the_pacer_keeps_nothing_at_interval_zero_and_drops_on_request() -> None:
    pacer = SpeechPacer(0)
    assert [pacer.offer(_u(n), now=1.0) for n in "abc"] == ["a: done.", "b: done.", "c: done."]
    slow = SpeechPacer(10)
    slow.offer(_u("a"), now=0.0)
    slow.offer(_u("b"), now=1.0)
    assert slow.drop() == 1
    assert slow.due_at is None
    with pytest.raises(ValueError, match="interval_s -1 must be 0 or more seconds"):
        SpeechPacer(-1)


def test_unknown_and_finish_events_are_not_spoken() -> None:
    words = _words()
    start = Event(type=EventType.STEP_START, plan_id="p", step_id="s1")
    finish = Event(type=EventType.FINISH, plan_id="p")
    assert words.utterance(start) is None
    assert words.utterance(finish) is None
    assert dataclasses.asdict(Utterance("x", "done")) == {"text": "x", "kind": "done", "label": ""}
