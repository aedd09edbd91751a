"""The public open-data reads: the catalogue of locations, the latest hourly values and indices, hourly and daily
averages, exceedance periods and the public alert record, each value with its provenance. I/O (psycopg 3 async,
read-only, on the caller's connection); `aqnet.public` serves them.

Contract: every reader returns `(rows, found)` — at most `limit` dict rows after skipping `offset`, ordered
stably, and how many rows match in all — and never writes. Locations come from `sensors_public_location`
(coarsened where the registry says so, migration 0013). Each value row carries its evidence over its period
`[period_start, period_end)` (periods are stamped at their END, as in `averages`):

- `flags`: the OR of the QC bits (`ingest.reading.QC`) of the readings behind it (the primary device's, as the
  averaging job counts them), and `flag_names` spelled out, lowest bit first;
- `calibration_ids`: the calibrations (`calibrations.id`: the calibration version) applied to those readings;
- `verified`: the validation decisions in force (validate or invalidate, `validation_in_force`, migration 0012)
  cover the whole period for the sensor and variable (scope sensor, the variable, or the primary device) — an
  aqnet convention for an aggregate; its readings each carry their own state in `measurement_verification`;
- `valid` (averages): the norm's completeness rule is met; `coverage`, `samples` as the averaging job stored them;
- `indicative`: the sensor is not a reference station.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from ingest.reading import QC
from storage.alerts_store import Exceedance, exceedances

__all__ = ["LOCATION_COLUMNS", "alert_record_page", "averages_page", "exceedance_counts", "exceedance_periods_page",
           "flag_names", "latest_indices_page", "latest_values_page", "locations_page", "verified_periods"]

#: what the catalogue shows of a location (sensors_public_location and the sensors table)
LOCATION_COLUMNS = ("id", "name", "kind", "locality", "operator", "location_publication", "lat", "lon", "address",
                    "elevation_m", "mobile", "lifecycle", "parameters")


def flag_names(flags: int | None) -> list[str]:
    """The names of the QC bits set in `flags` (ingest.reading.QC), lowest bit first; [] for 0 or None."""
    if not flags:
        return []
    return [str(q.name) for q in sorted(QC, key=lambda q: q.value) if q.value & flags]


def _primary(sensor: str, variable: str) -> str:
    return (f"(p.device_id IS NULL OR m.device_id = p.device_id) AND m.sensor_id = {sensor} "
            f"AND m.variable = {variable}")


def _evidence(sensor: str, variable: str, start: str, end: str) -> str:
    """Two LATERAL joins, `ev` (flags, calibration_ids, readings) and `vf` (verified), over [start, end)."""
    return f"""
LEFT JOIN LATERAL (
    SELECT bit_or(m.flags) AS flags, count(*) AS readings,
           coalesce(array_agg(DISTINCT m.calibration_id ORDER BY m.calibration_id)
                    FILTER (WHERE m.calibration_id IS NOT NULL), '{{}}'::bigint[]) AS calibration_ids
    FROM measurements m
    LEFT JOIN primary_devices p ON p.sensor_id = m.sensor_id AND p.variable = m.variable
    WHERE {_primary(sensor, variable)} AND m.time >= {start} AND m.time < {end}) ev ON true
LEFT JOIN LATERAL (
    SELECT coalesce(range_agg(tstzrange(f.time_from, f.time_to)) @> tstzrange({start}, {end}), false) AS verified
    FROM validation_in_force f
    WHERE f.sensor_id = {sensor} AND (f.variable IS NULL OR f.variable = {variable})
      AND f.time_from < {end} AND f.time_to > {start}
      AND (f.device_id IS NULL OR NOT EXISTS (SELECT 1 FROM primary_devices q
                                              WHERE q.sensor_id = {sensor} AND q.variable = {variable})
           OR f.device_id IN (SELECT q.device_id FROM primary_devices q
                              WHERE q.sensor_id = {sensor} AND q.variable = {variable}))) vf ON true"""


_EVIDENCE_COLUMNS = "ev.flags, coalesce(ev.readings, 0) AS readings, ev.calibration_ids, vf.verified"


async def _page(conn: AsyncConnection[Any], query: str, count: str, params: Mapping[str, Any]
                ) -> tuple[list[dict[str, Any]], int]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = [dict(r) for r in await cur.fetchall()]
        await cur.execute(count, params)
        found = await cur.fetchone()
    for row in rows:
        if "flags" in row:
            row["flag_names"] = flag_names(row["flags"])
    return rows, int(found["n"]) if found else 0


# ----------------------------------------------------------------------------------------------- catalogue

_LOCATIONS_WHERE = """
WHERE (%(id)s::text IS NULL OR l.id = %(id)s::text) AND (%(kind)s::text IS NULL OR l.kind = %(kind)s::text)
  AND (%(locality)s::text IS NULL OR l.locality = %(locality)s::text)
  AND (%(lifecycle)s::text IS NULL OR s.lifecycle = %(lifecycle)s::text)"""

_LOCATIONS = f"""
SELECT l.id, l.name, l.kind, l.locality, l.operator, l.location_publication, l.lat, l.lon, l.address,
       s.elevation_m, s.mobile, s.lifecycle,
       coalesce((SELECT array_agg(DISTINCT v.variable ORDER BY v.variable) FROM devices d
                 CROSS JOIN LATERAL unnest(d.variables) AS v(variable)
                 WHERE d.sensor_id = l.id AND d.active), '{{}}'::text[]) AS parameters
