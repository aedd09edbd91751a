"""Dead letters: record input aqnet could not store as a measurement, list them, mark replays, bound the table. I/O.

Contract: every function runs on the caller's connection and inside the caller's transaction (none commits), so
a dead letter and the work that produced it commit or roll back together.

- `record` inserts one letter: the raw bytes (`payload`, at most its first 64 KiB, with the size and SHA-256 of
  the whole) and where they came from (`topic` for MQTT/HTTP, `endpoint` for a Modbus device), the payload `fmt`
  when known, and the error (`reason` code, `detail` text); `record_letters` inserts a batch's letters.
- `fetch` lists letters, newest first, filtered by reason, sensor, time, ids or replay state.
- `mark_replayed` / `mark_failed` record the outcome of a replay (`storage.replay`): a stored letter gets
  `replayed_at` and is never replayed again; one that fails again stays pending with the new error.
- `prune(conn, max_rows, max_bytes=, max_age=)` bounds the table: it deletes the oldest letters (lowest ids,
  i.e. first inserted) beyond the newest `max_rows`, beyond the newest that add up to `max_bytes`, and those
  received more than `max_age` ago, whatever their state. The daemon's scheduler calls it periodically, so between
  two runs the table may exceed the bound by what arrives in one interval; inserts stay a single cheap statement
  (the writer's conflict letters are inserted in SQL by `storage.writer` and are bounded by the same prune).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from ingest.letter import Letter, cap_payload

__all__ = ["DEFAULT_MAX_ROWS", "STATES", "DeadLetter", "count_by_source", "fetch", "mark_failed", "mark_replayed",
           "prune", "record", "record_letters"]

#: aqnet convention (no norm sets it): 100,000 letters keep days of a misbehaving network's garbage for triage;
#: payloads are cut to ingest.letter.MAX_PAYLOAD_BYTES (64 KiB, with their size and SHA-256 kept), and `prune`
#: also bounds the table's bytes and age
DEFAULT_MAX_ROWS = 100_000

_COLUMNS = ("id", "received_at", "source", "sensor_id", "reason", "detail", "payload", "reading", "topic",
            "endpoint", "format", "error", "replayed_at", "replay_result", "replay_attempts", "payload_size",
            "payload_sha256")
#: bytes a letter counts for when the table is bounded by size
_LETTER_BYTES = ("coalesce(octet_length(payload), 0) + coalesce(octet_length(reading::text), 0) "
                 "+ octet_length(detail) + coalesce(octet_length(error), 0)")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One row of `dead_letters` (see the column comments in storage/migrations/0003_dead_letters.sql)."""

    id: int
    received_at: datetime
    source: str  #: mqtt, http, modbus, writer, ...
    sensor_id: str | None
    reason: str  #: code at receipt
    detail: str  #: error at receipt
    payload: bytes | None
    reading: dict[str, Any] | None
    topic: str | None
    endpoint: str | None
    format: str | None
    error: str | None  #: the current error when a replay failed again (None: `detail` is the error)
    replayed_at: datetime | None
    replay_result: str | None
    replay_attempts: int
    payload_size: int | None = None  #: the payload's size as received (`payload` keeps at most 64 KiB of it)
    payload_sha256: str | None = None  #: SHA-256 (hex) of the whole payload as received

    @property
    def truncated(self) -> bool:
        """Only part of the payload was kept."""
        return self.payload is not None and self.payload_size is not None and self.payload_size > len(self.payload)

    @property
    def current_error(self) -> str:
        """The error that keeps this letter out of `measurements` now."""
        return self.error or self.detail

    @property
    def state(self) -> str:
        """"replayed" (stored by a replay), "failed" (a replay failed again) or "pending" (never replayed)."""
        if self.replayed_at is not None:
            return "replayed"
        return "failed" if self.replay_attempts else "pending"


