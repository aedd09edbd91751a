"""The reads behind the open-data exports and the annual compliance report, and the record of exported versions
(`open_data_exports`, migration 0019). I/O (psycopg 3, sync: the export job runs in a worker thread).

Contract: every read takes an aware half-open time range and returns plain rows (dicts or tuples) keyed by the
export tables' field names (`alerts.opendata.tables`); `stream_measurements` reads on a server-side cursor so a
day of readings never sits in memory whole. The location of a sensor is the one it may be published at
(`sensors_public_location`, migration 0013). `record_export` appends a version; a version is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

__all__ = ["annual_averages", "annual_decisions", "averages_rows", "changes_since", "export_history",
           "last_decision_id", "latest_exports", "public_sensors", "record_export", "station_series",
           "stream_measurements"]

_SENSORS = """
SELECT p.id, p.name, p.kind, p.kind = 'station' AS reference_grade, p.lat AS latitude, p.lon AS longitude,
       p.location_publication, p.locality, p.operator
FROM sensors_public_location p ORDER BY p.id"""

_MEASUREMENTS = """
SELECT m.time, m.sensor_id, m.device_id, m.variable, m.value, m.unit, m.raw_value, m.raw_unit,
       m.flags AS qc_flags, m.qc_valid, m.verification, m.validity, s.kind = 'station' AS reference_grade
FROM measurement_verification m JOIN sensors s ON s.id = m.sensor_id
WHERE m.time >= %(start)s AND m.time < %(end)s
ORDER BY m.sensor_id, m.device_id, m.variable, m.time"""

# averages ending in (start, end]: the hours ending 01:00 … 24:00 of a day, or the day itself
_AVERAGES = """
SELECT a.sensor_id, a.variable, a.period_start, a.period_end, a.value, a.unit, a.coverage, a.samples, a.valid,
       CASE WHEN EXISTS (SELECT 1 FROM validation_in_force f
                         WHERE f.sensor_id = a.sensor_id AND (f.variable IS NULL OR f.variable = a.variable)
                           AND f.time_from < a.period_end AND f.time_to > a.period_start) THEN 1 ELSE 3 END
           AS verification,
       s.kind = 'station' AS reference_grade
FROM averages a JOIN sensors s ON s.id = a.sensor_id
WHERE a.period = %(period)s AND a.period_end > %(start)s AND a.period_end <= %(end)s
ORDER BY a.sensor_id, a.variable, a.period_end"""


def public_sensors(conn: Connection[Any]) -> list[dict[str, Any]]:
    """Every sensor with the location it may be published at, its operator and whether it is reference grade."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SENSORS)
        return list(cur.fetchall())


def stream_measurements(conn: Connection[Any], start: datetime, end: datetime,
                        batch: int = 5000) -> Iterator[dict[str, Any]]:
    """The readings with start <= time < end, with QC, verification and validity (measurement_verification),
    ordered by sensor, device, variable, time; read `batch` rows at a time (a transaction must be open or the
    connection not in autocommit: a named cursor lives in a transaction)."""
    with conn.transaction(), conn.cursor(name="aqnet_export_measurements", row_factory=dict_row) as cur:
        cur.itersize = batch
        cur.execute(_MEASUREMENTS, {"start": start, "end": end})
        yield from cur


def averages_rows(conn: Connection[Any], period: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The stored `period` averages (1h, day, …) ending in (start, end], with a verification flag (1 when a
    validation decision in force meets the period, else 3)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_AVERAGES, {"period": period, "start": start, "end": end})
        return list(cur.fetchall())


def last_decision_id(conn: Connection[Any]) -> int:
    """The highest validation_decisions id (0: none yet): the watermark a rendered export records."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM validation_decisions").fetchone()
    return int(row[0]) if row else 0


def changes_since(conn: Connection[Any], start: datetime, end: datetime, since: datetime,
                  decisions_after: int) -> tuple[list[int], int, int]:
    """What touched [start, end) since the last export: the validation decisions with an id above
    `decisions_after` (undos included) whose period meets it, the readings of it received after `since` (late
    data), and its hourly and daily averages computed after `since` (both times of the clock that stamps them)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM validation_decisions WHERE id > %s AND time_from < %s AND time_to > %s "
                    "ORDER BY id", (decisions_after, end, start))
        decisions = [int(r[0]) for r in cur.fetchall()]
        cur.execute("SELECT count(*) FROM measurements WHERE time >= %s AND time < %s AND received_at > %s",
                    (start, end, since))
        late = cur.fetchone()
        cur.execute("SELECT count(*) FROM averages WHERE period IN ('1h', 'day') AND period_end > %s AND "
                    "period_end <= %s AND computed_at > %s", (start, end, since))
        recomputed = cur.fetchone()
    return decisions, int(late[0]) if late else 0, int(recomputed[0]) if recomputed else 0


