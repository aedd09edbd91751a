"""The daemon's one HTTP server app: Prometheus metrics, health, status, the airrohr HTTP intake and the HTTP API
(`aqnet.api`, mounted when the daemon passes its router).

Health has two meanings, kept apart (aqnet.health): `/healthz` is liveness (200, or 503 with the reasons when a
supervised task is down or a stage has stalled: restart the process), `/readyz` is readiness (200, or 503 while
the database does not answer: the daemon spools meanwhile, no restart needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, make_asgi_app

from aqnet.health import Verdict

__all__ = ["AirrohrHandler", "create_app"]

#: (raw body, X-Sensor header) → (HTTP status, JSON body); answers 2xx only once the readings are durable
AirrohrHandler = Callable[[bytes, str | None], Awaitable[tuple[int, dict[str, Any]]]]


def create_app(registry: CollectorRegistry, status: Callable[[], dict[str, Any]],
               airrohr: AirrohrHandler | None = None, api: APIRouter | None = None, *,
               liveness: Callable[[], Verdict] | None = None,
               readiness: Callable[[], Awaitable[Verdict]] | None = None) -> FastAPI:
    """The ASGI app: `/metrics` (Prometheus text format), `/healthz` (liveness) and `/readyz` (readiness), each
    200 or 503 with `{"status": "ok"|"fail", "reasons": {what: why}}`, `/status` (JSON), `/intake/airrohr`, and
    `api` (aqnet.api.api_router: `/api/v1/…`, described at `/openapi.json`, browsable at `/docs`). Without
    `liveness`/`readiness` both always answer ok."""
    app = FastAPI(title="aqnet", summary="Air quality network ingestion and alerting daemon")
    app.mount("/metrics", make_asgi_app(registry=registry))

    def answer(verdict: Verdict) -> JSONResponse:
        return JSONResponse(verdict.body(), status_code=200 if verdict.ok else 503)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness: 503 when a supervised task is down or a stage has work pending without progress."""
        return answer(liveness() if liveness is not None else Verdict(True))

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 503 while the database does not answer (readings are spooled meanwhile)."""
        return answer(await readiness() if readiness is not None else Verdict(True))

    @app.get("/status")
    def get_status() -> dict[str, Any]:
        return status()

    if airrohr is not None:
        @app.post("/intake/airrohr")
        async def intake_airrohr(request: Request, x_sensor: str | None = Header(default=None)) -> JSONResponse:
            """The airrohr firmware's "send to own API" POST (X-Sensor header, JSON body)."""
            code, body = await airrohr(await request.body(), x_sensor)
            return JSONResponse(body, status_code=code)

    if api is not None:
        app.include_router(api)
    return app
