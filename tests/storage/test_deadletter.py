"""storage/deadletter.py (record, fetch, prune) and storage/replay.py against a real, migrated TimescaleDB."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ingest import units
from ingest.reading import QC, Reading
from sensors.network import MicrosensorLink, bundled_network
from storage import deadletter
from storage.replay import Replayer, not_replayable
from storage.writer import TimescaleWriter

TZ = ZoneInfo("America/Bogota")
T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
NETWORK = bundled_network()
VALID = json.dumps({"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": 10.0, "temperature": 14.0}}).encode()
GARBAGE = b"\x00{garbage"
UNKNOWN = json.dumps({"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": 10}}).encode()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as p:
        yield p


async def _record(pool: AsyncConnectionPool[Any], *args: Any, received_at: datetime | None = None,
                  **kwargs: Any) -> int:
    async with pool.connection() as conn:
        letter_id = await deadletter.record(conn, *args, **kwargs)
        if received_at is not None:
            await conn.execute("UPDATE dead_letters SET received_at = %s WHERE id = %s", (received_at, letter_id))
    return letter_id


async def _fetch(pool: AsyncConnectionPool[Any], **filters: Any) -> list[deadletter.DeadLetter]:
    async with pool.connection() as conn:
        return await deadletter.fetch(conn, **filters)


def _measurements(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT sensor_id, device_id, variable, time, value, unit, received_at FROM measurements "
                            "ORDER BY variable").fetchall()


async def test_record_keeps_topic_endpoint_format_and_error(pool: AsyncConnectionPool[Any]) -> None:
    # the daemon's call, unchanged: positional source, reason, detail; sensor_id and payload by keyword
    a = await _record(pool, "mqtt", "not_json", "aqnet/MS03/readings: expected JSON", sensor_id="MS03",
                      payload=GARBAGE)
    b = await _record(pool, "modbus", "timeout", "no answer in 2 s", sensor_id="USQ", endpoint="127.0.0.1:5020/3",
                      error="ModbusReadError: USQ-sim-pm unit 3 register 0: no answer in 2 s")
    c = await _record(pool, "http", "schema", "sensordatavalues: expected a list", payload=b"{}",
                      topic="POST /intake/airrohr (X-Sensor esp8266-1)", fmt="airrohr")
    by_id = {x.id: x for x in await _fetch(pool)}
    assert (by_id[a].payload, by_id[a].topic, by_id[a].current_error, by_id[a].state) == (
        GARBAGE, None, "aqnet/MS03/readings: expected JSON", "pending")
    assert (by_id[b].endpoint, by_id[b].error) == ("127.0.0.1:5020/3",
                                                   "ModbusReadError: USQ-sim-pm unit 3 register 0: no answer in 2 s")
    assert (by_id[c].topic, by_id[c].format, by_id[c].payload) == (
        "POST /intake/airrohr (X-Sensor esp8266-1)", "airrohr", b"{}")


async def test_record_needs_source_and_reason(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        with pytest.raises(ValueError, match="source and a reason"):
            await deadletter.record(conn, "", "x", "d")


async def test_fetch_filters_and_orders_newest_first(pool: AsyncConnectionPool[Any]) -> None:
    old = await _record(pool, "mqtt", "not_json", "bad", sensor_id="MS01", payload=b"x", topic="aqnet/MS01/readings",
                        received_at=T0 - timedelta(days=2))
    mid = await _record(pool, "mqtt", "unknown_sensor", "who", sensor_id="XX99", payload=b"{}",
                        topic="aqnet/XX99/readings", received_at=T0 - timedelta(hours=1))
    new = await _record(pool, "mqtt", "not_json", "bad", sensor_id="MS02", payload=b"y", topic="aqnet/MS02/readings",
                        received_at=T0)
    assert [x.id for x in await _fetch(pool)] == [new, mid, old]
    assert [x.id for x in await _fetch(pool, oldest_first=True)] == [old, mid, new]
    assert [x.id for x in await _fetch(pool, reason="not_json")] == [new, old]
    assert [x.id for x in await _fetch(pool, sensor_id="XX99")] == [mid]
    assert [x.id for x in await _fetch(pool, since=T0 - timedelta(hours=2))] == [new, mid]
    assert [x.id for x in await _fetch(pool, limit=1)] == [new]
    assert [x.id for x in await _fetch(pool, ids=[old, new])] == [new, old]
    assert [x.id for x in await _fetch(pool, sources=["writer"])] == []
    async with pool.connection() as conn:
        await deadletter.mark_failed(conn, mid, "failed (unknown_sensor): still unknown", "still unknown")
        await deadletter.mark_replayed(conn, new, "stored 1 reading", T0)
        assert await deadletter.count_by_source(conn, state="unreplayed") == {("mqtt", "not_json"): 1,
                                                                              ("mqtt", "unknown_sensor"): 1}
    assert [x.id for x in await _fetch(pool, state="pending")] == [old]
    assert [(x.id, x.current_error) for x in await _fetch(pool, state="failed")] == [(mid, "still unknown")]
    assert [x.id for x in await _fetch(pool, state="replayed")] == [new]
    with pytest.raises(ValueError, match="timezone-aware"):
        await _fetch(pool, since=datetime(2026, 1, 1))  # naive: the point of the test
    with pytest.raises(ValueError, match="state must be one of"):
        await _fetch(pool, state="lost")


async def test_prune_deletes_the_oldest_beyond_the_bound(pool: AsyncConnectionPool[Any]) -> None:
    ids = [await _record(pool, "mqtt", "not_json", f"letter {i}", payload=b"x") for i in range(10)]
    async with pool.connection() as conn:
        assert await deadletter.prune(conn, 4) == 6
        assert await deadletter.prune(conn, 4) == 0
        assert await deadletter.prune(conn, 100) == 0
    assert sorted(x.id for x in await _fetch(pool)) == ids[-4:]
    async with pool.connection() as conn:
        assert await deadletter.prune(conn, 0) == 4
        with pytest.raises(ValueError, match=">= 0"):
            await deadletter.prune(conn, -1)
    assert await _fetch(pool) == []


async def test_replay_stores_the_valid_keeps_the_garbage_and_is_idempotent(
        pool: AsyncConnectionPool[Any], database_url: str) -> None:
    received = datetime(2026, 11, 23, 13, 0, 5, tzinfo=UTC)
    garbage = await _record(pool, "mqtt", "not_json", "expected JSON", sensor_id="MS03", payload=GARBAGE,
                            topic="aqnet/MS03/readings", received_at=received)
    unknown = await _record(pool, "mqtt", "unknown_sensor", "no sensor XX99", sensor_id="XX99", payload=UNKNOWN,
                            topic="aqnet/XX99/readings", received_at=received)
    valid = await _record(pool, "mqtt", "unknown_sensor", "no sensor MS03 (before the registry fix)",
                          sensor_id="MS03", payload=VALID, topic="aqnet/MS03/readings", received_at=received)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO dead_letters (source, sensor_id, reason, detail, reading) VALUES "
            "('writer', 'USQ', 'conflict', 'USQ/x/pm25: value 2 differs from 1', '{}')")
    conflict = (await _fetch(pool, reason="conflict"))[0]
    assert "aqnet reprocess" in (not_replayable(conflict) or "")

    replayer = Replayer(pool, NETWORK, tz=TZ, clock=lambda: T0 + timedelta(days=1))
    outcomes = {o.letter_id: o for o in await replayer.replay(await _fetch(pool))}
    assert outcomes[valid].status == "stored" and outcomes[valid].message == "stored 2 readings"
    assert (outcomes[garbage].status, outcomes[garbage].reason) == ("failed", "not_json")
    assert (outcomes[unknown].status, outcomes[unknown].reason) == ("failed", "unknown_sensor")
    assert "XX99" in outcomes[unknown].message
    assert outcomes[conflict.id].status == "not_replayable"

    stored = _measurements(database_url)
    measured = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert [(r[0], r[2], r[3], r[6]) for r in stored] == [("MS03", "pm25", measured, received),
                                                          ("MS03", "temperature", measured, received)]
    letters = {x.id: x for x in await _fetch(pool)}
    assert letters[valid].state == "replayed" and letters[valid].replayed_at == T0 + timedelta(days=1)
    assert letters[valid].replay_result == "stored 2 readings"
    assert letters[garbage].state == "failed" and letters[garbage].replayed_at is None
    assert letters[garbage].reason == "not_json" and letters[garbage].replay_attempts == 1
    assert letters[garbage].error == outcomes[garbage].message  # the new error from today's decoder
    assert letters[garbage].replay_result == f"failed (not_json): {outcomes[garbage].message}"
    assert letters[conflict.id].replay_attempts == 0  # untouched

    again = {o.letter_id: o for o in await replayer.replay(list(letters.values()))}
    assert again[valid].status == "skipped"
    assert again[garbage].status == "failed"
    assert _measurements(database_url) == stored
    assert (await _fetch(pool, ids=[garbage]))[0].replay_attempts == 2

    # even a letter forced through again adds no second row: the writer is idempotent
    async with pool.connection() as conn:
        await conn.execute("UPDATE dead_letters SET replayed_at = NULL WHERE id = %s", (valid,))
    [forced] = await replayer.replay(await _fetch(pool, ids=[valid]))
    assert forced.message == "stored 0 readings; 2 already stored"
    assert _measurements(database_url) == stored


async def test_a_registry_fix_makes_an_unknown_sensor_replayable(pool: AsyncConnectionPool[Any],
                                                                 database_url: str) -> None:
    letter = await _record(pool, "mqtt", "unknown_sensor", "no sensor MS03", sensor_id="MS03", payload=VALID,
                           topic="aqnet/MS03/readings")
    before_fix = [s for s in NETWORK if s.id != "MS03"]
    [first] = await Replayer(pool, before_fix, tz=TZ).replay(await _fetch(pool))
    assert (first.status, first.reason) == ("failed", "unknown_sensor")
    assert _measurements(database_url) == []
    [second] = await Replayer(pool, NETWORK, tz=TZ).replay(await _fetch(pool, state="unreplayed"))
    assert (second.letter_id, second.status) == (letter, "stored")
    assert len(_measurements(database_url)) == 2


async def test_http_airrohr_letter_without_time_replays_at_its_receive_time(
        pool: AsyncConnectionPool[Any], database_url: str) -> None:
    network = bundled_network(microsensor_links={"MS05": MicrosensorLink("airrohr", "http", "12345")})
    body = json.dumps({"esp8266id": "12345", "sensordatavalues": [{"value_type": "SDS_P2", "value": "8.50"}]}).encode()
    received = datetime(2026, 11, 23, 14, 0, 7, tzinfo=UTC)
    await _record(pool, "http", "unknown_device", "no device 12345", payload=body,
                  topic="POST /intake/airrohr (X-Sensor esp8266-12345)", received_at=received)
    [outcome] = await Replayer(pool, network, tz=TZ).replay(await _fetch(pool))
    assert outcome.status == "stored" and outcome.sensor_id == "MS05"
    [(sensor_id, _, variable, time, _, _, received_at)] = _measurements(database_url)
    assert (sensor_id, variable, time, received_at) == ("MS05", "pm25", received, received)


async def test_letters_without_topic_or_payload_are_not_replayable(pool: AsyncConnectionPool[Any]) -> None:
    no_topic = await _record(pool, "mqtt", "not_json", "old letter", payload=b"x")
    no_payload = await _record(pool, "mqtt", "not_json", "no bytes", topic="aqnet/MS01/readings")
    modbus = await _record(pool, "modbus", "timeout", "no answer", endpoint="127.0.0.1:5020/1")
    outcomes = {o.letter_id: o for o in await Replayer(pool, NETWORK, tz=TZ).replay(await _fetch(pool))}
    assert {o.status for o in outcomes.values()} == {"not_replayable"}
    assert "does not guess" in outcomes[no_topic].message
    assert "no payload" in outcomes[no_payload].message
    assert "only MQTT and HTTP" in outcomes[modbus].message
    assert {x.replay_attempts for x in await _fetch(pool)} == {0}


async def test_replay_corrects_with_the_stored_conditions_of_the_nearest_station(
        pool: AsyncConnectionPool[Any], database_url: str) -> None:
    station = next(s for s in NETWORK if s.kind == "station" and {"temperature", "pressure"}
                   <= {v for d in s.devices for v in d.variables})
    temp_dev = next(d for d in station.devices if "temperature" in d.variables)
    pres_dev = next(d for d in station.devices if "pressure" in d.variables)
    received = datetime(2026, 11, 23, 13, 0, 5, tzinfo=UTC)
    at = received - timedelta(minutes=20)
    met = [Reading(station.id, temp_dev.id, "temperature", at, 20.0, "°C", QC(0), 20.0, "°C", at),
           Reading(station.id, pres_dev.id, "pressure", at, 740.0, "hPa", QC(0), 740.0, "hPa", at)]
    await TimescaleWriter(pool).write(met)
    pm_only = json.dumps({"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": 10.0}}).encode()
    await _record(pool, "mqtt", "unknown_sensor", "before the fix", sensor_id="MS03", payload=pm_only,
                  topic="aqnet/MS03/readings", received_at=received)
    [outcome] = await Replayer(pool, NETWORK, tz=TZ).replay(await _fetch(pool))
    assert outcome.status == "stored"
    pm = [r for r in _measurements(database_url) if r[0] == "MS03"]
    assert [r[4] for r in pm] == [pytest.approx(units.to_reference_conditions(10.0, 20.0, 740.0))]


async def test_a_huge_payload_is_kept_cut_with_its_size_and_hash_and_is_not_replayable(
        pool: AsyncConnectionPool[Any]) -> None:
    import hashlib

    from ingest.letter import MAX_PAYLOAD_BYTES, Letter

    huge = b"{" + b"x" * (1 << 20) + b"}"  # 1 MiB: what a broker without max_packet_size would pass on
    async with pool.connection() as conn:
        first = await deadletter.record(conn, "mqtt", "too_large", "payload too large", payload=huge,
                                        topic="aqnet/MS01/readings")
        await deadletter.record_letters(conn, [Letter("http", "too_large", "body too large", datetime.now(UTC),
                                                      payload=huge, topic="POST /intake/airrohr")])
        letters = await deadletter.fetch(conn, oldest_first=True)
        stored = (await (await conn.execute("SELECT sum(octet_length(payload)) FROM dead_letters")).fetchone())[0]
    assert letters[0].id == first and len(letters) == 2
    assert stored == 2 * MAX_PAYLOAD_BYTES  # never stored whole
    for letter in letters:
        assert letter.payload == huge[:MAX_PAYLOAD_BYTES] and letter.truncated
        assert (letter.payload_size, letter.payload_sha256) == (len(huge), hashlib.sha256(huge).hexdigest())
        assert "only the first 65536 of its 1048578 bytes" in (not_replayable(letter) or "")


async def test_prune_bounds_the_table_by_bytes_and_by_age(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        for i in range(10):
            await deadletter.record(conn, "mqtt", "not_json", "d", payload=bytes(1000), topic=f"t{i}")
        await conn.execute("UPDATE dead_letters SET received_at = now() - interval '100 days' WHERE topic = 't9'")
        # each letter counts its 1000 payload bytes and its 1-byte detail: 3 of them fit in 3100 bytes
        assert await deadletter.prune(conn, 100, max_bytes=3100) == 7
        assert [x.topic for x in await deadletter.fetch(conn)] == ["t8", "t7", "t9"]  # newest received first
        assert await deadletter.prune(conn, 100, max_bytes=3100, max_age=timedelta(days=90)) == 1
        assert [x.topic for x in await deadletter.fetch(conn)] == ["t8", "t7"]
        with pytest.raises(ValueError, match="max_bytes must be >= 0"):
            await deadletter.prune(conn, 100, max_bytes=-1)
