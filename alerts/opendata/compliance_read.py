"""The annual compliance report read from the database: the stations' stored averages and the validation
decisions covering them, handed to the pure `alerts.opendata.compliance`. I/O glue (psycopg 3 sync).

Contract: `read_annual_report(conn, year, timezone, now)` reports every reference station and pollutant with a
Tabla 1 limit that has an average starting in the local calendar `year`; microsensors are indicative and never
compliance data, so they are left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection

from alerts.averaging.averages import local_year_bounds
from alerts.opendata.compliance import (
    AnnualReport,
    Decision,
    NormLimit,
    PeriodValue,
    SeriesInput,
    annual_report,
    tabla1_limits,
)
from storage import exports_store as store

__all__ = ["read_annual_report"]


def read_annual_report(conn: Connection[Any], year: int, timezone: str, now: datetime,
                       limits: tuple[NormLimit, ...] | None = None) -> AnnualReport:
    """The annual compliance report of `year` in the network's `timezone` (IANA name)."""
    if not 1900 <= year <= 9999:
        raise ValueError(f"year: expected 1900..9999, got {year}")
    tz = ZoneInfo(timezone)
    limits = limits if limits is not None else tabla1_limits()
    start, end = local_year_bounds(year, tz)
    periods_of: dict[str, set[str]] = {}
    for limit in limits:
        # the annual mean is computed from the daily means
        periods_of.setdefault(limit.variable, set()).add("day" if limit.period == "year" else limit.period)
    inputs = []
    for s in store.station_series(conn, sorted(periods_of), start, end):
        rows = store.annual_averages(conn, s["sensor_id"], s["variable"], sorted(periods_of[s["variable"]]), start,
                                     end)
        decisions = [Decision(int(d["id"]), d["action"], d["time_from"], d["time_to"], d["reason"], d["device_id"])
                     for d in store.annual_decisions(conn, s["sensor_id"], s["variable"], s["primary_device"], start,
                                                     end)]
        inputs.append(SeriesInput(s["sensor_id"], s["sensor_name"], s["variable"], s["unit"],
                                  [PeriodValue(*r) for r in rows], decisions))
    return annual_report(year, tz, timezone, inputs, limits, now)
