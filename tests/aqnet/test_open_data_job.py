"""The scheduler's 'open-data-export' job: added only when `exports.directory` is set, at `exports.daily_at` in the
network's time zone; on the leader only it exports yesterday and writes the catalogue (real TimescaleDB)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aqnet.config import settings_from_dict
from aqnet.open_data_job import JOB_ID
from aqnet.schedule import add_stage_jobs
from tests.alerts.opendata.test_export_job import AFTER, seed

TZ = ZoneInfo("America/Bogota")
PUBLICATION = {"licence_id": "CC-BY-4.0", "licence_url": "https://creativecommons.org/licenses/by/4.0/",
               "publisher": "SDA", "contact_email": "datos@example.org"}


def _settings(url: str, open_data: dict[str, object] | None = None, **exports: object) -> object:
    return settings_from_dict({"database": {"url": url}, "mqtt": {"url": "mqtt://127.0.0.1:1"}, "exports": exports,
                               "open_data": open_data or {}})


async def test_no_export_job_without_a_directory(database_url: str) -> None:
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, _settings(database_url), clock=lambda: AFTER, tz=TZ,  # type: ignore[arg-type]
                                cadences={}, rules=[])
    leadership.release()
    assert scheduler.get_job(JOB_ID) is None


async def test_export_job_runs_daily_at_the_set_time_on_the_leader_only(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
    out = tmp_path / "exports"
    s = _settings(database_url, PUBLICATION, directory=str(out), daily_at="03:30")
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: AFTER, tz=TZ, cadences={}, rules=[])  # type: ignore[arg-type]
    try:
        job = scheduler.get_job(JOB_ID)
        assert job is not None
        fire = job.trigger.get_next_fire_time(None, datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
        assert fire == datetime(2026, 3, 3, 3, 30, tzinfo=TZ)  # 03:30 Bogotá, not UTC
        assert await job.func() == []  # not the leader: nothing written
        assert not out.exists()
        assert await asyncio.to_thread(leadership.hold)
        results = await job.func()
        assert [(r.day.isoformat(), r.version) for r in results] == [("2026-03-02", 1)]
        assert (out / "catalogue.jsonld").is_file()
        assert (out / "2026" / "2026-03-02" / "v1" / "datapackage.json").is_file()
        again = await job.func()
        assert [(r.day.isoformat(), r.version) for r in again] == [("2026-03-02", None)]
    finally:
        leadership.release()
