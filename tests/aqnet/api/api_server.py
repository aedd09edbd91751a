"""Test helper: the daemon's real HTTP apps, each on its own listener (intake, API, internal) as the daemon
serves them (aqnet.http.server: body limit, concurrency, timeouts), on free loopback ports in a thread, over a
fresh migrated TimescaleDB (`database_url`), with one API token per role issued through `storage.tokens` and
HTTP credentials for one push sensor (`storage.device_credentials`). The intake's handler here accepts the
authenticated sensor's POST without storing it (the daemon's own handler is tested in test_intake.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.config import ListenerSettings
from aqnet.http import Authenticator, create_api_app, create_intake_app, create_internal_app, server_config
from aqnet.localstack import free_port
from sensors.network import bundled_network
from storage import device_credentials
from storage.registry import upsert_registry
from storage.tokens import ROLES, create_token

PUSH_SENSOR = "MS13"  #: a bundled airrohr that POSTs (transport http)


@dataclass(frozen=True, slots=True)
class ApiServer:
    """Where each listener listens, the bearer secret of each role's token and the push sensor's password."""

    base_url: str  #: the API listener
    database_url: str
    tokens: dict[str, str]  #: role → secret
    internal_url: str = ""
    intake_url: str = ""
    device: tuple[str, str] = ("", "")  #: (sensor id, password) of PUSH_SENSOR's HTTP credentials
    posts: list[tuple[str, int]] = field(default_factory=list)  #: (sensor, body bytes) the intake accepted

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def _issue(database_url: str, push_sensor: bool) -> tuple[dict[str, str], str]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        tokens = {role: (await create_token(conn, name=f"test-{role}", role=role, created_by="pytest")).secret
                  for role in ROLES}
    if not push_sensor:
        return tokens, ""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open(wait=True, timeout=30)
    try:
        await upsert_registry(pool, [s for s in bundled_network() if s.id == PUSH_SENSOR])
    finally:
        await pool.close()
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        password = await device_credentials.issue(conn, PUSH_SENSOR, created_by="pytest")
    return tokens, password


def _check(doc: Any) -> None:
    """AssertionError unless `doc` fits aqnet.http.AIRROHR_BODY_SCHEMA."""
    assert isinstance(doc, dict) and isinstance(doc.get("sensordatavalues"), list)
    assert all(isinstance(doc.get(k, ""), str) for k in ("esp8266id", "software_version"))
    for item in doc["sensordatavalues"]:
        assert isinstance(item, dict) and all(isinstance(item.get(k, ""), str) for k in ("value_type", "value"))


class _Serve(threading.Thread):
    def __init__(self, database_url: str, ports: dict[str, int], failures_per_minute: int,
                 posts: list[tuple[str, int]]) -> None:
        super().__init__(name="api-server", daemon=True)
        self.database_url, self.ports, self.failures_per_minute, self.posts = (database_url, ports,
                                                                             failures_per_minute, posts)
        self.servers: dict[str, uvicorn.Server] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the fixture, which fails the test
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(self.database_url, min_size=1, max_size=4, open=False)
        auth_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(self.database_url, min_size=1, max_size=2,
                                                                  open=False)
        await pool.open(wait=True, timeout=30)
        await auth_pool.open(wait=True, timeout=30)
        try:
            auth = Authenticator(auth_pool, auth_failures_per_minute=self.failures_per_minute)

            async def accept(body: bytes, sensor: str, _x_sensor: str | None) -> tuple[int, dict[str, Any]]:
                try:  # the documented body only (the daemon's decoder answers the rest 400, with a dead letter)
                    _check(json.loads(body))
                except (ValueError, AssertionError):
                    return 400, {"error": "schema", "detail": "not an airrohr body"}
                self.posts.append((sensor, len(body)))
                return 200, {"sensor_id": sensor, "readings": 0}

            api_app = create_api_app(api_router(pool, auth=auth))
            apps = {"api": api_app, "intake": create_intake_app(accept, auth),
                    "internal": create_internal_app(CollectorRegistry(), lambda: {"sensors_configured": 0},
                                                    api_app=api_app)}
            for name, app in apps.items():
                listener = ListenerSettings(port=self.ports[name],
                                            max_body_bytes=(64 << 10) if name == "intake" else 1 << 20)
                self.servers[name] = uvicorn.Server(server_config(app, listener))
            serving = [asyncio.create_task(s.serve()) for s in self.servers.values()]
            while not all(s.started for s in self.servers.values()) and not any(t.done() for t in serving):
                await asyncio.sleep(0.02)
            if all(s.started for s in self.servers.values()):  # else `run` reports the error, then sets ready
                self.ready.set()
            await asyncio.gather(*serving)
        finally:
            await auth_pool.close()
            await pool.close()


def serve(database_url: str, *, failures_per_minute: int = 20, push_sensor: bool = False) -> Iterator[ApiServer]:
    """Start the three listeners (with `push_sensor`, PUSH_SENSOR registered and given HTTP credentials); yield
    where they are; stop them."""
    tokens, password = asyncio.run(_issue(database_url, push_sensor))
    posts: list[tuple[str, int]] = []
    for attempt in range(3):  # a free port can be taken by another process before uvicorn binds it: new ports
        ports = {"api": free_port(), "intake": free_port(), "internal": free_port()}
        while len(set(ports.values())) < len(ports):
            ports = {"api": free_port(), "intake": free_port(), "internal": free_port()}
        thread = _Serve(database_url, ports, failures_per_minute, posts)
        thread.start()
        assert thread.ready.wait(30), "HTTP listeners did not start within 30 s"
        if thread.error is None:
            break
        thread.join(15)
        if not isinstance(thread.error, SystemExit) or attempt == 2:  # uvicorn exits 3 when it cannot bind
            raise thread.error
    try:
        yield ApiServer(f"http://127.0.0.1:{ports['api']}", database_url, tokens,
                        internal_url=f"http://127.0.0.1:{ports['internal']}",
                        intake_url=f"http://127.0.0.1:{ports['intake']}", device=(PUSH_SENSOR, password),
                        posts=posts)
    finally:
        for server in thread.servers.values():
            server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "HTTP listener thread did not stop within 15 s"


@pytest.fixture
def api_server(database_url: str) -> Iterator[ApiServer]:
    """The listeners on 127.0.0.1:<free ports>, stopped (and their pools closed) after the test."""
    yield from serve(database_url, failures_per_minute=100_000)  # schemathesis fails auth on purpose, often


@pytest.fixture
def listeners(database_url: str) -> Iterator[ApiServer]:
    """As `api_server`, with PUSH_SENSOR registered and given HTTP credentials (`ApiServer.device`)."""
    yield from serve(database_url, failures_per_minute=100_000, push_sensor=True)
