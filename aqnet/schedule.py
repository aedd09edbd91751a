"""The daemon's scheduled stage jobs (APScheduler 3.x): averages and alert rules. Wiring only: each job reads the
injected clock and calls a pure-over-`now` stage function in a worker thread; APScheduler ticks in real time, so
every job computes everything due up to the clock's now (the same call catches up after downtime and drives
accelerated simulations)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.jobs import compute_averages, evaluate_alerts
from alerts.rules import default_rules, parse_rules
from aqnet.config import Settings
from sensors.clock import Clock

__all__ = ["add_stage_jobs"]

log = logging.getLogger(__name__)


def add_stage_jobs(scheduler: AsyncIOScheduler, settings: Settings, *, clock: Clock, tz: tzinfo,
                   cadences: Mapping[str, float]) -> None:
    """Add the averaging and alerting jobs to `scheduler`.

    `cadences`: device id → expected seconds between its samples (simulated seconds), for completeness.
    """
    s = settings
    rules = (parse_rules(Path(s.scheduler.rules_file).read_text(encoding="utf-8"), source=s.scheduler.rules_file)
             if s.scheduler.rules_file else default_rules())

    async def averages_job() -> None:
        now = clock()

        def work() -> None:
            with psycopg.connect(s.database.url, autocommit=True) as conn:
                compute_averages(conn, now, cadence_s=cadences, tz=tz)
                events = evaluate_alerts(conn, now, rules, tz=tz)
            for event in events:
                log.warning("alert: %s", event)

        await asyncio.to_thread(work)

    scheduler.add_job(averages_job, "interval", seconds=s.scheduler.averages_every_s, id="averages",
                      max_instances=1, coalesce=True, next_run_time=clock())
