"""The run journal: where a run's plan, step receipts and outputs are kept (docs/runs.md).

A journal is an SQL database with three tables (`me_meta`, `me_runs`,
`me_steps`), the same in SQLite (the default, `SqliteJournal`) and in
PostgreSQL (`_journal_pg.PostgresJournal`, for `postgresql://` URLs). Every
write is one transaction, so a record is either all there or not at all.

Only the process holding a run's **lease** writes that run's records: the
lease names its owner (host, process id, a random token) and lasts
`LEASE_S` seconds, renewed by every write. Another process may take the
lease over once it expired, or at once when its owner is a dead process on
the same host (after `kill -9`). A write by a process that lost the lease
is refused (`LeaseLostError`), so a late writer never overwrites a newer
record. `open_journal` picks the kind from its argument.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marimo_engine.errors import EngineError

__all__ = [
    "ENV_VAR",
    "LEASE_S",
    "Journal",
    "JournalError",
    "LeaseLostError",
    "RunBusyError",
    "RunRecord",
    "SqliteJournal",
    "StepRecord",
    "default_journal_path",
    "open_journal",
]

ENV_VAR = "MARIMO_ENGINE_JOURNAL"
"""Environment variable naming the journal (a path or a `postgresql://` URL)."""

LEASE_S = 60.0
"""Seconds a run's lease lasts without a write (each write renews it)."""

FORMAT_VERSION = "1"
_APPLICATION_ID = 0x4D454A31  # "MEJ1": marks an SQLite file as a marimo-engine journal

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS me_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS me_runs (
        run_id TEXT PRIMARY KEY,
        plan_id TEXT NOT NULL,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_run_id TEXT,
        started_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        duration_s DOUBLE PRECISION,
        pending TEXT,
        error TEXT,
        lease_owner TEXT,
        lease_host TEXT,
        lease_pid INTEGER,
        lease_until DOUBLE PRECISION,
        inputs TEXT,
        subplans TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS me_steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        tool TEXT,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        starts INTEGER NOT NULL DEFAULT 0,
        fingerprint TEXT,
        started_at DOUBLE PRECISION,
        duration_s DOUBLE PRECISION,
        error TEXT,
        reason TEXT,
        output_format TEXT,
        output {blob},
        reused_from TEXT,
        PRIMARY KEY (run_id, step_id)
    )""",
    "CREATE INDEX IF NOT EXISTS me_runs_started ON me_runs (started_at)",
)

_STEP_FIELDS = frozenset(
    {
        "tool",
        "status",
        "attempt",
        "fingerprint",
        "started_at",
        "duration_s",
        "error",
        "reason",
        "output_format",
        "output",
        "reused_from",
    }
)
_RUN_FIELDS = frozenset({"status", "duration_s", "pending", "error", "inputs", "subplans"})

_ADDED_RUN_COLUMNS = ("inputs", "subplans")
"""Columns of `me_runs` added after format 1 was first written (TEXT, NULL in older runs).

