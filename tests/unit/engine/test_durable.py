"""Durable runs in process: resume after an intervention or an approval, on_intervention, rerun.

Side effects are counted by tools that append to a file (`durable_tools`):
every test shows that a completed step ran exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.engine.durable import (
    Decision,
    DecisionError,
    list_runs,
    rerun,
    resume_run,
)
from marimo_engine.engine.events import EventType, Verdict
from marimo_engine.engine.executor import run_sync
from marimo_engine.engine.journal import open_journal
from marimo_engine.errors import UsageError
from marimo_engine.tools.registry import ToolRegistry
from tests.unit.engine import durable_tools
from tests.unit.engine.durable_tools import counts

PLAN: dict[str, Any] = {
    "id": "durable",
    "steps": [
        {"id": "a", "tool": "first", "args": {"x": 1}},
        {"id": "b", "tool": "double", "args": {"y": "$a"}, "intervention_if": "$b.v > 3"},
        {"id": "c", "tool": "last", "args": {"z": "$b.v"}},
    ],
}


TOOLS = {"first": durable_tools.first, "double": durable_tools.double, "last": durable_tools.last}


def _finish(plan_run: Any) -> Any:
    return run_sync(plan_run._run)


def test_every_event_carries_the_run_id(journal: str, side_log: Path) -> None:
    result = execute_plan_sync(PLAN, TOOLS, journal=journal, run_id="r-1")
    assert result.run_id == "r-1"
    assert {e.run_id for e in result.events} == {"r-1"}
    assert result.events[0].type is EventType.START


def test_resume_after_intervention_runs_completed_steps_once(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    info = first.intervention
    assert info is not None and info.intervention_id and info.kind == "condition"
    assert counts(side_log) == {"first": 1, "double": 1}

    with pytest.raises(UsageError, match="stale"):
        resume_run(
            first.run_id,
            TOOLS,
            journal=journal,
            decision=Decision.approve(),
            intervention_id="not-it",
        )
    with pytest.raises(DecisionError, match="waits for a person") as missing:
        resume_run(first.run_id, TOOLS, journal=journal)
    # Interface-free: the engine names decisions; each interface adds its own words.
    assert missing.value.accepted == ("approve", "reject", "answer")
    assert "needs a decision: approve, reject or answer." in str(missing.value)
    assert "--" not in str(missing.value)
    assert missing.value.choices({"approve": "A", "answer": "C"}) == "A, reject or C"

    resumed = _finish(
        resume_run(
            first.run_id,
            TOOLS,
            journal=journal,
            decision=Decision.approve(),
            intervention_id=info.intervention_id,
        )
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.run_id == first.run_id
    assert resumed.outputs == {"a": 2, "b": {"v": 4}, "c": 4}
    assert counts(side_log) == {"first": 1, "double": 1, "last": 1}
    reused = {e.step_id for e in resumed.events if e.reused_from == first.run_id}
    assert reused == {"a", "b"}
    with pytest.raises(UsageError, match="SUCCESS"):
        resume_run(first.run_id, TOOLS, journal=journal)


def test_reject_ends_the_run_with_the_reason(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    resumed = _finish(
        resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.reject("too big"))
    )
    assert resumed.verdict is Verdict.FAILURE
    assert resumed.error is not None and resumed.error.type == "InterventionRejectedError"
    assert "too big" in resumed.error.message
    assert counts(side_log) == {"first": 1, "double": 1}


def test_answer_becomes_the_output(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    with pytest.raises(UsageError, match=r"^The answer does not fit the output of step 'b'"):
        resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.answer([1, 2]))
    resumed = _finish(
        resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.answer({"v": 10}))
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.outputs["b"] == {"v": 10}
    assert resumed.outputs["c"] == 10
    assert counts(side_log) == {"first": 1, "double": 1, "last": 1}
    with open_journal(journal) as store:
        record = store.get_run(first.run_id)
    assert record is not None and record.status == "SUCCESS"


APPROVAL_PLAN: dict[str, Any] = {
    "id": "approval",
    "steps": [
        {"id": "a", "tool": "first", "args": {"x": 1}},
        {"id": "pay", "tool": "last", "args": {"z": "$a"}, "requires_approval": True},
        {"id": "after", "tool": "double", "args": {"y": "$pay"}},
    ],
}


def test_approval_stops_before_the_step_with_resolved_args(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(APPROVAL_PLAN, TOOLS, journal=journal)
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    info = first.intervention
    assert info is not None and info.kind == "approval" and info.args == {"z": 2}
    assert counts(side_log) == {"first": 1}
    resumed = _finish(resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve()))
    assert resumed.verdict is Verdict.SUCCESS
    assert counts(side_log) == {"first": 1, "last": 1, "double": 1}


def test_rejected_approval_skips_the_step_and_its_dependents(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(APPROVAL_PLAN, TOOLS, journal=journal)
    with pytest.raises(UsageError, match="approval"):
        resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.answer(1))
    resumed = _finish(
        resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.reject("no"))
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.skipped == ["pay", "after"]
    assert counts(side_log) == {"first": 1}


def test_tool_registered_with_requires_approval(side_log: Path) -> None:
    registry = ToolRegistry()
    registry.register(durable_tools.first)
    registry.register(durable_tools.last, requires_approval=True)
    plan = {
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": 1}},
            {"id": "b", "tool": "last", "args": {"z": "$a"}},
        ]
    }
    result = execute_plan_sync(plan, registry)  # no journal: still stops
    assert result.verdict is Verdict.INTERVENTION_NEEDED
    assert result.intervention is not None and result.intervention.kind == "approval"
    assert counts(side_log) == {"first": 1}


def test_on_intervention_answers_without_ending_the_run(side_log: Path) -> None:
    asked: list[tuple[str, str]] = []

    async def person(info: Any) -> Decision:
        asked.append((info.step_id, info.kind))
        await asyncio.sleep(0)
        return Decision.approve()

    plan = {
        **APPROVAL_PLAN,
        "steps": [
            *APPROVAL_PLAN["steps"][:2],
            {"id": "b", "tool": "double", "args": {"y": "$pay"}, "intervention_if": "$b.v > 3"},
        ],
    }
    result = execute_plan_sync(plan, TOOLS, on_intervention=person)
    assert result.verdict is Verdict.SUCCESS
    assert asked == [("pay", "approval"), ("b", "condition")]
    assert not [e for e in result.events if e.type is EventType.INTERVENTION_NEEDED]


def test_on_intervention_none_stops_the_run(side_log: Path) -> None:
    result = execute_plan_sync(PLAN, TOOLS, on_intervention=lambda info: None)
    assert result.verdict is Verdict.INTERVENTION_NEEDED


def test_rerun_runs_only_changed_steps_and_descendants(journal: str, side_log: Path) -> None:
    plan = {
        "id": "chain",
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": 1}},
            {"id": "side", "tool": "last", "args": {"z": 7}},
            {"id": "b", "tool": "double", "args": {"y": "$a"}},
        ],
    }
    first = execute_plan_sync(plan, TOOLS, journal=journal)
    assert first.verdict is Verdict.SUCCESS
    side_log.unlink()
    again = _finish(rerun(first.run_id, TOOLS, journal=journal, changes={"a.args.x": 5}))
    assert again.verdict is Verdict.SUCCESS
    assert again.outputs == {"a": 6, "side": 7, "b": {"v": 12}}
    assert counts(side_log) == {"first": 1, "double": 1}  # `side` reused
    assert again.run_id != first.run_id
    side_log.unlink()
    same = _finish(rerun(first.run_id, TOOLS, journal=journal, changes={"a.args.x": 1}))
    assert same.outputs == first.outputs
    assert counts(side_log) == {}  # nothing changed, nothing ran
    runs = {r.run_id: r for r in list_runs(journal)}
    assert runs[again.run_id].parent_run_id == first.run_id
    # a rerun of a rerun: outputs the middle run reused keep their fingerprints
    third = _finish(rerun(same.run_id, TOOLS, journal=journal, changes={"side.args.z": 8}))
    assert third.outputs == {"a": 2, "side": 8, "b": {"v": 4}}
    assert counts(side_log) == {"last": 1}
    with pytest.raises(UsageError, match=r"STEP\.args\.NAME"):
        rerun(first.run_id, TOOLS, journal=journal, changes={"a.x": 1})


def test_journal_stores_dataframes_as_arrow(journal: str) -> None:
    import pandas as pd

    def frame() -> Any:
        return pd.DataFrame({"n": [1, 2, 3], "s": ["x", "y", "z"]})

    def size(df: Any) -> int:
        return len(df)

    plan = {
        "steps": [
            {"id": "f", "tool": "frame"},
            {"id": "n", "tool": "size", "args": {"df": "$f"}},
            {"id": "stop", "tool": "size", "args": {"df": "$f"}, "requires_approval": True},
        ]
    }
    first = execute_plan_sync(plan, {"frame": frame, "size": size}, journal=journal)
    with open_journal(journal) as store:
        formats = {sid: fmt for sid, (_, fmt, _) in store.outputs(first.run_id).items()}
    assert formats == {"f": "arrow", "n": "json"}
    resumed = _finish(
        resume_run(
            first.run_id,
            {"frame": frame, "size": size},
            journal=journal,
            decision=Decision.approve(),
        )
    )
    assert resumed.verdict is Verdict.SUCCESS
    pd.testing.assert_frame_equal(resumed.outputs["f"], frame())


def test_a_markdown_step_and_a_contract_in_a_durable_run(journal: str, side_log: Path) -> None:
    plan = {
        "id": "durable-md",
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": 1}, "expect": ["$self == 2"]},
            {"id": "note", "markdown": "a is **$a**"},
            {"id": "c", "tool": "last", "args": {"z": "$a"}, "requires_approval": True,
             "depends_on": ["note"]},
        ],
    }  # fmt: skip
    first = execute_plan_sync(plan, TOOLS, journal=journal)
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    assert first.outputs == {"a": 2, "note": "a is **2**"}
    resumed = _finish(resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve()))
    assert resumed.verdict is Verdict.SUCCESS, resumed.error
    assert resumed.outputs == {"a": 2, "note": "a is **2**", "c": 2}
    assert counts(side_log) == {"first": 1, "last": 1}  # `a` ran once; the text is filled in again
    broken = {**plan, "id": "durable-broken"}
    broken["steps"] = [{**plan["steps"][0], "expect": ["$self > 5"], "retries": 2}]
    failed = execute_plan_sync(broken, TOOLS, journal=journal)
    assert failed.error is not None and failed.error.type == "ContractError"
    assert counts(side_log) == {"first": 2, "last": 1}  # tried once, not retried


def test_a_refused_resume_closes_the_journal_it_opened(
    journal: str, side_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    from marimo_engine.engine import journal as journal_module

    opened: list[Any] = []
    real_open = journal_module.open_journal

    def spying_open(spec: Any = None) -> Any:
        store = real_open(spec)
        closed = store.close
        store.closed = False

        def close() -> None:
            store.closed = True
            closed()

        store.close = close
        opened.append(store)
        return store

    monkeypatch.setattr(journal_module, "open_journal", spying_open)
    with pytest.raises(DecisionError):
        resume_run(first.run_id, TOOLS, journal=journal)  # no decision
    with pytest.raises(UsageError, match="No run"):
        resume_run("nope", TOOLS, journal=journal)
    assert [store.closed for store in opened] == [True, True]
    with open_journal(journal) as mine:
        with pytest.raises(DecisionError):
            resume_run(first.run_id, TOOLS, journal=mine)
        assert mine.get_run(first.run_id, steps=False) is not None  # the caller's: left open


@pytest.mark.anyio
async def test_a_resume_closed_before_it_starts_lets_go_of_the_run(
    journal: str, side_log: Path
) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    info = first.intervention
    assert info is not None
    closed = resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve())
    await closed.aclose()  # never iterated: it never starts
    assert not closed.finished
    with pytest.raises(UsageError, match="has not finished"):
        _ = closed.result
    with open_journal(journal) as store:
        record = store.get_run(first.run_id, steps=False)
    # Nothing was written: the run still waits for the same person, and its lease is free.
    assert record is not None and record.status == "INTERVENTION_NEEDED"
    assert record.pending is not None
    assert record.pending["intervention_id"] == info.intervention_id
    again = resume_run(
        first.run_id,
        TOOLS,
        journal=journal,
        decision=Decision.approve(),
        intervention_id=info.intervention_id,
    )
    events = [event async for event in again]
    assert events[-1].verdict is Verdict.SUCCESS
    assert counts(side_log) == {"first": 1, "double": 1, "last": 1}


@pytest.mark.anyio
async def test_closing_a_run_that_began_still_ends_it_with_finish(
    journal: str, side_log: Path
) -> None:
    first = execute_plan_sync(PLAN, TOOLS, journal=journal)
    run = resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve())
    start = await run.__anext__()
    assert start.type is EventType.START
    await run.aclose()
    assert run.finished and run.result.events[-1].type is EventType.FINISH
    again = resume_run(first.run_id, TOOLS, journal=journal)  # the lease was released
    await again.aclose()


def test_a_retried_step_in_a_journaled_run_is_journaled_with_its_tries(
    journal: str, side_log: Path
) -> None:
    calls: list[int] = []

    def flaky(x: int) -> int:
        """Fail on the first call, then return `x`."""
        calls.append(x)
        if len(calls) == 1:
            raise ConnectionError("first try fails")
        return x

    plan = {
        "id": "durable-retry",
        "steps": [{"id": "a", "tool": "flaky", "args": {"x": 4}, "retries": 2}],
    }
    result = execute_plan_sync(plan, {"flaky": flaky}, journal=journal)
    assert result.verdict is Verdict.SUCCESS, result.error
    assert result.outputs == {"a": 4}
    assert len(calls) == 2
    with open_journal(journal) as store:
        record = store.get_run(result.run_id)
    assert record is not None and record.status == "SUCCESS"
    (step,) = record.steps
    assert step.status == "completed"


@pytest.mark.parametrize("consumer", ["none", "on_event", "stream"])
def test_a_journal_that_fails_mid_run_stops_the_run_with_one_error(
    tmp_path: Path, consumer: str
) -> None:
    """Write-ahead: the event the journal could not write, then one ERROR, then FINISH.

    The same with nobody listening (`execute_plan_sync`, whose events go straight to
    the run's fold), with an `on_event` callback, and with a consumer of the stream.
    """
    from marimo_engine.engine.executor import execute_plan

    store = open_journal(str(tmp_path / "journal.sqlite3"))

    def breaks_the_journal(x: int) -> int:
        store.close()  # the journal's connection is gone: its next write fails
        return x

    def after(y: int) -> int:
        return y

    plan = {
        "id": "journal-breaks",
        "steps": [
            {"id": "a", "tool": "breaks", "args": {"x": 1}},
            {"id": "b", "tool": "after", "args": {"y": "$a"}},
        ],
    }
    tools = {"breaks": breaks_the_journal, "after": after}
    seen: list[Any] = []
    if consumer == "stream":

        async def consume() -> list[Any]:
            async with execute_plan(plan, tools, journal=store) as run:
                return [event async for event in run]

        events = asyncio.run(consume())
    else:
        callback = seen.append if consumer == "on_event" else None
        events = execute_plan_sync(plan, tools, journal=store, on_event=callback).events
    kinds = [(e.type, e.step_id) for e in events]
    errors = [e for e in events if e.type is EventType.ERROR]
    assert len(errors) == 1 and "The run journal failed, the run stops" in errors[0].msg
    assert kinds.index((EventType.STEP_COMPLETE, "a")) < kinds.index((EventType.ERROR, None))
    assert (EventType.STEP_START, "b") not in kinds
    assert events[-1].type is EventType.FINISH and events[-1].verdict is Verdict.FAILURE
    if consumer == "on_event":
        assert [(e.type, e.step_id) for e in seen] == kinds
