"""Validation over the HTTP API against a real TimescaleDB holding simulator data (tests/e2e/alert_harness.py),
through the real app in process: a reader cannot validate (403, nothing written), a technician and an officer
can (201), every decision's actor is the token's name and role; undo; the audit trail and the values with their
verification state; bad input is a 422 naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.http import create_api_app
from storage.tokens import ROLES, create_token
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration

API = "/api/v1"
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, dict[str, str]], AlertHarness]]:
    """The app on a database with 4 simulated hours of KEN, and one token per role (named ana-<role>)."""
    harness = AlertHarness(database_url, test_rules(), stations=("KEN",))
    await harness.open()
    await harness.write_hours(1, 4)
    await harness.close()
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        secrets = {role: (await create_token(conn, name=f"ana-{role}", role=role, created_by="pytest")).secret
                   for role in ROLES}
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=30)
    app = create_api_app(api_router(pool, clock=lambda: NOW))
    auth = {role: {"Authorization": f"Bearer {s}"} for role, s in secrets.items()}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aqnet.test") as c:
            yield c, auth, harness
    finally:
        await pool.close()


def _body(harness: AlertHarness, **extra: Any) -> dict[str, Any]:
    return {"action": "invalidate", "sensor_id": "KEN", "device_id": "KEN-pm", "variable": "pm25",
            "starts_at": harness.end_of(1).isoformat(), "ends_at": harness.end_of(2).isoformat(),
            "reason": "maintenance", **extra}


async def test_roles_actor_undo_audit_and_values(api: Any) -> None:
    client, auth, harness = api
    refused = await client.post(f"{API}/validation/decisions", json=_body(harness), headers=auth["reader"])
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "forbidden"
    assert (await client.post(f"{API}/validation/decisions", json=_body(harness))).status_code == 401
    assert harness.query("SELECT count(*) FROM validation_decisions") == [(0,)]

    taken = {}
    for role in ("technician", "officer"):
        answer = await client.post(f"{API}/validation/decisions", headers=auth[role],
                                   json=_body(harness, action="validate" if role == "officer" else "invalidate",
                                              reason=None if role == "officer" else "maintenance"))
        assert answer.status_code == 201, answer.text
        taken[role] = answer.json()
        assert (taken[role]["actor"], taken[role]["actor_role"], taken[role]["via"]) == (f"ana-{role}", role, "api")
        assert datetime.fromisoformat(taken[role]["decided_at"]) == NOW  # the router's clock
    assert taken["technician"]["effect"]["readings"] == 6 and taken["technician"]["scope"] == "variable"

    reader_undo = await client.post(f"{API}/validation/decisions/{taken['officer']['id']}/undo", json={},
                                    headers=auth["reader"])
    assert reader_undo.status_code == 403
    undo = await client.post(f"{API}/validation/decisions/{taken['officer']['id']}/undo",
                             json={"text": "validated the wrong hour"}, headers=auth["technician"])
    assert undo.status_code == 201 and undo.json()["undoes"] == taken["officer"]["id"]
    again = await client.post(f"{API}/validation/decisions/{taken['officer']['id']}/undo", json={},
                              headers=auth["officer"])
    assert again.status_code == 409 and again.json()["detail"]["code"] == "conflict"
    assert (await client.post(f"{API}/validation/decisions/999999/undo", json={},
                              headers=auth["officer"])).status_code == 404

    audit = (await client.get(f"{API}/validation/decisions", params={"sensor_id": "KEN"},
                              headers=auth["reader"])).json()
    assert [(d["action"], d["actor"], d["actor_role"], d["reason"], d["undone_by"]) for d in audit] == [
        ("undo", "ana-technician", "technician", None, None),
        ("validate", "ana-officer", "officer", None, undo.json()["id"]),
        ("invalidate", "ana-technician", "technician", "maintenance", None)]

    values = (await client.get(f"{API}/sensors/KEN/values", headers=auth["reader"], params={
        "variable": "pm25", "since": harness.end_of(0).isoformat(), "until": harness.end_of(3).isoformat()})).json()
    assert len(values) == 18
    inside = {(v["decision"], v["verification"], v["validity"]) for v in values
              if harness.end_of(1) <= datetime.fromisoformat(v["time"]) < harness.end_of(2)}
    assert inside == {("invalidate", 1, -99)}  # the officer's validation was undone: the invalidation decides
    assert {v["verification"] for v in values} == {1, 3}


async def test_bad_decisions_are_422_naming_the_field(api: Any) -> None:
    client, auth, harness = api
    cases = [
        (_body(harness, reason=None), 422, "reason"),
        (_body(harness, reason="other"), 422, "text"),  # "other" needs a text
        (_body(harness, action="validate"), 422, "reason"),  # only an invalidation takes a reason
        (_body(harness, device_id="CSE-pm"), 404, "device"),
        (_body(harness, variable="pm2_5"), 422, "variable"),
    ]
    for body, status, field in cases:
        answer = await client.post(f"{API}/validation/decisions", json=body, headers=auth["officer"])
        assert (answer.status_code, answer.json()["detail"]["field"]) == (status, field), answer.text
    backwards = await client.post(f"{API}/validation/decisions", headers=auth["officer"],
                                  json=_body(harness, ends_at=harness.end_of(0).isoformat()))
    assert backwards.status_code == 422 and "must be before" in backwards.text
    assert harness.query("SELECT count(*) FROM validation_decisions") == [(0,)]
