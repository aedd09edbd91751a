"""Shaping `storage.public_read` rows into the public API's records (`aqnet.public.models`): instants in UTC and the
network's zone, periods, coverage, the e-Reporting codes, flags and calibration. Shell, pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aqnet.public.models import (
    ISO_INTERVAL,
    AlertRecordEvent,
    Average,
    Calibration,
    Code,
    Coordinates,
    Coverage,
    ExceedanceCount,
    ExceedancePeriod,
    FlagInfo,
    IndexValue,
    Instant,
    LatestValue,
    Licence,
    Limit,
    Location,
    Owner,
    Parameter,
    Period,
    Sensor,
)
from ingest.validation import VALIDITY_URI, VERIFICATION_URI, Validity, Verification
from sensors.variables import VARIABLES
from storage.alerts_store import Exceedance

__all__ = ["alert_event", "average", "exceedance_count", "exceedance_period", "expected_periods", "index_value",
           "instant", "latest_value", "location", "parameter", "year_bounds"]


def instant(t: datetime, zone: ZoneInfo) -> Instant:
    """`t` in UTC and in `zone`."""
    return Instant(utc=t.astimezone(ZoneInfo("UTC")), local=t.astimezone(zone))


def parameter(code: str, unit: str | None = None) -> Parameter:
    """The vocabulary's entry for `code` (unknown codes keep their code as name)."""
    v = VARIABLES.get(code)
    return Parameter(id=code, name=code, units=unit or (v.unit if v else ""), display_name=v.name if v else code)


def _period(label: str, start: datetime, end: datetime, zone: ZoneInfo) -> Period:
    return Period(label=label, interval=ISO_INTERVAL.get(label, f"PT{int((end - start).total_seconds())}S"),
                  datetime_from=instant(start, zone), datetime_to=instant(end, zone))


def _coverage(fraction: float | None, observed: int | None, expected: int | None, complete: bool | None,
              start: datetime, end: datetime, zone: ZoneInfo) -> Coverage:
    return Coverage(percent_coverage=None if fraction is None else round(fraction * 100, 3), fraction=fraction,
                    observed_count=observed, expected_count=expected, complete=complete,
                    datetime_from=instant(start, zone), datetime_to=instant(end, zone))


def _validity(valid: bool | None) -> Code | None:
    if valid is None:
        return None
    v = Validity.VALID if valid else Validity.NOT_VALID
    return Code(code=int(v), label=v.label, vocabulary=VALIDITY_URI)


def _verification(verified: bool | None) -> Code:
    v = Verification.VERIFIED if verified else Verification.NOT_VERIFIED
    return Code(code=int(v), label=v.label, vocabulary=VERIFICATION_URI)


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    names = list(row.get("flag_names") or [])
    ids = [int(i) for i in row.get("calibration_ids") or []]
    return {"verification": _verification(row.get("verified")),
            "flag_info": FlagInfo(has_flags=bool(names), flags=names),
            "calibration": Calibration(calibrated=bool(ids), ids=ids)}


def _reference(row: dict[str, Any]) -> dict[str, Any]:
    return {"is_reference": row.get("kind") == "station", "indicative": row.get("kind") != "station"}


def average(row: dict[str, Any], zone: ZoneInfo) -> Average:
    """An `averages_page` row."""
    start, end = row["period_start"], row["period_end"]
    # a day is the mean of its valid hourly averages (alerts.averaging.averages.daily_average): 23, 24 or 25 hours
    expected = round((end - start).total_seconds() / 3600) if row["period"] == "day" else None
    return Average(value=row["value"], unit=row["unit"], parameter=parameter(row["variable"], row["unit"]),
                   period=_period(row["period"], start, end, zone),
                   coverage=_coverage(row["coverage"], row["samples"], expected, row["valid"], start, end, zone),
                   validity=_validity(row["valid"]), locations_id=row["sensor_id"], **_evidence(row),
                   **_reference(row))


def latest_value(row: dict[str, Any], zone: ZoneInfo) -> LatestValue:
    """A `latest_values_page` row."""
    base = average(row, zone).model_dump()
    return LatestValue(**base, datetime=instant(row["period_end"], zone))


def exceedance_period(row: dict[str, Any], zone: ZoneInfo) -> ExceedancePeriod:
    """An `exceedance_periods_page` row (limits are µg/m³ at 25 °C and 760 mmHg, `norm_limits`)."""
    base = average(row, zone).model_dump()
    return ExceedancePeriod(**base, limit=Limit(value=row["limit_ugm3"], units=row["unit"], period=row["period"],
                                                source=row["source"]))