_EXPORT_COLUMNS = ("day, version, exported_at, digest, change_note, directory, files, period_start, period_end, "
                   "decisions_through, "
                   "(SELECT min(e.exported_at) FROM open_data_exports e WHERE e.day = x.day) AS first_exported_at")


def latest_exports(conn: Connection[Any], day: date | None = None) -> list[dict[str, Any]]:
    """The latest version of every exported day (or of `day` only), newest day first."""
    where = "WHERE x.day = %(day)s" if day is not None else ""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT DISTINCT ON (x.day) {_EXPORT_COLUMNS} FROM open_data_exports x {where} "
                    "ORDER BY x.day DESC, x.version DESC", {"day": day})
        return list(cur.fetchall())


def export_history(conn: Connection[Any], day: date) -> list[dict[str, Any]]:
    """Every version of `day`'s export, oldest first: version, exported_at, change_note."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT version, exported_at, change_note FROM open_data_exports WHERE day = %s ORDER BY version",
                    (day,))
        return list(cur.fetchall())


def record_export(conn: Connection[Any], *, day: date, version: int, exported_at: datetime, digest: str,
                  change_note: str, directory: str, files: Sequence[dict[str, Any]], period_start: datetime,
                  period_end: datetime, decisions_through: int) -> None:
    """Append one published version of a day's export (a version already recorded is an IntegrityError)."""
    conn.execute("INSERT INTO open_data_exports (day, version, exported_at, digest, change_note, directory, files, "
                 "period_start, period_end, decisions_through) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (day, version, exported_at, digest, change_note, directory, Jsonb(list(files)), period_start,
                  period_end, decisions_through))


# ------------------------------------------------------------------------------------------- annual report


def station_series(conn: Connection[Any], variables: Sequence[str], start: datetime,
                   end: datetime) -> list[dict[str, Any]]:
    """The reference stations' series of `variables` with an average starting in [start, end): sensor_id, name,
    variable, unit, primary device (None when not set)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""
SELECT a.sensor_id, s.name AS sensor_name, a.variable, min(a.unit) AS unit, pd.device_id AS primary_device
FROM averages a JOIN sensors s ON s.id = a.sensor_id AND s.kind = 'station'
LEFT JOIN primary_devices pd ON pd.sensor_id = a.sensor_id AND pd.variable = a.variable
WHERE a.variable = ANY(%s) AND a.period_start >= %s AND a.period_start < %s
GROUP BY a.sensor_id, s.name, a.variable, pd.device_id ORDER BY a.sensor_id, a.variable""",
                    (list(variables), start, end))
        return list(cur.fetchall())


def annual_averages(conn: Connection[Any], sensor_id: str, variable: str, periods: Sequence[str], start: datetime,
                    end: datetime) -> list[tuple[str, datetime, datetime, float | None, bool]]:
    """(period, period_start, period_end, value, valid) of the series' `periods` averages starting in [start,
    end), by period end."""
    with conn.cursor() as cur:
        cur.execute("SELECT period, period_start, period_end, value, valid FROM averages WHERE sensor_id = %s AND "
                    "variable = %s AND period = ANY(%s) AND period_start >= %s AND period_start < %s "
                    "ORDER BY period, period_end", (sensor_id, variable, list(periods), start, end))
        return [(str(r[0]), r[1], r[2], r[3], bool(r[4])) for r in cur.fetchall()]


def annual_decisions(conn: Connection[Any], sensor_id: str, variable: str, primary_device: str | None,
                     start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The validations and invalidations in force (validation_in_force) meeting [start, end) that cover the
    series: the sensor's, for the variable or every variable, of every device or of its primary device (of any
    device when no primary device is set)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""
SELECT id, action, time_from, time_to, reason, device_id FROM validation_in_force
WHERE sensor_id = %(sensor)s AND (variable IS NULL OR variable = %(variable)s)
  AND (device_id IS NULL OR %(device)s::text IS NULL OR device_id = %(device)s::text)
  AND time_from < %(end)s AND time_to > %(start)s ORDER BY id""",
                    {"sensor": sensor_id, "variable": variable, "device": primary_device, "start": start,
                     "end": end})
        return list(cur.fetchall())
