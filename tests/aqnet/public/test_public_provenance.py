"""Provenance on every kind of public value, against a real TimescaleDB with the simulated PM2.5 episode
(`tests/e2e/alert_harness.py`: Kennedy's episode raises KEN's 24-h alert at hour 31) through the real write path
and stage jobs (averages, indices, rules), plus validation decisions taken with `storage.validation.decide`, a
QC flag and a calibration set on stored readings, and KEN's location published coarse. Every value the public
API serves — latest, hourly, daily, index, exceedance count and period, alert record — is checked field by field
by name, and the CSV of the hours parses with Python's csv module."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection

from aqnet.config import PublicSettings
from ingest.validation import VALIDITY_URI, VERIFICATION_URI, Period, Scope
from storage.publication import set_publication
from storage.validation import decide
from tests.aqnet.public.public_server import public_server
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration

SENSOR, DEVICE = "KEN", "KEN-pm"
RAISED_AT = 31  #: KEN's 24-h PM2.5 mean reaches prevention at hour 31 (alert_harness's table)
LAST_HOUR = 49  #: the second local day (hours 25..48) is complete and averaged
SPIKE_HOUR, CALIBRATED_HOUR = 5, 6  #: hours whose readings get a QC flag, a calibration
VALIDATED = (1, 12)  #: hours validated by a person: [end_of(1), end_of(12)) — the hours ending at 2..12
INVALIDATED = (28, 30)  #: hours invalidated for maintenance, inside the raised alert's evidence


def _instant(value: dict[str, Any]) -> tuple[datetime, datetime]:
    assert set(value) == {"utc", "local"}
    utc, local = datetime.fromisoformat(value["utc"]), datetime.fromisoformat(value["local"])
    assert utc == local and utc.utcoffset() == timedelta(0) and local.utcoffset() == timedelta(hours=-5)
    return utc, local


def assert_provenance(value: dict[str, Any], *, label: str, optional: tuple[str, ...] = ()) -> None:
    """Every provenance field, by name, with its shape (`optional`: fields that may be null for this kind)."""
    for key in ("value", "unit", "parameter", "period", "coverage", "validity", "verification", "flagInfo",
                "calibration", "isReference", "indicative"):
        assert key in value, f"{label}: no {key} in {sorted(value)}"
    assert isinstance(value["unit"], str) and value["unit"]
    assert set(value["parameter"]) == {"id", "name", "units", "displayName"}
    period = value["period"]
    assert set(period) == {"label", "interval", "convention", "datetimeFrom", "datetimeTo"}
    assert period["convention"] == "period-ending"
    start, _ = _instant(period["datetimeFrom"])
    end, _ = _instant(period["datetimeTo"])
    assert start < end
    coverage = value["coverage"]
    assert set(coverage) == {"percentCoverage", "fraction", "observedCount", "expectedCount", "complete",
                             "datetimeFrom", "datetimeTo"}
    assert coverage["datetimeFrom"] == period["datetimeFrom"] and coverage["datetimeTo"] == period["datetimeTo"]
    if coverage["fraction"] is not None:
        assert 0 <= coverage["fraction"] <= 1
        assert coverage["percentCoverage"] == pytest.approx(coverage["fraction"] * 100, abs=1e-3)
    for code, uri in (("validity", VALIDITY_URI), ("verification", VERIFICATION_URI)):
        if value[code] is None and code in optional:
            continue
        assert set(value[code]) == {"code", "label", "vocabulary"} and value[code]["vocabulary"] == uri
    assert value["verification"]["code"] in (1, 3)
    for key, fields in (("flagInfo", {"hasFlags", "flags"}), ("calibration", {"calibrated", "ids"})):
        if value[key] is None and key in optional:
            continue
        assert set(value[key]) == fields
    assert value["isReference"] is True and value["indicative"] is False  # KEN is a reference station


async def _decide(harness: AlertHarness, database_url: str) -> tuple[int, int]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await decide(conn, "validate", scope=Scope(SENSOR, None, "pm25"),
                                 period=Period(harness.end_of(VALIDATED[0]), harness.end_of(VALIDATED[1])),
                                 actor="tec-ana", role="technician", via="api", now=harness.now)
        invalidated = await decide(conn, "invalidate", scope=Scope(SENSOR, DEVICE, "pm25"),
                                   period=Period(harness.end_of(INVALIDATED[0]), harness.end_of(INVALIDATED[1])),
                                   reason="maintenance", text="inlet cleaned by tec-ana", actor="tec-ana",
                                   role="technician", via="api", now=harness.now)
        await set_publication(conn, SENSOR, operator="Secretaría Distrital de Ambiente", location_publication="coarse",
                              actor="pytest")
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO calibrations (device_id, variable, kind, coefficients, unit, valid_from, "
                              "source) VALUES (%s, 'pm25', 'linear', '{1.0, 0.0}', 'ug/m3', %s, 'pytest') RETURNING id",
                              (DEVICE, harness.end_of(0)))
            row = await cur.fetchone()
            assert row is not None
            # a suspect flag on the readings of one hour, a calibration on those of another (both kept in averages)
            await cur.execute("UPDATE measurements SET flags = flags | 4 WHERE sensor_id = %s AND variable = 'pm25' "
                              "AND time >= %s AND time < %s",
                              (SENSOR, harness.end_of(SPIKE_HOUR - 1), harness.end_of(SPIKE_HOUR)))
            await cur.execute("UPDATE measurements SET flags = flags | 256, calibration_id = %s WHERE sensor_id = %s "
                              "AND variable = 'pm25' AND time >= %s AND time < %s",
                              (row[0], SENSOR, harness.end_of(CALIBRATED_HOUR - 1), harness.end_of(CALIBRATED_HOUR)))
    return invalidated.id, int(row[0])


async def test_every_public_value_carries_its_provenance(database_url: str) -> None:
    async with AlertHarness(database_url, test_rules(), stations=(SENSOR,)) as harness:
        await harness.warm_up(23)
        await harness.advance(RAISED_AT - 23)
        invalidation, calibration = await _decide(harness, database_url)
        await harness.advance(LAST_HOUR - RAISED_AT)
        now = harness.now
        with public_server(database_url, clock=lambda: now) as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                await _check_all(http, harness, invalidation, calibration)
        # the operator may publish who acted (public.show_names): the record then names the technician
        named = PublicSettings(requests_per_minute=100_000, show_names=True)
        with public_server(database_url, public=named, clock=lambda: now) as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                record = await _get(http, "/v1/alerts/record", locations_id=SENSOR)
        event = next(e for e in record if e["kind"] == "evidence_invalidated")
        assert (event["actor"], event["actorRole"]) == ("tec-ana", "technician")


async def _get(http: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = await http.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    body = answer.json()
    assert body["meta"]["license"]["id"] and body["meta"]["timeConvention"].startswith("period-ending")
    assert body["meta"]["found"] >= len(body["results"])
    return list(body["results"])


async def _check_all(http: httpx.AsyncClient, h: AlertHarness, invalidation: int, calibration: int) -> None:
    (location,) = await _get(http, f"/v1/locations/{SENSOR}")
    assert location["coordinatesPrecision"] == "coarse" and location["address"] == ""
    assert location["owner"]["name"] == "Secretaría Distrital de Ambiente"

    # latest: the last hourly average of each variable
    latest = await _get(http, "/v1/latest", locations_id=SENSOR)
    assert sorted(v["parameter"]["id"] for v in latest) == ["pm10", "pm25"]
    for value in latest:
        assert_provenance(value, label="latest")
        assert _instant(value["datetime"])[0] == h.end_of(LAST_HOUR)
        assert value["period"]["label"] == "1h" and value["period"]["interval"] == "PT1H"
        assert value["unit"] == value["parameter"]["units"] == "µg/m³"

    # hourly: the validated hours are verified, the invalidated ones verified and not valid, flags and calibration
    hours = await _get(http, f"/v1/locations/{SENSOR}/parameters/pm25/hours",
                       datetime_from=h.end_of(0).isoformat(), datetime_to=h.end_of(LAST_HOUR).isoformat(), limit=1000)
    assert len(hours) == LAST_HOUR
    by_end = {_instant(v["period"]["datetimeTo"])[0]: v for v in hours}
    for hour in range(1, LAST_HOUR + 1):
        value = by_end[h.end_of(hour)]
        assert_provenance(value, label=f"hour {hour}")
        assert _instant(value["period"]["datetimeFrom"])[0] == h.end_of(hour - 1)
        verified = VALIDATED[0] < hour <= VALIDATED[1] or INVALIDATED[0] < hour <= INVALIDATED[1]
        assert value["verification"] == {"code": 1 if verified else 3,
                                         "label": "verified" if verified else "not verified",
                                         "vocabulary": VERIFICATION_URI}, hour
        invalid = INVALIDATED[0] < hour <= INVALIDATED[1]
        assert value["validity"]["code"] == (-1 if invalid else 1), hour
        assert value["coverage"]["complete"] is (not invalid)
        assert (value["value"] is None) is invalid
        assert value["coverage"]["observedCount"] == (0 if invalid else 6)  # one reading every 10 min
        flags = {SPIKE_HOUR: ["SPIKE"], CALIBRATED_HOUR: ["CALIBRATED"]}.get(hour, [])
        assert value["flagInfo"] == {"hasFlags": bool(flags), "flags": flags}, hour
        assert value["calibration"] == ({"calibrated": True, "ids": [calibration]} if hour == CALIBRATED_HOUR
                                        else {"calibrated": False, "ids": []}), hour

    # daily: calendar days in Bogotá, stamped at their end (local midnight)
    days = await _get(http, f"/v1/locations/{SENSOR}/parameters/pm25/days",
                      datetime_from=h.end_of(0).isoformat(), datetime_to=h.end_of(LAST_HOUR).isoformat())
    assert [_instant(d["period"]["datetimeTo"])[1].hour for d in days] == [0, 0]
    for value in days:
        assert_provenance(value, label="day")
        assert value["period"]["label"] == "day" and value["period"]["interval"] == "P1D"
        assert value["verification"]["code"] == 3  # a day is verified only when decisions cover all of it
    assert days[1]["flagInfo"]["flags"] == [] and days[0]["flagInfo"]["flags"] == ["SPIKE", "CALIBRATED"]
    # a day's count is of valid hours: the second day lost the two invalidated ones
    assert [(d["coverage"]["observedCount"], d["coverage"]["expectedCount"]) for d in days] == [(24, 24), (22, 24)]
    assert days[0]["calibration"]["ids"] == [calibration]

    # indices: the NowCast's 12 hours behind the current IBOCA and US AQI, the dominant pollutant
    indices = await _get(http, "/v1/indices/latest", locations_id=SENSOR)
    assert sorted(i["index"] for i in indices) == ["iboca", "us_aqi"]
    for value in indices:
        assert_provenance(value, label="index")
        assert value["period"]["label"] == "nowcast" and value["coverage"]["expectedCount"] == 12
        assert value["parameter"]["id"] in ("pm25", "pm10") and value["category"] and value["colour"].startswith("#")
        assert _instant(value["period"]["datetimeTo"])[0] - _instant(value["period"]["datetimeFrom"])[0] == \
            timedelta(hours=12)

    # exceedances: the yearly counts (the officers' query) and each exceeding period
    counts = await _get(http, "/v1/exceedances", locations_id=SENSOR)
    assert {(c["parameter"]["id"], c["limit"]["period"]) for c in counts} >= {("pm25", "day"), ("pm10", "day")}
    for value in counts:
        assert_provenance(value, label="exceedance count", optional=("flagInfo", "calibration"))
        assert value["unit"] == "count" and value["period"]["label"] == "year"
        assert value["validPeriods"] == value["coverage"]["observedCount"] and value["coverage"]["expectedCount"] > 0
        assert "Res. 2254/2017" in value["limit"]["source"]
    periods = await _get(http, "/v1/exceedances/periods", locations_id=SENSOR,
                         datetime_from=h.end_of(0).isoformat(), datetime_to=h.end_of(LAST_HOUR).isoformat())
    pm25_day = next(c for c in counts if c["parameter"]["id"] == "pm25" and c["limit"]["period"] == "day")
    assert len([p for p in periods if p["parameter"]["id"] == "pm25"]) == pm25_day["value"]
    assert periods, f"no exceedance in the episode: {[(c['parameter']['id'], c['value']) for c in counts]}"
    for value in periods:
        assert_provenance(value, label="exceedance period")
        assert value["value"] > value["limit"]["value"] and value["validity"]["code"] == 1

    # the alert record: roles, not names; the evidence's provenance on every transition
    record = await _get(http, "/v1/alerts/record", locations_id=SENSOR)
    kinds = [e["kind"] for e in record]
    assert kinds[0] == "raised" and "evidence_invalidated" in kinds
    for event in record:
        assert_provenance(event, label=f"alert event {event['kind']}", optional=("validity",))
        assert event["actor"] in ("system", "technician", "officer") and "tec-ana" not in str(event)
        assert event["period"]["label"] == "24h" and event["threshold"] is not None
    invalidated = next(e for e in record if e["kind"] == "evidence_invalidated")
    assert invalidated["decisionId"] == invalidation and invalidated["actorRole"] == "technician"

    # CSV of the hours: RFC 4180, UTF-8, decimal point, times with their offset
    answer = await http.get(f"/v1/locations/{SENSOR}/parameters/pm25/hours",
                            params={"datetime_from": h.end_of(0).isoformat(),
                                    "datetime_to": h.end_of(LAST_HOUR).isoformat(), "limit": 1000},
                            headers={"Accept": "text/csv"})
    assert answer.headers["content-type"].startswith("text/csv; charset=utf-8")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8"), newline="")))
    assert len(rows) == LAST_HOUR
    for row, value in zip(rows, hours, strict=True):
        assert row["unit"] == "µg/m³" and row["period.convention"] == "period-ending"
        assert datetime.fromisoformat(row["period.datetimeTo.local"]) == datetime.fromisoformat(
            value["period"]["datetimeTo"]["local"])
        assert row["period.datetimeTo.local"].endswith("-05:00")
        assert (float(row["value"]) if row["value"] else None) == value["value"]
        assert row["flagInfo.flags"] == ";".join(value["flagInfo"]["flags"])
        assert row["verification.label"] == value["verification"]["label"]
