"""The daemon's one HTTP server app: Prometheus metrics, health and status (later issues mount the device intake
and the API here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app

__all__ = ["create_app"]


def create_app(registry: CollectorRegistry, status: Callable[[], dict[str, Any]]) -> FastAPI:
    """The ASGI app: `/metrics` (Prometheus text format), `/healthz`, `/status` (JSON)."""
    app = FastAPI(title="aqnet", summary="Air quality network ingestion and alerting daemon")
    app.mount("/metrics", make_asgi_app(registry=registry))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/status")
    def get_status() -> dict[str, Any]:
        return status()

    return app
