"""The run journal in PostgreSQL, through psycopg 3 (`postgresql://` URLs).

The tables and the rules are `journal.Journal`'s; only the connection and
the dialect differ: `%s` placeholders, `BYTEA` outputs, and `SELECT … FOR
UPDATE` when a lease is taken, so two processes taking the same lease wait
for each other instead of both winning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from marimo_engine.engine.journal import Journal, JournalError

__all__ = ["PostgresJournal"]


class _Cursor:
    """A psycopg cursor taking the journal's `?` placeholders."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class PostgresJournal(Journal):
    """A journal in a PostgreSQL database.

    Args:
        url: A `postgresql://` connection URL (libpq's format; `?host=/dir`
            for a unix socket directory).

    Raises:
        JournalError: psycopg is not installed, or the server cannot be
            reached or refuses the connection.
    """

    blob_type = "BYTEA"
    _for_update = " FOR UPDATE"
    _if_absent = "IF NOT EXISTS "

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError as exc:
            raise JournalError(
                "A postgresql:// journal needs psycopg 3: pip install 'marimo-engine[postgres]'."
            ) from exc
        self.location = _without_password(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise JournalError(
                f"The journal {self.location} cannot be reached: {' '.join(str(exc).split())}"
            ) from exc
        self._create_schema()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield _Cursor(cur)
            except psycopg.Error as exc:
                raise JournalError(
                    f"The journal {self.location} failed: {' '.join(str(exc).split())}"
                ) from exc

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _without_password(url: str) -> str:
    """The URL for messages: a password in it is replaced by `***`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
