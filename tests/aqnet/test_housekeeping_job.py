"""The scheduler's 'housekeeping' job: on the leader only, it drops the chunks past `retention.*_days`
(storage.retention, on the real database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aqnet.config import settings_from_dict
from aqnet.schedule import add_stage_jobs


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM measurements").fetchone()
        return int(row[0]) if row else 0


async def test_housekeeping_drops_old_chunks_on_the_leader_only(database_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for days in (60, 1):
            conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, device_id, received_at) "
                         "VALUES (%s, 'USM', 'pm25', 10, 'µg/m³', 'USM-pm25', %s)", (now - timedelta(days=days), now))
    s = settings_from_dict({"database": {"url": database_url}, "mqtt": {"url": "mqtt://127.0.0.1:1"},
                            "retention": {"measurements_days": 30, "every_s": 600}})
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: now, tz=UTC, cadences={}, rules=[])
    try:
        job = scheduler.get_job("housekeeping")
        assert job is not None and job.trigger.interval == timedelta(seconds=600)
        await job.func()  # not the leader: nothing dropped
        assert _count(database_url) == 2
        assert await asyncio.to_thread(leadership.hold)
        await job.func()
        assert _count(database_url) == 1
    finally:
        leadership.release()
