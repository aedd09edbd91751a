"""The alert operations of the HTTP API against a real TimescaleDB, through the real app (in-process ASGI): only an
officer acknowledges, resolves and annotates (a technician and a reader get 403, no token 401, and the alert is
untouched); the actor recorded is the token's name via api; the signed link's GET acknowledges nothing, its POST
does (actor "<name> (link)", via link), a tampered, foreign-key or expired link is a 403 page; exceedances."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.delivery.signing import ack_token
from aqnet.api import api_router
from aqnet.http import create_api_app
from storage.tokens import ROLES, create_token

API = "/api/v1"
KEY = bytes(range(32))
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def seed_alert(conn: AsyncConnection[Any], *, rule: str = "pm25-24h-levels", sensor: str = "KEN",
                     state: str = "firing", audience: str = "officers", locality: str = "Kennedy") -> tuple[int, int]:
    """One alert of `rule` at `sensor` with its 'raised' event; (alert id, event id)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO sensors (id, name, kind, lat, lon, locality) VALUES (%s, %s, 'station', 4.6, -74.1, %s) "
            "ON CONFLICT (id) DO NOTHING", (sensor, f"Station {sensor}", locality))
        await cur.execute(
            "INSERT INTO alerts (rule, scope, scope_key, sensor_id, variable, level, state, value, threshold, unit, "
            "source, started_at, updated_at, kind, audience, severity, period, period_start, period_end, coverage, "
            "locality) VALUES (%s, 'sensor', %s, %s, 'pm25', 'prevention', %s, 41.5, 38, 'µg/m³', "
            "'Res. 2254/2017 Art. 10', %s, %s, 'threshold', %s, 'warning', '24h', %s, %s, 0.92, %s) RETURNING id",
            (rule, sensor, sensor, state, NOW - timedelta(hours=2), NOW, audience, NOW - timedelta(hours=26),
             NOW - timedelta(hours=2), locality))
        row = await cur.fetchone()
        assert row is not None
        await cur.execute(
            "INSERT INTO alert_events (alert_id, time, from_state, to_state, level, value, note, kind, severity) "
            "VALUES (%s, %s, NULL, 'firing', 'prevention', 41.5, 'raised at prevention', 'raised', 'warning') "
            "RETURNING id", (row[0], NOW - timedelta(hours=2)))
        event = await cur.fetchone()
        assert event is not None
    return int(row[0]), int(event[0])


