"""The SQL of device health: the devices watched, their receive times summarised, the watch state and status
events, the 1-h averages' coverage, flat runs and co-located hourly differences. I/O (psycopg 3, sync); every
function runs on the caller's connection and commits nothing (the caller owns the transaction).

The queries are bounded in time so they use the hypertables' time partitioning: receive times are read from
readings measured after `time_floor` (a reading measured long before it was received — a logger's backfill —
says nothing about whether the device is reachable now).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from storage import trailing_runs

__all__ = ["WatchedDevice", "coverage_sums", "flat_runs", "heard_summaries", "hourly_differences",
           "insert_events", "load_events", "load_watches", "save_watch", "status_before", "watched_devices"]


@dataclass(frozen=True, slots=True)
class WatchedDevice:
    """An active device of an active sensor, as the health job sees it."""

    device_id: str
    sensor_id: str
    sensor_kind: str  #: station or microsensor
    variables: tuple[str, ...]  #: the variables the device is the primary device of (its sensor's series)
    lat: float
    lon: float


_DEVICES = """
SELECT d.id, d.sensor_id, s.kind, s.lat, s.lon,
       coalesce(array_agg(p.variable ORDER BY p.variable) FILTER (WHERE p.variable IS NOT NULL), '{}')
FROM devices d JOIN sensors s ON s.id = d.sensor_id
LEFT JOIN primary_devices p ON p.device_id = d.id AND p.sensor_id = d.sensor_id
WHERE d.active AND s.lifecycle = 'active' AND (%(sensor)s::text IS NULL OR d.sensor_id = %(sensor)s::text)
GROUP BY d.id, d.sensor_id, s.kind, s.lat, s.lon
ORDER BY d.sensor_id, d.id
"""


def watched_devices(conn: psycopg.Connection, *, sensor_id: str | None = None) -> list[WatchedDevice]:
    """The active devices of the active sensors (of one sensor when given), with their primary variables."""
    rows = conn.execute(_DEVICES, {"sensor": sensor_id}).fetchall()
    return [WatchedDevice(r[0], r[1], r[2], tuple(r[5]), float(r[3]), float(r[4])) for r in rows]


def load_watches(conn: psycopg.Connection) -> dict[str, tuple[datetime, datetime, datetime | None, datetime | None]]:
    """device id → (watched_from, checked_until, last_heard, down_since)."""
    rows = conn.execute("SELECT device_id, watched_from, checked_until, last_heard, down_since FROM device_watch")
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows.fetchall()}


def save_watch(conn: psycopg.Connection, device_id: str, sensor_id: str, watched_from: datetime,
               checked_until: datetime, last_heard: datetime | None, down_since: datetime | None) -> None:
    """Insert or update one device's watch."""
    conn.execute(
        "INSERT INTO device_watch (device_id, sensor_id, watched_from, checked_until, last_heard, down_since) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET sensor_id = EXCLUDED.sensor_id, "
        "checked_until = EXCLUDED.checked_until, last_heard = EXCLUDED.last_heard, "
        "down_since = EXCLUDED.down_since",
        (device_id, sensor_id, watched_from, checked_until, last_heard, down_since))


_HEARD = """
WITH since AS (
    SELECT * FROM unnest(%(devices)s::text[], %(sensors)s::text[], %(after)s::timestamptz[])
        AS t(device_id, sensor_id, after)
), heard AS (
    SELECT DISTINCT m.device_id, m.received_at
    FROM measurements m JOIN since ON m.sensor_id = since.sensor_id AND m.device_id = since.device_id
    WHERE m.time > %(time_floor)s AND m.received_at > since.after AND m.received_at <= %(now)s
), gaps AS (
    SELECT device_id, received_at, lag(received_at) OVER (PARTITION BY device_id ORDER BY received_at) AS prev
    FROM heard
)
SELECT device_id, min(received_at), max(received_at),
       coalesce(array_agg(prev ORDER BY received_at) FILTER (WHERE received_at - prev > %(down_after)s), '{}'),
       coalesce(array_agg(received_at ORDER BY received_at) FILTER (WHERE received_at - prev > %(down_after)s),
                '{}')
FROM gaps GROUP BY device_id
"""


def heard_summaries(conn: psycopg.Connection, after: Sequence[tuple[str, str, datetime]], *, now: datetime,
                    down_after: timedelta, time_floor: datetime
                    ) -> dict[str, tuple[datetime, datetime, list[tuple[datetime, datetime]]]]:
    """Per device of `after` ((device, sensor, checked_until)…): its receive times in (checked_until, now] of
    readings measured after `time_floor`, as (first, last, silences longer than `down_after`)."""
    if not after:
        return {}
    rows = conn.execute(_HEARD, {"devices": [a[0] for a in after], "sensors": [a[1] for a in after],
                                 "after": [a[2] for a in after], "now": now, "down_after": down_after,
                                 "time_floor": time_floor}).fetchall()
    return {r[0]: (r[1], r[2], list(zip(r[3], r[4], strict=True))) for r in rows}


def insert_events(conn: psycopg.Connection, events: Iterable[tuple[str, str, datetime, str]]) -> int:
    """Record transitions (device, sensor, time, state); ones already recorded are kept. Returns rows added."""
    rows = list(events)
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO device_status_events (device_id, sensor_id, time, state) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
        return max(cur.rowcount, 0)


