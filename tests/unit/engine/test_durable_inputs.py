"""A durable run's plan inputs and sub-plans come back from the journal on resume and rerun.

A resume from another process (the CLI, the MCP server, the runs UI) has no
`inputs=` or `plans=` to give: the journal holds the values the run read
(`$input.NAME`, defaults applied) and the sub-plans it resolved. Side
effects are counted by `durable_tools` (each call appends to `$SIDE_LOG`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from marimo_engine import execute_plan_sync
from marimo_engine.engine._journal_codec import decode_values, encode_values
from marimo_engine.engine.durable import Decision, rerun, resume_run
from marimo_engine.engine.events import EventType, Verdict
from marimo_engine.engine.executor import run_sync
from marimo_engine.engine.journal import open_journal
from marimo_engine.errors import UsageError
from marimo_engine.plans.subplans import PlanLibrary
from tests.unit.engine import durable_tools, map_tools
from tests.unit.engine.durable_tools import counts

TOOLS = {"first": durable_tools.first, "double": durable_tools.double, "last": durable_tools.last}


def _plan(stop: str) -> dict[str, Any]:
    """`a` and `c` read `$input.x` (default 1); the run stops between them at `b` or `c`."""
    b: dict[str, Any] = {"id": "b", "tool": "double", "args": {"y": "$a"}}
    c: dict[str, Any] = {"id": "c", "tool": "last", "args": {"z": "$input.x"}, "depends_on": ["b"]}
    if stop == "intervention_if":
        b["intervention_if"] = "$b.v > 3"
    else:
        c["requires_approval"] = True
    return {
        "id": "with-inputs",
        "inputs": {"x": {"required": False, "default": 1}},
        "steps": [{"id": "a", "tool": "first", "args": {"x": "$input.x"}}, b, c],
    }


def _finish(plan_run: Any) -> Any:
    return run_sync(plan_run._run)


@pytest.mark.parametrize("stop", ["intervention_if", "approval"])
def test_a_resume_without_inputs_sees_the_runs_values(
    journal: str, side_log: Path, stop: str
) -> None:
    first = execute_plan_sync(_plan(stop), TOOLS, journal=journal, inputs={"x": 10})
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    assert first.outputs["a"] == 11
    assert "c" not in first.outputs

    resumed = _finish(resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve()))
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.outputs == {"a": 11, "b": {"v": 22}, "c": 10}  # not the default 1
    assert counts(side_log) == {"first": 1, "double": 1, "last": 1}


def test_a_resume_with_other_inputs_is_refused_and_the_same_ones_are_taken(
    journal: str, side_log: Path
) -> None:
    first = execute_plan_sync(_plan("approval"), TOOLS, journal=journal, inputs={"x": 10})
    with pytest.raises(UsageError, match=r"ran with input 'x' = 10, not 2: .* use rerun") as info:
        resume_run(
            first.run_id, TOOLS, journal=journal, decision=Decision.approve(), inputs={"x": 2}
        )
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"has no input 'y' \(its inputs: 'x'\)"):
        resume_run(
            first.run_id, TOOLS, journal=journal, decision=Decision.approve(), inputs={"y": 1}
        )
    with open_journal(journal) as store:  # refused before the lease was taken
        record = store.get_run(first.run_id, steps=False)
    assert record is not None and record.lease_owner is None
    resumed = _finish(
        resume_run(
            first.run_id, TOOLS, journal=journal, decision=Decision.approve(), inputs={"x": 10}
        )
    )
    assert resumed.outputs["c"] == 10


def test_the_journal_holds_the_values_after_defaults(journal: str, side_log: Path) -> None:
    plan = _plan("approval")
    plan["inputs"]["label"] = {"required": False, "default": "plain"}
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"x": 10})
    with open_journal(journal) as store:
        record = store.get_run(first.run_id, steps=False)
    assert record is not None and record.inputs is not None
    assert decode_values(record.inputs) == ({"x": 10, "label": "plain"}, [])
    assert record.to_json()["inputs"] == {
        "x": {"format": "json", "value": 10},
        "label": {"format": "json", "value": "plain"},
    }
    assert record.subplans is None  # no sub-plan steps


def test_a_rerun_without_inputs_reuses_everything(journal: str, side_log: Path) -> None:
    plan = _plan("intervention_if")
    del plan["steps"][1]["intervention_if"]
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"x": 10})
    assert first.verdict is Verdict.SUCCESS

    again = _finish(rerun(first.run_id, TOOLS, journal=journal))
    assert again.outputs == first.outputs == {"a": 11, "b": {"v": 22}, "c": 10}
    assert counts(side_log) == {"first": 1, "double": 1, "last": 1}  # nothing ran again
    assert {e.step_id for e in again.events if e.reused_from == first.run_id} == {"a", "b", "c"}


def test_a_rerun_with_a_changed_input_runs_the_steps_that_read_it(
    journal: str, side_log: Path
) -> None:
    plan: dict[str, Any] = {
        "id": "reads",
        "inputs": {
            "x": {"required": False, "default": 1},
            "limit": {"required": False, "default": 100},
        },
        "steps": [
            {"id": "a", "tool": "first", "args": {"x": "$input.x"}},
            {"id": "b", "tool": "double", "args": {"y": "$a"}},
            {"id": "k", "tool": "last", "args": {"z": 7}},
            # reads an input only in its condition: its args do not change
            {"id": "w", "tool": "last", "args": {"z": 8}, "intervention_if": "$w > $input.limit"},
        ],
    }
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"x": 10, "limit": 100})
    assert first.verdict is Verdict.SUCCESS
    assert counts(side_log) == {"first": 1, "double": 1, "last": 2}

    changed = _finish(rerun(first.run_id, TOOLS, journal=journal, inputs={"x": 20}))
    assert changed.outputs == {"a": 21, "b": {"v": 42}, "k": 7, "w": 8}
    reused = {e.step_id for e in changed.events if e.reused_from}
    assert reused == {"k", "w"}  # `limit` kept its journaled value
    assert counts(side_log) == {"first": 2, "double": 2, "last": 2}

    stricter = _finish(rerun(changed.run_id, TOOLS, journal=journal, inputs={"limit": 5}))
    assert stricter.verdict is Verdict.INTERVENTION_NEEDED  # w ran again and saw the new limit
    assert stricter.intervention is not None and stricter.intervention.step_id == "w"
    assert stricter.outputs["a"] == 21  # x is the parent run's (20), a reused
    assert {e.step_id for e in stricter.events if e.reused_from} == {"a", "b", "k"}


def test_a_dataframe_input_comes_back_from_the_journal(journal: str, side_log: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"v": [1, 2, 3]})
    plan = {
        "id": "frame",
        "inputs": {"rows": {}},
        "steps": [
            {"id": "n", "tool": "first", "args": {"x": 1}, "requires_approval": True},
            {"id": "r", "tool": "last", "args": {"z": "$input.rows"}},
        ],
    }
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"rows": frame})
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    resumed = _finish(resume_run(first.run_id, TOOLS, journal=journal, decision=Decision.approve()))
    assert resumed.verdict is Verdict.SUCCESS
    pd.testing.assert_frame_equal(resumed.outputs["r"], frame)


def test_values_round_trip_one_by_one_and_an_unstorable_one_is_its_summary() -> None:
    pd = pytest.importorskip("pandas")
    lock = threading.Lock()
    values = {"n": 3, "when": (1, 2), "frame": pd.DataFrame({"a": [1]}), "lock": lock}
    decoded, unstored = decode_values(encode_values(values))
    assert unstored == ["lock"]
    assert decoded["n"] == 3 and decoded["when"] == (1, 2)
    pd.testing.assert_frame_equal(decoded["frame"], values["frame"])
    assert decoded["lock"]["__type__"] == "_thread.lock"  # its summary, as for an output


def test_an_unstorable_input_is_given_again_or_its_summary_with_a_warning(
    journal: str, side_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = threading.Lock()
    plan = {
        "id": "lock",
        "inputs": {"guard": {}},
        "steps": [
            {"id": "n", "tool": "first", "args": {"x": 1}, "requires_approval": True},
            {"id": "g", "tool": "last", "args": {"z": "$input.guard"}},
        ],
    }
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"guard": lock})
    again = _finish(
        resume_run(
            first.run_id,
            TOOLS,
            journal=journal,
            decision=Decision.approve(),
            inputs={"guard": lock},  # not refused: the journal has only a summary
        )
    )
    assert again.outputs["g"] is lock

    second = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"guard": lock})
    with caplog.at_level(logging.WARNING, logger="marimo_engine.engine.durable"):
        summary = _finish(
            resume_run(second.run_id, TOOLS, journal=journal, decision=Decision.approve())
        )
    assert summary.outputs["g"]["__type__"] == "_thread.lock"  # the summary
    assert "'guard' could not be stored" in caplog.text
    with open_journal(journal) as store:  # still marked a summary for whoever reads it next
        record = store.get_run(second.run_id, steps=False)
    assert record is not None and record.inputs is not None
    assert decode_values(record.inputs)[1] == ["guard"]
    given = _finish(rerun(second.run_id, TOOLS, journal=journal, inputs={"guard": lock}))
    assert given.outputs["g"] is lock  # a changed value: g ran again with it


def test_a_journal_of_the_previous_version_resumes_as_before(journal: str, side_log: Path) -> None:
    first = execute_plan_sync(_plan("approval"), TOOLS, journal=journal, inputs={"x": 10})
    with sqlite3.connect(journal) as db:  # the columns the previous version did not have
        db.execute("ALTER TABLE me_runs DROP COLUMN inputs")
        db.execute("ALTER TABLE me_runs DROP COLUMN subplans")
    with open_journal(journal) as store:  # opening it adds them back, empty
        record = store.get_run(first.run_id, steps=False)
    assert record is not None and record.inputs is None
    # As before: the caller's inputs are the run's (no values to check them against).
    resumed = _finish(
        resume_run(
            first.run_id, TOOLS, journal=journal, decision=Decision.approve(), inputs={"x": 10}
        )
    )
    assert resumed.outputs["c"] == 10
    # Resuming recorded them: the next resume of this run would need none.
    with open_journal(journal) as store:
        record = store.get_run(first.run_id, steps=False)
    assert record is not None and record.inputs is not None
    assert decode_values(record.inputs)[0] == {"x": 10}


def test_resume_and_rerun_pass_keep_outputs_on(journal: str, side_log: Path) -> None:
    plan = _plan("approval")
    first = execute_plan_sync(plan, TOOLS, journal=journal, inputs={"x": 10})
    resumed = _finish(
        resume_run(
            first.run_id,
            TOOLS,
            journal=journal,
            decision=Decision.approve(),
            keep_outputs="needed",
        )
    )
    assert resumed.verdict is Verdict.SUCCESS
    assert resumed.outputs == {}  # nothing marked, nothing read later: all released
    with pytest.raises(UsageError, match="keep_outputs must be"):
        rerun(first.run_id, TOOLS, journal=journal, keep_outputs=3)  # type: ignore[arg-type]
    again = _finish(rerun(first.run_id, TOOLS, journal=journal, keep_outputs=["c"]))
    assert set(again.outputs) == {"c"}


# -- sub-plans -----------------------------------------------------------------------------

SUB_TOOLS = {"double": map_tools.double, "add": map_tools.add}
CHILD = {
    "id": "child",
    "inputs": {"n": {}},
    "steps": [{"id": "c1", "tool": "double", "args": {"x": "$input.n"}, "output": True}],
}
PARENT = {
    "id": "parent",
    "steps": [
        {"id": "p1", "tool": "double", "args": {"x": 3}, "intervention_if": "$p1 > 5"},
        {"id": "p2", "plan": "child", "args": {"n": "$p1"}},
    ],
}


def test_a_sub_plan_run_resumes_without_plans(journal: str) -> None:
    first = execute_plan_sync(
        PARENT, SUB_TOOLS, plans=PlanLibrary({"child": CHILD}), journal=journal
    )
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    assert "p2" not in first.outputs

    # The child is known to the first run only by name: no file, no example.
    resumed = _finish(
        resume_run(first.run_id, SUB_TOOLS, journal=journal, decision=Decision.approve())
    )
    assert resumed.verdict is Verdict.SUCCESS, resumed.error
    assert resumed.outputs["p2"] == {"c1": 12}


def test_a_sub_plan_file_is_run_as_journaled_even_once_changed(
    journal: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    (tmp_path / "child.json").write_text(json.dumps(CHILD))
    parent = {**PARENT, "steps": [PARENT["steps"][0], {**PARENT["steps"][1], "plan": "child.json"}]}
    first = execute_plan_sync(
        parent, SUB_TOOLS, plans=PlanLibrary(base_dir=tmp_path), journal=journal
    )
    assert first.verdict is Verdict.INTERVENTION_NEEDED
    changed = {**CHILD, "steps": [{**CHILD["steps"][0], "tool": "add", "args": {"values": [1]}}]}
    (tmp_path / "child.json").write_text(json.dumps(changed))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a resume from another directory, as a person's CLI would

    resumed = _finish(
        resume_run(first.run_id, SUB_TOOLS, journal=journal, decision=Decision.approve())
    )
    assert resumed.outputs["p2"] == {"c1": 12}  # the plan the run started with

    # A rerun given plans= runs the changed sub-plan again; without, it reuses.
    same = _finish(rerun(resumed.run_id, SUB_TOOLS, journal=journal))
    assert "p2" in {e.step_id for e in same.events if e.reused_from}
    fresh = _finish(
        rerun(resumed.run_id, SUB_TOOLS, journal=journal, plans=PlanLibrary(base_dir=tmp_path))
    )
    assert fresh.outputs["p2"] == {"c1": 1}
    ran = [e for e in fresh.events if e.type is EventType.STEP_COMPLETE and e.step_id == "p2"]
    assert [e.reused_from for e in ran] == [None]
