"""aqnet/health_job.py: the health report published as gauges on a fresh registry, and the scheduled job on
the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from alerts.health.indicators import Drift
from alerts.health.job import DeviceHealth
from alerts.health.reliability import Reliability
from aqnet.config import settings_from_dict
from aqnet.health_job import publish_health
from aqnet.metrics import Metrics
from aqnet.schedule import add_stage_jobs
from tests.alerts.health.seed import NOW, seeded

__all__ = ["seeded"]  # the fixture, used by name

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


async def test_the_scheduled_health_job_records_outages_and_publishes_gauges_on_the_leader(seeded: str) -> None:
    """The daemon's 'health' job (added by add_stage_jobs) on the seeded network: nothing as a standby; as the
    leader, MS01's outage recorded and its gauges set."""
    s = settings_from_dict({"database": {"url": seeded}, "mqtt": {"url": "mqtt://127.0.0.1:1"},
                            "scheduler": {"settle_s": 0}, "health": {"every_s": 120}})
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: NOW, tz=UTC, cadences={}, rules=[], metrics=metrics)
    labels = {"sensor_id": "MS01", "device_id": "MS01", "window": "24h"}
    try:
        job = scheduler.get_job("health")
        assert job is not None and job.trigger.interval == timedelta(seconds=120)
        await job.func()  # not the leader: nothing recorded
        assert registry.get_sample_value("aqnet_sensors_device_uptime_ratio", labels) is None
        assert await asyncio.to_thread(leadership.hold)
        await job.func()
        assert registry.get_sample_value("aqnet_sensors_device_uptime_ratio", labels) == 21 / 24
        assert registry.get_sample_value("aqnet_sensors_device_mttr_seconds",
                                         {"sensor_id": "MS01", "device_id": "MS01"}) == 3 * 3600
        with psycopg.connect(seeded) as conn:
            row = conn.execute("SELECT count(*) FROM device_status_events WHERE device_id = 'MS01'").fetchone()
        assert row == (2,)
    finally:
        leadership.release()
