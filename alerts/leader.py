"""Leader election for the scheduled jobs: a PostgreSQL session advisory lock held on a dedicated connection. I/O
(psycopg 3, sync; call it from a worker thread in async code).

When several aqnet processes share one database, exactly one holds the lock (`pg_try_advisory_lock`) and runs the
averaging / index / alert jobs; the others call `hold()` every few seconds and take over as soon as the lock is
free. The lock belongs to the holder's database session, so it is released when the holder's connection ends: a
clean stop (`release()`), a crash or a kill (the kernel closes the socket and the server sees it at once), or a
vanished host (the session sets the server's TCP keepalives to `keepalive_s`, so the server drops it within about
``keepalive_s + 3 · 2`` seconds). A holder whose connection is lost stops being the leader at its next `hold()`
and competes again.

Leadership only decides who runs the jobs; it is not what makes a window computed once. Two processes that both
believe they lead for a moment (a partition) still compute each window once: the jobs serialise on their
watermark row and log each due window under a unique index (`alerts.averaging.job`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from storage import session_lock

__all__ = ["JOBS_LOCK_KEY", "Leadership"]

log = logging.getLogger(__name__)

#: pg_advisory_lock key of the jobs' leader: "aqnetjob" in ASCII, as a bigint
JOBS_LOCK_KEY = 0x6171_6E65_746A_6F62


class Leadership:
    """The jobs' leader lock on its own connection to `url`. `hold()` answers "am I the leader now?"."""

    def __init__(self, url: str, *, key: int = JOBS_LOCK_KEY, connect_timeout_s: float = 5.0,
                 keepalive_s: int = 5, application_name: str = "aqnet-leader") -> None:
        if connect_timeout_s <= 0 or keepalive_s < 1:
            raise ValueError(f"Leadership: connect_timeout_s {connect_timeout_s} and keepalive_s {keepalive_s}: "
                             "expected > 0 and >= 1")
        self.url = url
        self.key = key
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True, "application_name": application_name,
            "connect_timeout": max(1, round(connect_timeout_s)),
            # client side: notice a dead server; server side (-c): drop a dead holder so the lock is freed
            "keepalives": 1, "keepalives_idle": keepalive_s, "keepalives_interval": 2, "keepalives_count": 3,
            "options": f"-c tcp_keepalives_idle={keepalive_s} -c tcp_keepalives_interval=2 "
                       "-c tcp_keepalives_count=3",
        }
        self._conn: psycopg.Connection | None = None
        self._leader = False
        self._mutex = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """Whether the last `hold()` found this process holding the lock."""
        return self._leader

    def hold(self) -> bool:
        """Keep or try to take the lock; True when this process is the leader. Never raises for a database that
        is down (returns False and retries at the next call)."""
        with self._mutex:
            try:
                if self._conn is None or self._conn.closed:
                    self._leader = False
                    self._conn = psycopg.connect(self.url, **self._connect_kwargs)
                if self._leader:
                    session_lock.ping(self._conn)  # the session (and so the lock) is still there
                else:
                    self._leader = session_lock.try_lock(self._conn, self.key)
                    if self._leader:
                        log.info("jobs leader: this process holds the lock (backend pid %s)",
                                 self._conn.info.backend_pid)
            except psycopg.OperationalError as exc:
                if self._leader:
                    log.warning("jobs leader: lost the lock's connection (%s); competing again", exc)
                self._leader = False
                self._close()
            return self._leader

    def release(self) -> None:
        """Give the lock up (if held) and close the connection; a later `hold()` competes again."""
        with self._mutex:
            if self._conn is not None and not self._conn.closed and self._leader:
                try:
                    session_lock.unlock(self._conn, self.key)
                except psycopg.Error as exc:  # closing the session releases it anyway
                    log.debug("jobs leader: unlock failed (%s); closing the session releases it", exc)
            self._leader = False
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
