"""The daemon's device-health job and its metrics (shell wiring): every `health.every_s`, on the jobs' leader,
`alerts.health.update_status` records devices going down and up, then `alerts.health.device_health` is published
as the health gauges (aqnet.metrics.HealthMetrics). A failing run logs and waits for its next tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.health import DeviceHealth, HealthPolicy, device_health, update_status
from alerts.leader import Leadership
from alerts.settings import HealthSettings
from aqnet.metrics import HealthMetrics
from sensors.clock import Clock

__all__ = ["add_health_job", "health_policy", "publish_health"]

log = logging.getLogger(__name__)


def health_policy(h: HealthSettings) -> HealthPolicy:
    """The job's policy from the `health` settings."""
    return HealthPolicy(down_after_station=timedelta(seconds=h.down_after_station_s),
                        down_after_microsensor=timedelta(seconds=h.down_after_microsensor_s),
                        flatline_tolerance=h.flatline_tolerance,
                        colocation_max_distance_m=h.colocation_max_distance_m)


def publish_health(metrics: HealthMetrics, report: Sequence[DeviceHealth]) -> None:
    """Set the health gauges from a report; a figure that does not exist (no outage, no pair) is removed."""
    for gauge in (metrics.uptime, metrics.completeness, metrics.mtbf, metrics.mttr, metrics.down, metrics.flat,
                  metrics.drift):
        gauge.clear()  # devices retired since the last run disappear
    for h in report:
        labels = (h.sensor_id, h.device_id)
        for window, rel, comp in (("24h", h.short, h.completeness_24h), ("30d", h.long, h.completeness_30d)):
            if rel.uptime is not None:
                metrics.uptime.labels(*labels, window).set(rel.uptime)
            if comp is not None:
                metrics.completeness.labels(*labels, window).set(comp)
        if h.long.mtbf_s is not None:
            metrics.mtbf.labels(*labels).set(h.long.mtbf_s)
        if h.long.mttr_s is not None:
            metrics.mttr.labels(*labels).set(h.long.mttr_s)
        metrics.down.labels(*labels).set(1 if h.down_since is not None else 0)
        metrics.flat.labels(*labels).set(h.flat_minutes * 60.0)
        for d in h.drifts:
            if d.per_day is not None:
                metrics.drift.labels(*labels, d.variable).set(d.per_day)


def add_health_job(scheduler: AsyncIOScheduler, database_url: str, settings: HealthSettings, *, clock: Clock,
                   settle_s: float, leadership: Leadership, metrics: HealthMetrics | None) -> None:
    """Add the 'health' job (module docstring); `settle_s` keeps receive times still being written out of a run."""
    policy = health_policy(settings)

    async def health_job() -> None:
        if not leadership.is_leader:
            return
        now: datetime = clock() - timedelta(seconds=settle_s)

        def work() -> list[DeviceHealth]:
            with psycopg.connect(database_url, autocommit=True, application_name="aqnet-health") as conn:
                update_status(conn, now, policy)
                return device_health(conn, now, policy)

        try:
            report = await asyncio.to_thread(work)
        except psycopg.Error as exc:  # the database is away, or refused: the next tick catches up
            log.error("device health not computed at %s (retried next tick): %s", now.isoformat(), exc)
            return
        if metrics is not None:
            publish_health(metrics, report)

    scheduler.add_job(health_job, "interval", seconds=settings.every_s, id="health", max_instances=1, coalesce=True)