async def _alert_row(url: str, alert_id: int) -> tuple[Any, ...]:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT state, acknowledged_by, resolved_by, (SELECT count(*) FROM alert_events e "
                                 "WHERE e.alert_id = a.id) FROM alerts a WHERE id = %s", (alert_id,))
        row = await cur.fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]], _Clock]]:
    """The app on the database (signing key KEY, a stepped clock), one token per role, and two alerts."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        secrets = {role: (await create_token(conn, name=f"ana-{role}", role=role, created_by="pytest")).secret
                   for role in ROLES}
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=30)
    clock = _Clock()
    app = create_api_app(api_router(pool, clock=clock, signing_key=KEY))
    auth = {role: {"Authorization": f"Bearer {s}"} for role, s in secrets.items()}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aqnet") as client:
            yield client, auth, clock
    finally:
        await pool.close()


OFFICER_OPS = [("ack", {"note": "on it"}), ("resolve", {"note": "sensor checked"}), ("notes", {"text": "called"})]


@pytest.mark.parametrize(("op", "body"), OFFICER_OPS)
async def test_only_an_officer_acknowledges_resolves_and_annotates(api: Any, database_url: str, op: str,
                                                                  body: dict[str, str]) -> None:
    client, auth, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        alert_id, _ = await seed_alert(conn)
    before = await _alert_row(database_url, alert_id)
    url = f"{API}/alerts/{alert_id}/{op}"

    none = await client.post(url, json=body)
    assert none.status_code == 401 and none.headers["WWW-Authenticate"] == "Bearer"
    bogus = await client.post(url, json=body, headers={"Authorization": "Bearer aqn_not-a-token"})
    assert bogus.status_code == 401
    for role in ("technician", "reader"):
        refused = await client.post(url, json=body, headers=auth[role])
        assert refused.status_code == 403, refused.text
        detail = refused.json()["detail"]
        assert detail["code"] == "forbidden" and role in detail["message"] and "officer" in detail["message"]
    assert await _alert_row(database_url, alert_id) == before  # nothing changed, no event written

    done = await client.post(url, json=body, headers=auth["officer"])
    assert done.status_code == (201 if op == "notes" else 200), done.text
    doc = done.json()
    last = doc["events"][-1]
    assert (last["kind"], last["actor"], last["via"]) == (
        {"ack": "acknowledged", "resolve": "resolved", "notes": "note"}[op], "ana-officer", "api")
    assert last["note"] == body.get("note", body.get("text"))
    state, acked_by, resolved_by, events = await _alert_row(database_url, alert_id)
    assert events == before[3] + 1
    if op == "ack":
        assert (state, acked_by, doc["state"]) == ("acknowledged", "ana-officer", "acknowledged")
    elif op == "resolve":
        assert (state, resolved_by) == ("resolved", "ana-officer")
    else:
        assert state == "firing"


async def test_list_show_filters_and_errors(api: Any, database_url: str) -> None:
    client, auth, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        first, _ = await seed_alert(conn, sensor="KEN", locality="Kennedy")
        second, _ = await seed_alert(conn, rule="station-no-data", sensor="USM", audience="technicians",
                                     locality="Usme")
    listed = await client.get(f"{API}/alerts", headers=auth["reader"])
    assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [second, first]
    for params, ids in [({"audience": "technicians"}, [second]), ({"locality": "Kennedy"}, [first]),
                        ({"sensor_id": "USM"}, [second]), ({"rule": "pm25-24h-levels"}, [first]),
                        ({"state": "resolved"}, []), ({"limit": 1}, [second])]:
        got = await client.get(f"{API}/alerts", params=params, headers=auth["technician"])
        assert [a["id"] for a in got.json()] == ids, params
    shown = await client.get(f"{API}/alerts/{first}", headers=auth["reader"])
    doc = shown.json()
    assert shown.status_code == 200 and doc["sensor_name"] == "Station KEN" and doc["coverage"] == 0.92
    assert [e["kind"] for e in doc["events"]] == ["raised"] and doc["deliveries"] == []
    missing = await client.get(f"{API}/alerts/999999", headers=auth["reader"])
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
    acked = await client.post(f"{API}/alerts/{first}/ack", headers=auth["officer"])
    assert acked.status_code == 200 and acked.json()["events"][-1]["note"] is None  # the body is optional
    twice = await client.post(f"{API}/alerts/{first}/ack", headers=auth["officer"])
    assert twice.status_code == 409 and "ana-officer" in twice.json()["detail"]["message"]
    assert (await client.get(f"{API}/alerts", headers={})).status_code == 401


async def test_signed_link_get_asks_post_acknowledges(api: Any, database_url: str) -> None:
    client, _, clock = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        alert_id, event_id = await seed_alert(conn)
    token = ack_token(KEY, alert_id, event_id, NOW + timedelta(hours=72), issued=NOW)
    link = f"{API}/alerts/ack/{token}"

    form = await client.get(link)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in form.text and 'name="name"' in form.text and "prevention" in form.text
    assert (await _alert_row(database_url, alert_id))[:2] == ("firing", None)  # a GET acknowledges nothing

    nameless = await client.post(link, data={"name": "  "})
    assert nameless.status_code == 422 and (await _alert_row(database_url, alert_id))[0] == "firing"

    done = await client.post(link, data={"name": "Ana Gómez", "note": "<b>voy</b>"})
    assert done.status_code == 200 and "Ana Gómez (link)" in done.text
    state, acked_by, _, _ = await _alert_row(database_url, alert_id)
    assert (state, acked_by) == ("acknowledged", "Ana Gómez (link)")
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT actor, via, note FROM alert_events WHERE alert_id = %s AND "
                                 "kind = 'acknowledged'", (alert_id,))
        assert await cur.fetchall() == [("Ana Gómez (link)", "link", "<b>voy</b>")]

    again = await client.post(link, data={"name": "Luis"})
    assert again.status_code == 200 and "Ana Gómez (link)" in again.text
    assert (await client.get(link)).status_code == 200  # the page says who acknowledged, no form
    assert "<form" not in (await client.get(link)).text

    clock.now = NOW + timedelta(hours=73)  # the link expired
    expired = await client.post(link, data={"name": "Luis"})
    assert expired.status_code == 403 and "expired" in expired.text


async def test_tampered_or_foreign_links_are_refused(api: Any, database_url: str) -> None:
    client, _, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        alert_id, event_id = await seed_alert(conn)
    good = ack_token(KEY, alert_id, event_id, NOW + timedelta(hours=1), issued=NOW)
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    foreign = ack_token(b"another key, another network....", alert_id, event_id, NOW + timedelta(hours=1),
                        issued=NOW)
    for token in (tampered, foreign, "not-a-token", "x" * 300):
        for method in ("GET", "POST"):
            refused = await client.request(method, f"{API}/alerts/ack/{token}", data={"name": "Eve"}
                                           if method == "POST" else None)
            assert refused.status_code == 403, (token, method, refused.text)
            assert refused.headers["content-type"].startswith("text/html")
    assert (await _alert_row(database_url, alert_id))[:2] == ("firing", None)


async def _escalate(database_url: str, alert_id: int, at: datetime) -> int:
    """The rule engine's escalation of the alert to 'alert' (back to firing); the event id."""
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE alerts SET level = 'alert', state = 'firing', acknowledged_by = NULL, "
                           "acknowledged_at = NULL, updated_at = %s WHERE id = %s", (at, alert_id))
        cur = await conn.execute(
            "INSERT INTO alert_events (alert_id, time, from_state, to_state, level, from_level, value, kind, "
            "severity) VALUES (%s, %s, 'firing', 'firing', 'alert', 'prevention', 60, 'escalated', 'critical') "
            "RETURNING id", (alert_id, at))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_attack_link_issued_before_an_escalation_does_not_acknowledge_after_it(api: Any,
                                                                                     database_url: str) -> None:
    """Issue 16: an escalation needs a new acknowledgement (alerts.rules.state), so the link of the raised event is
    refused after it (GET and POST: a 409 page saying so, with a link to the alert) and nothing changes, whether
    the alert was still firing or had been acknowledged before the escalation; the escalation's own link works."""
    client, auth, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        firing_id, firing_event = await seed_alert(conn, sensor="KEN")
        acked_id, acked_event = await seed_alert(conn, sensor="USM", locality="Usme")
    old = {a: ack_token(KEY, a, e, NOW + timedelta(hours=72), issued=NOW)
           for a, e in ((firing_id, firing_event), (acked_id, acked_event))}
    assert (await client.post(f"{API}/alerts/ack/{old[acked_id]}", data={"name": "Ana"})).status_code == 200
    escalations = {a: await _escalate(database_url, a, NOW + timedelta(minutes=30)) for a in old}
    for alert_id, token in old.items():
        form = await client.get(f"{API}/alerts/ack/{token}")
        posted = await client.post(f"{API}/alerts/ack/{token}", data={"name": "Eve"})
        for answer in (form, posted):
            assert answer.status_code == 409, answer.text
            assert "escaló a alert" in answer.text and "reconocimiento nuevo" in answer.text  # language es
            assert f'href="../{alert_id}"' in answer.text and "<form" not in answer.text
        assert (await _alert_row(database_url, alert_id))[:2] == ("firing", None)
        doc = (await client.get(f"{API}/alerts/{alert_id}", headers=auth["reader"])).json()
        assert doc["events"][-1]["kind"] == "escalated"  # no acknowledgement recorded after it
    fresh = ack_token(KEY, firing_id, escalations[firing_id], NOW + timedelta(hours=72), issued=NOW)
    done = await client.post(f"{API}/alerts/ack/{fresh}", data={"name": "Luis"})
    assert done.status_code == 200 and (await _alert_row(database_url, firing_id))[:2] == ("acknowledged",
                                                                                          "Luis (link)")