def _dumps(obj: Any) -> str:
    # datetimes (and anything else not JSON-native) as their ISO/str form rather than failing the insert
    return json.dumps(obj, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))


async def record(conn: AsyncConnection[Any], source: str, reason: str, detail: str,
                 sensor_id: str | None = None, payload: bytes | None = None,
                 reading: dict[str, Any] | None = None, *, topic: str | None = None,
                 endpoint: str | None = None, fmt: str | None = None, error: str | None = None) -> int:
    """Insert a dead letter (source: mqtt, http, modbus, writer, ...; reason: short code); returns its id.

    Args:
        topic: MQTT topic, or the HTTP method and path; needed to replay a payload letter.
        endpoint: Modbus `host:port/unit` or `serial-port/unit` of a failing device.
        fmt: payload format name (`sensors.mqtt.payloads.FORMATS`) when the receiver knows it (HTTP intake).
        error: a fuller error text than `detail`, when there is one (e.g. the exception with its context).
    """
    if not source or not reason:
        raise ValueError(f"dead letter needs a source and a reason, got source={source!r} reason={reason!r}")
    size = digest = None
    if payload is not None:
        payload, size, digest = cap_payload(payload)
    cur = await conn.execute(
        "INSERT INTO dead_letters (source, sensor_id, reason, detail, payload, reading, topic, endpoint, format, "
        "error, payload_size, payload_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (source, sensor_id, reason, detail, payload, Jsonb(reading, _dumps) if reading is not None else None,
         topic, endpoint, fmt, error, size, digest))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def record_letters(conn: AsyncConnection[Any], letters: Sequence[Letter]) -> int:
    """Insert the refused input a batch carried (`ingest.letter.Letter`), keeping each one's receive time; returns
    how many. Runs in the caller's transaction: the writer stores a batch's letters with its readings."""
    if not letters:
        return 0
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (received_at, source, sensor_id, reason, detail, payload, reading, topic, "
            "endpoint, format, payload_size, payload_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(x.received_at, x.source, x.sensor_id, x.reason, x.detail, x.payload,
              Jsonb(x.reading, _dumps) if x.reading is not None else None, x.topic, x.endpoint, x.fmt,
              x.payload_size, x.payload_sha256)
             for x in letters])
    return len(letters)


async def fetch(conn: AsyncConnection[Any], *, ids: Sequence[int] | None = None, reason: str | None = None,
                sensor_id: str | None = None, since: datetime | None = None, state: str | None = None,
                sources: Sequence[str] | None = None, limit: int | None = None,
                oldest_first: bool = False) -> list[DeadLetter]:
    """Letters matching every filter given (state: pending, failed, replayed, or "unreplayed" = not replayed)."""
    where, params = _filters(ids=ids, reason=reason, sensor_id=sensor_id, since=since, state=state, sources=sources)
    if limit is not None and limit < 1:
        raise ValueError(f"deadletter.fetch: limit must be >= 1, got {limit}")
    query = sql.SQL("SELECT {} FROM dead_letters{} ORDER BY received_at {}, id {}{}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), where,
        sql.SQL("ASC" if oldest_first else "DESC"), sql.SQL("ASC" if oldest_first else "DESC"),
        sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""))
    cur = await conn.execute(query, params)
    return [DeadLetter(*(*row[:6], bytes(row[6]) if row[6] is not None else None, *row[7:]))
            for row in await cur.fetchall()]


async def count_by_source(conn: AsyncConnection[Any], *, reason: str | None = None, sensor_id: str | None = None,
                          since: datetime | None = None, state: str | None = None) -> dict[tuple[str, str], int]:
    """How many letters match, per (source, reason)."""
    where, params = _filters(reason=reason, sensor_id=sensor_id, since=since, state=state)
    cur = await conn.execute(sql.SQL("SELECT source, reason, count(*) FROM dead_letters{} GROUP BY 1, 2")
                             .format(where), params)
    return {(source, reason_): int(n) for source, reason_, n in await cur.fetchall()}


