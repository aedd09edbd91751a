"""The web console's router: its pages under `/console/`, bound to one `ConsoleContext`. Shell (aqnet.console).

Served by the API listener beside `/api/v1` (aqnet.http.create_api_app): the console reads and writes what the
API does, through the same storage functions, and is reached where field apps already reach the API; one
listener also keeps one TLS certificate and one set of bounds (aqnet.http.server) for both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool

from alerts.health import HealthPolicy
from alerts.settings import HealthSettings
from aqnet.console import access, officers, technicians, users_page
from aqnet.console.context import PREFIX, ConsoleContext, bind_console
from aqnet.console.i18n import words
from aqnet.health_job import health_policy as policy_of
from aqnet.http.auth import Authenticator
from storage.users import LockoutPolicy

__all__ = ["console_router"]


def console_router(pool: AsyncConnectionPool[Any], database_url: str, *,
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC), language: str = "es",
                   tz_name: str = "America/Bogota", policy: LockoutPolicy | None = None,
                   session_ttl_s: float = 8 * 3600.0, cookie_secure: bool = True,
                   health_policy: HealthPolicy | None = None, auth: Authenticator | None = None) -> APIRouter:
    """The `/console` router on `pool` (`database_url` for the health report's own connection); `language` es
    or en; `policy` the sign-in lockout; `cookie_secure` marks the session cookie Secure; `auth` the listener's
    authenticator, whose per-address failure limit counts wrong passwords too (default: 20 a minute)."""
    words(language)  # ValueError naming a language the console does not speak
    context = ConsoleContext(pool, database_url, clock, language, tz_name, policy or LockoutPolicy(),
                             session_ttl_s, cookie_secure, health_policy or policy_of(HealthSettings()),
                             auth or Authenticator(pool))
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(bind_console(context))], include_in_schema=False)
    for pages in (access.router, technicians.router, officers.router, users_page.router):
        router.include_router(pages)
    return router
