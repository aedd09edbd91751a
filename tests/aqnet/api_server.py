"""Test helper: the daemon's real HTTP app with the API router, served by uvicorn on a free port in a thread, over
a fresh migrated TimescaleDB (`database_url`), with one token per role issued through `storage.tokens`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.http import create_app
from aqnet.localstack import free_port
from storage.tokens import ROLES, create_token


@dataclass(frozen=True, slots=True)
class ApiServer:
    """Where the app listens and the bearer secret of each role's token."""

    base_url: str
    database_url: str
    tokens: dict[str, str]  #: role → secret

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def _issue(database_url: str) -> dict[str, str]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        return {role: (await create_token(conn, name=f"test-{role}", role=role, created_by="pytest")).secret
                for role in ROLES}


class _Serve(threading.Thread):
    def __init__(self, database_url: str, port: int) -> None:
        super().__init__(name="api-server", daemon=True)
        self.database_url, self.port = database_url, port
        self.server: uvicorn.Server | None = None
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
        await pool.open(wait=True, timeout=30)
        try:
            app = create_app(CollectorRegistry(), lambda: {"sensors_configured": 0}, api=api_router(pool))
            self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                        lifespan="off"))
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.02)
            self.ready.set()
            await serving
        finally:
            await pool.close()


@pytest.fixture
def api_server(database_url: str) -> Iterator[ApiServer]:
    """The app on 127.0.0.1:<free port>, stopped (and its pool closed) after the test."""
    tokens = asyncio.run(_issue(database_url))
    thread = _Serve(database_url, free_port())
    thread.start()
    assert thread.ready.wait(30), "API server did not start within 30 s"
    if thread.error is not None:
        raise thread.error
    try:
        yield ApiServer(f"http://127.0.0.1:{thread.port}", database_url, tokens)
    finally:
        assert thread.server is not None
        thread.server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "API server thread did not stop within 15 s"
