"""alerts.opendata.settings and compliance_render (pure): the `exports` section refuses what it cannot use, naming
the key; the annual report renders as JSON and as CSV the csv module reads back."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.opendata.compliance import Decision, PeriodValue, SeriesInput, annual_report, tabla1_limits
from alerts.opendata.compliance_render import CSV_FIELDS, report_csv, report_json
from aqnet.config import ConfigError, settings_from_dict

TZ = ZoneInfo("America/Bogota")
BASE = {"database": {"url": "postgresql://x/y"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"}}
PUB = {"licence_id": "CC-BY-4.0", "licence_url": "https://creativecommons.org/licenses/by/4.0/", "publisher": "SDA",
       "contact_email": "datos@example.org"}


def exports(open_data: dict[str, object] | None = None, **kw: object) -> object:
    return settings_from_dict({**BASE, "exports": kw, "open_data": open_data or {}}, "aqnet.yaml").exports


def test_exports_defaults_and_a_full_section() -> None:
    e = exports()
    assert e.directory is None and e.daily_at == "02:00" and e.recheck_days == 30  # type: ignore[attr-defined]
    full = exports(PUB, directory="/srv/open-data", daily_at="03:15", base_url="https://datos.example.org/aire/")
    assert full.run_at.hour == 3 and full.run_at.minute == 15  # type: ignore[attr-defined]
    settings = settings_from_dict({**BASE, "exports": {"directory": "/srv/x"}, "open_data": PUB}, "aqnet.yaml")
    assert settings.exports.publication(settings.open_data).publisher == "SDA"


@pytest.mark.parametrize(("section", "message"), [
    ({"daily_at": "25:00"}, "aqnet.yaml: exports.daily_at: expected HH:MM"),
    ({"base_url": "https://x.org/data"}, "aqnet.yaml: exports.base_url: expected an http(s) URL ending in '/'"),
    ({"directory": "/srv/x"}, "open_data.publisher, open_data.contact_email not set"),
    ({"network_slug": "Red Bogotá"}, "aqnet.yaml: exports.network_slug"),
    ({"recheck_days": -1}, "aqnet.yaml: exports.recheck_days"),
    ({"licence_id": "CC0"}, "aqnet.yaml: exports.licence_id: unknown key"),
])
def test_bad_exports_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**BASE, "exports": section}, "aqnet.yaml")
    assert message in str(err.value)


def test_publication_without_publisher_names_what_is_missing() -> None:
    """The licence, publisher and contact are the `open_data` section's (shared with the public API)."""
    settings = settings_from_dict({**BASE, "open_data": {"publisher": "SDA"}}, "aqnet.yaml")
    with pytest.raises(ValueError, match="open_data.contact_email not set"):
        settings.exports.publication(settings.open_data)



def test_report_renders_as_json_and_csv() -> None:
    y0 = datetime(2025, 1, 1, tzinfo=TZ)
    days = [PeriodValue("day", y0 + timedelta(days=i), y0 + timedelta(days=i + 1), 40.0 if i < 2 else 20.5, True)
            for i in range(300)]
    s = SeriesInput("KEN", 'Kennedy, "Carvajal"', "pm25", "µg/m³", days,
                    [Decision(7, "invalidate", y0 + timedelta(days=300), y0 + timedelta(days=301), "maintenance")])
    r = annual_report(2025, TZ, "America/Bogota", [s], tabla1_limits(), datetime(2026, 1, 2, tzinfo=UTC))
    doc = report_json(r, TZ)
    assert doc["period"] == {"start": "2025-01-01T00:00:00-05:00", "end": "2026-01-01T00:00:00-05:00",
                             "convention": doc["period"]["convention"]}
    assert doc["series"][0]["excluded_periods"] == [{"decision_id": 7, "start": "2025-10-28T00:00:00-05:00",
                                                     "end": "2025-10-29T00:00:00-05:00", "hours": 24.0,
                                                     "reason": "maintenance", "device_id": None}]
    text = report_csv(r, TZ)
    assert text.startswith(",".join(CSV_FIELDS) + "\r\n")
    rows = list(csv.DictReader(text.splitlines()))
    assert [(row["figure"], row["averaging"]) for row in rows] == [("annual_mean", "year"), ("exceedances", "day")]
    annual, daily = rows
    assert annual["sensor_name"] == 'Kennedy, "Carvajal"' and annual["value"] == repr((80 + 298 * 20.5) / 300)
    assert (annual["verdict"], annual["valid_periods"], annual["required_periods"]) == ("complies", "300", "274")
    assert annual["exclusions"] == "#7 2025-10-28T00:00:00-05:00/2025-10-29T00:00:00-05:00 maintenance"
    assert (daily["value"], daily["limit_ugm3"], daily["verdict"], daily["max_value"]) == \
        ("2", "37.0", "exceeded", "40.0")
    assert annual["partial"] == "false" and annual["timezone"] == "America/Bogota"
