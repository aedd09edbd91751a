"""Test helper: the public open-data app (`aqnet.public.create_public_app`) served as the daemon serves it
(aqnet.http.server: body limit, concurrency, timeouts) on a free loopback port in a thread, over a real database,
with a read-only pool of its own like the daemon's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import uvicorn
from psycopg_pool import AsyncConnectionPool

from aqnet.config import OpenDataSettings, PublicListener, PublicSettings
from aqnet.http import TrustedProxies, server_config
from aqnet.localstack import free_port
from aqnet.public import create_public_app

OPEN_DATA = OpenDataSettings(publisher="Secretaría Distrital de Ambiente", publisher_url="https://ambiente.example",
                             contact_email="datos@ambiente.example")


class _Serve(threading.Thread):
    def __init__(self, database_url: str, port: int, public: PublicSettings, clock: Callable[[], datetime] | None,
                 trusted: list[str], tz_name: str, language: str | None = None) -> None:
        super().__init__(name="public-server", daemon=True)
        self.database_url, self.port, self.public, self.clock = database_url, port, public, clock
        self.trusted, self.tz_name, self.language = trusted, tz_name, language
        self.server: uvicorn.Server | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller, which fails the test
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.database_url, min_size=1, max_size=2, open=False,
            kwargs={"options": "-c default_transaction_read_only=on -c statement_timeout=30000"})
        await pool.open(wait=True, timeout=30)
        try:
            extra: dict[str, Any] = {"clock": self.clock} if self.clock else {}
            app = create_public_app(pool, public=self.public, open_data=OPEN_DATA, tz_name=self.tz_name,
                                    trusted_proxies=TrustedProxies(self.trusted), language=self.language, **extra)
            self.server = uvicorn.Server(server_config(app, PublicListener(port=self.port)))
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.02)
            if self.server.started:
                self.ready.set()
            await serving
        finally:
            await pool.close()


@contextmanager
def public_server(database_url: str, *, public: PublicSettings | None = None,
                  clock: Callable[[], datetime] | None = None, trusted: list[str] | None = None,
                  tz_name: str = "America/Bogota", language: str | None = None) -> Iterator[str]:
    """Serve the public app (its page in `language`); yield its base URL (`http://127.0.0.1:PORT`); stop it."""
    for attempt in range(3):  # a free port can be taken before uvicorn binds it: try another
        thread = _Serve(database_url, free_port(), public or PublicSettings(requests_per_minute=100_000), clock,
                        trusted or [], tz_name, language)
        thread.start()
        assert thread.ready.wait(30), "the public listener did not start within 30 s"
        if thread.error is None:
            break
        thread.join(15)
        if not isinstance(thread.error, SystemExit) or attempt == 2:
            raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        if thread.server is not None:
            thread.server.should_exit = True
        thread.join(15)