FROM sensors_public_location l JOIN sensors s ON s.id = l.id
{_LOCATIONS_WHERE}
ORDER BY l.id LIMIT %(limit)s OFFSET %(offset)s"""


async def locations_page(conn: AsyncConnection[Any], *, limit: int, offset: int = 0, location_id: str | None = None,
                         kind: str | None = None, locality: str | None = None, lifecycle: str | None = None
                         ) -> tuple[list[dict[str, Any]], int]:
    """The catalogue: every sensor (retired ones too: their history stays public; `lifecycle` says), at its
    publishable location, with the variables its active devices measure (`parameters`), by id."""
    params = {"id": location_id, "kind": kind, "locality": locality, "lifecycle": lifecycle, "limit": limit,
              "offset": offset}
    count = ("SELECT count(*) AS n FROM sensors_public_location l JOIN sensors s ON s.id = l.id" + _LOCATIONS_WHERE)
    return await _page(conn, _LOCATIONS, count, params)


# ------------------------------------------------------------------------------------------------- latest

_SERIES_WHERE = """
WHERE s.lifecycle <> 'retired' AND (%(id)s::text IS NULL OR s.id = %(id)s::text)
  AND (%(variable)s::text IS NULL OR sv.variable = %(variable)s::text)"""

_SERIES = """(SELECT DISTINCT d.sensor_id, v.variable FROM devices d
              CROSS JOIN LATERAL unnest(d.variables) AS v(variable) WHERE d.active) sv
             JOIN sensors s ON s.id = sv.sensor_id"""

_LATEST = f"""
WITH page AS (
    SELECT a.sensor_id, a.variable, a.period, a.period_start, a.period_end, a.value, a.unit, a.coverage, a.samples,
           a.valid, s.kind, s.kind <> 'station' AS indicative
    FROM {_SERIES}
    CROSS JOIN LATERAL (SELECT * FROM averages x WHERE x.sensor_id = sv.sensor_id AND x.variable = sv.variable
                        AND x.period = '1h' ORDER BY x.period_end DESC LIMIT 1) a
    {_SERIES_WHERE}
    ORDER BY a.sensor_id, a.variable LIMIT %(limit)s OFFSET %(offset)s)
SELECT a.*, {_EVIDENCE_COLUMNS}
FROM page a {_evidence("a.sensor_id", "a.variable", "a.period_start", "a.period_end")}
ORDER BY a.sensor_id, a.variable"""

_LATEST_COUNT = f"""
SELECT count(*) AS n FROM {_SERIES} {_SERIES_WHERE}
  AND EXISTS (SELECT 1 FROM averages x WHERE x.sensor_id = sv.sensor_id AND x.variable = sv.variable
              AND x.period = '1h')"""


async def latest_values_page(conn: AsyncConnection[Any], *, limit: int, offset: int = 0,
                             location_id: str | None = None, variable: str | None = None
                             ) -> tuple[list[dict[str, Any]], int]:
    """Per sensor (not retired) and variable its active devices measure: the latest hourly average stored, with
    its evidence; by sensor and variable. A series with no hourly average yet is absent."""
    params = {"id": location_id, "variable": variable, "limit": limit, "offset": offset}
    return await _page(conn, _LATEST, _LATEST_COUNT, params)


_INDICES_WHERE = """
WHERE s.lifecycle <> 'retired' AND (%(id)s::text IS NULL OR s.id = %(id)s::text)
  AND (%(index)s::text IS NULL OR x.index = %(index)s::text)"""

_INDICES_FROM = """sensors s CROSS JOIN (VALUES ('iboca'), ('us_aqi')) AS x(index)
    CROSS JOIN LATERAL (SELECT * FROM indices i WHERE i.sensor_id = s.id AND i.index = x.index
                        AND i.averaging = 'nowcast' AND i.dominant ORDER BY i.period_end DESC LIMIT 1) i"""

# the NowCast weighs the 12 hourly averages ending at period_end (EPA, Technical Assistance Document for the
# Reporting of Daily Air Quality, 2024; alerts.averaging): its period is [period_end − 12 h, period_end)
_LATEST_INDICES = f"""
WITH page AS (
    SELECT i.sensor_id, i.index, i.pollutant AS variable, i.averaging,
           i.period_end - interval '12 hours' AS period_start, i.period_end, i.value, i.level, i.category,
           i.colour, i.action, i.concentration, i.unit, i.indicative, i.beyond_index, s.kind
    FROM {_INDICES_FROM} {_INDICES_WHERE}
    ORDER BY i.sensor_id, i.index LIMIT %(limit)s OFFSET %(offset)s)
