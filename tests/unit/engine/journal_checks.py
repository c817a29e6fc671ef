"""Checks every journal kind must pass (SQLite here, PostgreSQL in the integration tests).

Each takes an open, empty `Journal`.
"""

from __future__ import annotations

import pytest

from marimo_engine.engine._journal_codec import (
    decode_output,
    decode_values,
    encode_output,
    encode_values,
)
from marimo_engine.engine.journal import Journal, JournalError, LeaseLostError, RunBusyError


def records_a_run(journal: Journal) -> None:
    token = journal.create_run("r1", "plan", '{"steps": []}')
    fmt, data = encode_output({"rows": [1, 2]})
    journal.write_step("r1", token, "a", tool="t", status="running", fingerprint="f", start=True)
    journal.write_step(
        "r1",
        token,
        "a",
        status="completed",
        attempt=1,
        output_format=fmt,
        output=data,
        duration_s=0.5,
    )
    journal.write_step(
        "r1", token, "b", tool="t", status="failed", error={"type": "ValueError", "message": "bad"}
    )
    journal.write_run("r1", token, status="FAILURE", duration_s=1.0)
    journal.release("r1", token)
    record = journal.get_run("r1")
    assert record is not None
    assert (record.status, record.plan_id, record.duration_s) == ("FAILURE", "plan", 1.0)
    steps = {s.step_id: s for s in record.steps}
    assert steps["a"].status == "completed" and steps["a"].starts == 1
    assert steps["a"].fingerprint == "f"
    assert steps["b"].error == {"type": "ValueError", "message": "bad"}
    ((_fp, fmt2, data2),) = journal.outputs("r1").values()
    assert decode_output(fmt2, data2) == {"rows": [1, 2]}
    assert [r.run_id for r in journal.list_runs()] == ["r1"]


def refuses_a_second_run_with_the_same_id(journal: Journal) -> None:
    journal.create_run("r1", "plan", "{}")
    with pytest.raises(JournalError, match="exists already"):
        journal.create_run("r1", "plan", "{}")


def one_resumer_wins(journal: Journal) -> None:
    token = journal.create_run("r1", "plan", "{}")
    journal.release("r1", token)
    winner = journal.acquire("r1")
    with pytest.raises(RunBusyError):
        journal.acquire("r1")  # this process holds it and is alive
    journal.write_step("r1", winner, "a", status="running")


def a_released_lease_refuses_writes(journal: Journal) -> None:
    token = journal.create_run("r1", "plan", "{}")
    journal.release("r1", token)
    with pytest.raises(LeaseLostError):
        journal.write_step("r1", token, "a", status="completed")
    record = journal.get_run("r1")
    assert record is not None and record.steps == []


def counts_starts_across_resumes(journal: Journal) -> None:
    token = journal.create_run("r1", "plan", "{}")
    journal.write_step("r1", token, "a", status="running", start=True)
    journal.release("r1", token)
    token = journal.acquire("r1")
    journal.write_step("r1", token, "a", status="running", start=True)
    journal.write_step("r1", token, "a", status="completed", attempt=1)
    record = journal.get_run("r1")
    assert record is not None and record.steps[0].starts == 2


def keeps_a_runs_inputs_and_subplans(journal: Journal) -> None:
    given = encode_values({"x": 10})
    token = journal.create_run("r1", "plan", "{}", inputs=given)
    record = journal.get_run("r1", steps=False)
    assert record is not None and record.inputs == given  # written with the run, at once
    resolved = encode_values({"x": 10, "label": "plain", "when": (1, 2)})
    journal.write_run("r1", token, inputs=resolved, subplans='{"base_dir": "/", "plans": []}')
    record = journal.get_run("r1")
    assert record is not None and record.inputs is not None
    assert decode_values(record.inputs) == ({"x": 10, "label": "plain", "when": (1, 2)}, [])
    assert record.to_json()["subplans"] == []
    listed = journal.list_runs()[0]
    assert (listed.inputs, listed.subplans) == (None, None)  # a listing does not load them


def migrates_a_journal_without_the_input_columns(journal: Journal) -> None:
    journal.create_run("old", "plan", "{}", inputs=encode_values({"x": 1}))
    with journal._tx() as cur:  # the layout the previous version wrote
        cur.execute("ALTER TABLE me_runs DROP COLUMN inputs")
        cur.execute("ALTER TABLE me_runs DROP COLUMN subplans")
    journal._create_schema()  # what opening it does
    journal._create_schema()  # and again: nothing left to add
    record = journal.get_run("old")
    assert record is not None and (record.inputs, record.subplans) == (None, None)
    journal.create_run("new", "plan", "{}", inputs=encode_values({"x": 2}))
    record = journal.get_run("new", steps=False)
    assert record is not None and record.inputs is not None
    assert decode_values(record.inputs) == ({"x": 2}, [])


CHECKS = [
    keeps_a_runs_inputs_and_subplans,
    migrates_a_journal_without_the_input_columns,
    records_a_run,
    refuses_a_second_run_with_the_same_id,
    one_resumer_wins,
    a_released_lease_refuses_writes,
    counts_starts_across_resumes,
]
