"""The public open-data listener as a citizen meets it, against a real TimescaleDB with the bundled network
registered: it answers without a login, refuses every write (405) on every path of its own OpenAPI description,
answers HEAD, coarsens the locations the registry says, gives each client its rate (429 with Retry-After beyond),
and serves cache headers a client can revalidate with."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.config import PublicSettings
from aqnet.localstack import free_port
from aqnet.public import create_public_app
from sensors.network import bundled_network
from storage.registry import upsert_registry
from storage.registry.edit import set_lifecycle
from tests.aqnet.public.public_server import OPEN_DATA, public_server

WRITES = ("POST", "PUT", "PATCH", "DELETE")


async def _register(database_url: str) -> None:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open(wait=True, timeout=30)
    try:
        await upsert_registry(pool, bundled_network())
    finally:
        await pool.close()


@pytest.fixture
def registered(database_url: str) -> str:
    asyncio.run(_register(database_url))
    return database_url


def _concrete(path: str) -> str:
    return path.replace("{locations_id}", "KEN").replace("{parameter}", "pm25")


def test_answers_without_a_login_and_refuses_every_write(registered: str) -> None:
    with public_server(registered) as base, httpx.Client(base_url=base, timeout=30) as http:
        about = http.get("/v1/about")
        assert about.status_code == 200, about.text
        (info,) = about.json()["results"]
        assert info["license"]["id"] == "CC-BY-4.0" and info["license"]["url"].startswith("https://")
        assert info["publisher"]["name"] == OPEN_DATA.publisher and info["contact"] == OPEN_DATA.contact_email
        assert about.json()["meta"]["license"] == info["license"]

        locations = http.get("/v1/locations", params={"limit": 1000})
        assert locations.status_code == 200
        found = locations.json()
        network = bundled_network()
        assert found["meta"]["found"] == len(network) == len(found["results"])
        by_id = {loc["id"]: loc for loc in found["results"]}
        station = by_id["KEN"]
        assert (station["isReference"], station["indicative"], station["coordinatesPrecision"]) == (True, False,
                                                                                                  "exact")
        assert "pm25" in [s["parameter"]["id"] for s in station["sensors"]]
        registered_ken = next(s for s in network if s.id == "KEN")
        assert station["coordinates"]["latitude"] == registered_ken.lat
        micro = next(loc for loc in found["results"] if loc["kind"] == "microsensor")
        assert (micro["isReference"], micro["indicative"], micro["coordinatesPrecision"]) == (False, True, "coarse")
        assert micro["address"] == ""  # a microsensor may stand at a private home: rounded to 0.01°, no address
        assert round(micro["coordinates"]["latitude"], 2) == micro["coordinates"]["latitude"]

        schema = http.get("/v1/openapi.json").json()
        paths = [_concrete(p) for p in schema["paths"]]
        assert len(paths) >= 10
        for path in paths:
            for method in WRITES:
                refused = http.request(method, path, json={"value": 1})
                assert refused.status_code == 405, (method, path, refused.status_code, refused.text)
                assert refused.headers["allow"] == "GET, HEAD"
        head = http.head("/v1/locations", params={"limit": 1000})
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == locations.headers["etag"]


def test_a_client_over_its_rate_gets_429_and_others_do_not(registered: str) -> None:
    settings = PublicSettings(requests_per_minute=3)
    with public_server(registered, public=settings, trusted=["127.0.0.1"]) as base, \
            httpx.Client(base_url=base, timeout=30) as http:
        assert [http.get("/v1/about").status_code for _ in range(3)] == [200, 200, 200]
        over = http.get("/v1/about")
        assert over.status_code == 429, over.text
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert "retry after" in over.json()["detail"]
        assert http.post("/v1/about").status_code == 429  # a refused write counts as a request too
        # behind the trusted proxy (127.0.0.1), the client is the forwarded address: another client, its own rate
        other = http.get("/v1/about", headers={"X-Forwarded-For": "203.0.113.9"})
        assert other.status_code == 200


def test_cache_headers_and_revalidation(registered: str) -> None:
    with public_server(registered) as base, httpx.Client(base_url=base, timeout=30) as http:
        first = http.get("/v1/locations")
        assert first.headers["cache-control"] == "public, max-age=3600"
        assert first.headers["link"] == f'<{OPEN_DATA.licence_url}>; rel="license"'
        again = http.get("/v1/locations", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        latest = http.get("/v1/latest")
        assert latest.status_code == 200 and latest.headers["cache-control"] == "public, max-age=60"
        assert http.get("/v1/locations", params={"kind": "station"}).headers["etag"] != first.headers["etag"]


def test_bad_requests_name_what_is_wrong(registered: str) -> None:
    with public_server(registered) as base, httpx.Client(base_url=base, timeout=30) as http:
        unknown = http.get("/v1/locations/NOPE/parameters/pm25/hours")
        assert unknown.status_code == 404 and "NOPE" in unknown.json()["detail"]
        backwards = http.get("/v1/locations/KEN/parameters/pm25/hours",
                             params={"datetime_from": "2026-03-02T00:00:00-05:00",
                                     "datetime_to": "2026-03-01T00:00:00-05:00"})
        assert backwards.status_code == 422
        assert backwards.json()["detail"][0]["loc"] == ["query", "datetime_from"]
        assert "must be before datetime_to" in backwards.json()["detail"][0]["msg"]
        too_long = http.get("/v1/locations/KEN/parameters/pm25/days",
                            params={"datetime_from": "2020-01-01T00:00:00Z", "datetime_to": "2026-01-01T00:00:00Z"})
        assert too_long.status_code == 422 and "366 days" in too_long.json()["detail"][0]["msg"]
        assert http.get("/v1/latest", params={"limit": 100_000}).status_code == 422


async def test_a_database_that_does_not_answer_is_a_503_with_retry_after() -> None:
    # nothing listens on this port: the pool never gets a connection, and the request waits at most its timeout
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(f"postgresql://aqnet@127.0.0.1:{free_port()}/aqnet",
                                                         min_size=1, max_size=1, timeout=1.0, open=False)
    await pool.open(wait=False)
    try:
        app = create_public_app(pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://public") as http:
            answer = await http.get("/v1/locations")
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "30" and "retry later" in answer.json()["detail"]
            assert (await http.get("/v1/about")).status_code == 200  # what needs no database still answers
    finally:
        await pool.close()


def test_a_retired_location_stays_in_the_catalogue_with_its_history(registered: str) -> None:
    async def retire() -> None:
        async with await AsyncConnection.connect(registered, autocommit=True) as conn:
            await set_lifecycle(conn, "MS01", "retired", actor="pytest", reason="moved away")

    asyncio.run(retire())
    with public_server(registered) as base, httpx.Client(base_url=base, timeout=30) as http:
        retired = http.get("/v1/locations", params={"lifecycle": "retired"}).json()
        assert [(loc["id"], loc["lifecycle"]) for loc in retired["results"]] == [("MS01", "retired")]
        assert http.get("/v1/locations/MS01/parameters/pm25/hours").status_code == 200
        assert http.get("/v1/latest", params={"locations_id": "MS01"}).json()["meta"]["found"] == 0
