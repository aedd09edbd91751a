"""The seeded network of the device-health tests: MS01 reporting PM2.5 with one 3-hour outage and a flat
end, beside USQ, with 30 days of 1-h averages drifting 0.5 µg/m³ a day against USQ's (fixture `seeded`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.health import HealthPolicy
from ingest.normalise import SiteConditions, normalise
from sensors.network import bundled_network
from sensors.reading import RawReading
from storage.registry import upsert_registry
from storage.writer import TimescaleWriter

__all__ = ["GAP", "NOW", "POLICY", "seeded"]

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SITE = SiteConditions(14.0, 752.0, "nearest:USQ")
POLICY = HealthPolicy(down_after_station=timedelta(minutes=30), down_after_microsensor=timedelta(minutes=60))
GAP = (NOW - timedelta(hours=20), NOW - timedelta(hours=17))  # MS01 silent in between: one 3-hour outage


def ms01_readings() -> list[RawReading]:
    """MS01's PM2.5 every 10 min over the last 30 h, silent during GAP, exactly flat for the last 3 h."""
    out = []
    t = NOW - timedelta(hours=30)
    i = 0
    while t <= NOW:
        if not GAP[0] < t < GAP[1]:
            value = 25.0 if t >= NOW - timedelta(hours=3) else 10.0 + (i % 7)
            out.append(RawReading("MS01", "MS01", "pm25", value, "ug/m3", t, t + timedelta(seconds=4), "local"))
        t += timedelta(minutes=10)
        i += 1
    return out


@pytest.fixture
async def seeded(database_url: str) -> AsyncIterator[str]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False,
                                   kwargs={"autocommit": True}) as pool:
        await upsert_registry(pool, bundled_network())
        await TimescaleWriter(pool).write([normalise(r, SITE) for r in ms01_readings()])
        async with pool.connection() as conn:
            # MS01 beside the USQ station (about 11 m north): USQ is its co-located reference
            await conn.execute("UPDATE sensors SET lat = s.lat + 0.0001, lon = s.lon FROM sensors s "
                               "WHERE sensors.id = 'MS01' AND s.id = 'USQ'")
            # 1-h averages: MS01 pm25 half covered over the last day; its difference from USQ grows 0.5/day
            rows: list[tuple[Any, ...]] = []
            for h in range(30 * 24):
                end = NOW - timedelta(hours=h)
                days = (30 * 24 - h) / 24.0
                ref = 20.0 + (h % 5)
                rows.append(("USQ", end, ref, 1.0))
                rows.append(("MS01", end, ref + 3.0 + 0.5 * days, 0.5 if h < 24 else 0.0))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                    "coverage, samples, valid) VALUES (%s, 'pm25', '1h', %s - interval '1 hour', %s, %s, 'µg/m³', "
                    "%s, 1, true)", [(s, e, e, v, c) for s, e, v, c in rows])
        yield database_url