A journal written before them is migrated in place when opened (`ALTER
TABLE … ADD COLUMN`): the format stays 1, since an older version reads and
writes the named columns it knows only, and a run without them resumes as
before (the caller's `inputs=` and `plans=`)."""


class JournalError(EngineError):
    """The journal cannot be opened or read (corrupt, foreign, unreachable)."""


class RunBusyError(JournalError):
    """Another live process holds the run's lease (it is running or resuming it)."""


class LeaseLostError(JournalError):
    """This process no longer holds the run's lease; its write was refused."""


@dataclass(frozen=True)
class StepRecord:
    """One step's receipt in the journal.

    Attributes:
        step_id: The step.
        tool: Its tool's name.
        status: `running`, `completed`, `skipped`, `failed` or `intervention`.
        attempt: Tries made in its latest start.
        starts: How many times its tool was started in this run (resumes included).
        fingerprint: sha256 hex of tool name and resolved args, once known.
        started_at: Unix seconds of its latest start.
        duration_s: Seconds its latest start took.
        error: `{"type", "message", "traceback"}` of a failure (the traceback
            when the tool raised), or `None`.
        reason: Why it was skipped, or `None`.
        output_format: `json`, `arrow`, `pickle`, `unstored` (`_journal_codec`), or `None`.
        reused_from: The run its output was taken from without running, or `None`.
    """

    step_id: str
    tool: str | None
    status: str
    attempt: int
    starts: int
    fingerprint: str | None
    started_at: float | None
    duration_s: float | None
    error: dict[str, Any] | None
    reason: str | None
    output_format: str | None
    reused_from: str | None


@dataclass(frozen=True)
class RunRecord:
    """One run in the journal.

    Attributes:
        run_id: The run.
        plan_id: Its plan's id.
        plan: The plan as JSON text.
        status: `running`, or the verdict it finished with (`SUCCESS`,
            `FAILURE`, `INTERVENTION_NEEDED`).
        parent_run_id: The run a `rerun` started from, or `None`.
        started_at: Unix seconds.
        updated_at: Unix seconds of the last write.
        duration_s: Seconds of its last stretch of running, once finished.
        pending: The pending intervention (`intervention_id`, `kind`,
            `step_id`, `expression`, `args`), or `None`.
        error: The run's error `{"type", "message"}`, or `None`.
        lease_owner: Who holds the lease (`host:pid:token`), or `None`.
        lease_until: Unix seconds the lease lasts to.
        inputs: The plan's input values as journaled (`_journal_codec.encode_values`'s
            JSON text), or `None`: the plan has none, the run was journaled by
            an earlier version, or the record comes from `list_runs`.
        subplans: The sub-plans the run resolved (`PlanLibrary.to_json` text), or
            `None` (as for `inputs`).
    """

    run_id: str
    plan_id: str
    plan: str
    status: str
    parent_run_id: str | None
    started_at: float
    updated_at: float
    duration_s: float | None
    pending: dict[str, Any] | None
    error: dict[str, Any] | None
    lease_owner: str | None
    lease_until: float | None
    steps: list[StepRecord] = field(default_factory=list)
    inputs: str | None = None
    subplans: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data (`runs show --json`, MCP `show_run`).

        `inputs` is name to `{"format", "value"}` for a `json` or `unstored`
        value and `{"format", "bytes"}` (its stored size) for the others;
        `subplans` lists each sub-plan's `name` and `key`, not its plan.
        """
        from dataclasses import asdict

        data = asdict(self)
        data["plan"] = json.loads(self.plan) if self.plan.startswith("{") else self.plan
        inputs = _loads(self.inputs)
        if isinstance(inputs, dict):
            for name, item in inputs.items():
                if "data" in item:  # base64 of arrow or pickle bytes
                    inputs[name] = {"format": item["format"], "bytes": len(item["data"]) * 3 // 4}
        data["inputs"] = inputs
        subplans = _loads(self.subplans)
        if isinstance(subplans, dict):
            subplans = [{"name": p["name"], "key": p["key"]} for p in subplans.get("plans", [])]
        data["subplans"] = subplans
        return data


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _pid_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie (killed, not yet reaped) is dead too
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Journal:
    """A run journal over a DB-API connection; subclasses connect and name the dialect.

    Methods are synchronous and short (one transaction each); a lock makes
    one object safe to share between threads.
    """

    blob_type = "BLOB"
    location = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.host = socket.gethostname()

    # -- dialect ------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A transaction; yields a cursor whose `execute` takes `?` placeholders."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _create_schema(self) -> None:
        with self._tx() as cur:
            for statement in _SCHEMA:
                cur.execute(statement.replace("{blob}", self.blob_type))
            cur.execute("SELECT value FROM me_meta WHERE key = 'format'")
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO me_meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
                )
            elif row[0] != FORMAT_VERSION:
                raise JournalError(
                    f"The journal {self.location} has format {row[0]}, this version reads "
                    f"format {FORMAT_VERSION}: use another --journal."
                )
            cur.execute("SELECT * FROM me_runs LIMIT 0")
            have = {column[0].lower() for column in cur.description}
            for name in _ADDED_RUN_COLUMNS:
                if name not in have:
                    cur.execute(f"ALTER TABLE me_runs ADD COLUMN {self._if_absent}{name} TEXT")

    _if_absent = ""
    """What follows `ADD COLUMN` so that two processes migrating at once both succeed."""

    # -- leases -------------------------------------------------------------------

    def _owner(self) -> str:
        return f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def create_run(
        self,
        run_id: str,
        plan_id: str,
        plan: str,
        *,
        parent_run_id: str | None = None,
        inputs: str | None = None,
    ) -> str:
        """Record a new run and take its lease.

        Args:
            run_id: The new run's id.
            plan_id: Its plan's id.
            plan: The plan as JSON text.
            parent_run_id: The run a `rerun` started from.
            inputs: The plan input values given to the run
                (`_journal_codec.encode_values`), or `None`; the run replaces
                them with the resolved values (`write_run`) once its plan is read.

        Returns:
            The lease token to pass to every write.

        Raises:
            JournalError: A run with this id exists already.
        """
        owner = self._owner()
        now = time.time()
        with self._tx() as cur:
            cur.execute("SELECT 1 FROM me_runs WHERE run_id = ?", (run_id,))
            if cur.fetchone() is not None:
                raise JournalError(
                    f"A run {run_id!r} exists already in {self.location}: resume it or "
                    "choose another run id."
                )
            cur.execute(
                "INSERT INTO me_runs (run_id, plan_id, plan, status, parent_run_id, inputs, "
                "started_at, updated_at, lease_owner, lease_host, lease_pid, lease_until) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    plan_id,
                    plan,
                    parent_run_id,
                    inputs,
                    now,
                    now,
                    owner,
                    self.host,
                    os.getpid(),
                    now + LEASE_S,
                ),
            )
        return owner

    def acquire(self, run_id: str) -> str:
        """Take the lease of an existing run (to resume it).

        Returns:
            The lease token.

        Raises:
            JournalError: No such run.
            RunBusyError: A live process holds the lease.
        """
        owner = self._owner()
        now = time.time()
        with self._tx() as cur:
            cur.execute(
                "SELECT lease_owner, lease_host, lease_pid, lease_until FROM me_runs "
                f"WHERE run_id = ?{self._for_update}",
                (run_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise JournalError(f"No run {run_id!r} in the journal {self.location}.")
            held_by, host, pid, until = row
            if held_by is not None and until is not None and until > now:
                dead = host == self.host and pid is not None and _pid_dead(int(pid))
                if not dead:
                    raise RunBusyError(
                        f"Run {run_id!r} is being run by process {pid} on {host}; "
                        "wait for it to finish (or for its lease to expire)."
                    )
            cur.execute(
                "UPDATE me_runs SET lease_owner = ?, lease_host = ?, lease_pid = ?, "
                "lease_until = ?, status = 'running', updated_at = ? WHERE run_id = ?",
                (owner, self.host, os.getpid(), now + LEASE_S, now, run_id),
            )
        return owner

    _for_update = ""

    def _check_lease(self, cur: Any, run_id: str, token: str) -> None:
        now = time.time()
        cur.execute(
            "UPDATE me_runs SET updated_at = ?, lease_until = ? WHERE run_id = ? "
            "AND lease_owner = ?",
            (now, now + LEASE_S, run_id, token),
        )
        if cur.rowcount != 1:
            raise LeaseLostError(
                f"This process no longer holds the lease of run {run_id!r}: another process "
                "took it over; nothing was written."
            )

    # -- writes -------------------------------------------------------------------

    def write_step(self, run_id: str, token: str, step_id: str, **fields: Any) -> None:
        """Insert or update one step's record (one transaction).

        Args:
            run_id: The run.
            token: The lease token.
            step_id: The step.
            **fields: Columns of `StepRecord` to set (`output` as bytes,
                `error` as a dict); `start=True` also counts a start.

        Raises:
            LeaseLostError: This process does not hold the lease.
        """
        start = bool(fields.pop("start", False))
        unknown = set(fields) - _STEP_FIELDS
        if unknown:
            raise ValueError(f"unknown step fields {sorted(unknown)}")
        if "error" in fields and fields["error"] is not None:
            fields["error"] = json.dumps(fields["error"])
        names = sorted(fields)
        values = [fields[n] for n in names]
        with self._tx() as cur:
            self._check_lease(cur, run_id, token)
            insert_cols = ", ".join(["run_id", "step_id", "starts", *names])
            marks = ", ".join(["?"] * (3 + len(names)))
            sets = [f"{n} = excluded.{n}" for n in names]
            if start:
                sets.append("starts = me_steps.starts + 1")
            updates = ", ".join(sets) or "starts = me_steps.starts"
            cur.execute(
                f"INSERT INTO me_steps ({insert_cols}) VALUES ({marks}) "
                f"ON CONFLICT (run_id, step_id) DO UPDATE SET {updates}",
                (run_id, step_id, 1 if start else 0, *values),
            )

    def write_run(self, run_id: str, token: str, **fields: Any) -> None:
        """Update the run's record (one transaction).

        Args:
            run_id: The run.
            token: The lease token.
            **fields: `status`, `duration_s`, `pending` and `error` (dicts,
                stored as JSON), `inputs` and `subplans` (JSON text already,
                as `RunRecord` says).

        Raises:
            LeaseLostError: This process does not hold the lease.
        """
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        for key in ("pending", "error"):
            if key in fields and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        names = sorted(fields)
        with self._tx() as cur:
            self._check_lease(cur, run_id, token)
            cur.execute(
                f"UPDATE me_runs SET {', '.join(f'{n} = ?' for n in names)} WHERE run_id = ?",
                (*[fields[n] for n in names], run_id),
            )

    def release(self, run_id: str, token: str) -> None:
        """Give the lease up (the run finished or stopped); a lost lease is left alone."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE me_runs SET lease_owner = NULL, lease_until = NULL "
                "WHERE run_id = ? AND lease_owner = ?",
                (run_id, token),
            )

    # -- reads --------------------------------------------------------------------

    _RUN_COLS = (
        "run_id, plan_id, plan, status, parent_run_id, started_at, updated_at, duration_s, "
        "pending, error, lease_owner, lease_until"
    )
    _STEP_COLS = (
        "step_id, tool, status, attempt, starts, fingerprint, started_at, duration_s, error, "
        "reason, output_format, reused_from"
    )

    def _run_record(self, row: Any) -> RunRecord:
        r = list(row)
        return RunRecord(
            run_id=r[0],
            plan_id=r[1],
            plan=r[2],
            status=r[3],
            parent_run_id=r[4],
            started_at=r[5],
            updated_at=r[6],
            duration_s=r[7],
            pending=_loads(r[8]),
            error=_loads(r[9]),
            lease_owner=r[10],
            lease_until=r[11],
        )

    def get_run(self, run_id: str, *, steps: bool = True) -> RunRecord | None:
        """The run's record (with its steps, in the order they started), or `None`."""
        with self._tx() as cur:
            cur.execute(f"SELECT {self._RUN_COLS} FROM me_runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("SELECT inputs, subplans FROM me_runs WHERE run_id = ?", (run_id,))
            inputs, subplans = cur.fetchone()
            record = dataclasses.replace(self._run_record(row), inputs=inputs, subplans=subplans)
            if steps:
                cur.execute(
                    f"SELECT {self._STEP_COLS} FROM me_steps WHERE run_id = ? "
                    "ORDER BY started_at IS NULL, started_at, step_id",
                    (run_id,),
                )
                for s in cur.fetchall():
                    s = list(s)
                    record.steps.append(
                        StepRecord(
                            *s[:8],
                            error=_loads(s[8]),
                            reason=s[9],
                            output_format=s[10],
                            reused_from=s[11],
                        )
                    )
        return record

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The newest `limit` runs, newest first, without their steps."""
        with self._tx() as cur:
            cur.execute(
                f"SELECT {self._RUN_COLS} FROM me_runs ORDER BY started_at DESC LIMIT ?", (limit,)
            )
            return [self._run_record(row) for row in cur.fetchall()]

    def outputs(self, run_id: str) -> dict[str, tuple[str | None, str, bytes | None]]:
        """Step id to `(fingerprint, output_format, output)` of each completed step."""
        with self._tx() as cur:
            cur.execute(
                "SELECT step_id, fingerprint, output_format, output FROM me_steps "
                "WHERE run_id = ? AND status = 'completed'",
                (run_id,),
            )
            return {
                sid: (fp, fmt, bytes(data) if data is not None else None)
                for sid, fp, fmt, data in cur.fetchall()
            }


class SqliteJournal(Journal):
    """The embedded journal: one SQLite file in WAL mode.

    WAL lets readers (`runs`, a paused iteration) and the one writer work at
    once; `synchronous=NORMAL` makes a committed record survive a crash of the
    process (not necessarily of the machine; docs/runs.md).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import sqlite3

        super().__init__()
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self._conn = sqlite3.connect(
                self.location, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != _APPLICATION_ID and tables:
                self._conn.close()
                raise JournalError(
                    f"{self.location} is an SQLite database but not a marimo-engine journal; "
                    "it was left untouched: choose another --journal."
                )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            if app_id != _APPLICATION_ID:
                self._conn.execute(f"PRAGMA application_id={_APPLICATION_ID}")
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"{self.location} cannot be used as a journal ({exc}); it was left untouched: "
                "choose another --journal."
            ) from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        import sqlite3

        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"The journal {self.location} failed: {exc}") from exc
            finally:
                cur.close()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


