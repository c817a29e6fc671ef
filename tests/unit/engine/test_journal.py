"""The run journal (SQLite): output formats, leases, faults.

The same checks run against PostgreSQL in
tests/integration/engine/test_journal_postgres.py (`journal_checks`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marimo_engine.engine._journal_codec import decode_output, encode_output, fingerprint
from marimo_engine.engine.journal import (
    JournalError,
    LeaseLostError,
    RunBusyError,
    SqliteJournal,
    open_journal,
)
from tests.unit.engine import journal_checks

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60)
@given(json_values)
def test_json_outputs_round_trip_as_json(value: Any) -> None:
    fmt, data = encode_output(value)
    assert fmt == "json"
    assert decode_output(fmt, data) == value


@settings(max_examples=30)
@given(st.tuples(st.integers(), st.text(max_size=5)) | st.sets(st.integers(), max_size=5))
def test_other_outputs_round_trip_through_the_fallback(value: Any) -> None:
    fmt, data = encode_output(value)
    assert fmt == "pickle"
    assert decode_output(fmt, data) == value


def test_unpicklable_output_is_kept_as_its_summary() -> None:
    fmt, data = encode_output(x for x in ())
    assert fmt == "unstored"
    assert decode_output(fmt, data)["__type__"] == "builtins.generator"


@settings(max_examples=40)
@given(
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
)
def test_fingerprint_is_equal_exactly_for_equal_inputs(a: dict, b: dict) -> None:
    assert (fingerprint("t", a) == fingerprint("t", b)) == (encode_all(a) == encode_all(b))
    assert fingerprint("t", a) != fingerprint("u", a)


def encode_all(args: dict) -> dict:
    return {k: encode_output(v) for k, v in args.items()}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


def test_journal_file_is_private_and_in_wal_mode(path: Path) -> None:
    with SqliteJournal(path):
        pass
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_journal_reads_the_environment(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARIMO_ENGINE_JOURNAL", str(path))
    with open_journal() as journal:
        assert journal.location == str(path)


def test_foreign_sqlite_file_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE mine (x)")
    conn.execute("INSERT INTO mine VALUES (1)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match="not a marimo-engine journal"):
        SqliteJournal(path)
    assert path.read_bytes() == before


def test_corrupt_file_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(JournalError, match="cannot be used as a journal"):
        SqliteJournal(path)
    assert path.read_bytes() == before


def test_reader_paused_mid_iteration_does_not_block_the_writer(path: Path) -> None:
    with SqliteJournal(path) as journal:
        token = journal.create_run("r", "p", "{}")
        for i in range(5):
            journal.write_step("r", token, f"s{i}", status="completed", attempt=1)
        reader = sqlite3.connect(path)
        rows = reader.execute("SELECT step_id FROM me_steps")
        rows.fetchone()  # paused mid-iteration, its read transaction open
        journal.write_step("r", token, "s9", status="completed", attempt=1)  # not blocked
        record = journal.get_run("r")
        assert record is not None and len(record.steps) == 6
        reader.close()


@pytest.mark.parametrize("check", journal_checks.CHECKS, ids=lambda c: c.__name__)
def test_journal_checks_on_sqlite(path: Path, check: Any) -> None:
    with SqliteJournal(path) as journal:
        check(journal)


def test_a_dead_owner_on_this_host_gives_the_lease_up(path: Path) -> None:
    with SqliteJournal(path) as journal:
        journal.create_run("r", "p", "{}")
        # a process id that cannot be alive: pid_max is below 2**22 on Linux
        sqlite3.connect(path).execute("UPDATE me_runs SET lease_pid = 4194999").connection.commit()
        token = journal.acquire("r")
        journal.write_step("r", token, "a", status="running")


def test_stale_writer_is_refused_after_a_takeover(path: Path) -> None:
    with SqliteJournal(path) as journal:
        old = journal.create_run("r", "p", "{}")
        journal.write_step("r", old, "a", status="completed", attempt=1)
        # the old owner's lease expires; a new owner takes over and writes
        conn = sqlite3.connect(path)
        conn.execute("UPDATE me_runs SET lease_until = 0")
        conn.commit()
        new = journal.acquire("r")
        journal.write_step("r", new, "a", status="completed", attempt=2)
        with pytest.raises(LeaseLostError):
            journal.write_step("r", old, "a", status="running", attempt=1)
        record = journal.get_run("r")
        assert record is not None and record.steps[0].attempt == 2


def test_live_owner_keeps_the_lease(path: Path) -> None:
    with SqliteJournal(path) as journal:
        journal.create_run("r", "p", "{}")  # this process, alive
        with pytest.raises(RunBusyError, match=f"process {os.getpid()}"):
            journal.acquire("r")
