"""Stage 3 — a read on a second connection that sees exactly what a writing transaction sees: the writer exports
its snapshot (`export_snapshot`, ``pg_export_snapshot()``), and `SideRead` runs a read-only statement on a thread,
on its own connection, in a REPEATABLE READ transaction importing that snapshot (``SET TRANSACTION SNAPSHOT``).
The server works on it in a second backend while the writer's backend runs the writer's statements, so the two
use both cores; nothing is written on the second connection, so the writer's transaction stays the only one that
writes (all of it commits or none). The writer's own uncommitted writes are not visible to the side read: read
there only what the writer has not written yet.

The second connection is opened like the writer's (`psycopg.ConnectionInfo.dsn`, its password). When it cannot
be opened or the snapshot cannot be imported, `SideRead.result` says so (None) and the caller reads on its own
connection; the error is logged as a warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import sql

from storage.windows_store import Pending

__all__ = ["SideRead", "export_snapshot"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds the second connection may take to open
CONNECT_TIMEOUT_S = 10


def export_snapshot(conn: psycopg.Connection) -> Pending[str]:
    """Export the snapshot of the statement sent now in `conn`'s transaction (valid until it ends): everything
    committed before it. The transaction's own writes are not in it (an importer sees them as uncommitted), so a
    side read must read only what the transaction has not written. `conn` must be in a top-level transaction."""
    return Pending([conn.execute("SELECT pg_export_snapshot()")], lambda rows: str(rows[0][0]))


class SideRead(Generic[T]):
    """`read(side_conn)` run on a thread on a second connection like `conn`, in a read-only REPEATABLE READ
    transaction importing `snapshot` (`export_snapshot` of `conn`'s open transaction); `result` waits for it."""

    def __init__(self, conn: psycopg.Connection, snapshot: str, read: Callable[[psycopg.Connection[Any]], T],
                 *, name: str = "side read") -> None:
        self._dsn, self._password = conn.info.dsn, conn.info.password  # read here: libpq is not shared across threads
        self._snapshot = snapshot
        self._read = read
        self._name = name
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"aqnet {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with psycopg.connect(self._dsn, password=self._password or None, autocommit=True,
                                 connect_timeout=CONNECT_TIMEOUT_S) as side:
                side.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                side.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot)))
                self._value = self._read(side)
                side.execute("COMMIT")
        except Exception as exc:  # any failure means: read on the caller's connection instead
            self._error = exc

    def result(self) -> T | None:
        """The read's value, or None when it failed (logged as a warning; the caller reads on its own connection)."""
        self._thread.join()
        if self._error is not None:
            log.warning("%s on a second connection failed (%s); reading on the job's connection", self._name,
                        self._error)
            return None
        return self._value
