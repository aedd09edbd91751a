"""Stage 3 — PostgreSQL session advisory locks, for the scheduled jobs' leader election (`alerts.leader`). I/O
(psycopg 3, sync, on a dedicated autocommit connection: the lock belongs to the session, so it is released when
the connection ends).
"""

from __future__ import annotations

import psycopg

__all__ = ["ping", "try_lock", "unlock"]


def try_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take the session lock `key` if it is free (`pg_try_advisory_lock`); True when this session holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, key: int) -> None:
    """Give the session lock `key` up (`pg_advisory_unlock`)."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def ping(conn: psycopg.Connection) -> None:
    """A round trip on the session: raises `psycopg.OperationalError` when it (and so its locks) is gone."""
    conn.execute("SELECT 1")
