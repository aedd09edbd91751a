"""The HTTP API against a real TimescaleDB and the real app over HTTP: 401 without a known token, 403 for a role that
may not, a reader changes nothing, an officer cannot change the registry, a technician can do every write, and
the audit trail names the token."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection

from storage.tokens import create_token, revoke_token
from tests.aqnet.api.api_server import ApiServer, api_server  # noqa: F401 - the fixture

API = "/api/v1"
SENSOR = {"id": "MS90", "name": "Microsensor MS90 (Kennedy)", "kind": "microsensor",
          "location": {"lat": 4.628, "lon": -74.153, "locality": "Kennedy", "address": "Cl. 38 Sur"},
          "devices": [{"id": "MS90", "profile": "aqnet-json", "protocol": "mqtt", "topic": "aqnet/MS90/readings",
                       "variables": ["pm25", "pm10"]}]}
OTHER = {**SENSOR, "id": "MS91", "name": "Microsensor MS91",
         "devices": [{"id": "MS91", "profile": "aqnet-json", "protocol": "mqtt", "topic": "aqnet/MS91/readings",
                      "variables": ["pm25"]}]}
IMPORTED = {**SENSOR, "id": "MS92", "name": "Microsensor MS92",
            "devices": [{"id": "MS92", "profile": "aqnet-json", "protocol": "mqtt", "topic": "aqnet/MS92/readings",
                         "variables": ["pm10"]}]}
NEW_DEVICE = {"id": "MS90-b", "profile": "aqnet-json", "protocol": "mqtt", "topic": "aqnet/MS90/readings",
              "variables": ["temperature"]}
SWAPPED = {"id": "MS90-2", "profile": "aqnet-json", "protocol": "mqtt", "topic": "aqnet/MS90/readings",
           "variables": ["pm25", "pm10"]}
CALIBRATION = {"variable": "pm25", "kind": "linear", "coefficients": [0.8, 1.5], "unit": "µg/m³",
               "valid_from": "2026-01-01T00:00:00Z", "source": "co-location with KEN, Jan 2026"}
MAINTENANCE = {"starts_at": "2026-03-01T08:00:00Z", "ends_at": "2026-03-01T12:00:00Z", "reason": "filter change"}

#: every operation that changes something, in an order in which a technician can do them all (MS90 exists)
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/sensors", OTHER),
    ("PATCH", "/sensors/MS90", {"notes": "key at the caretaker's"}),
    ("PUT", "/sensors/MS90/location", {"lat": 4.629, "lon": -74.154, "locality": "Kennedy"}),
    ("POST", "/sensors/MS90/lifecycle", {"to": "commissioning"}),
    ("POST", "/sensors/MS90/devices", NEW_DEVICE),
    ("POST", "/sensors/MS90/devices/MS90/calibrations", CALIBRATION),
    ("POST", "/sensors/MS90/maintenance", MAINTENANCE),
    ("POST", "/sensors/MS90/devices/MS90/swap", {"new": SWAPPED, "at": "2026-02-01T00:00:00Z"}),
    ("POST", "/network", [IMPORTED]),
]


def _operations(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    """The registry's operations (the alerts' are tested in test_api_alerts.py)."""
    return {(method.upper(), path) for path, ops in openapi["paths"].items() if path.startswith(API)
            for method, op in ops.items() if "registry" in op.get("tags", ())}


def _fill(path: str) -> str:
    return path.replace("{sensor_id}", "MS90").replace("{device_id}", "MS90")


def _state(client: httpx.Client, auth: dict[str, str]) -> tuple[Any, Any]:
    """What a write would change: the exported network and the audit log."""
    network = client.get(f"{API}/network", headers=auth)
    audit = client.get(f"{API}/audit", headers=auth, params={"limit": 1000})
    assert network.status_code == 200 and audit.status_code == 200, (network.text, audit.text)
    return network.json(), audit.json()


@pytest.fixture
def client(api_server: ApiServer) -> httpx.Client:  # noqa: F811
    with httpx.Client(base_url=api_server.base_url, timeout=30) as c:
        created = c.post(f"{API}/sensors", json=SENSOR, headers=api_server.auth("technician"))
        assert created.status_code == 201, created.text
        yield c


def test_every_operation_needs_a_known_token(api_server: ApiServer, client: httpx.Client) -> None:  # noqa: F811
    async def revoked() -> str:
        async with await AsyncConnection.connect(api_server.database_url, autocommit=True) as conn:
            issued = await create_token(conn, name="lost tablet", role="technician", created_by="pytest")
            await revoke_token(conn, issued.token.id)
        return issued.secret

    wrong = {"none": {}, "unknown": {"Authorization": "Bearer aqn_" + "x" * 43},
             "revoked": {"Authorization": f"Bearer {asyncio.run(revoked())}"},
             "not ours": {"Authorization": "Bearer some-other-systems-token"},
             "basic": {"Authorization": "Basic dGVjaDpzZWNyZXQ="},
             "no secret": {"Authorization": "Bearer"}}
    ops = _operations(httpx.get(f"{api_server.internal_url}/openapi.json").json())
    assert len(ops) >= 18
    bodies = {(m, p): b for m, p, b in WRITES}
    for method, path in sorted(ops):
        for why, headers in wrong.items():
            r = client.request(method, f"{API}{_fill(path.removeprefix(API))}", headers=headers,
                               json=bodies.get((method, _fill(path.removeprefix(API)))))
            assert r.status_code == 401, (method, path, why, r.status_code, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["detail"]["code"] == "unauthorized"


@pytest.mark.parametrize("role", ["technician", "officer", "reader"])
def test_every_role_reads(api_server: ApiServer, client: httpx.Client, role: str) -> None:  # noqa: F811
    auth = api_server.auth(role)
    me = client.get(f"{API}/me", headers=auth)
    assert me.status_code == 200 and me.json()["role"] == role and me.json()["name"] == f"test-{role}"
    ops = _operations(httpx.get(f"{api_server.internal_url}/openapi.json").json())
    for method, path in sorted(ops):
        if method == "GET":
            r = client.get(f"{API}{_fill(path.removeprefix(API))}", headers=auth)
            assert r.status_code == 200, (path, role, r.text)
    sensors = client.get(f"{API}/sensors", headers=auth).json()
    assert [s["id"] for s in sensors] == ["MS90"]
    assert client.get(f"{API}/network", headers=auth, params={"format": "csv"}).headers["content-type"].startswith(
        "text/csv")


@pytest.mark.parametrize("role", ["reader", "officer"])
def test_reader_and_officer_cannot_change_the_registry(api_server: ApiServer, client: httpx.Client,  # noqa: F811
                                                       role: str) -> None:
    ops = _operations(httpx.get(f"{api_server.internal_url}/openapi.json").json())
    writes = {(m, p) for m, p in ops if m != "GET"}
    assert {(m, f"{API}{p}") for m, p, _ in WRITES} >= {(m, _fill(p)) for m, p in writes}, \
        "a write operation this test does not try"
    auth = api_server.auth(role)
    before = _state(client, auth)
    for method, path, body in WRITES:
        r = client.request(method, f"{API}{path}", json=body, headers=auth)
        assert r.status_code == 403, (role, method, path, r.status_code, r.text)
        assert r.json()["detail"]["code"] == "forbidden"
        assert role in r.json()["detail"]["message"]
    assert _state(client, auth) == before


def test_technician_does_every_write_and_the_audit_names_the_token(api_server: ApiServer,  # noqa: F811
                                                                   client: httpx.Client) -> None:
    auth = api_server.auth("technician")
    for method, path, body in WRITES:
        r = client.request(method, f"{API}{path}", json=body, headers=auth)
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)
    ms90 = client.get(f"{API}/sensors/MS90", headers=auth).json()
    assert ms90["lifecycle"] == "commissioning" and ms90["notes"] == "key at the caretaker's"
    assert ms90["location"]["lat"] == 4.629
    assert {d["id"] for d in ms90["devices"]} == {"MS90-2", "MS90-b"}
    assert [w["reason"] for w in ms90["maintenance"]] == ["filter change"]
    audit = client.get(f"{API}/sensors/MS90/audit", headers=auth).json()
    assert audit and {e["actor"] for e in audit} == {"api:test-technician"}
    for other in ("MS91", "MS92"):
        assert client.get(f"{API}/sensors/{other}", headers=auth).status_code == 200


def test_registry_errors_are_specific(api_server: ApiServer, client: httpx.Client) -> None:  # noqa: F811
    auth = api_server.auth("technician")
    dup = client.post(f"{API}/sensors", json=SENSOR, headers=auth)
    assert dup.status_code == 409 and dup.json()["detail"]["code"] == "duplicate"
    missing = client.get(f"{API}/sensors/NOPE", headers=auth)
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]["message"]
    bad = client.post(f"{API}/sensors", headers=auth,
                      json={**OTHER, "location": {"lat": 91, "lon": 0}})
    assert bad.status_code == 422
    nul = client.patch(f"{API}/sensors/MS90", json={"notes": "a\x00b"}, headers=auth)
    assert nul.status_code == 422, nul.text
    assert client.post(f"{API}/sensors/MS90/lifecycle", json={"to": "retired"}, headers=auth).status_code == 200
    again = client.post(f"{API}/sensors/MS90/lifecycle", json={"to": "retired"}, headers=auth)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "illegal_transition"
