"""The append-only audit log of an agent run: one JSON object per line, durable per record.

Every record is written with a single `os.write` to a file opened with
`O_APPEND`, then `fsync`ed before `write` returns, so that a run killed at
any moment leaves a file whose every line is complete JSON (the one line
being written when the power went can be missing, never half there in the
middle of the file). Records carry:

- `seq`: 1, 2, 3 ... within this log object (a reopened file continues
  after its last record);
- `ts`: Unix seconds;
- `run_id`: the agent run the record belongs to;
- `kind`: what happened, one of `AUDIT_KINDS`;
- the kind's own fields, made JSON with `marimo_engine._json.to_jsonable`.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from marimo_engine._json import to_jsonable
from marimo_engine.errors import UsageError

__all__ = ["AUDIT_KINDS", "AuditLog", "read_audit_log"]

AUDIT_KINDS = (
    "run_start",
    "model_request",
    "model_response",
    "plan_proposed",
    "validation",
    "plan_accepted",
    "engine_event",
    "decision",
    "run_end",
    # the code agent (agents/code)
    "patch_proposed",
    "patch_checked",
    "patch_applied",
    "repair",
    "approval",
    "install",
    "cell_error",
    "undo",
)
"""Record kinds: the run's start, each model request and response summary,
each proposed plan, its validation result, each accepted plan, each engine
event, each decision (repair, replan, stop, intervention hand-off), the end.
The code agent adds: each patch proposed, its checks, its application, each
repair made without the model, each approval, package install, classified
cell error, and each undo."""


class AuditLog:
    """An append-only JSON lines file, flushed and fsynced per record.

    Use as a context manager, or call `close()`; a log dropped while open
    warns with `ResourceWarning`.

    Args:
        path: The file; created (with its parent folders) when missing,
            appended to when it exists.
        run_id: Stamped on every record.

    Raises:
        UsageError: The file cannot be opened for appending; the message
            names the path and the OS error.
    """

    def __init__(self, path: str | os.PathLike[str], *, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(
                f"Cannot open the audit log {str(self.path)!r} for appending: {exc.strerror}. "
                "Pass a writable path."
            ) from exc
        self._seq = 0
        self.records_written = 0

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and make it durable before returning.

        Args:
            kind: One of `AUDIT_KINDS`.
            **fields: The record's data; any Python object, made JSON by the
                documented fallback (`to_jsonable`).

        Returns:
            The record as written (plain JSON).

        Raises:
            UsageError: The log is closed, or `kind` is not one of `AUDIT_KINDS`.
        """
        if self._fd is None:
            raise UsageError(f"The audit log {str(self.path)!r} is closed; open a new AuditLog.")
        if kind not in AUDIT_KINDS:
            known = ", ".join(repr(k) for k in AUDIT_KINDS)
            raise UsageError(f"Audit record kind {kind!r} is unknown; use one of {known}.")
        self._seq += 1
        record = {"seq": self._seq, "ts": time.time(), "run_id": self.run_id, "kind": kind}
        record.update({k: to_jsonable(v) for k, v in fields.items()})
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        written = 0
        while written < len(data):  # os.write may write less than asked
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)
        self.records_written += 1
        return record

    @property
    def is_open(self) -> bool:
        """Whether records can still be written."""
        return self._fd is not None

    def close(self) -> None:
        """Close the file; later `write` calls raise. Closing twice is harmless."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            warnings.warn(
                f"AuditLog({str(self.path)!r}) was not closed; use it as a context manager.",
                ResourceWarning,
                stacklevel=2,
            )
            self.close()


def read_audit_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an audit log back, for review after the fact.

    Args:
        path: A file written by `AuditLog`.

    Returns:
        Every complete record, in file order. A last line cut short by a
        crash (no newline, not JSON) is left out; any other bad line raises.

    Raises:
        UsageError: A line other than the last is not JSON; the message
            names its line number.
    """
    return list(_iter_records(Path(path)))


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    lines = path.read_bytes().split(b"\n")
    last = len(lines) - 1
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except json.JSONDecodeError as exc:
            if number - 1 == last:  # no newline after it: cut by a crash
                return
            raise UsageError(
                f"Audit log {str(path)!r} line {number} is not JSON ({exc.msg}); "
                "the file was edited or written by something else."
            ) from exc
