"""The daemon's start step for its scheduled jobs, on one APScheduler. Shell (aqnet), I/O.

The stage jobs of `aqnet.schedule` (averages, indices, alert rules and deliveries, housekeeping), the calibrations
refresh and the dead-letter pruning, watched by `aqnet.scheduler_watch`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta, tzinfo
from typing import Any

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg_pool import AsyncConnectionPool

from alerts.delivery.dispatch import Dispatcher
from alerts.rules.model import Rule
from aqnet.daemon.wiring import Wiring
from aqnet.job_stop import quiet_jobs
from aqnet.schedule import add_stage_jobs
from aqnet.scheduler_watch import SchedulerWatch
from ingest.calibration import CalibrationError
from ingest.pipeline import Pipeline
from storage import deadletter
from storage.registry.calibrations import load_calibration_book

__all__ = ["start_scheduler"]

log = logging.getLogger(__name__)


def start_scheduler(w: Wiring, pool: AsyncConnectionPool[Any], pipeline: Pipeline, *, tz: tzinfo,
                    cadences: Mapping[str, float], dispatcher: Dispatcher, rules: Sequence[Rule]) -> AsyncIOScheduler:
    """Add every job and start the scheduler; its watchdog runs as a task that cannot be restarted.

    `cadences`: device id → expected seconds between its samples, updated in place by live reload (the averages
    job reads it each time it runs)."""
    s = w.settings
    scheduler = AsyncIOScheduler(timezone=tz)
    add_stage_jobs(scheduler, s, clock=w.clock, tz=tz, cadences=cadences, rules=rules, dispatcher=dispatcher,
                   metrics=w.metrics, pool=pool)

    async def calibrations_job() -> None:
        try:
            async with pool.connection() as conn:
                book = await load_calibration_book(conn)
        except (psycopg.OperationalError, CalibrationError) as exc:
            log.error("calibrations not refreshed (keeping the ones in force): %s", exc)
            return
        pipeline.calibrations = book

    scheduler.add_job(calibrations_job, "interval", seconds=s.ingest.calibration_refresh_s,
                      id="calibrations", max_instances=1, coalesce=True)
    dl = s.dead_letters

    async def prune_dead_letters_job() -> None:
        async with pool.connection() as conn:
            deleted = await deadletter.prune(conn, dl.max_rows, max_bytes=dl.max_bytes,
                                             max_age=timedelta(days=dl.max_age_days))
        if deleted:
            log.info("dead letters: pruned %d beyond the bounds (%d letters, %d bytes, %g days)", deleted,
                     dl.max_rows, dl.max_bytes, dl.max_age_days)

    scheduler.add_job(prune_dead_letters_job, "interval", seconds=dl.prune_every_s,
                      id="dead-letters-prune", max_instances=1, coalesce=True, next_run_time=w.clock())
    quiet_jobs(scheduler)  # these two as well: a stop ends every job without a traceback (aqnet.job_stop)
    scheduler.start()
    w.stack.callback(_shutdown, scheduler)  # after a failed start; a clean stop shuts it down while draining
    # the scheduler and its jobs (the alert dispatcher's `deliveries` among them) cannot be restarted from
    # outside: down means the daemon exits (aqnet.scheduler_watch)
    sv = s.supervision
    watch = SchedulerWatch(scheduler, job_stuck_s=sv.job_stuck_s, job_error_limit=sv.job_error_limit)
    w.start("scheduler", watch.run, restart=False)
    return scheduler


def _shutdown(scheduler: AsyncIOScheduler) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=False)
