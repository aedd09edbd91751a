"""The commissioning verdict and its rendering (ingest.commission.judge, aqnet.cli.field), without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aqnet.cli.field import render_report, report_json
from ingest.commission import FAIL_FLAGS, WARN_FLAGS, CommissionReport, DeviceCheck, Rejected, flag_names, judge
from ingest.reading import EXCLUDED, QC, Reading
from sensors.network import bundled_network
from storage.commission_store import sensor_of
from storage.registry import spec_from_sensor
from storage.registry.models import SensorRecord

T = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


NO_FLAGS = QC(0)


def reading(variable: str = "pm25", flags: QC = NO_FLAGS, raw: float = 12.0, device: str = "D1") -> Reading:
    return Reading("S1", device, variable, T, raw * 1.1, "µg/m³", flags, raw, "ug/m3", T)


def check(status: str = "ok", *readings: Reading, **kw: object) -> DeviceCheck:
    return DeviceCheck("D1", "modbus-tcp", "127.0.0.1:5020 unit 1", status, readings=readings, **kw)  # type: ignore[arg-type]


def test_flag_names_in_bit_order() -> None:
    assert flag_names(QC.RECEIVE_TIME | QC.NEGATIVE | QC.OUT_OF_RANGE) == ("OUT_OF_RANGE", "NEGATIVE",
                                                                           "RECEIVE_TIME")
    assert flag_names(QC(0)) == ()


def test_every_excluding_flag_fails_but_maintenance_warns() -> None:
    assert FAIL_FLAGS | QC.MAINTENANCE == EXCLUDED
    assert not FAIL_FLAGS & WARN_FLAGS
    assert not (QC.CALIBRATED | QC.RECEIVE_TIME) & (FAIL_FLAGS | WARN_FLAGS)


def test_healthy_device_passes() -> None:
    verdict, findings = judge([check("ok", reading(), reading("pm10", QC.RECEIVE_TIME | QC.CALIBRATED))])
    assert (verdict, findings) == ("PASS", ())


def test_unreachable_device_fails_with_its_detail() -> None:
    verdict, findings = judge([check("ok", reading()),
                               DeviceCheck("D2", "modbus-tcp", "10.0.0.9:502 unit 3", "unreachable",
                                           "connection: refused")])
    assert verdict == "FAIL"
    assert [(f.level, f.device_id) for f in findings] == [("FAIL", "D2")]
    assert "unreachable: connection: refused" in findings[0].message


def test_flags_grade_the_verdict() -> None:
    assert judge([check("ok", reading(flags=QC.OUT_OF_RANGE))])[0] == "FAIL"
    assert judge([check("ok", reading(flags=QC.DEVICE_INVALID))])[0] == "FAIL"
    assert judge([check("ok", reading(flags=QC.CLOCK_SKEW))])[0] == "FAIL"
    verdict, findings = judge([check("ok", reading(flags=QC.NEGATIVE, raw=-1.5))])
    assert verdict == "WARN"
    assert findings[0].message == "pm25 = -1.5 ug/m3: NEGATIVE"
    assert judge([check("ok", reading(flags=QC.MAINTENANCE))])[0] == "WARN"


def test_rejected_values_and_missing_variables() -> None:
    verdict, findings = judge([check("ok", reading(), rejected=(Rejected("no2", "unit", "unknown unit 'ppq'"),))])
    assert verdict == "FAIL" and "no2 rejected (unit): unknown unit 'ppq'" in findings[0].message
    verdict, findings = judge([check("ok", reading(), missing=("pm10",))])
    assert verdict == "WARN" and findings[0].message == "registered but not reported: pm10"


def test_http_push_devices_warn_with_their_last_reading_or_fail_without() -> None:
    stored = DeviceCheck("D1", "http", "HTTP push", "not_pullable", "pushes over HTTP", (reading(),), stored=True)
    verdict, findings = judge([stored])
    assert verdict == "WARN" and T.isoformat() in findings[0].message
    assert judge([DeviceCheck("D1", "http", "HTTP push", "not_pullable", "pushes over HTTP")])[0] == "FAIL"


def test_a_sensor_without_devices_fails() -> None:
    verdict, findings = judge([])
    assert verdict == "FAIL" and "no active device" in findings[0].message


def report(*devices: DeviceCheck) -> CommissionReport:
    verdict, findings = judge(devices)
    return CommissionReport("S1", "Sensor one", "station", "commissioning", T, devices, verdict, findings)


def test_table_shows_raw_normalised_flags_and_verdict() -> None:
    text = render_report(report(check("ok", reading(flags=QC.NEGATIVE | QC.RECEIVE_TIME, raw=-2.0)),
                                DeviceCheck("D2", "mqtt", "mqtt://127.0.0.1:1883 topic aqnet/S1/readings",
                                            "no_message", "no message within 5 s")))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("DEVICE") and "VARIABLE" in line)
    row = lines[lines.index(header) + 1]
    assert row.split()[:6] == ["D1", "pm25", "-2", "ug/m3", "-2.2", "µg/m³"]
    assert "NEGATIVE,RECEIVE_TIME" in row
    assert header.index("RAW") == row.index("-2 ug/m3")  # aligned columns
    assert "FAIL  D2: no_message: no message within 5 s" in lines
    assert lines[-1] == "verdict: FAIL"


def test_json_carries_flags_as_names_and_bits() -> None:
    doc = report_json(report(check("ok", reading(flags=QC.CALIBRATED))))
    json.dumps(doc)
    assert doc["verdict"] == "PASS"
    r = doc["devices"][0]["readings"][0]
    assert (r["flags"], r["flag_names"], r["raw_value"], r["raw_unit"]) == (256, ["CALIBRATED"], 12.0, "ug/m3")


def test_sensor_of_a_record_is_what_the_drivers_take() -> None:
    station = next(s for s in bundled_network() if s.kind == "station")
    spec = spec_from_sensor(station)
    record = SensorRecord(**spec.model_dump(), created_at=T, updated_at=T)
    assert sensor_of(record) == station