def default_journal_path() -> Path:
    """The default journal file: `$XDG_STATE_HOME/marimo-engine/journal.sqlite3`.

    Returns:
        The path (`~/.local/state/marimo-engine/journal.sqlite3` when
        `XDG_STATE_HOME` is unset; XDG Base Directory spec).
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "marimo-engine" / "journal.sqlite3"


def open_journal(spec: Journal | str | os.PathLike[str] | None = None) -> Journal:
    """Open a journal.

    Args:
        spec: A `Journal` (returned as is), a `postgresql://` URL, a file
            path, or `None` for `$MARIMO_ENGINE_JOURNAL`, else
            `default_journal_path()`.

    Returns:
        The journal; close it when done (or use it as a context manager).

    Raises:
        JournalError: It cannot be opened (corrupt, foreign, unreachable).
    """
    if isinstance(spec, Journal):
        return spec
    if spec is None:
        spec = os.environ.get(ENV_VAR) or default_journal_path()
    text = os.fspath(spec)
    if text.startswith(("postgresql://", "postgres://")):
        from marimo_engine.engine._journal_pg import PostgresJournal

        return PostgresJournal(text)
    return SqliteJournal(text)


def plan_text(plan: Any) -> str:
    """The plan as JSON text, for the journal (whatever form it was given in)."""
    if isinstance(plan, str):
        return plan
    if isinstance(plan, bytes):
        return plan.decode("utf-8", "replace")
    if isinstance(plan, Mapping):
        from marimo_engine._json import to_jsonable

        return json.dumps(to_jsonable(plan), ensure_ascii=False)
    dump = getattr(plan, "model_dump_json", None)
    if dump is not None:
        return str(dump(exclude_defaults=True))
    return json.dumps(str(plan))