_STATES = {"pending": "replayed_at IS NULL AND replay_attempts = 0",
           "failed": "replayed_at IS NULL AND replay_attempts > 0",
           "unreplayed": "replayed_at IS NULL",
           "replayed": "replayed_at IS NOT NULL"}
#: the states `fetch` and `count_by_source` filter on
STATES = tuple(_STATES)


def _filters(*, ids: Sequence[int] | None = None, reason: str | None = None, sensor_id: str | None = None,
             since: datetime | None = None, state: str | None = None,
             sources: Sequence[str] | None = None) -> tuple[sql.Composable, list[Any]]:
    """The WHERE clause (empty when no filter) and its parameters."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    if sources is not None:
        where.append(sql.SQL("source = ANY(%s)"))
        params.append(list(sources))
    if ids is not None:
        where.append(sql.SQL("id = ANY(%s)"))
        params.append(list(ids))
    if reason is not None:
        where.append(sql.SQL("reason = %s"))
        params.append(reason)
    if sensor_id is not None:
        where.append(sql.SQL("sensor_id = %s"))
        params.append(sensor_id)
    if since is not None:
        if since.tzinfo is None:
            raise ValueError(f"dead letters: since must be timezone-aware, got {since!r}")
        where.append(sql.SQL("received_at >= %s"))
        params.append(since)
    if state is not None:
        if state not in _STATES:
            raise ValueError(f"dead letters: state must be one of {', '.join(_STATES)}, got {state!r}")
        where.append(sql.SQL(_STATES[state]))
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    return clause, params


async def mark_replayed(conn: AsyncConnection[Any], letter_id: int, result: str, at: datetime) -> None:
    """Record that a replay stored letter `letter_id` (`result` says what, e.g. "stored 3 readings")."""
    await conn.execute(
        "UPDATE dead_letters SET replayed_at = %s, replay_result = %s, replay_attempts = replay_attempts + 1 "
        "WHERE id = %s", (at, result, letter_id))


async def mark_failed(conn: AsyncConnection[Any], letter_id: int, result: str, error: str) -> None:
    """Record that replaying letter `letter_id` failed again: it stays pending, with the new `error`."""
    await conn.execute(
        "UPDATE dead_letters SET replay_result = %s, error = %s, replay_attempts = replay_attempts + 1 "
        "WHERE id = %s", (result, error, letter_id))


async def prune(conn: AsyncConnection[Any], max_rows: int = DEFAULT_MAX_ROWS, *, max_bytes: int | None = None,
                max_age: timedelta | None = None) -> int:
    """Delete the oldest letters beyond the newest `max_rows`, beyond the newest that add up to `max_bytes`
    (payload, reading, detail and error), and received more than `max_age` ago; returns how many were deleted."""
    if max_rows < 0 or (max_bytes is not None and max_bytes < 0):
        raise ValueError(f"deadletter.prune: max_rows and max_bytes must be >= 0, got {max_rows}, {max_bytes}")
    cur = await conn.execute(
        "DELETE FROM dead_letters WHERE id <= "
        "(SELECT id FROM dead_letters ORDER BY id DESC OFFSET %s LIMIT 1)", (max_rows,))
    deleted = cur.rowcount
    if max_bytes is not None:
        cur = await conn.execute(sql.SQL(
            "DELETE FROM dead_letters WHERE id <= (SELECT id FROM (SELECT id, sum({bytes}) OVER (ORDER BY id DESC) "
            "AS newer FROM dead_letters) t WHERE newer > %s ORDER BY id DESC LIMIT 1)").format(
                bytes=sql.SQL(_LETTER_BYTES)), (max_bytes,))
        deleted += cur.rowcount
    if max_age is not None:
        cur = await conn.execute("DELETE FROM dead_letters WHERE received_at < now() - %s", (max_age,))
        deleted += cur.rowcount
    return deleted
