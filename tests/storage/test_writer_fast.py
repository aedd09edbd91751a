"""storage/writer.py's fast path (COPY straight into `measurements`) against its full classification, on a real,
migrated TimescaleDB: the same rows, duplicates, conflicts, dead letters, late marks and receipts, whichever path a
batch takes; concurrent writers racing on the same keys."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from ingest.reading import QC, Reading
from sensors.delivery import Delivery
from sensors.network import bundled_network
from storage.rows import MEASUREMENT_COLUMNS, reading_row
from storage.writer import (
    LATE_MARK_LOCK,
    MISSES_IN_A_ROW,
    TimescaleWriter,
    WriteResult,
    _copy_new,
    keys_unique,
    late_marks,
    late_rows,
)

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
NETWORK = bundled_network()
STATION = next(s for s in NETWORK if s.kind == "station")
PM = next(d for d in STATION.devices if "pm25" in d.variables)
NO_FLAGS = QC(0)


def reading(value: float, minute: int = 0, *, variable: str = "pm25", flags: QC = NO_FLAGS, device_id: str = PM.id,
            delivery: Delivery | None = None, received_s: int = 3) -> Reading:
    t = T0 + timedelta(minutes=minute)
    return Reading(sensor_id=STATION.id, device_id=device_id, variable=variable, time=t, value=value,
                   unit="µg/m³", flags=flags, raw_value=value, raw_unit="ug/m3",
                   received_at=t + timedelta(seconds=received_s), delivery=delivery)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as p:
        yield p


def claim(url: str, through: datetime | None) -> None:
    """Set the averaging job's claim (late marks are due for rows before it)."""
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO job_watermarks (job, claimed_through) VALUES ('averages', %s) "
                     "ON CONFLICT (job) DO UPDATE SET claimed_through = EXCLUDED.claimed_through", (through,))