SELECT a.*, {_EVIDENCE_COLUMNS},
       (SELECT count(*) FROM averages h WHERE h.sensor_id = a.sensor_id AND h.variable = a.variable
          AND h.period = '1h' AND h.valid AND h.period_end > a.period_start AND h.period_end <= a.period_end
       ) AS valid_hours
FROM page a {_evidence("a.sensor_id", "a.variable", "a.period_start", "a.period_end")}
ORDER BY a.sensor_id, a.index"""


async def latest_indices_page(conn: AsyncConnection[Any], *, limit: int, offset: int = 0,
                              location_id: str | None = None, index: str | None = None
                              ) -> tuple[list[dict[str, Any]], int]:
    """Per sensor (not retired) and index (iboca, us_aqi): the latest hourly (NowCast) index stored, its dominant
    pollutant (`variable`), category, colour, the concentration looked up, and the evidence over the NowCast's 12
    hours (`valid_hours`: how many of its hourly averages are valid)."""
    params = {"id": location_id, "index": index, "limit": limit, "offset": offset}
    count = f"SELECT count(*) AS n FROM {_INDICES_FROM} {_INDICES_WHERE}"
    return await _page(conn, _LATEST_INDICES, count, params)


# ------------------------------------------------------------------------------------------------ averages

_AVERAGES_WHERE = """
WHERE a.sensor_id = %(id)s AND a.variable = %(variable)s AND a.period = %(period)s
  AND a.period_end > %(from)s AND a.period_end <= %(to)s"""

_AVERAGES = f"""
WITH page AS (
    SELECT a.sensor_id, a.variable, a.period, a.period_start, a.period_end, a.value, a.unit, a.coverage, a.samples,
           a.valid, s.kind, s.kind <> 'station' AS indicative
    FROM averages a JOIN sensors s ON s.id = a.sensor_id {_AVERAGES_WHERE}
    ORDER BY a.period_end LIMIT %(limit)s OFFSET %(offset)s)
SELECT a.*, {_EVIDENCE_COLUMNS}
FROM page a {_evidence("a.sensor_id", "a.variable", "a.period_start", "a.period_end")}
ORDER BY a.period_end"""


async def averages_page(conn: AsyncConnection[Any], location_id: str, variable: str, period: str, *,
                        start: datetime, end: datetime, limit: int, offset: int = 0
                        ) -> tuple[list[dict[str, Any]], int]:
    """The stored averages of (sensor, variable) over `period` ('1h' or 'day') ending in (start, end], oldest
    first, valid or not (`valid` says), with their evidence."""
    params = {"id": location_id, "variable": variable, "period": period, "from": start, "to": end, "limit": limit,
              "offset": offset}
    return await _page(conn, _AVERAGES, "SELECT count(*) AS n FROM averages a" + _AVERAGES_WHERE, params)


# --------------------------------------------------------------------------------------------- exceedances

_PERIODS_WHERE = """
WHERE a.valid AND a.value > l.limit_ugm3 AND a.period_end > %(from)s AND a.period_end <= %(to)s
  AND (%(id)s::text IS NULL OR a.sensor_id = %(id)s::text)
  AND (%(variable)s::text IS NULL OR a.variable = %(variable)s::text)"""

_PERIODS = f"""
WITH page AS (
    SELECT a.sensor_id, a.variable, a.period, a.period_start, a.period_end, a.value, a.unit, a.coverage, a.samples,
           a.valid, s.kind, s.kind <> 'station' AS indicative, l.limit_ugm3, l.source
    FROM averages a JOIN norm_limits l ON l.variable = a.variable AND l.period = a.period
    JOIN sensors s ON s.id = a.sensor_id {_PERIODS_WHERE}
    ORDER BY a.period_end, a.sensor_id, a.variable, a.period LIMIT %(limit)s OFFSET %(offset)s)
