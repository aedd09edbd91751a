"""The daemon's scheduled stage jobs (APScheduler 3.x): leader election, then averages, indices and alert rules on
the leader only. Wiring only: each job reads the injected clock and calls a pure-over-`now` stage function in a
worker thread; APScheduler ticks in real time, so every run computes everything due up to the clock's now (the
same call catches up after downtime and drives accelerated simulations).

- 'jobs-leader' (every `scheduler.leader_check_s`): keep or take the PostgreSQL advisory lock
  (`alerts.leader.Leadership`); on becoming the leader, run 'averages' at once (catch-up).
- 'averages' (every `scheduler.averages_every_s`): on the leader, `alerts.jobs.run_stage_jobs`: the averages and
  indices due up to ``clock() - settle_s`` and those late data touched, then the alert rules.
The leader's connection is closed when the scheduler shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import psycopg
from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.jobs import run_stage_jobs
from alerts.leader import Leadership
from alerts.rules import default_rules, parse_rules
from aqnet.config import Settings
from sensors.clock import Clock

__all__ = ["add_stage_jobs"]

log = logging.getLogger(__name__)


def add_stage_jobs(scheduler: AsyncIOScheduler, settings: Settings, *, clock: Clock, tz: tzinfo,
                   cadences: Mapping[str, float]) -> Leadership:
    """Add the leader-election and averaging/alerting jobs to `scheduler`; return the leadership (closed with the
    scheduler).

    `cadences`: device id → expected seconds between its samples (simulated seconds), for completeness.
    """
    s = settings
    rules = (parse_rules(Path(s.alerts.rules_file).read_text(encoding="utf-8"), source=s.alerts.rules_file)
             if s.alerts.rules_file else default_rules())
    leadership = Leadership(s.database.url)

    async def leader_job() -> None:
        was = leadership.is_leader
        if await asyncio.to_thread(leadership.hold) and not was:
            # catch up at once rather than at the next tick (scheduling is in wall time, not the sim clock)
            job = scheduler.get_job("averages")
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))

    async def averages_job() -> None:
        if not leadership.is_leader:
            return
        now = clock()

        def work() -> None:
            with psycopg.connect(s.database.url, autocommit=True, application_name="aqnet-jobs") as conn:
                run = run_stage_jobs(conn, now, rules, cadence_s=cadences, tz=tz, lookback_h=s.scheduler.lookback_h,
                                     settle_s=s.scheduler.settle_s)
            for event in run.events:
                log.warning("alert: %s", event)

        try:
            await asyncio.to_thread(work)
        except psycopg.OperationalError as exc:  # the database is away: the next tick catches up
            log.error("averages/indices/alerts not computed at %s (retried next tick): %s", now.isoformat(), exc)

    def on_shutdown(_: SchedulerEvent) -> None:
        leadership.release()

    scheduler.add_listener(on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.add_job(leader_job, "interval", seconds=s.scheduler.leader_check_s, id="jobs-leader",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(averages_job, "interval", seconds=s.scheduler.averages_every_s, id="averages",
                      max_instances=1, coalesce=True)
    return leadership
