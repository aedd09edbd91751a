"""storage.alerts_store: officers' operations are legal transitions recorded with who and where, in one
transaction with their event; exceedances count valid days above the 24-hour limit (equal does not count);
the outbox plans once per event and channel and two claimers never hold one row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from storage import alert_outbox as outbox
from storage import alerts_store as store
from storage.alerts_store import AlertError

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def connect(url: str) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(url, autocommit=True)


async def add_sensor(conn: AsyncConnection[Any], sensor_id: str, *, name: str | None = None,
                     locality: str = "Kennedy", kind: str = "station") -> None:
    await conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality) VALUES (%s, %s, %s, 4.6, -74.1, %s) "
                       "ON CONFLICT DO NOTHING", (sensor_id, name or f"Station {sensor_id}", kind, locality))


async def add_alert(conn: AsyncConnection[Any], *, rule: str = "pm25-24h-levels", sensor_id: str = "KEN",
                    state: str = "firing", level: str = "prevention", value: float = 40.0,
                    threshold: float = 38.0, audience: str = "officers", kind: str = "threshold",
                    severity: str = "warning", indicative: bool = False, locality: str | None = None,
                    started_at: datetime = T0, details: dict[str, Any] | None = None) -> int:
    """An alert row as the rule engine writes it (scope sensor), its sensor registered."""
    await add_sensor(conn, sensor_id)
    row = await (await conn.execute(
        "INSERT INTO alerts (rule, scope, scope_key, sensor_id, variable, level, state, value, threshold, unit, "
        "source, started_at, updated_at, kind, audience, locality, indicative, severity, period, period_start, "
        "period_end, coverage, details) VALUES (%s, 'sensor', %s, %s, 'pm25', %s, %s, %s, %s, 'µg/m³', "
        "'Res. 2254/2017 Art. 10', %s, %s, %s, %s, %s, %s, %s, '24h', %s, %s, 0.95, %s) RETURNING id",
        (rule, sensor_id, sensor_id, level, state, value, threshold, started_at, started_at, kind, audience,
         locality, indicative, severity, started_at - timedelta(hours=24), started_at,
         Jsonb(details or {})))).fetchone()
    assert row is not None
    return int(row[0])


async def add_event(conn: AsyncConnection[Any], alert_id: int, *, kind: str = "raised", time: datetime = T0,
                    to_state: str = "firing", level: str = "prevention", value: float = 40.0,
                    from_level: str | None = None, severity: str | None = None) -> int:
    """An alert_events row as the rule engine writes it."""
    row = await (await conn.execute(
        "INSERT INTO alert_events (alert_id, time, from_state, to_state, level, value, note, kind, from_level, "
        "severity) VALUES (%s, %s, NULL, %s, %s, %s, 'evidence', %s, %s, %s) RETURNING id",
        (alert_id, time, to_state, level, value, kind, from_level, severity))).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------------------------------- operations


async def test_acknowledge_then_resolve_records_actor_via_and_events(database_url: str) -> None:
    async with await connect(database_url) as conn:
        alert_id = await add_alert(conn)
        await add_event(conn, alert_id)
        at = T0 + timedelta(minutes=10)
        acked = await store.acknowledge(conn, alert_id, actor="ana (officer)", via="cli", note="on it", at=at)
        assert acked.state == "acknowledged" and acked.acknowledged_by == "ana (officer)"
        assert acked.acknowledged_at == at and acked.sensor_name == "Station KEN" and acked.locality == "Kennedy"

        resolved = await store.resolve(conn, alert_id, actor="luis", via="api", at=at + timedelta(hours=1))
        assert resolved.state == "resolved" and resolved.resolved_by == "luis"
        assert resolved.resolved_at == at + timedelta(hours=1) and resolved.details["manual"] is True

        detail = await store.get_alert(conn, alert_id)
        kinds = [(e.kind, e.from_state, e.to_state, e.actor, e.via, e.note) for e in detail.events]
        assert kinds == [("raised", None, "firing", None, None, "evidence"),
                         ("acknowledged", "firing", "acknowledged", "ana (officer)", "cli", "on it"),
                         ("resolved", "acknowledged", "resolved", "luis", "api", None)]
        assert detail.events[1].level == "prevention" and detail.events[1].severity == "warning"


async def test_resolve_a_firing_alert_directly(database_url: str) -> None:
    async with await connect(database_url) as conn:
        alert_id = await add_alert(conn)
        resolved = await store.resolve(conn, alert_id, actor="ana", via="link")
        assert resolved.state == "resolved" and resolved.resolved_at is not None
        # the slot of the open episode is free again: the engine may open a new one
        assert await add_alert(conn) != alert_id


@pytest.mark.parametrize(("state", "op"), [("acknowledged", "ack"), ("resolved", "ack"), ("resolved", "resolve")])
async def test_illegal_transitions_are_refused_and_leave_nothing(database_url: str, state: str, op: str) -> None:
    async with await connect(database_url) as conn:
        alert_id = await add_alert(conn, state=state)
        await conn.execute("UPDATE alerts SET acknowledged_by = 'ana', resolved_by = 'luis' WHERE id = %s",
                           (alert_id,))
        call = store.acknowledge if op == "ack" else store.resolve
        with pytest.raises(AlertError) as err:
            await call(conn, alert_id, actor="eva", via="api")
        assert err.value.code == "illegal_transition"
        assert f"alert {alert_id}" in err.value.message and state in err.value.message
        detail = await store.get_alert(conn, alert_id)
        assert detail.alert.state == state and detail.events == ()


async def test_not_found_and_invalid(database_url: str) -> None:
    async with await connect(database_url) as conn:
        for call in (store.acknowledge, store.resolve):
            with pytest.raises(AlertError) as err:
                await call(conn, 999, actor="ana", via="cli")
            assert err.value.code == "not_found" and "999" in err.value.message
        with pytest.raises(AlertError) as err:
            await store.get_alert(conn, 999)
        assert err.value.code == "not_found"
        alert_id = await add_alert(conn)
        with pytest.raises(AlertError) as err:
            await store.add_note(conn, alert_id, actor="ana", via="cli", text="  ")
        assert err.value.code == "invalid"
        with pytest.raises(AlertError) as err:
            await store.acknowledge(conn, alert_id, actor=" ", via="cli")
        assert err.value.code == "invalid"


async def test_notes_on_any_state_are_history_not_transitions(database_url: str) -> None:
    async with await connect(database_url) as conn:
        alert_id = await add_alert(conn, state="resolved")
        note = await store.add_note(conn, alert_id, actor="ana", via="api", text=" filter changed at 14:00 ")
        assert (note.kind, note.from_state, note.to_state, note.note, note.actor, note.via) == (
            "note", "resolved", "resolved", "filter changed at 14:00", "ana", "api")
        assert (await store.get_alert(conn, alert_id)).alert.state == "resolved"
        # notes are never delivered
        assert await outbox.unplanned_events(conn, "hook", since=T0 - timedelta(days=30)) == []


async def test_list_alerts_filters_newest_first(database_url: str) -> None:
    async with await connect(database_url) as conn:
        a = await add_alert(conn, sensor_id="KEN", started_at=T0)
        b = await add_alert(conn, sensor_id="USM", started_at=T0 + timedelta(hours=1), audience="technicians",
                            rule="station-no-data", kind="no_data")
        c = await add_alert(conn, sensor_id="CDAR", started_at=T0 + timedelta(hours=2), state="resolved",
                            locality="Usaquén")
        assert [x.id for x in await store.list_alerts(conn)] == [c, b, a]
        assert [x.id for x in await store.list_alerts(conn, state="firing")] == [b, a]
        assert [x.id for x in await store.list_alerts(conn, audience="technicians")] == [b]
        assert [x.id for x in await store.list_alerts(conn, sensor_id="KEN")] == [a]
        assert [x.id for x in await store.list_alerts(conn, locality="Usaquén")] == [c]
        assert [x.id for x in await store.list_alerts(conn, locality="Kennedy")] == [b, a]
        assert [x.id for x in await store.list_alerts(conn, rule="station-no-data", state="firing")] == [b]
        assert [x.id for x in await store.list_alerts(conn, limit=1)] == [c]
        with pytest.raises(AlertError):
            await store.list_alerts(conn, limit=0)
        assert await store.active_alert_counts(conn) == {("officers", "warning"): 1, ("technicians", "warning"): 1}


# ------------------------------------------------------------------------------------------- exceedances


async def _average(conn: AsyncConnection[Any], sensor: str, variable: str, period: str, end: datetime,
                   value: float, *, valid: bool = True) -> None:
    length = timedelta(days=1) if period == "day" else timedelta(hours=1)
    await conn.execute(
        "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, "
        "samples, valid) VALUES (%s, %s, %s, %s, %s, %s, 'µg/m³', %s, 20, %s)",
        (sensor, variable, period, end - length, end, value, 0.9 if valid else 0.5, valid))


async def test_exceedances_count_valid_days_strictly_above_the_limit(database_url: str) -> None:
    bogota_midnight = datetime(2025, 6, 2, 5, 0, tzinfo=UTC)  # 00:00 in America/Bogota (UTC-5)
    async with await connect(database_url) as conn:
        days = [(37.5, True), (37.0, False), (80.0, False), (45.0, True), (10.0, True)]  # (value, valid)
        for i, (value, valid) in enumerate(days):
            await _average(conn, "KEN", "pm25", "day", bogota_midnight + timedelta(days=i + 1), value, valid=valid)
        await _average(conn, "KEN", "pm25", "day", bogota_midnight + timedelta(days=10), 37.0)  # equal: compliant
        # the day of 31 December (local) belongs to 2025 although it ends on 1 January
        await _average(conn, "KEN", "pm25", "day", datetime(2026, 1, 1, 5, 0, tzinfo=UTC), 50.0)
        await _average(conn, "KEN", "pm25", "day", datetime(2026, 1, 2, 5, 0, tzinfo=UTC), 60.0)
        for h, value in enumerate([101.0, 100.0, 250.0]):
            await _average(conn, "KEN", "so2", "1h", bogota_midnight + timedelta(hours=h + 1), value)
        await _average(conn, "KEN", "so2", "1h", bogota_midnight + timedelta(hours=9), 300.0, valid=False)
        await _average(conn, "USM", "pm25", "day", bogota_midnight + timedelta(days=1), 90.0)

        rows = await store.exceedances(conn, tz="America/Bogota", sensor_id="KEN")
        got = {(r.variable, r.period, r.year): (r.exceedances, r.valid_periods, r.limit_ugm3) for r in rows}
        assert got == {("pm25", "day", 2025): (3, 5, 37.0), ("pm25", "day", 2026): (1, 1, 37.0),
                       ("so2", "1h", 2025): (2, 3, 100.0)}
        assert "2254" in rows[0].source
        only = await store.exceedances(conn, tz="America/Bogota", year=2025, variable="pm25")
        assert [(r.sensor_id, r.exceedances) for r in only] == [("KEN", 3), ("USM", 1)]
        # in UTC the 31 December day starts on 31 December too; the year is the period start's
        utc = await store.exceedances(conn, tz="UTC", sensor_id="KEN", variable="pm25", year=2026)
        assert [(r.exceedances, r.valid_periods) for r in utc] == [(1, 1)]


# ------------------------------------------------------------------------------------------------ outbox


async def test_outbox_plans_once_and_claims_are_exclusive(database_url: str) -> None:
    async with await connect(database_url) as conn, await connect(database_url) as other:
        seen = await outbox.ensure_channels(conn, ["hook", "mail"], T0)
        assert seen == {"hook": T0, "mail": T0}
        assert await outbox.ensure_channels(other, ["hook", "mq"], T0 + timedelta(days=1)) == {
            "hook": T0, "mq": T0 + timedelta(days=1)}

        a1, a2 = await add_alert(conn, sensor_id="KEN"), await add_alert(conn, sensor_id="USM")
        e1 = await add_event(conn, a1)
        e2 = await add_event(conn, a1, kind="resolved", to_state="resolved", time=T0 + timedelta(hours=3))
        e3 = await add_event(conn, a2)
        rows = await outbox.unplanned_events(conn, "hook", since=T0 - timedelta(days=7))
        assert [r.event_id for r in rows] == [e1, e2, e3]
        assert rows[0].sensor_name == "Station KEN" and rows[0].transition == "raised"
        assert [r.event_id for r in await outbox.unplanned_events(conn, "hook", since=T0 + timedelta(hours=1))] == [e2]
        assert [r.event_id for r in await outbox.unplanned_events(conn, "hook", since=T0, exclude=[e1])] == [e2, e3]

        pairs = [(r.event_id, r.alert_id) for r in rows]
        assert await outbox.insert_deliveries(conn, "hook", pairs, T0) == 3
        assert await outbox.insert_deliveries(other, "hook", pairs, T0) == 0  # ON CONFLICT DO NOTHING
        assert await outbox.unplanned_events(conn, "hook", since=T0 - timedelta(days=7)) == []

        async with outbox.claim_due(conn, "hook", now=T0, limit=10) as mine:
            # e2 waits for e1 (same alert, earlier pending); the other claimer skips what is locked
            assert [c.event_id for c in mine] == [e1, e3]
            async with outbox.claim_due(other, "hook", now=T0, limit=10) as theirs:
                assert theirs == []
            await outbox.mark_delivered(conn, mine[0].id, at=T0)
            await outbox.mark_failed(conn, mine[1].id, error="503", next_attempt_at=T0 + timedelta(seconds=5))
        async with outbox.claim_due(other, "hook", now=T0, limit=10) as theirs:
            assert [c.event_id for c in theirs] == [e2]  # e3 is not due yet
            await outbox.mark_dead(other, theirs[0].id, error="400 bad request")
        async with outbox.claim_due(other, "hook", now=T0 + timedelta(seconds=5), limit=10) as theirs:
            assert [(c.event_id, c.attempts) for c in theirs] == [(e3, 1)]

        counts = {(c.channel, c.state): c.count for c in await outbox.outbox_counts(conn)}
        assert counts == {("hook", "delivered"): 1, ("hook", "pending"): 1, ("hook", "dead"): 1}
        detail = await store.get_alert(conn, a1)
        assert [(d.event_id, d.state, d.attempts, d.last_error) for d in detail.deliveries] == [
            (e1, "delivered", 1, None), (e2, "dead", 1, "400 bad request")]


async def test_active_notice_rows_take_each_open_alerts_latest_transition(database_url: str) -> None:
    async with await connect(database_url) as conn:
        a1 = await add_alert(conn, sensor_id="KEN", level="alert")
        await add_event(conn, a1)
        e = await add_event(conn, a1, kind="escalated", level="alert", from_level="prevention",
                            time=T0 + timedelta(hours=1))
        await store.add_note(conn, a1, actor="ana", via="cli", text="looking")
        a2 = await add_alert(conn, sensor_id="USM", state="resolved")
        await add_event(conn, a2)
        rows = await outbox.active_notice_rows(conn)
        assert [(r.alert_id, r.event_id, r.transition, r.from_level) for r in rows] == [
            (a1, e, "escalated", "prevention")]
