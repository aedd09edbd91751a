"""The daemon's scheduled stage jobs (APScheduler 3.x): leader election, then averages, indices and alert rules, and
the alert deliveries, on the leader only. Wiring only: each job reads the injected clock and calls a
pure-over-`now` stage function in a worker thread (or the dispatcher's coroutine); APScheduler ticks in real time,
so every run computes everything due up to the clock's now (the same call catches up after downtime and drives
accelerated simulations).

- 'jobs-leader' (every `scheduler.leader_check_s`): keep or take the PostgreSQL advisory lock
  (`alerts.leader.Leadership`); on becoming the leader, run 'averages' at once (catch-up).
- 'averages' (every `scheduler.averages_every_s`): on the leader, `alerts.jobs.run_stage_jobs`: the averages and
  indices due up to ``clock() - settle_s`` and those late data touched, then the alert rules (with escalation of
  alerts nobody acknowledged within `alerts.escalate_unacknowledged_after_min`).
- 'deliveries' (every `alerts.dispatch_every_s`, when a dispatcher is given): on the leader,
  `Dispatcher.run_once`: plan the outbox rows of new transitions and deliver those due, each channel on its own.
- 'alertmanager-repost' (every `alerts.alertmanager_repost_s`, when an Alertmanager channel is configured): on
  the leader, `Dispatcher.repost_active` re-posts every open alert (Alertmanager's protocol, not a duplicate).
- 'health' (every `health.every_s`): on the leader, `aqnet.health_job`: device outages recorded, health gauges
  refreshed.
- 'open-data-export' (daily at `exports.daily_at`, network time zone, when `exports.directory` is set): on the
  leader, `aqnet.open_data_job`: yesterday's open-data export, re-exports of changed days, the DCAT catalogue.
- 'housekeeping' (every `retention.every_s`): on the leader, `storage.retention.run_housekeeping`: drop chunks past
  `retention.*_days`; compress old chunks where the Timescale-licensed edition runs.
A failing job logs and waits for its next tick: it never stops the scheduler. The leader's connection is closed
when the scheduler shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import psycopg
from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerts.delivery.dispatch import Dispatcher
from alerts.jobs import ZeroSpanJob, run_stage_jobs
from alerts.leader import Leadership
from alerts.rules.model import SEVERITIES, Rule, default_rules, parse_rules
from aqnet.config import Settings
from aqnet.health_job import add_health_job
from aqnet.job_stop import quiet_jobs
from aqnet.metrics import Metrics
from aqnet.open_data_job import add_export_job
from sensors.clock import Clock
from storage import alert_outbox, alerts_store
from storage.retention import Policy, run_housekeeping

__all__ = ["add_stage_jobs", "load_rules"]

log = logging.getLogger(__name__)

AUDIENCES = ("officers", "technicians")


def load_rules(settings: Settings) -> list[Rule]:
    """The alert rules: `alerts.rules_file`, else the bundled defaults (alerts/rules/default_rules.yaml)."""
    path = settings.alerts.rules_file
    if path is None:
        return list(default_rules())
    return list(parse_rules(Path(path).read_text(encoding="utf-8"), source=path))


def add_stage_jobs(scheduler: AsyncIOScheduler, settings: Settings, *, clock: Clock, tz: tzinfo,
                   cadences: Mapping[str, float], rules: Sequence[Rule] | None = None,
                   dispatcher: Dispatcher | None = None, metrics: Metrics | None = None,
                   pool: AsyncConnectionPool[Any] | None = None) -> Leadership:
    """Add the leader-election, averaging/alerting and delivery jobs to `scheduler`; return the leadership (closed
    with the scheduler).

    `cadences`: device id → expected seconds between its samples (simulated seconds), for completeness.
    `rules`: the alert rules (default: `load_rules(settings)`). `dispatcher`: the
    `alerts.delivery.dispatch.Dispatcher` of the configured channels (aqnet.alert_channels), or None (no delivery
    jobs). `metrics` and `pool`: where the delivery counts go, and the connections that read the outbox's depth and
    the open alerts after each round.
    """
    s = settings
    rules = list(rules) if rules is not None else load_rules(s)
    # on a node of several, the lock's session names the node (`aqnet nodes` shows the leader)
    leadership = Leadership(s.database.url, application_name=(
        f"aqnet-leader {s.nodes.resolved_node_id()}" if s.nodes.enabled else "aqnet-leader"))
    zero_span = ZeroSpanJob(tuple(s.zero_span.schedules(tz)), s.zero_span.limit_map(),
                            s.zero_span.stable_fraction, s.zero_span.drift_checks)

    async def leader_job() -> None:
        was = leadership.is_leader
        if await asyncio.to_thread(leadership.hold) and not was:
            # catch up at once rather than at the next tick (scheduling is in wall time, not the sim clock)
            for job_id in ("averages", "deliveries"):
                job = scheduler.get_job(job_id)
                if job is not None:
                    job.modify(next_run_time=datetime.now(UTC))

    async def averages_job() -> None:
        if not leadership.is_leader:
            return
        now = clock()

        def work() -> None:
            with psycopg.connect(s.database.url, autocommit=True, application_name="aqnet-jobs") as conn:
                run = run_stage_jobs(conn, now, rules, cadence_s=cadences, tz=tz, lookback_h=s.scheduler.lookback_h,
                                     settle_s=s.scheduler.settle_s,
                                     escalate_after_min=s.alerts.escalate_unacknowledged_after_min,
                                     zero_span=zero_span)
            for event in run.events:
                log.info("alert: %s", event)

        try:
            await asyncio.to_thread(work)
        except psycopg.OperationalError as exc:  # the database is away: the next tick catches up
            log.error("averages/indices/alerts not computed at %s (retried next tick): %s", now.isoformat(), exc)
        if dispatcher is not None:  # new transitions go out now, not a dispatch tick later
            job = scheduler.get_job("deliveries")
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))

    def on_shutdown(_: SchedulerEvent) -> None:
        leadership.release()

    scheduler.add_listener(on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.add_job(leader_job, "interval", seconds=s.scheduler.leader_check_s, id="jobs-leader",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(averages_job, "interval", seconds=s.scheduler.averages_every_s, id="averages",
                      max_instances=1, coalesce=True)
    if dispatcher is not None:
        _add_delivery_jobs(scheduler, settings, dispatcher, leadership, metrics, pool)
    policy = Policy(measurements_days=s.retention.measurements_days, averages_days=s.retention.averages_days,
                    indices_days=s.retention.indices_days, compress_after_days=s.retention.compress_after_days,
                    # a redelivery must still find its receipt: cover the broker's session expiry, plus a day
                    delivery_receipts_s=max(s.mqtt.session_expiry_s, 7 * 24 * 3600) + 24 * 3600)

    async def housekeeping_job() -> None:
        if not leadership.is_leader:
            return

        def work() -> None:
            with psycopg.connect(s.database.url, autocommit=True, application_name="aqnet-housekeeping") as conn:
                run_housekeeping(conn, policy)

        try:
            await asyncio.to_thread(work)
        except psycopg.Error as exc:  # the database is away, or refused: the next tick tries again
            log.error("housekeeping (retention, compression) failed (retried next tick): %s", exc)

    scheduler.add_job(housekeeping_job, "interval", seconds=s.retention.every_s, id="housekeeping",
                      max_instances=1, coalesce=True)
    add_health_job(scheduler, s.database.url, s.health, clock=clock, settle_s=s.scheduler.settle_s,
                   leadership=leadership, metrics=metrics.health if metrics is not None else None)
    if s.exports.directory is not None:
        add_export_job(scheduler, s.database.url, s.exports, s.open_data, clock=clock, tz=tz,
                       timezone=s.network.timezone, leadership=leadership)
    quiet_jobs(scheduler)  # a stop during a run ends it with one line, not a traceback (aqnet.job_stop)
    return leadership


def _add_delivery_jobs(scheduler: AsyncIOScheduler, settings: Settings, dispatcher: Dispatcher,
                       leadership: Leadership, metrics: Metrics | None, pool: AsyncConnectionPool[Any] | None) -> None:
    a = settings.alerts

    async def deliveries_job() -> None:
        if not leadership.is_leader:
            return
        try:
            run = await dispatcher.run_once()
        except Exception as exc:  # a delivery round never stops the scheduler; the outbox keeps everything
            log.error("alert deliveries not run (retried in %g s): %s: %s", a.dispatch_every_s,
                      type(exc).__name__, exc)
            return
        if metrics is not None:
            for ch in run.channels:
                for result in ("delivered", "failed", "dead"):
                    if getattr(ch, result):
                        metrics.alert_deliveries.labels(ch.channel, result).inc(getattr(ch, result))
            if pool is not None:
                await _gauges(metrics, pool, [c.name for c in a.channels])

    async def repost_job() -> None:
        if not leadership.is_leader:
            return
        try:
            await dispatcher.repost_active()
        except Exception as exc:  # the next repost sends the same alerts again
            log.error("Alertmanager re-post of open alerts failed (retried in %g s): %s: %s",
                      a.alertmanager_repost_s, type(exc).__name__, exc)

    scheduler.add_job(deliveries_job, "interval", seconds=a.dispatch_every_s, id="deliveries", max_instances=1,
                      coalesce=True)
    if any(c.type == "alertmanager" for c in a.channels):
        scheduler.add_job(repost_job, "interval", seconds=a.alertmanager_repost_s, id="alertmanager-repost",
                          max_instances=1, coalesce=True)


async def _gauges(metrics: Metrics, pool: AsyncConnectionPool[Any], channels: Sequence[str]) -> None:
    """The outbox's pending rows per channel and the open alerts per audience and severity (0 when none)."""
    try:
        async with pool.connection() as conn:
            outbox = await alert_outbox.outbox_counts(conn)
            active = await alerts_store.active_alert_counts(conn)
    except (psycopg.Error, PoolTimeout) as exc:  # the gauges keep their last values; the next round retries
        log.warning("alert metrics not refreshed: %s", exc)
        return
    pending = dict.fromkeys(channels, 0)
    pending.update({c.channel: c.count for c in outbox if c.state == "pending"})
    for name, n in pending.items():
        metrics.alert_outbox_pending.labels(name).set(n)
    for audience in AUDIENCES:
        for severity in SEVERITIES:
            metrics.alerts_active.labels(audience, severity).set(active.get((audience, severity), 0))