SELECT a.*, {_EVIDENCE_COLUMNS}
FROM page a {_evidence("a.sensor_id", "a.variable", "a.period_start", "a.period_end")}
ORDER BY a.period_end, a.sensor_id, a.variable, a.period"""


async def exceedance_periods_page(conn: AsyncConnection[Any], *, start: datetime, end: datetime, limit: int,
                                  offset: int = 0, location_id: str | None = None, variable: str | None = None
                                  ) -> tuple[list[dict[str, Any]], int]:
    """Each valid average ending in (start, end] above its Res. 2254/2017 Tabla 1 limit (`norm_limits`, the rows
    `exceedances(tz)` counts), with the limit, its source and the evidence; oldest first."""
    params = {"id": location_id, "variable": variable, "from": start, "to": end, "limit": limit, "offset": offset}
    count = ("SELECT count(*) AS n FROM averages a JOIN norm_limits l ON l.variable = a.variable "
             "AND l.period = a.period" + _PERIODS_WHERE)
    return await _page(conn, _PERIODS, count, params)


async def exceedance_counts(conn: AsyncConnection[Any], *, tz: str, year: int | None = None,
                            location_id: str | None = None, variable: str | None = None
                            ) -> list[tuple[Exceedance, bool]]:
    """The officers' yearly exceedance counts (`storage.alerts_store.exceedances`) of registered sensors, each with
    the sensor's kind (True: a reference station)."""
    found = await exceedances(conn, tz=tz, year=year, sensor_id=location_id, variable=variable)
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, kind FROM sensors")
        kinds = {r[0]: r[1] for r in await cur.fetchall()}
    return [(e, kinds[e.sensor_id] == "station") for e in found if e.sensor_id in kinds]


async def verified_periods(conn: AsyncConnection[Any], periods: Sequence[tuple[str, str, datetime, datetime]]
                           ) -> list[bool]:
    """For each (sensor, variable, start, end): do validation decisions in force cover [start, end) (any device
    of the sensor)? In order."""
    if not periods:
        return []
    sensors, variables, starts, ends = (list(c) for c in zip(*periods, strict=True))
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT coalesce((SELECT range_agg(tstzrange(f.time_from, f.time_to)) FROM validation_in_force f "
            "WHERE f.sensor_id = t.sensor AND (f.variable IS NULL OR f.variable = t.variable) "
            "AND f.time_from < t.stop AND f.time_to > t.start) @> tstzrange(t.start, t.stop), false) "
            "FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY "
            "AS t(sensor, variable, start, stop, n) ORDER BY t.n", (sensors, variables, starts, ends))
        return [bool(r[0]) for r in await cur.fetchall()]


# ---------------------------------------------------------------------------------------- the alert record

_RECORD_WHERE = """
WHERE (%(alert)s::bigint IS NULL OR r.alert_id = %(alert)s::bigint)
  AND (%(id)s::text IS NULL OR r.sensor_id = %(id)s::text)
  AND (%(from)s::timestamptz IS NULL OR r.time > %(from)s::timestamptz)
  AND (%(to)s::timestamptz IS NULL OR r.time <= %(to)s::timestamptz)"""

_RECORD = f"""
WITH page AS (
    SELECT r.*, s.kind AS sensor_kind, av.valid, av.samples
    FROM alert_record(%(names)s) r
    LEFT JOIN sensors s ON s.id = r.sensor_id
    LEFT JOIN averages av ON av.sensor_id = r.sensor_id AND av.variable = r.variable AND av.period = r.period
                         AND av.period_end = r.period_end
    {_RECORD_WHERE}
    ORDER BY r.time, r.event_id LIMIT %(limit)s OFFSET %(offset)s)
SELECT a.*, {_EVIDENCE_COLUMNS}
FROM page a {_evidence("a.sensor_id", "a.variable", "a.period_start", "a.period_end")}
ORDER BY a.time, a.event_id"""


async def alert_record_page(conn: AsyncConnection[Any], *, show_names: bool, limit: int, offset: int = 0,
                            alert_id: int | None = None, location_id: str | None = None,
                            start: datetime | None = None, end: datetime | None = None
                            ) -> tuple[list[dict[str, Any]], int]:
    """The public record of alert decisions (`alert_record(show_names)`, migration 0012: the actor's role, not
    the name, unless `show_names`), oldest first, each transition with its evidence period's average (`valid`,
    `samples`; None when that average is gone) and evidence; events recorded in (start, end]."""
    params = {"names": show_names, "alert": alert_id, "id": location_id, "from": start, "to": end, "limit": limit,
              "offset": offset}
    count = "SELECT count(*) AS n FROM alert_record(%(names)s) r" + _RECORD_WHERE
    return await _page(conn, _RECORD, count, params)
