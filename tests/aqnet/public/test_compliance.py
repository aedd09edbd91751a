"""aqnet.public.compliance's router on a bare FastAPI app over a real TimescaleDB: the seeded year's report as JSON
(fields by name) and CSV, cache headers, 404 for a year not begun, 422 out of range, 503 without a source, writes
refused."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aqnet.public.compliance import database_report_source, router
from tests.alerts.opendata.test_compliance_read import seeded  # noqa: F401 - a fixture

NOW = datetime(2026, 1, 15, tzinfo=UTC)


def client(url: str | None) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    if url is not None:
        app.state.compliance_source = database_report_source(url, "America/Bogota", clock=lambda: NOW)
    return TestClient(app)


def test_report_as_json_with_coverage_and_exclusions(seeded: Any) -> None:  # noqa: F811
    url, ids = seeded
    with client(url) as c:
        r = c.get("/v1/compliance/2025")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "public, max-age=3600"
    doc = r.json()
    assert (doc["year"], doc["timezone"], doc["partial"]) == (2025, "America/Bogota", False)
    assert doc["period"]["start"] == "2025-01-01T00:00:00-05:00" and "75 %" in doc["rules"]
    pm25 = next(s for s in doc["series"] if s["variable"] == "pm25")
    assert pm25["annual_mean"] == {"value": pytest.approx(6300 / 305), "valid": True, "valid_days": 305, "days": 365,
                                   "required_days": 274, "coverage": pytest.approx(305 / 365), "limit_ugm3": 25.0,
                                   "limit_source": pm25["annual_mean"]["limit_source"], "verdict": "complies"}
    (day,) = pm25["exceedances"]
    assert (day["averaging"], day["count"], day["valid_periods"], day["expected_periods"], day["verdict"]) == \
        ("day", 10, 305, 365, "exceeded")
    assert [e["decision_id"] for e in pm25["excluded_periods"]] == [ids["no2_wide"], ids["fault"], ids["fault"]]
    assert pm25["excluded_hours"] == 99.0


def test_report_as_csv(seeded: Any) -> None:  # noqa: F811
    url, _ = seeded
    with client(url) as c:
        r = c.get("/v1/compliance/2025", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="compliance-2025.csv"'
    rows = list(csv.DictReader(r.content.decode("utf-8").splitlines()))
    no2 = [(row["figure"], row["averaging"], row["value"], row["verdict"]) for row in rows if row["variable"] == "no2"]
    assert no2 == [("annual_mean", "year", "", "no_data"), ("exceedances", "1h", "2", "exceeded")]


def test_refusals(seeded: Any) -> None:  # noqa: F811
    url, _ = seeded
    with client(url) as c:
        assert c.get("/v1/compliance/2027").status_code == 404
        assert c.get("/v1/compliance/1800").status_code == 422
        assert c.get("/v1/compliance/2025", params={"format": "xml"}).status_code == 422
        assert c.post("/v1/compliance/2025").status_code == 405
        current = c.get("/v1/compliance/2026")
        assert current.status_code == 200 and current.json()["partial"] is True
        assert current.headers["cache-control"] == "public, max-age=300"
    with client(None) as c:
        assert c.get("/v1/compliance/2025").status_code == 503
