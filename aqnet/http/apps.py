"""The daemon's HTTP apps, one per listener, each on its own address (`http.<listener>` in the settings;
aqnet.http.server serves them with their bounds):

- **intake** (`create_intake_app`): `/intake/airrohr`, the devices' POSTs, HTTP basic authentication per device
  (aqnet.http.auth). Nothing else: no metrics, status, docs or schema.
- **api** (`create_api_app`): `/api/v1/…` (aqnet.api), bearer tokens; and the web console `/console/…`
  (aqnet.console), session cookies of signed-in people. No docs or schema (those are internal).
- **internal** (`create_internal_app`): `/metrics` (Prometheus), `/healthz` (liveness: 503 with the reasons when
  a supervised task is down or a stage has stalled: restart the process), `/readyz` (readiness: 503 while the
  database does not answer; the daemon spools meanwhile), `/status` (JSON, no secrets), and the API's
  `/openapi.json` and `/docs`.

- **public** (aqnet.public.create_public_app): `/v1/…`, the open-data API: read-only, no login, rate-limited per
  client; its own OpenAPI description at `/v1/openapi.json`.

`LISTENERS` names the listeners and says which app each serves; a new listener is one more `ListenerSettings`
field in aqnet.config.HttpSettings and one more builder (here, or in a package of its own like aqnet.public).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Request, Security
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPBasic
from prometheus_client import CollectorRegistry, make_asgi_app
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from aqnet.health import Verdict
from aqnet.http.auth import Authenticator, Limited, Unavailable

__all__ = ["AIRROHR_BODY_SCHEMA", "LISTENERS", "AirrohrHandler", "create_api_app", "create_intake_app",
           "create_internal_app"]

#: the listeners, in start order: name → what it serves (aqnet.config.HttpSettings has one field per name)
LISTENERS: dict[str, str] = {"internal": "metrics, health, status, API docs", "api": "/api/v1, /console",
                             "intake": "/intake (devices)", "public": "/v1 (open data, no login)"}

#: (raw body, authenticated sensor id, X-Sensor header) → (HTTP status, JSON body); 2xx only once durable
AirrohrHandler = Callable[[bytes, str, str | None], Awaitable[tuple[int, dict[str, Any]]]]

UNAUTHORIZED = {"error": "unauthorized",
                "detail": "HTTP basic credentials of a registered sensor are required "
                          "(`aqnet sensors credentials SENSOR_ID --http`)"}


class IntakeAccepted(BaseModel):
    sensor_id: str
    readings: int


class IntakeError(BaseModel):
    error: str
    detail: str


AIRROHR_BODY_SCHEMA = {"type": "object", "required": ["sensordatavalues"], "properties": {
    "esp8266id": {"type": "string"}, "software_version": {"type": "string"},
    "sensordatavalues": {"type": "array", "items": {"type": "object", "properties": {
        "value_type": {"type": "string"}, "value": {"type": "string"}}}}}}

_INTAKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": IntakeError, "description": said} for code, said in {
        400: "the body is not an airrohr payload (dead-lettered)",
        401: "no credentials, or unknown or wrong ones (the same answer for each)",
        403: "the body is another sensor's, or this sensor does not send over HTTP (dead-lettered)",
        404: "the body names hardware no sensor has (dead-lettered)",
        413: "the body is larger than the listener's max_body_bytes",
        429: "too many failed authentications from this address (Retry-After)",
        503: "not durable yet, or the credentials cannot be checked now: send again"}.items()}


class _BasicScheme(HTTPBasic):
    """HTTP basic in the schema only: the credentials are checked by aqnet.http.auth, which answers a malformed
    header exactly as a wrong one (FastAPI's HTTPBasic would answer it differently)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


def _bare(title: str) -> FastAPI:
    """A FastAPI app without docs or schema routes (those are served on the internal listener only)."""
    return FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)


def create_intake_app(airrohr: AirrohrHandler, auth: Authenticator) -> FastAPI:
    """The device intake: `POST /intake/airrohr` with the airrohr firmware's JSON body and HTTP basic credentials
    (username = sensor id). Credentials are checked before the body is read."""
    app = _bare("aqnet device intake")
    basic = _BasicScheme(auto_error=False, realm="aqnet intake",
                      description="per-device credentials from `aqnet sensors credentials ID --http`")

    @app.post("/intake/airrohr", response_model=IntakeAccepted, responses=_INTAKE_RESPONSES,
              dependencies=[Security(basic)], operation_id="airrohr_post",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": AIRROHR_BODY_SCHEMA}}}})
    async def intake_airrohr(request: Request, x_sensor: str | None = Header(default=None)) -> JSONResponse:
        """The airrohr firmware's "send to own API" POST (X-Sensor header, JSON body), answered once durable."""
        found = await auth.device(auth.client(request.scope), request.headers.get("authorization"))
        if isinstance(found, Limited):
            return JSONResponse({"error": "too_many_failures", "detail": "too many failed authentications "
                                 "from this address; wait"}, 429, {"Retry-After": str(found.retry_after_s)})
        if isinstance(found, Unavailable):
            return JSONResponse({"error": "unavailable", "detail": "credentials cannot be checked now; send "
                                 "again"}, 503)
        if found is None:
            return JSONResponse(UNAUTHORIZED, 401, {"WWW-Authenticate": 'Basic realm="aqnet intake"'})
        try:
            body = await request.body()  # bounded by the listener's BodyLimit
        except ClientDisconnect:
            return JSONResponse({"error": "disconnected", "detail": "the body did not arrive"}, 400)
        code, answer = await airrohr(body, found, x_sensor)
        return JSONResponse(answer, status_code=code)

    return app


def create_api_app(api: APIRouter, console: APIRouter | None = None) -> FastAPI:
    """The authenticated API: `api` (aqnet.api.api_router, `/api/v1/…`) and, when given, the web console
    (aqnet.console.console_router, `/console/…`, signed-in people), and nothing else."""
    app = FastAPI(title="aqnet", summary="Air quality network ingestion and alerting daemon",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(api)
    if console is not None:
        app.include_router(console)
    return app


def create_internal_app(registry: CollectorRegistry, status: Callable[[], dict[str, Any]], *,
                        api_app: FastAPI | None = None,
                        liveness: Callable[[], Verdict] | None = None,
                        readiness: Callable[[], Awaitable[Verdict]] | None = None) -> FastAPI:
    """`/metrics`, `/healthz` and `/readyz` (200 or 503 with `{"status": "ok"|"fail", "reasons": {what: why}}`),
    `/status`, and `api_app`'s `/openapi.json` and `/docs`. Without `liveness`/`readiness` both answer ok."""
    app = _bare("aqnet internal")
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
        """What the daemon runs and when each sensor last reported (JSON, no secrets; `aqnet status` reads it)."""
        return status()

    if api_app is not None:
        @app.get("/openapi.json", include_in_schema=False)
        def openapi() -> JSONResponse:
            return JSONResponse(api_app.openapi())

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="aqnet API")

    return app
