"""The HTTP API (`/api/v1`, OpenAPI at /openapi.json): the registry, maintenance windows, the audit log, and the
alerts, for field apps, officers and other city systems. Shell (FastAPI over `storage.registry`,
`storage.alerts_store`, `storage.tokens`): `api_router` assembles the operation modules of `aqnet.api`.

Contract: every operation needs `Authorization: Bearer <token>` (`aqnet tokens create`), except the signed
acknowledgement link (`aqnet.api.ack_link`): 401 without one or with an unknown or revoked token, 403 when the
token's role may not do it. Every role reads; technicians write the registry and maintenance windows; officers
acknowledge, resolve and annotate alerts; technicians and officers validate data (`aqnet.api.validation`). Each
request runs its storage calls on one pooled connection, committed
before the response is sent. Errors are `{"detail": ApiError}`; `storage.registry.RegistryError` and
`storage.alerts_store.AlertError` map to 404 (not_found), 409 (duplicate, conflict, illegal_transition) or 422
(the rest); a value the database refuses (SQLSTATE class 22: out of range, NUL character) is a 422 too
(`aqnet.api.context`). A method a path does not have is a 405 naming, in `Allow`, every method it has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.routing import APIRoute
from psycopg_pool import AsyncConnectionPool

from aqnet.api import ack_link, alerts, calibrations, maintenance, registry, validation
from aqnet.api.context import ApiContext, bind_context
from aqnet.http.auth import Authenticator

__all__ = ["PREFIX", "api_router"]

PREFIX = "/api/v1"


def api_router(pool: AsyncConnectionPool[Any], *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               signing_key: bytes | None = None, tz_name: str = "America/Bogota",
               language: Literal["es", "en"] = "es", auth: Authenticator | None = None) -> APIRouter:
    """The `/api/v1` router on `pool`; `clock` stamps swaps and alert operations that name no time and checks the
    expiry of acknowledgement links, signed with `signing_key` (None: links refused; the daemon passes the
    `alerts.signing_key_file` key); `tz_name` is the network's time zone (exceedance years); `language` that of
    the link's pages; `auth` checks bearer tokens (the daemon's has its own pool and failure limits; default:
    one on `pool`). Serve with `aqnet.http.create_api_app`."""
    context = ApiContext(pool, auth or Authenticator(pool), clock, signing_key, tz_name, language)
    r = APIRouter(prefix=PREFIX, dependencies=[Depends(bind_context(context))])
    # the signed link before the alerts: POST /alerts/ack/{token} must not be taken for POST /alerts/{alert_id}/ack
    operations = (registry.router, calibrations.router, maintenance.router, ack_link.router, alerts.router,
                  validation.router)
    for routes in operations:
        r.include_router(routes)
    _allow_headers(r, operations)
    return r


def _allow_headers(router: APIRouter, included: Iterable[APIRouter]) -> None:
    """Answer 405 with every method a path of the `included` routers has in `Allow` (Starlette names only the
    first route's method)."""
    methods: dict[str, set[str]] = {}
    for route in (route for routes in included for route in routes.routes if isinstance(route, APIRoute)):
        methods.setdefault(route.path, set()).update(route.methods or ())
    for path, declared in methods.items():
        others = sorted({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"} - declared)
        router.add_api_route(path, _not_allowed(", ".join(sorted(declared - {"HEAD"}))), methods=others,
                             include_in_schema=False)


def _not_allowed(allow: str) -> Callable[[], Awaitable[Response]]:
    async def not_allowed() -> Response:
        return Response(status_code=405, headers={"Allow": allow})

    return not_allowed
