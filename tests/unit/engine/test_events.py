"""`new_event` (the step runtime's unvalidated events) makes what `Event(**fields)` makes."""

from __future__ import annotations

from typing import Any

import pytest

from marimo_engine.engine.events import ErrorInfo, Event, EventType, Verdict, new_event

CASES: list[dict[str, Any]] = [
    {"type": EventType.STEP_START, "plan_id": "p", "step_id": "s1", "tool": "t", "msg": "m"},
    {
        "type": EventType.STEP_COMPLETE,
        "plan_id": "p",
        "step_id": "s1",
        "tool": "t",
        "msg": "done",
        "output": {"rows": [1, 2]},
        "key_finding": False,
        "attempt": 1,
        "duration_s": 0.25,
    },
    {"type": EventType.STEP_COMPLETE, "plan_id": "p", "step_id": "s2", "output": None},
    {
        "type": EventType.STEP_SKIPPED,
        "plan_id": "p",
        "step_id": "s3",
        "reason": "run_if is false: $s1 > 2",
        "expression": "$s1 > 2",
    },
    {
        "type": EventType.ERROR,
        "plan_id": "p",
        "step_id": "s4",
        "error": ErrorInfo(type="ValueError", message="bad", step_id="s4"),
        "attempt": 2,
    },
    {"type": EventType.FINISH, "plan_id": "p", "verdict": Verdict.SUCCESS, "outputs": {}},
    {"type": EventType.START, "plan_id": "p", "run_id": "r1", "timestamp": 12.5},
]


@pytest.mark.parametrize("fields", CASES, ids=lambda f: f["type"].value)
def test_new_event_equals_the_validated_event(fields: dict[str, Any]) -> None:
    validated = Event(**fields)
    fast = new_event(dict(fields))
    assert fast.model_fields_set == validated.model_fields_set
    if "timestamp" not in fields:  # now, on both
        assert abs(fast.timestamp - validated.timestamp) < 5.0
        fast.__dict__["timestamp"] = validated.timestamp
    assert fast == validated
    assert fast.to_json() == validated.to_json()
    assert fast.model_dump() == validated.model_dump()
    assert fast.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert fast.model_copy(update={"output": None}) == validated.model_copy(update={"output": None})
    fast.run_id = "r2"  # assignment works as on any event
    assert fast.run_id == "r2" and "run_id" in fast.model_fields_set


def test_every_field_not_given_has_its_default() -> None:
    event = new_event({"type": EventType.STEP_START, "plan_id": "p"})
    for name, field in Event.model_fields.items():
        if name not in ("type", "plan_id", "timestamp"):
            assert getattr(event, name) == field.get_default(call_default_factory=True), name