def state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a write leaves behind: rows, dead letters, late marks (without their numbers), receipts."""
    cols = ", ".join(MEASUREMENT_COLUMNS)
    with psycopg.connect(url) as conn:
        return {
            "rows": conn.execute(f"SELECT {cols} FROM measurements ORDER BY sensor_id, device_id, variable, time"
                                 ).fetchall(),
            "dead": conn.execute("SELECT source, sensor_id, reason, detail, reading FROM dead_letters ORDER BY id"
                                 ).fetchall(),
            "marks": conn.execute("SELECT sensor_id, variable, slot_start FROM dirty_slots ORDER BY 1, 2, 3"
                                  ).fetchall(),
            "receipts": conn.execute("SELECT key, time FROM delivery_receipts ORDER BY key").fetchall(),
        }


def reset(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE measurements, dead_letters, dirty_slots, delivery_receipts")


async def write_all(writer: TimescaleWriter, batches: Sequence[Sequence[Reading]]) -> list[WriteResult]:
    return [await writer.write(b) for b in batches]


async def both_paths(url: str, batches: Sequence[Sequence[Reading]], claimed: datetime | None
                     ) -> tuple[TimescaleWriter, list[WriteResult]]:
    """Write `batches` with the fast path, then (from the same empty tables) with the full classification only;
    assert both leave the same results and the same tables; return the fast writer and its results."""
    claim(url, claimed)
    runs = []
    for fast in (True, False):
        reset(url)
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as p:
            writer = TimescaleWriter(p, fast_path=fast)
            results = await write_all(writer, batches)
        runs.append((writer, results, state(url)))
    (fast_writer, fast_results, fast_state), (full_writer, full_results, full_state) = runs
    assert full_writer.stats.fast == 0
    assert fast_results == full_results
    assert fast_state == full_state
    return fast_writer, fast_results


# ------------------------------------------------------------------------------------------------ pure parts


def test_keys_unique_sees_a_repeated_key_and_only_the_key() -> None:
    a, b = reading(1.0, 0), reading(2.0, 1)
    assert keys_unique([reading_row(a), reading_row(b), reading_row(reading(1.0, 0, variable="pm10"))])
    assert not keys_unique([reading_row(a), reading_row(b), reading_row(reading(9.0, 0, flags=QC.SPIKE))])
    assert keys_unique([reading_row(a), reading_row(reading(1.0, 0, device_id="spare-pm"))])


def test_late_rows_are_those_before_the_claim() -> None:
    rows = [reading_row(reading(1.0, m)) for m in (3, 0, 2, 1)]
    assert late_rows(rows, None) == []
    assert late_rows(rows, T0) == []
    assert late_rows(rows, T0 + timedelta(minutes=2)) == [rows[1], rows[3]]


ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)


def floor_slot(t: datetime) -> datetime:
    """date_bin('15 minutes', t, origin) as PostgreSQL computes it."""
    return ORIGIN + (t - ORIGIN) // SLOT * SLOT


def trunc_slot(t: datetime) -> datetime:
    """The same on a server that rounds times before the origin toward it."""
    n = (t - ORIGIN) / SLOT
    return ORIGIN + int(n) * SLOT if n < 0 and n != int(n) else floor_slot(t)


@given(st.lists(st.tuples(st.sampled_from(["pm25", "pm10"]),
                          st.integers(-4000, 4000).map(lambda m: ORIGIN + timedelta(minutes=m))
                          | st.integers(-200_000, 200_000).map(lambda s: ORIGIN + timedelta(seconds=s)),
                          st.booleans()), max_size=40),
       st.none() | st.integers(-3000, 3000).map(lambda m: ORIGIN + timedelta(minutes=m)))
@example([("pm25", ORIGIN - 2 * SLOT, False), ("pm25", ORIGIN - SLOT - timedelta(minutes=5), False)], ORIGIN)
@example([("pm25", ORIGIN - timedelta(minutes=1), False), ("pm25", ORIGIN - SLOT, False)], ORIGIN)
def test_late_marks_stand_for_every_slot_of_the_late_rows(rows: list[tuple[str, datetime, bool]],
                                                          claim: datetime | None) -> None:
    built = [reading_row(Reading(sensor_id="MS0" + str(int(other)), device_id="d", variable=v, time=t, value=1.0,
                                 unit="µg/m³", flags=NO_FLAGS, raw_value=1.0, raw_unit="ug/m3", received_at=t))
             for v, t, other in rows]
    marks = late_marks(built, claim)
    late = late_rows(built, claim)
    assert len(marks) <= 2 * len({(r[1], r[2], floor_slot(r[0])) for r in late})  # type: ignore[arg-type]
    for slot in (floor_slot, trunc_slot):
        assert {(s, v, slot(t)) for s, v, t in marks} == {(r[1], r[2], slot(r[0])) for r in late}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the two paths agree


async def test_a_batch_of_new_keys_takes_the_fast_path(database_url: str) -> None:
    batch = [reading(10.0 + m, m) for m in range(5)]
    writer, results = await both_paths(database_url, [batch], None)
    assert results == [WriteResult(5, 0, 0)]
    assert (writer.stats.fast, writer.stats.misses, writer.stats.classified) == (1, 0, 0)


async def test_a_stored_key_mid_batch_is_a_miss_then_classified(database_url: str) -> None:
    first = [reading(10.0, 0), reading(20.0, 1)]
    second = [reading(30.0, 2), reading(10.0, 0), reading(40.0, 3), reading(21.0, 1), reading(50.0, 4)]
    third = [reading(60.0, 5)]  # an isolated miss: the next batch tries the fast path again
    writer, results = await both_paths(database_url, [first, second, third], None)
    assert results == [WriteResult(2, 0, 0), WriteResult(3, 1, 1), WriteResult(1, 0, 0)]
    assert (writer.stats.fast, writer.stats.misses, writer.stats.classified) == (2, 1, 1)


async def test_after_misses_in_a_row_batches_are_classified_until_one_is_all_new(database_url: str) -> None:
    assert MISSES_IN_A_ROW == 2
    stored = [reading(float(m), m) for m in range(4)]
    redelivered = [[stored[0], stored[1]], [stored[2], reading(9.0, 9)], [stored[3]], [reading(8.0, 8)],
                   [reading(7.0, 7)]]
    writer, results = await both_paths(database_url, [stored, *redelivered], None)
    assert [r.duplicates for r in results] == [0, 2, 1, 1, 0, 0]
    # two misses in a row, then classified directly while duplicates keep coming (no third miss); the first
    # all-new batch ends the burst and the next one goes fast again
    assert (writer.stats.fast, writer.stats.misses, writer.stats.classified) == (2, 2, 4)


async def test_a_key_repeated_inside_a_batch_is_classified_without_a_miss(database_url: str) -> None:
    batch = [reading(1.0, 0), reading(2.0, 1), reading(1.0, 0), reading(3.0, 1), reading(4.0, 2)]
    writer, results = await both_paths(database_url, [batch, [reading(5.0, 3)]], None)
    assert results == [WriteResult(3, 1, 1), WriteResult(1, 0, 0)]
    assert (writer.stats.fast, writer.stats.misses, writer.stats.classified) == (1, 0, 1)


async def test_late_rows_of_a_fast_batch_mark_their_slots(database_url: str) -> None:
    # claim at 13:20: rows at 13:00-13:19 are late (slots 13:00, 13:15), rows from 13:20 on are not
    batch = [reading(1.0, m, variable=v) for m in (0, 14, 16, 20, 31) for v in ("pm25", "pm10")]
    writer, _ = await both_paths(database_url, [batch], T0 + timedelta(minutes=20))
    assert writer.stats.fast == 1
    assert state(database_url)["marks"] == [
        (STATION.id, v, T0 + timedelta(minutes=s)) for v in ("pm10", "pm25") for s in (0, 15)]


async def test_receipts_make_a_redelivery_a_duplicate_on_either_path(database_url: str) -> None:
    dup = Delivery("mqtt:aqnet-1:7:d", math.inf)
    first = [reading(5.0, 0, flags=QC.RECEIVE_TIME, delivery=Delivery(dup.key, 0.0))]
    # the broker redelivers it 90 s later: a new receive time, the receipt's time is taken back
    again = dataclasses.replace(reading(5.0, 0, flags=QC.RECEIVE_TIME, delivery=dup),
                                time=T0 + timedelta(seconds=90))
    writer, results = await both_paths(database_url, [first, [again, reading(6.0, 5)]], None)
    assert results == [WriteResult(1, 0, 0), WriteResult(1, 1, 0)]
    assert state(database_url)["receipts"] == [(dup.key, T0)]
    assert writer.stats.misses == 1


VALUES = st.sampled_from([1.0, 2.0, math.nan])
FLAGS = st.sampled_from([QC(0), QC.SPIKE, QC.MAINTENANCE])
READINGS = st.builds(
    lambda value, minute, variable, flags, device, delivery: reading(
        value, minute, variable=variable, flags=flags | (QC.RECEIVE_TIME if delivery else QC(0)), device_id=device,
        delivery=delivery),
    VALUES, st.integers(0, 40), st.sampled_from(["pm25", "pm10"]), FLAGS, st.sampled_from([PM.id, "spare-pm"]),
    st.none() | st.builds(Delivery, st.sampled_from(["k1", "k2"]), st.sampled_from([0.0, math.inf, 600.0])))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(READINGS, min_size=1, max_size=8), min_size=1, max_size=5),
       claimed=st.none() | st.integers(0, 45).map(lambda m: T0 + timedelta(minutes=m)))
def test_fast_and_full_paths_leave_the_same_tables(database_url: str, batches: list[list[Reading]],
                                                   claimed: datetime | None) -> None:
    asyncio.run(both_paths(database_url, batches, claimed))


# ------------------------------------------------------------------------------------------------ concurrency


async def test_concurrent_writers_racing_on_the_same_keys(pool: AsyncConnectionPool[Any], database_url: str) -> None:
    writer = TimescaleWriter(pool)
    # six writers over 40 keys each, overlapping and in different orders (deadlocks are retried); writer w's value is
    # w, but writer 3 repeats writer 0 exactly
    batches = []
    for w in range(6):
        minutes = range(w * 10, w * 10 + 40)
        value = 0.0 if w == 3 else float(w)
        batches.append([reading(value, m) for m in (reversed(minutes) if w % 2 else minutes)])
    results = await asyncio.gather(*(writer.write(b) for b in batches))
    keys = {m for w in range(6) for m in range(w * 10, w * 10 + 40)}
    assert sum(r.inserted for r in results) == len(keys) == len(state(database_url)["rows"])
    assert sum(r.inserted + r.duplicates + r.conflicts for r in results) == sum(len(b) for b in batches)
    dead = state(database_url)["dead"]
    assert len(dead) == sum(r.conflicts for r in results)
    stored = {row[0]: row[3] for row in state(database_url)["rows"]}
    for _, _, reason, _, doc in dead:  # every conflict names the value that was kept
        assert reason == "conflict" and doc["existing_in"] == "measurements"
        assert stored[datetime.fromisoformat(doc["time"])] == doc["existing_value"] != doc["value"]
    # a repeat of what was stored is a duplicate, never a conflict: writers 0 and 3 never conflict with each other
    assert sum(r.duplicates for r in results) == sum(1 for m in range(30, 40) if stored[T0 + timedelta(minutes=m)]
                                                     == 0.0)


@pytest.mark.parametrize("fast_path", [True, False])
async def test_late_writes_into_a_marked_slot_do_not_wait_for_each_other(database_url: str, fast_path: bool) -> None:
    # slot 13:00 is marked late already (a committed late write); another writer's transaction writes a late row
    # into it and stays open; a third write into the same slot goes through meanwhile. It waited: the mark was an
    # upsert that locked the slot's row until the other writer committed, so every writer of late data (a
    # backlog drained after an outage; two processes, two batches in flight each) queued behind one another
    claim(database_url, T0 + timedelta(hours=1))
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as p:
        writer = TimescaleWriter(p, fast_path=fast_path)
        assert await writer.write([reading(1.0, 0)]) == WriteResult(1, 0, 0)
        other = await psycopg.AsyncConnection.connect(database_url)
        async with other, other.transaction(), other.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (LATE_MARK_LOCK,))
            await _copy_new(cur, [reading_row(reading(2.0, 1))], T0 + timedelta(hours=1))  # not committed
            third = await asyncio.wait_for(writer.write([reading(3.0, 2), reading(4.0, 3, variable="pm10")]),
                                           timeout=30)  # progress, not a timing: it never came while held
            assert third == WriteResult(2, 0, 0)
    marks = state(database_url)["marks"]
    assert sorted(set(marks)) == [(STATION.id, v, T0) for v in ("pm10", "pm25")]
