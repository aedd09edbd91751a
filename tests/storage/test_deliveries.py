"""Exactly once for receive-time readings (sensors.delivery identities, storage.deliveries receipts) and durable
dead letters in the writer's transaction, the spool and the forwarding sink: pure rules and the real database."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from ingest.letter import Letter
from ingest.reading import QC, Reading
from sensors.delivery import Delivery, http_delivery, mqtt_delivery
from sensors.network import bundled_network
from storage import deliveries
from storage.forwarding import ForwardingSink, Spooled
from storage.spool import BatchCodec, Spool
from storage.writer import TimescaleWriter, WriteResult

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
MS = next(s for s in bundled_network() if s.kind == "microsensor")


def received(value: float, at: datetime, delivery: Delivery | None, variable: str = "pm25") -> Reading:
    """A receive-time reading (airrohr, aqnet JSON without `time`): its time is when it arrived."""
    return Reading(sensor_id=MS.id, device_id=MS.devices[0].id, variable=variable, time=at, value=value,
                   unit="µg/m³", flags=QC.RECEIVE_TIME, raw_value=value, raw_unit="µg/m³", received_at=at,
                   delivery=delivery)


# ------------------------------------------------------------------------------------------ identities (pure)


def test_mqtt_identity_is_the_same_on_redelivery_and_differs_between_messages() -> None:
    first = mqtt_delivery("aqnet-1", 7, "airrohr/MS01/data", b"{}", dup=False)
    again = mqtt_delivery("aqnet-1", 7, "airrohr/MS01/data", b"{}", dup=True)
    assert first.key == again.key and (first.reuse_s, again.reuse_s) == (0.0, math.inf)
    others = {mqtt_delivery("aqnet-2", 7, "airrohr/MS01/data", b"{}", dup=True).key,  # another session
              mqtt_delivery("aqnet-1", 8, "airrohr/MS01/data", b"{}", dup=True).key,  # another packet
              mqtt_delivery("aqnet-1", 7, "airrohr/MS02/data", b"{}", dup=True).key,  # another topic
              mqtt_delivery("aqnet-1", 7, "airrohr/MS01/data", b"{ }", dup=True).key}  # another payload
    assert first.key not in others and len(others) == 4


def test_http_identity_is_the_body_of_one_sensor_within_a_window() -> None:
    a = http_delivery("MS01", "/intake/airrohr", b'{"esp8266id": "1"}', window_s=60)
    assert a == http_delivery("MS01", "/intake/airrohr", b'{"esp8266id": "1"}', window_s=60)
    assert a.key != http_delivery("MS02", "/intake/airrohr", b'{"esp8266id": "1"}', window_s=60).key
    assert a.key != http_delivery("MS01", "/intake/airrohr", b'{"esp8266id": "2"}', window_s=60).key
    assert a.reuse_s == 60.0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: mqtt_delivery("", 1, "t", b"", dup=False), "client_id must not be empty"),
    (lambda: mqtt_delivery("c", 0, "t", b"", dup=False), "packet id 0 outside 1..65535"),
    (lambda: http_delivery("MS01", "/p", b"", window_s=math.inf), "window_s must be finite"),
    (lambda: http_delivery("MS01", "/p", b"", window_s=-1), "window_s must be finite and >= 0"),
    (lambda: Delivery("k", math.nan), "reuse_s must be >= 0"),
    (lambda: Delivery("", 1), "key must not be empty"),
])
def test_bad_identities_are_refused_by_name(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# -------------------------------------------------------------------------------------------- settle (pure)

DUP = Delivery("mqtt:aqnet-1:7:d", math.inf)
FIRST = Delivery("mqtt:aqnet-1:7:d", 0.0)


def test_a_redelivery_takes_the_stored_time_and_a_first_delivery_keeps_its_own() -> None:
    later = T0 + timedelta(minutes=5)
    (again,), receipts = deliveries.settle([received(3.0, later, DUP)], {DUP.key: T0})
    assert again.time == T0 and receipts == {DUP.key: T0}
    # a packet id reused for a new message with the same payload (a flat-lining sensor) is a new reading
    (new,), receipts = deliveries.settle([received(3.0, later, FIRST)], {FIRST.key: T0})
    assert new.time == later and receipts == {FIRST.key: later}


def test_a_redelivery_without_a_receipt_is_new_and_readings_without_identity_pass_unchanged() -> None:
    plain = dataclasses.replace(received(1.0, T0, None), flags=QC(0))
    out, receipts = deliveries.settle([received(2.0, T0, DUP), plain], {})
    assert out == [received(2.0, T0, DUP), plain] and receipts == {DUP.key: T0}


def test_within_one_batch_the_redelivery_follows_its_first_delivery() -> None:
    # the original (DUP 0) and its redelivery after a reconnect land in the same batch
    out, receipts = deliveries.settle([received(2.0, T0, FIRST), received(2.0, T0 + timedelta(seconds=9), DUP)], {})
    assert [r.time for r in out] == [T0, T0] and receipts == {DUP.key: T0}


def test_an_http_receipt_counts_only_inside_its_window() -> None:
    window = Delivery("http:MS01:b", 60.0)
    inside, outside = T0 + timedelta(seconds=60), T0 + timedelta(seconds=61)
    assert deliveries.settle([received(1.0, inside, window)], {window.key: T0})[0][0].time == T0
    assert deliveries.settle([received(1.0, outside, window)], {window.key: T0})[0][0].time == outside


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 600)), max_size=30),
       st.dictionaries(st.integers(0, 3), st.integers(0, 600), max_size=4))
def test_settle_keeps_order_values_and_moves_only_redeliveries(
        messages: list[tuple[int, bool, int]], stored_s: dict[int, int]) -> None:
    batch = [received(float(i), T0 + timedelta(seconds=s),
                      Delivery(f"k{k}", math.inf if dup else 0.0)) for i, (k, dup, s) in enumerate(messages)]
    stored = {f"k{k}": T0 + timedelta(seconds=s) for k, s in stored_s.items()}
    out, receipts = deliveries.settle(batch, stored)
    assert [r.value for r in out] == [r.value for r in batch]
    for before, after in zip(batch, out, strict=True):
        assert dataclasses.replace(after, time=before.time) == before  # only the time may change
        if before.delivery.reuse_s == 0:
            assert after.time == before.time  # a first delivery is never moved
    for key in {r.delivery.key for r in batch}:  # the receipt is the last settled time of its identity
        assert receipts[key] == [r.time for r in out if r.delivery.key == key][-1]


# ------------------------------------------------------------------------------------------- codec and spool


def letter(reason: str = "not_json", payload: bytes | None = b"\xff\x00 raw") -> Letter:
    return Letter("mqtt", reason, "payload is not UTF-8 JSON", T0, sensor_id=MS.id, payload=payload,
                  topic=f"aqnet/{MS.id}/readings")


def test_letters_ride_in_a_spool_record_byte_for_byte(tmp_path: Path) -> None:
    codec = BatchCodec()
    batch = [received(5.0, T0, DUP)]
    refused = [letter(), letter("unknown_sensor", None),
               Letter("pipeline", "unit", "x", T0, reading={"value": 1.5, "unit": "furlong"})]
    assert codec.decode_record(codec.encode(batch, refused), "t") == (batch, refused)
    assert codec.decode_record(codec.encode(batch), "t") == (batch, [])  # records from before letters existed
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([], refused[:1])  # a batch of letters alone
    spool.append(batch, refused[1:])
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    head = reopened.peek(max_readings=100)
    assert head is not None and head.records == 2
    assert head.readings == tuple(batch) and head.letters == tuple(refused)
    reopened.close()


# ------------------------------------------------------------------------------------------- real database


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as p:
        yield p


def _stored(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT time, variable, value FROM measurements ORDER BY time, variable").fetchall()


def _letters(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT source, reason, sensor_id, payload, topic, received_at FROM dead_letters "
                            "ORDER BY id").fetchall()


async def test_a_message_committed_but_not_acknowledged_is_stored_once_when_redelivered(
        pool: AsyncConnectionPool[Any], database_url: str) -> None:
    writer = TimescaleWriter(pool)
    message = [received(12.0, T0, FIRST), received(30.0, T0, FIRST, "pm10")]
    assert await writer.write(message) == WriteResult(2, 0, 0)
    # the ack was lost: the broker sends it again, DUP set, and aqnet stamps it with a new receive time
    later = T0 + timedelta(minutes=3)
    assert await writer.write([received(12.0, later, DUP), received(30.0, later, DUP, "pm10")]) == \
        WriteResult(0, 2, 0)
    assert _stored(database_url) == [(T0, "pm10", 30.0), (T0, "pm25", 12.0)]
    # the same packet id and payload again, as a NEW message (DUP 0): a second reading, at its own time
    assert await writer.write([received(12.0, later, FIRST)]) == WriteResult(1, 0, 0)
    assert len(_stored(database_url)) == 3


async def test_without_receipts_a_redelivery_is_a_second_row(pool: AsyncConnectionPool[Any],
                                                             database_url: str) -> None:
    # the defect: the receive time is part of the key, so without an identity a redelivery is a new row
    writer = TimescaleWriter(pool)
    await writer.write([received(12.0, T0, None)])
    await writer.write([received(12.0, T0 + timedelta(minutes=3), None)])
    assert len(_stored(database_url)) == 2


async def test_letters_commit_with_their_batch_and_roll_back_with_it(pool: AsyncConnectionPool[Any],
                                                                     database_url: str) -> None:
    writer = TimescaleWriter(pool)
    result = await writer.write([received(1.0, T0, None)], [letter()])
    assert result == WriteResult(1, 0, 0, 1)
    assert _letters(database_url) == [("mqtt", "not_json", MS.id, b"\xff\x00 raw", f"aqnet/{MS.id}/readings", T0)]
    assert await writer.write([], [letter("unknown_sensor", None)]) == WriteResult(0, 0, 0, 1)
    bad = dataclasses.replace(received(1.0, T0, None), time=datetime(2026, 1, 1))  # naive: refused before SQL
    with pytest.raises(ValueError, match="timezone-aware"):
        await writer.write([bad], [letter("third")])
    assert [r[1] for r in _letters(database_url)] == ["not_json", "unknown_sensor"]


async def test_letters_are_spooled_while_the_database_is_down_and_stored_when_it_returns(
        tmp_path: Path, pool: AsyncConnectionPool[Any], database_url: str) -> None:
    class Down:
        def __init__(self, writer: TimescaleWriter) -> None:
            self.up, self.writer = False, writer

        async def write(self, batch: Any, letters: Any = ()) -> Any:
            if not self.up:
                raise psycopg.OperationalError("connection refused")
            return await self.writer.write(batch, letters)

    writer = Down(TimescaleWriter(pool))
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    sink = ForwardingSink(writer, spool, clock=lambda: T0, replay_retry_s=0.05)
    result = await sink.write([], [letter()])
    assert isinstance(result, Spooled) and _letters(database_url) == []
    writer.up = True
    task = asyncio.create_task(sink.replay())
    for _ in range(200):
        if _letters(database_url):
            break
        await asyncio.sleep(0.02)
    await sink.close()
    task.cancel()
    assert [r[:2] for r in _letters(database_url)] == [("mqtt", "not_json")]
