"""The web console's test fixture: `console`, an https client of the API app with the console (in English, lockout
at 5 failures) on the test's database, with one user per role (tests.aqnet.console.test_access.make_users)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.console import console_router
from aqnet.http import create_api_app
from storage.users import LockoutPolicy
from tests.aqnet.console.test_access import make_users


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API app with the console, on the test database (en, lockout at 5 failures)."""
    await make_users(database_url)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=30)
    app = create_api_app(api_router(pool), console_router(pool, database_url, language="en",
                                                          policy=LockoutPolicy(5, 900)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://aqnet") as client:
            yield client
    finally:
        await pool.close()