def load_events(conn: psycopg.Connection, device_ids: Sequence[str], since: datetime, until: datetime
                ) -> dict[str, list[tuple[datetime, str]]]:
    """Per device, its transitions in [since, until), oldest first."""
    rows = conn.execute("SELECT device_id, time, state FROM device_status_events WHERE device_id = ANY(%s) "
                        "AND time >= %s AND time < %s ORDER BY device_id, time, state DESC",
                        (list(device_ids), since, until)).fetchall()
    out: dict[str, list[tuple[datetime, str]]] = {}
    for device, time, state in rows:
        out.setdefault(device, []).append((time, state))
    return out


def status_before(conn: psycopg.Connection, device_ids: Sequence[str], at: datetime
                  ) -> dict[str, tuple[datetime, str]]:
    """Per device, its latest transition before `at` (time, state)."""
    rows = conn.execute("SELECT DISTINCT ON (device_id) device_id, time, state FROM device_status_events "
                        "WHERE device_id = ANY(%s) AND time < %s ORDER BY device_id, time DESC, state ASC",
                        (list(device_ids), at)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def coverage_sums(conn: psycopg.Connection, series: Sequence[tuple[str, str]], since: datetime, until: datetime
                  ) -> dict[tuple[str, str], float]:
    """Per (sensor, variable), the sum of its 1-h averages' coverage over the hours ending in (since, until]."""
    if not series:
        return {}
    rows = conn.execute(
        "SELECT a.sensor_id, a.variable, sum(a.coverage) FROM averages a "
        "JOIN unnest(%s::text[], %s::text[]) AS s(sensor_id, variable) "
        "ON a.sensor_id = s.sensor_id AND a.variable = s.variable "
        "WHERE a.period = '1h' AND a.period_end > %s AND a.period_end <= %s GROUP BY a.sensor_id, a.variable",
        ([s[0] for s in series], [s[1] for s in series], since, until)).fetchall()
    return {(r[0], r[1]): float(r[2]) for r in rows}


# the flat runs of devices read as one series across sensors (a device that moved within the window)
_FLAT = """
WITH r AS (
    SELECT m.device_id, m.variable, m.time,
           max(m.value) OVER w - min(m.value) OVER w AS spread
    FROM measurements m
    WHERE m.sensor_id = ANY(%(sensors)s) AND m.device_id = ANY(%(devices)s)
      AND m.time > %(since)s AND m.time <= %(now)s AND m.value IS NOT NULL AND m.flags & %(excluded)s = 0
    WINDOW w AS (PARTITION BY m.device_id, m.variable ORDER BY m.time DESC
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT device_id, variable, max(time), min(time) FILTER (WHERE spread <= %(tolerance)s),
       count(*) FILTER (WHERE spread <= %(tolerance)s)
FROM r GROUP BY device_id, variable
"""


def flat_runs(conn: psycopg.Connection, devices: Sequence[tuple[str, str]], *, since: datetime, now: datetime,
              excluded: int, tolerance: float) -> list[tuple[Any, ...]]:
    """Per device and variable, the run of latest readings in (since, now] (not flagged `excluded`) whose
    max − min stays within `tolerance` (the flatline equipment rule's definition): device, variable, last
    reading time, run start, run length.

    Read back from each series' latest reading only as far as its run goes (`storage.trailing_runs`); a device
    whose readings of a variable in the window are under more than one of the sensors (it moved) has its
    readings of every sensor taken as one series, by the window function over them."""
    if not devices:
        return []
    wanted, sensors = {d[0] for d in devices}, sorted({d[1] for d in devices})
    runs = [r for r in trailing_runs.flat_runs(conn, sensors, since=since, now=now,
                                               excluded=excluded, tolerance=tolerance) if r.device_id in wanted]
    sensors_of: dict[tuple[str, str], int] = {}
    for r in runs:
        sensors_of[r.device_id, r.variable] = sensors_of.get((r.device_id, r.variable), 0) + 1
    moved = sorted({device for (device, _), n in sensors_of.items() if n > 1})
    out: list[tuple[Any, ...]] = [(r.device_id, r.variable, r.last, r.since, r.n) for r in runs
                                  if r.device_id not in moved]
    if moved:
        out += conn.execute(_FLAT, {"sensors": sensors, "devices": moved, "since": since,
                                    "now": now, "excluded": excluded, "tolerance": tolerance}).fetchall()
    return out


def hourly_differences(conn: psycopg.Connection, sensor_id: str, reference_id: str, variable: str, *,
                       since: datetime, until: datetime) -> list[tuple[datetime, float, float]]:
    """The hours ending in (since, until] where both sensors have a valid 1-h average of `variable`: (hour end,
    sensor's value, reference's value), oldest first."""
    return [(r[0], float(r[1]), float(r[2])) for r in conn.execute(
        "SELECT a.period_end, a.value, b.value FROM averages a JOIN averages b "
        "ON b.sensor_id = %(ref)s AND b.variable = a.variable AND b.period = '1h' AND b.period_end = a.period_end "
        "WHERE a.sensor_id = %(sensor)s AND a.variable = %(variable)s AND a.period = '1h' "
        "AND a.period_end > %(since)s AND a.period_end <= %(until)s AND a.valid AND b.valid "
        "AND a.value IS NOT NULL AND b.value IS NOT NULL ORDER BY a.period_end",
        {"sensor": sensor_id, "ref": reference_id, "variable": variable, "since": since,
         "until": until}).fetchall()]