def index_value(row: dict[str, Any], zone: ZoneInfo) -> IndexValue:
    """A `latest_indices_page` row: coverage = valid hourly averages of the 12 the NowCast weighs."""
    start, end = row["period_start"], row["period_end"]
    hours = int(row["valid_hours"] or 0)
    unit = "IBOCA" if row["index"] == "iboca" else "AQI"
    return IndexValue(value=float(row["value"]), unit=unit, parameter=parameter(row["variable"]),
                      period=_period("nowcast", start, end, zone),
                      coverage=_coverage(hours / 12, hours, 12, True, start, end, zone),
                      validity=_validity(True), locations_id=row["sensor_id"], index=row["index"], level=row["level"],
                      category=row["category"], colour=row["colour"], action=row["action"],
                      beyond_index=row["beyond_index"], concentration=row["concentration"],
                      concentration_units=row["unit"], datetime=instant(end, zone), **_evidence(row),
                      **_reference(row))


def year_bounds(year: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """1 January 00:00 of `year` and of the next, in `zone`."""
    return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)


def expected_periods(period: str, start: datetime, end: datetime) -> int:
    """How many `period` (day, 1h, 8h: one per hour, rolling) averages end in (start, end]."""
    seconds = (end - start).total_seconds()
    return max(0, round(seconds / (86400 if period == "day" else 3600)))


def exceedance_count(e: Exceedance, *, reference: bool, verified: bool, now: datetime,
                     zone: ZoneInfo) -> ExceedanceCount:
    """A yearly count; coverage = valid periods / periods ending in the year up to `now`."""
    start, end = year_bounds(e.year, zone)
    expected = expected_periods(e.period, start, min(end, max(start, now)))
    fraction = min(1.0, e.valid_periods / expected) if expected else None
    return ExceedanceCount(value=float(e.exceedances), unit="count", parameter=parameter(e.variable),
                           period=_period("year", start, end, zone),
                           coverage=_coverage(fraction, e.valid_periods, expected, None, start, end, zone),
                           validity=_validity(True), verification=_verification(verified), flag_info=None,
                           calibration=None, is_reference=reference, indicative=not reference,
                           locations_id=e.sensor_id, year=e.year, valid_periods=e.valid_periods,
                           limit=Limit(value=e.limit_ugm3, units="µg/m³", period=e.period, source=e.source))


def alert_event(row: dict[str, Any], zone: ZoneInfo) -> AlertRecordEvent:
    """An `alert_record_page` row; the evidence fields are None when the alert evaluated no period."""
    start: datetime | None = row.get("period_start")
    end: datetime | None = row.get("period_end")
    evidence: dict[str, Any] = {"parameter": None, "period": None, "coverage": None, "validity": None,
                                "verification": None, "flag_info": None, "calibration": None}
    if start is not None and end is not None and row.get("variable") is not None:
        evidence = {"parameter": parameter(row["variable"], row.get("unit")),
                    "period": _period(row.get("period") or "", start, end, zone),
                    "coverage": _coverage(row.get("coverage"), row.get("samples"), None, row.get("valid"), start, end,
                                          zone),
                    "validity": _validity(row.get("valid")), **_evidence(row)}
    kind = row.get("sensor_kind")
    return AlertRecordEvent(
        alert_id=row["alert_id"], event_id=row["event_id"], datetime=instant(row["time"], zone), kind=row["kind"],
        level=row["level"],
        from_level=row["from_level"], severity=row["severity"], actor=row["actor"], actor_role=row["actor_role"],
        via=row["via"], decision_id=row["decision_id"], note=row["note"], locations_id=row["sensor_id"],
        threshold=row["threshold"], source=row["source"], value=row["value"], unit=row["unit"],
        is_reference=None if kind is None else kind == "station", indicative=row.get("indicative"), **evidence)


def location(row: dict[str, Any], *, zone: ZoneInfo, licence: Licence, publisher: Owner) -> Location:
    """A `locations_page` row."""
    reference = row["kind"] == "station"
    return Location(
        id=row["id"], name=row["name"], locality=row["locality"], timezone=zone.key, kind=row["kind"],
        is_monitor=reference, is_reference=reference, indicative=not reference, is_mobile=row["mobile"],
        lifecycle=row["lifecycle"], owner=Owner(name=row["operator"]), provider=publisher,
        coordinates=Coordinates(latitude=row["lat"], longitude=row["lon"]),
        coordinates_precision=row["location_publication"], address=row["address"], elevation=row["elevation_m"],
        sensors=[Sensor(id=f"{row['id']}:{code}", name=code, parameter=parameter(code)) for code in row["parameters"]],
        licenses=[licence])
