"""storage.nodes.store and the write path's fence (migration 0021) against the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ingest.reading import QC, Reading
from sensors.delivery import mqtt_delivery
from sensors.network import bundled_network
from storage.nodes import store
from storage.writer import TimescaleWriter

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
MS = next(s for s in bundled_network() if s.kind == "microsensor")
SESSION = "aqnet-daemon-p3"


def received(at: datetime, *, dup: bool, mid: int = 17) -> Reading:
    """A receive-time reading of one message of partition session `SESSION`."""
    return Reading(sensor_id=MS.id, device_id=MS.devices[0].id, variable="pm25", time=at, value=12.0,
                   unit="µg/m³", flags=QC.RECEIVE_TIME, raw_value=12.0, raw_unit="µg/m³", received_at=at,
                   delivery=mqtt_delivery(SESSION, mid, f"aqnet/{MS.id}/readings", b'{"pm25": 12}', dup=dup))


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True,
                                             options="-c lock_timeout=500") as c:
        yield c


def node_pool(url: str, node: str | None) -> AsyncConnectionPool[Any]:
    """A measurements writer's pool as a node opens it (its id on every connection), or as one node does."""
    kwargs = {"options": f"-c aqnet.node_id={node}"} if node else {}
    return AsyncConnectionPool(url, min_size=1, max_size=2, open=False, kwargs=kwargs)


def stored(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT count(*) FROM measurements WHERE sensor_id = %s", (MS.id,)).fetchone()
        assert row is not None
        return int(row[0])


async def test_a_lease_has_one_holder_and_each_take_raises_the_epoch(conn: AsyncConnection[Any]) -> None:
    assert await store.take(conn, "a", "partition", SESSION, ttl_s=30) == 1
    assert await store.take(conn, "b", "partition", SESSION, ttl_s=30) is None  # held
    assert await store.renew(conn, "a", "partition", [SESSION], ttl_s=30) == {SESSION: 1}
    assert await store.renew(conn, "b", "partition", [SESSION], ttl_s=30) == {}  # b holds nothing
    assert await store.holders(conn, "partition") == {SESSION: "a"}
    assert await store.release(conn, "a", "partition", [SESSION]) == [SESSION]
    assert await store.holders(conn, "partition") == {SESSION: None}
    assert await store.take(conn, "b", "partition", SESSION, ttl_s=30) == 2
    leases = await store.list_leases(conn)
    assert [(x.key, x.owner, x.epoch, x.live) for x in leases] == [(SESSION, "b", 2, True)]


async def test_a_lapsed_lease_is_taken_and_its_old_holder_cannot_renew_it(conn: AsyncConnection[Any]) -> None:
    await store.heartbeat(conn, "a", host="h", pid=1, ttl_s=0.3)
    await store.heartbeat(conn, "b", host="h", pid=2, ttl_s=30)
    assert await store.take(conn, "a", "station", "tcp:10.0.0.1:502", ttl_s=0.3) == 1
    assert await store.take(conn, "b", "station", "tcp:10.0.0.1:502", ttl_s=30) is None
    await asyncio.sleep(0.5)  # a is gone: its heartbeat and its lease lapse
    assert await store.live_nodes(conn) == {"b"}
    assert await store.holders(conn, "station") == {"tcp:10.0.0.1:502": None}
    assert await store.take(conn, "b", "station", "tcp:10.0.0.1:502", ttl_s=30) == 2
    assert await store.renew(conn, "a", "station", ["tcp:10.0.0.1:502"], ttl_s=30) == {}
    await store.leave(conn, "b")
    assert await store.holders(conn, "station") == {"tcp:10.0.0.1:502": None}
    assert [m.node_id for m in await store.list_members(conn)] == ["a"]


async def test_a_stale_holders_late_write_is_refused_not_stored_twice(conn: AsyncConnection[Any],
                                                                      database_url: str) -> None:
    # node a took partition p3 and received message 17; cut from the database, its lease lapsed and b took p3;
    # the broker redelivered 17 to b (DUP set), which stored it. a's batch then reaches the database, late.
    await store.take(conn, "a", "partition", SESSION, ttl_s=0.2)
    await asyncio.sleep(0.3)
    assert await store.take(conn, "b", "partition", SESSION, ttl_s=30) == 2
    async with node_pool(database_url, "b") as pb, node_pool(database_url, "a") as pa:
        await TimescaleWriter(pb).write([received(T0 + timedelta(seconds=20), dup=True)])
        with pytest.raises(psycopg.Error) as refused:
            await TimescaleWriter(pa).write([received(T0, dup=False)])
    assert refused.value.sqlstate == "AQF01"
    assert refused.value.diag.message_detail == SESSION
    assert stored(database_url) == 1  # without the fence: 2 (a's first delivery is not b's redelivery)


async def test_one_node_writes_unfenced(conn: AsyncConnection[Any], database_url: str) -> None:
    await store.take(conn, "b", "partition", SESSION, ttl_s=30)
    async with node_pool(database_url, None) as p:  # no node id: one node, the CLI's reprocessing
        await TimescaleWriter(p).write([received(T0, dup=False)])
    assert stored(database_url) == 1


async def test_a_take_waits_for_the_old_holders_write_in_flight(conn: AsyncConnection[Any],
                                                                database_url: str) -> None:
    await store.take(conn, "a", "partition", SESSION, ttl_s=0.5)
    async with await AsyncConnection.connect(database_url, options="-c aqnet.node_id=a") as writer:
        # a's batch: its receipt checked while a held p3, not committed yet
        await writer.execute("INSERT INTO delivery_receipts (key, time) VALUES (%s, %s)",
                             (received(T0, dup=False).delivery.key, T0))  # type: ignore[union-attr]
        await asyncio.sleep(0.7)  # the lease lapses meanwhile
        with pytest.raises(psycopg.errors.LockNotAvailable):  # b cannot take it under a's batch
            await store.take(conn, "b", "partition", SESSION, ttl_s=30)
        await writer.commit()
    assert await store.take(conn, "b", "partition", SESSION, ttl_s=30) == 2  # then sees a's receipt
