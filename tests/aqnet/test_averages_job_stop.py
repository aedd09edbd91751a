"""The scheduler's 'averages' job when the daemon stops during a run: the job ends quietly (an INFO line, not the
traceback APScheduler logs for a job that raises), and the run in its thread still ends by itself — its transaction
commits or rolls back; the next start catches up. Real TimescaleDB."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import psycopg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aqnet.config import settings_from_dict
from aqnet.schedule import add_stage_jobs


def _jobs_waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aqnet-jobs' "
                           "AND wait_event_type = 'Lock'").fetchone()
        return bool(row and row[0])


async def _until_jobs_waiting(url: str, waiting: bool, what: str) -> None:
    """Poll until the jobs' connection is (or is no longer) waiting on a lock; fail after 1,200 polls."""
    for _ in range(1200):
        if await asyncio.to_thread(_jobs_waiting_on_a_lock, url) == waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


async def test_a_stop_during_an_averages_run_ends_the_job_quietly(database_url: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC)
    s = settings_from_dict({"database": {"url": database_url}, "mqtt": {"url": "mqtt://127.0.0.1:1"}})
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: now, tz=UTC, cadences={}, rules=[])
    caplog.set_level(logging.INFO, logger="aqnet.job_stop")
    try:
        assert await asyncio.to_thread(leadership.hold)
        job = scheduler.get_job("averages")
        assert job is not None
        with psycopg.connect(database_url) as blocker:  # the run waits for this lock: it is mid-run when stopped
            blocker.execute("LOCK TABLE job_watermarks IN ACCESS EXCLUSIVE MODE")
            task = asyncio.create_task(job.func())
            await _until_jobs_waiting(database_url, True, "the averages run never reached the locked table")
            task.cancel()  # what the daemon's stop does to a job in progress
            assert await task is None  # ended quietly: APScheduler logs no traceback for it
        assert any("stopped during a run" in r.getMessage() for r in caplog.records), caplog.text
        # the run goes on, then ends
        await _until_jobs_waiting(database_url, False, "the averages run did not end once the lock was released")
    finally:
        leadership.release()


async def test_quiet_on_stop_passes_results_and_errors_through() -> None:
    from aqnet.job_stop import quiet_on_stop

    @quiet_on_stop("a job")
    async def ok() -> int:
        return 7

    @quiet_on_stop("a job")
    async def broken() -> int:
        raise ValueError("a bug")

    assert await ok() == 7
    with pytest.raises(ValueError, match="a bug"):  # only a cancel is quiet: a failure still reaches APScheduler
        await broken()


async def test_every_job_of_a_scheduler_ends_quietly_on_stop(caplog: pytest.LogCaptureFixture) -> None:
    # the alert deliveries job was left out when each job was wrapped by hand: a stop mid-query logged a traceback
    from aqnet.job_stop import quiet_jobs

    started = asyncio.Event()

    async def deliveries_job() -> None:
        started.set()
        await asyncio.Event().wait()  # a query in progress

    scheduler = AsyncIOScheduler()
    scheduler.add_job(deliveries_job, "interval", seconds=5, id="deliveries")
    quiet_jobs(scheduler)
    quiet_jobs(scheduler)  # once is enough: not wrapped twice
    caplog.set_level(logging.INFO, logger="aqnet.job_stop")
    job = scheduler.get_job("deliveries")
    assert job is not None and job.func.__wrapped__ is deliveries_job
    task = asyncio.create_task(job.func())
    await started.wait()
    task.cancel()
    assert await task is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["deliveries"]


def test_the_daemons_stage_jobs_are_all_quiet_on_stop(database_url: str) -> None:
    s = settings_from_dict({"database": {"url": database_url}, "mqtt": {"url": "mqtt://127.0.0.1:1"}})
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: datetime.now(UTC), tz=UTC, cadences={}, rules=[])
    try:
        jobs = scheduler.get_jobs()
        assert jobs and all(getattr(j.func, "quiet_on_stop", False) for j in jobs), [j.id for j in jobs]
    finally:
        leadership.release()
