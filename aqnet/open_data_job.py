"""The daemon's daily open-data export job (shell wiring): once a day at `exports.daily_at` in the network's time
zone, on the jobs' leader only, `alerts.opendata.export_job.run_daily` exports yesterday, re-exports the
`exports.recheck_days` before it that a validation decision or late data changed, and rewrites the DCAT
catalogue. Added only when `exports.directory` is set. A failing run logs and waits for the next day (or
`aqnet export day`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import tzinfo
from pathlib import Path

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from alerts.leader import Leadership
from alerts.opendata.export_job import ExportResult, ExportTarget, run_daily
from alerts.opendata.settings import ExportsSettings, PublicationSource
from sensors.clock import Clock

__all__ = ["JOB_ID", "add_export_job", "export_target"]

log = logging.getLogger(__name__)

JOB_ID = "open-data-export"


def export_target(exports: ExportsSettings, open_data: PublicationSource, timezone: str) -> ExportTarget:
    """Where and as whom (the `open_data` section) the scheduled exports are written; ValueError when
    `exports.directory` is unset or the publisher is not said."""
    if exports.directory is None:
        raise ValueError("exports.directory is not set: no scheduled export")
    return ExportTarget(Path(exports.directory), exports.publication(open_data), exports.network(timezone),
                        base_url=exports.base_url)


def add_export_job(scheduler: AsyncIOScheduler, database_url: str, exports: ExportsSettings,
                   open_data: PublicationSource, *, clock: Clock, tz: tzinfo, timezone: str,
                   leadership: Leadership) -> None:
    """Add the 'open-data-export' job (module docstring): a cron trigger at `exports.daily_at` in `tz`."""
    target = export_target(exports, open_data, timezone)

    async def export_job() -> list[ExportResult]:
        if not leadership.is_leader:
            return []
        now = clock()

        def work() -> list[ExportResult]:
            with psycopg.connect(database_url, autocommit=True, application_name="aqnet-export") as conn:
                return run_daily(conn, target, now, exports.recheck_days)

        try:
            return await asyncio.to_thread(work)
        except (psycopg.Error, OSError) as exc:  # the database or the disk is away: tomorrow's run re-checks
            log.error("open-data export at %s failed (run `aqnet export day` or wait for the next run): %s",
                      now.isoformat(), exc)
            return []

    at = exports.run_at
    scheduler.add_job(export_job, CronTrigger(hour=at.hour, minute=at.minute, timezone=tz), id=JOB_ID,
                      max_instances=1, coalesce=True, misfire_grace_time=6 * 3600)
