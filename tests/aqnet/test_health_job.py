"""aqnet/health_job.py: the health report published as gauges on a fresh registry."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from alerts.health.indicators import Drift
from alerts.health.job import DeviceHealth
from alerts.health.reliability import Reliability
from aqnet.health_job import publish_health
from aqnet.metrics import Metrics

T = datetime(2026, 3, 10, tzinfo=UTC)


def test_report_becomes_gauges_and_missing_figures_are_absent() -> None:
    registry = CollectorRegistry()
    metrics = Metrics.create(registry).health
    up = DeviceHealth("MS01", "MS01", "microsensor", T, None, T, Reliability(86400.0, 10800.0, 1, 1, 75600.0, 10800.0),
                      Reliability(86400.0, 10800.0, 1, 1, 75600.0, 10800.0), 0.5, 0.25, 180.0, "pm25",
                      (Drift("pm25", "USQ", 720, 3.0, 0.5),))
    down = DeviceHealth("USQ-pm", "USQ", "station", T, T, None, Reliability(86400.0, 86400.0, 1, 0, 0.0, None),
                        Reliability(0.0, 0.0, 0, 0, None, None), None, None, 0.0, None)
    publish_health(metrics, [up, down])

    def get(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert get("aqnet_sensors_device_uptime_ratio", sensor_id="MS01", device_id="MS01", window="24h") == 0.875
    assert get("aqnet_sensors_device_completeness_ratio", sensor_id="MS01", device_id="MS01", window="30d") == 0.25
    assert get("aqnet_sensors_device_mttr_seconds", sensor_id="MS01", device_id="MS01") == 10800.0
    assert get("aqnet_sensors_device_flat_seconds", sensor_id="MS01", device_id="MS01") == 10800.0
    assert get("aqnet_sensors_device_drift_per_day", sensor_id="MS01", device_id="MS01", variable="pm25") == 0.5
    assert get("aqnet_sensors_device_down", sensor_id="USQ", device_id="USQ-pm") == 1
    assert get("aqnet_sensors_device_down", sensor_id="MS01", device_id="MS01") == 0
    assert get("aqnet_sensors_device_mttr_seconds", sensor_id="USQ", device_id="USQ-pm") is None
    assert get("aqnet_sensors_device_uptime_ratio", sensor_id="USQ", device_id="USQ-pm", window="30d") is None
    publish_health(metrics, [down])  # MS01 retired: its series disappear
    assert get("aqnet_sensors_device_uptime_ratio", sensor_id="MS01", device_id="MS01", window="24h") is None
