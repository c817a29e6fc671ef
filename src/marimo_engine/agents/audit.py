"""The append-only audit log of an agent run: one JSON object per line, durable per record.

Every record is written with `os.write` to a file opened with `O_APPEND`,
then `fsync`ed before `write` returns. A writer killed in the middle of a
large record (`kill -9`, a full disk) can leave the file's last line cut
short; the next `AuditLog` opened on the file ends that line first, so its
own records start on a line of their own, and `read_audit_log` skips such
broken lines and counts them instead of failing for the whole file.

Records carry:

- `seq`: 1, 2, 3 ... per file: a log opened on an existing file continues
  after the `seq` of the file's last complete record (one writer at a time
  is assumed; two processes appending at once would number alike);
- `ts`: Unix seconds;
- `run_id`: the agent run the record belongs to;
- `kind`: what happened, one of `AUDIT_KINDS`;
- the kind's own fields, made JSON with `marimo_engine._json.to_jsonable`.

Every string in a record goes through `llm.redaction`'s rules (a
`Redactor` made when the log is opened) before it is written: a
provider's error text may carry the key it was sent.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from marimo_engine._json import to_jsonable
from marimo_engine.errors import UsageError
from marimo_engine.llm.redaction import Redactor

__all__ = ["AUDIT_KINDS", "AuditLog", "AuditRecords", "read_audit_log"]

_TAIL_BLOCK = 64 * 1024
"""Bytes read at a time, backwards from the end, to find the last record on open."""

AUDIT_KINDS = (
    "run_start",
    "model_request",
    "model_response",
    "plan_proposed",
    "validation",
    "plan_accepted",
    "engine_event",
    "decision",
    "notice",
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
event, each decision (repair, replan, stop, intervention hand-off), each
notice given to the person (a limit that cannot be enforced), the end.
The code agent adds: each patch proposed, its checks, its application, each
repair made without the model, each approval, package install, classified
cell error, and each undo."""


class AuditLog:
    """An append-only JSON lines file, flushed and fsynced per record.

    Use as a context manager, or call `close()`; a log dropped while open
    warns with `ResourceWarning`.

    Args:
        path: The file; created (with its parent folders) when missing,
            appended to when it exists. A last line cut short by a crash is
            ended with a newline first, and `seq` continues after the last
            complete record.
        run_id: Stamped on every record.
        secrets: Values redacted from every string of a record, besides
            the patterns and environment values of `redact_secrets`.

    Raises:
        UsageError: The file cannot be opened for appending; the message
            names the path and the OS error.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, run_id: str, secrets: Iterable[str] = ()
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.secrets = frozenset(secrets)
        self._redactor = Redactor(self.secrets)  # the environment's secrets as of opening
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(
                f"Cannot open the audit log {str(self.path)!r} for appending: {exc.strerror}. "
                "Pass a writable path."
            ) from exc
        try:
            self._seq, ends_in_newline = _last_seq(fd)
            if not ends_in_newline:  # a record cut by a crash: end its line, keep ours whole
                _write_all(fd, b"\n")
                os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise UsageError(
                f"Cannot prepare the audit log {str(self.path)!r} for appending: "
                f"{exc.strerror}. Pass a writable path."
            ) from exc
        self._fd = fd
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
        record: dict[str, Any] = {
            "seq": self._seq,
            "ts": time.time(),
            "run_id": self.run_id,
            "kind": kind,
        }
        record.update({k: self._redact(to_jsonable(v)) for k, v in fields.items()})
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        # A lone surrogate (valid in JSON, not in UTF-8) becomes its JSON escape `\\udXXX`:
        # json.dumps escaped every real backslash, so this one can only be read back as that.
        _write_all(self._fd, line.encode("utf-8", errors="backslashreplace"))
        os.fsync(self._fd)
        self.records_written += 1
        return record

    def _redact(self, value: Any) -> Any:
        """Redact every string in a JSON value (keys included)."""
        if isinstance(value, str):
            return self._redactor(value)
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {self._redact(k): self._redact(v) for k, v in value.items()}
        return value

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


def _write_all(fd: int, data: bytes) -> None:
    written = 0
    while written < len(data):  # os.write may write less than asked
        written += os.write(fd, data[written:])


def _last_seq(fd: int) -> tuple[int, bool]:
    """Return the `seq` of the file's last complete record (0 for none) and
    whether the file is empty or ends in a newline. Reads backwards from the
    end in `_TAIL_BLOCK` pieces, so a long log costs only its tail."""
    end = os.fstat(fd).st_size
    if end == 0:
        return 0, True
    ends_in_newline = os.pread(fd, 1, end - 1) == b"\n"
    pos, carry = end, b""
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        pos -= step
        lines = (os.pread(fd, step, pos) + carry).split(b"\n")
        carry = lines[0] if pos > 0 else b""  # maybe the end of a longer line: read on
        for raw in reversed(lines[1:] if pos > 0 else lines):
            seq = _seq_of(raw)
            if seq is not None:
                return seq, ends_in_newline
    return 0, ends_in_newline


def _seq_of(raw: bytes) -> int | None:
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:  # a broken line (JSON or UTF-8): look further back
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


class AuditRecords(list[dict[str, Any]]):
    """The records of an audit log, in file order: a `list` of dicts, plus the lines skipped.

    Attributes:
        broken_lines: Numbers (1-based) of the lines that were not a JSON
            object and were skipped: a record cut by a crash, with the next
            record possibly appended to it by an older version of the log.
    """

    broken_lines: list[int]

    def __init__(self, records: Iterable[dict[str, Any]] = (), broken_lines: Iterable[int] = ()):
        super().__init__(records)
        self.broken_lines = list(broken_lines)


def read_audit_log(path: str | os.PathLike[str]) -> AuditRecords:
    """Read an audit log back, for review after the fact.

    Args:
        path: A file written by `AuditLog`.

    Returns:
        Every complete record, in file order. Lines that are not a JSON
        object (a record cut short by a crash) are skipped and their numbers
        kept in `.broken_lines`; blank lines are ignored.

    Raises:
        UsageError: The file cannot be read; the message names the path.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read the audit log {str(path)!r}: {exc.strerror}. Pass an existing file."
        ) from exc
    records, broken = [], []
    for number, record in _iter_lines(data):
        if record is None:
            broken.append(number)
        else:
            records.append(record)
    return AuditRecords(records, broken)


def _iter_lines(data: bytes) -> Iterator[tuple[int, dict[str, Any] | None]]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:  # JSONDecodeError or a UnicodeDecodeError of a cut character
            record = None
        yield number, record if isinstance(record, dict) else None
