"""Checks every journal kind must pass (SQLite here, PostgreSQL in the integration tests).

Each takes an open, empty `Journal`.
"""

from __future__ import annotations

import pytest

from marimo_engine.engine._journal_codec import decode_output, encode_output
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


CHECKS = [
    records_a_run,
    refuses_a_second_run_with_the_same_id,
    one_resumer_wins,
    a_released_lease_refuses_writes,
    counts_starts_across_resumes,
]
