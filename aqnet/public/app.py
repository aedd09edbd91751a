"""The public open-data API's app (`/v1/…` on the listener `http.public`): read-only, no login, rate-limited per
client. Shell (FastAPI, ASGI), I/O through `storage.public_read` on a pool of its own.

Contracts:
- `PublicGate` (ASGI middleware, before any route): a client (`aqnet.http.limits.client_address`, believing only
  `http.trusted_proxies`) over `public.requests_per_minute` gets 429 with `Retry-After` (every request counts);
  a method other than GET and HEAD gets 405 with `Allow: GET, HEAD` (a CORS preflight, OPTIONS with an `Origin`
  and `Access-Control-Request-Method`, gets 204); HEAD is answered as GET without the body.
- `create_public_app(pool, …, routers=())`: the FastAPI app with the air-quality page at `/` (aqnet.public.page),
  the routes of `aqnet.public.routes`, the OpenAPI
  description at `/v1/openapi.json` and its browsable page at `/v1/docs`. A further router (the annual
  compliance report) is one more entry of `routers`: its handlers reach the pool, settings and renderer as
  `request.app.state.public` (`PublicContext`) and answer with `PublicContext.page`.
- A database that does not answer (pool timeout, connection lost, statement timeout) is a 503 with
  `Retry-After`, never a 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aqnet.config import OpenDataSettings, PublicSettings
from aqnet.http.limits import RequestLimiter, TrustedProxies, client_address
from aqnet.public.context import API_NAME, PREFIX, PublicContext
from aqnet.public.page import page_router
from aqnet.public.routes import public_router

__all__ = ["PublicGate", "create_public_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[..., Any]


def _json(status: int, body: dict[str, str], headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    raw = json.dumps(body).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                         (b"access-control-allow-origin", b"*"),
                         *((k.lower().encode(), v.encode()) for k, v in headers.items())]}
    return start, raw


class PublicGate:
    """ASGI middleware: the rate limit, read-only methods, HEAD (the module docstring)."""

    def __init__(self, app: ASGI, *, limiter: RequestLimiter, trusted: TrustedProxies,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.app, self.limiter, self.trusted, self.monotonic = app, limiter, trusted, monotonic

    async def _refuse(self, send: ASGI, status: int, body: dict[str, str], headers: dict[str, str]) -> None:
        start, raw = _json(status, body, headers)
        await send(start)
        await send({"type": "http.response.body", "body": raw})

    async def __call__(self, scope: Scope, receive: ASGI, send: ASGI) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        client = client_address(peer[0] if peer else None, scope.get("headers", []), self.trusted)
        wait = self.limiter.admit(client, self.monotonic())
        if wait:
            await self._refuse(send, 429, {"detail": f"more than the allowed requests per minute from {client}; "
                                                     f"retry after {wait} s"}, {"Retry-After": str(wait)})
            return
        method = scope["method"]
        headers = dict(scope.get("headers", []))
        if method == "OPTIONS" and b"origin" in headers and b"access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, HEAD"),
                (b"access-control-allow-headers", b"Accept, If-None-Match"), (b"access-control-max-age", b"86400")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if method not in ("GET", "HEAD"):
            await self._refuse(send, 405, {"detail": f"{method}: the open-data API is read-only (GET, HEAD)"},
                               {"Allow": "GET, HEAD"})
            return
        if method == "HEAD":
            async def bodiless(message: Message) -> None:
                if message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)
            await self.app({**scope, "method": "GET"}, receive, bodiless)
            return
        await self.app(scope, receive, send)


def create_public_app(pool: AsyncConnectionPool[Any], *, public: PublicSettings | None = None,
                      open_data: OpenDataSettings | None = None, tz_name: str = "America/Bogota",
                      trusted_proxies: TrustedProxies | None = None,
                      clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                      monotonic: Callable[[], float] = time.monotonic,
                      routers: Sequence[APIRouter] = (), language: str | None = None) -> FastAPI:
    """The public app on `pool` (best a read-only pool of its own), with `routers` after the built-in routes
    (the module docstring), and the air-quality page at `/` (aqnet.public.page) in `language` (default
    `public.language`, else es)."""
    public = public or PublicSettings()
    open_data = open_data or OpenDataSettings()
    context = PublicContext(pool, public, open_data, ZoneInfo(tz_name), clock)
    app = FastAPI(title=API_NAME, version="1",
                  summary="Air quality open data: locations, latest values and indices, hourly and daily averages, "
                          "exceedances and the alert record, each value with its provenance.",
                  license_info={"name": open_data.licence_id, "url": open_data.licence_url},
                  contact={k: v for k, v in (("name", open_data.publisher), ("email", open_data.contact_email))
                           if v} or None,
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=None, redoc_url=None)
    app.state.public = context
    app.include_router(public_router(context))
    app.include_router(page_router(public, language or public.language or "es"))
    for router in routers:
        app.include_router(router)

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{PREFIX}/openapi.json", title=API_NAME)

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "the database does not answer now; retry later"}, 503,
                            {"Retry-After": "30", "Access-Control-Allow-Origin": "*"})

    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(PoolTimeout, unavailable)
    app.add_middleware(PublicGate, trusted=trusted_proxies or TrustedProxies(), monotonic=monotonic,
                       limiter=RequestLimiter(public.requests_per_minute, 60.0, max_clients=public.max_clients))
    return app
