"""Test helper: the public open-data app (`aqnet.public.create_public_app`) served as the daemon serves it
(aqnet.http.server: body limit, concurrency, timeouts) on a free loopback port in a thread, over a real database,
with a read-only pool of its own like the daemon's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from aqnet.config import OpenDataSettings, PublicListener, PublicSettings
from aqnet.http import TrustedProxies
from aqnet.localstack import free_port
from aqnet.public import create_public_app
from tests.fixtures.app_thread import AppThread

OPEN_DATA = OpenDataSettings(publisher="Secretaría Distrital de Ambiente", publisher_url="https://ambiente.example",
                             contact_email="datos@ambiente.example")


def _public_app(database_url: str, port: int, public: PublicSettings, clock: Callable[[], datetime] | None,
                trusted: list[str], tz_name: str, language: str | None
                ) -> Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]]:
    """The public app on a read-only pool of its own (closed after the server stops)."""

    @asynccontextmanager
    async def build() -> AsyncIterator[tuple[Any, Any]]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=1, max_size=2, open=False,
            kwargs={"options": "-c default_transaction_read_only=on -c statement_timeout=30000"})
        await pool.open(wait=True, timeout=30)
        try:
            extra: dict[str, Any] = {"clock": clock} if clock else {}
            yield (create_public_app(pool, public=public, open_data=OPEN_DATA, tz_name=tz_name,
                                     trusted_proxies=TrustedProxies(trusted), language=language, **extra),
                   PublicListener(port=port))
        finally:
            await pool.close()

    return build


@contextmanager
def public_server(database_url: str, *, public: PublicSettings | None = None,
                  clock: Callable[[], datetime] | None = None, trusted: list[str] | None = None,
                  tz_name: str = "America/Bogota", language: str | None = None) -> Iterator[str]:
    """Serve the public app (its page in `language`); yield its base URL (`http://127.0.0.1:PORT`); stop it."""
    for attempt in range(3):  # a free port can be taken before uvicorn binds it: try another
        port = free_port()
        thread = AppThread("public-server", port, _public_app(
            database_url, port, public or PublicSettings(requests_per_minute=100_000), clock, trusted or [], tz_name,
            language))
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
        thread.stop()
        thread.join(15)