async def test_link_naming_another_alerts_event_is_refused(api: Any, database_url: str) -> None:
    client, _, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        first, _ = await seed_alert(conn, sensor="KEN")
        _, other_event = await seed_alert(conn, sensor="USM", locality="Usme")
    token = ack_token(KEY, first, other_event, NOW + timedelta(hours=1), issued=NOW)
    refused = await client.post(f"{API}/alerts/ack/{token}", data={"name": "Eve"})
    assert refused.status_code == 409 and (await _alert_row(database_url, first))[:2] == ("firing", None)


async def test_links_refused_without_a_signing_key(database_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open(wait=True, timeout=30)
    try:
        app = create_api_app(api_router(pool, signing_key=None))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aqnet") as client:
            token = ack_token(KEY, 1, 1, datetime.now(UTC) + timedelta(hours=1), issued=datetime.now(UTC))
            got = await client.post(f"{API}/alerts/ack/{token}", data={"name": "Ana"})
    finally:
        await pool.close()
    assert got.status_code == 403 and "not enabled" in got.text


async def test_exceedances_count_days_above_the_limit(api: Any, database_url: str) -> None:
    client, auth, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        # three valid days of PM2.5 at KEN in 2026 (Bogotá days: 05:00 UTC to 05:00 UTC), 37 is the 24 h limit
        # (Res. 2254/2017 Tabla 1); exceedance means > 37, so 37.0 does not count; one invalid day never counts
        for day, value, valid in [(1, 40.0, True), (2, 37.0, True), (3, 55.5, True), (4, 90.0, False)]:
            start = datetime(2026, 2, day, 5, tzinfo=UTC)
            await conn.execute(
                "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                "coverage, samples, valid) VALUES ('KEN', 'pm25', 'day', %s, %s, %s, 'µg/m³', %s, 24, %s)",
                (start, start + timedelta(days=1), value, 1.0 if valid else 0.5, valid))
    got = await client.get(f"{API}/exceedances", params={"year": 2026, "variable": "pm25"}, headers=auth["reader"])
    assert got.status_code == 200, got.text
    assert [(e["sensor_id"], e["period"], e["exceedances"], e["valid_periods"], e["limit_ugm3"])
            for e in got.json()] == [("KEN", "day", 2, 3, 37.0)]
    assert (await client.get(f"{API}/exceedances", params={"year": 2025}, headers=auth["reader"])).json() == []


async def test_exceedances_include_the_annual_limit(api: Any, database_url: str) -> None:
    client, auth, _ = api
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        # a valid 2025 annual mean of 27.5 µg/m³ PM2.5 at KEN: above the annual limit of 25 (Res. 2254/2017 Tabla 1,
        # norm_limits period 'year', migration 0019)
        await conn.execute(
            "INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, coverage, "
            "samples, valid) VALUES ('KEN', 'pm25', 'year', %s, %s, 27.5, 'µg/m³', 0.9, 330, true)",
            (datetime(2025, 1, 1, 5, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC)))
    got = await client.get(f"{API}/exceedances", params={"year": 2025}, headers=auth["reader"])
    assert got.status_code == 200, got.text
    assert [(e["sensor_id"], e["variable"], e["period"], e["exceedances"], e["valid_periods"], e["limit_ugm3"])
            for e in got.json()] == [("KEN", "pm25", "year", 1, 1, 25.0)]
