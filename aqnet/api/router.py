"""The HTTP API (`/api/v1`, OpenAPI at /openapi.json): the registry, maintenance windows, the audit log, and the
alerts (`aqnet.api_alerts`), for field apps, officers and other city systems. Shell (FastAPI over
`storage.registry`, `storage.alerts_store`, `storage.tokens`).

Contract: every operation needs `Authorization: Bearer <token>` (`aqnet tokens create`), except the signed
acknowledgement link (`aqnet.api_alerts`): 401 without one or with an unknown or revoked token, 403 when the
token's role may not do it. Every role reads; technicians write the registry and maintenance windows; officers
acknowledge, resolve and annotate alerts. Each request runs its storage calls on one pooled connection, committed
before the response is sent. Errors are `{"detail": ApiError}`; `storage.registry.RegistryError` and
`storage.alerts_store.AlertError` map to 404 (not_found), 409 (duplicate, conflict, illegal_transition) or 422
(the rest); a value the database refuses (SQLSTATE class 22: out of range, NUL character) is a 422 too.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and those naming the
# role dependencies (Reader, Technician) are local to api_router, so they must be evaluated where they are written
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from aqnet.api_alerts import add_alert_routes
from aqnet.http_auth import Authenticator, Limited, Unavailable
from ingest.calibration import CalibrationError
from storage import registry
from storage.alerts_store import AlertError
from storage.calibrations import load_calibrations
from storage.registry_models import (
    AuditEntry,
    CalibrationSpec,
    DeviceSpec,
    ImportResult,
    Lifecycle,
    Location,
    MaintenanceSpec,
    MaintenanceWindow,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.tokens import ROLES, ApiToken, Role

__all__ = ["OFFICER", "READERS", "TECHNICIAN", "ApiError", "api_router"]

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
READERS: frozenset[Role] = frozenset(ROLES)  #: every role reads
TECHNICIAN: frozenset[Role] = frozenset({"technician"})  #: registry and maintenance writes
OFFICER: frozenset[Role] = frozenset({"officer"})  #: alert operations (acknowledge, resolve, annotate: issue 10)

#: the registry's identifiers (storage.registry_models' Identifier), said in the schema so clients see it
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TAGS: list[str | Enum] = ["registry"]  #: the registry's operations (aqnet.api_alerts tags its own "alerts")
_STATUS = {"not_found": 404, "duplicate": 409, "conflict": 409, "illegal_transition": 409}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiError(_Model):
    """What went wrong: a machine code, the field at fault when there is one, and a sentence naming it."""

    code: str = Field(description="unauthorized, forbidden, not_found, duplicate, conflict, illegal_transition, "
                                  "unknown_profile, out_of_range, invalid_calibration, invalid")
    field: str | None = None
    message: str


class ErrorBody(_Model):
    detail: ApiError


class UnparsableBody(BaseModel):
    """400: the body is not JSON (FastAPI's own answer)."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationBody(BaseModel):
    """422: the request's shape (FastAPI's list of issues) or a registry rule (an ApiError) was not met."""

    detail: list[ValidationIssue] | ApiError


class TokenInfo(_Model):
    """The calling token: who it was issued to and its role."""

    id: int
    name: str
    role: Role


class LifecycleChange(_Model):
    """Move a sensor through planned → commissioning → active ⇄ maintenance → retired."""

    to: Lifecycle
    reason: str = ""


class SwapRequest(_Model):
    """Replace a device: the new one takes its variables and primary role from `at` (default: now)."""

    new: DeviceSpec
    at: datetime | None = None


class CalibrationRecord(_Model):
    """A calibration in force (not revoked) of one device."""

    id: int
    device_id: str
    variable: str
    kind: str
    coefficients: list[float]
    unit: str
    valid_from: datetime
    valid_to: datetime | None
    source: str


#: RFC 3339 with its offset; a str, not a datetime, because pydantic would also take "0.5" as a Unix time
Instant = Annotated[str | None, Query(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
                                      json_schema_extra={"format": "date-time"}, examples=["2026-05-01T08:00:00Z"])]
SensorId = Annotated[str, Path(pattern=ID_PATTERN, description="the sensor's id")]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the device's id")]


def _problem(status: int, code: str, message: str, field: str | None = None) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, ApiError(code=code, field=field, message=message).model_dump(), headers)


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # matches the pattern but is no date (month 13)
        raise _problem(422, "invalid", f"{name}: expected an RFC 3339 time such as 2026-05-01T08:00:00Z, "
                       f"got {value!r}", name) from None


def _allow_headers(router: APIRouter) -> None:
    """Answer 405 with every method a path has in `Allow` (Starlette names only the first route's method)."""
    methods: dict[str, set[str]] = {}
    for route in router.routes:
        methods.setdefault(route.path, set()).update(getattr(route, "methods", ()) or ())
    for path, declared in methods.items():
        others = sorted({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"} - declared)
        router.add_api_route(path.removeprefix(router.prefix), _not_allowed(", ".join(sorted(declared - {"HEAD"}))),
                             methods=others, include_in_schema=False)


def _not_allowed(allow: str) -> Callable[[], Awaitable[Response]]:
    async def not_allowed() -> Response:
        return Response(status_code=405, headers={"Allow": allow})

    return not_allowed


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    said = {400: "the body is not JSON", 401: "no token, or an unknown or revoked one",
            403: "the token's role may not do this", 404: "no such sensor or device",
            409: "conflicts with the registry (duplicate, already used, illegal lifecycle transition)",
            422: "malformed request or a registry rule not met",
            429: "too many failed authentications from this address (Retry-After)",
            503: "the database cannot answer now; try again"}
    models = {400: UnparsableBody, 422: ValidationBody, 503: UnparsableBody}
    out: dict[int | str, dict[str, Any]] = {c: {"model": models.get(c, ErrorBody), "description": said[c]}
                                            for c in (400, 401, 403, 422, 429, 503, *codes)}
    out[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
    return out


def _links(**targets: dict[str, str]) -> dict[str, Any]:
    return {name: {"operationId": name, "parameters": params} for name, params in targets.items()}


_FROM_BODY = {"sensor_id": "$response.body#/id"}
_FROM_PATH = {"sensor_id": "$request.path.sensor_id"}
_SENSOR_LINKS = _links(get_sensor=_FROM_BODY, update_sensor=_FROM_BODY, move_sensor=_FROM_BODY,
                       set_lifecycle=_FROM_BODY, add_device=_FROM_BODY, add_maintenance=_FROM_BODY,
                       list_sensor_maintenance=_FROM_BODY, sensor_audit=_FROM_BODY, list_calibrations=_FROM_BODY)
_DEVICE = {"sensor_id": "$request.path.sensor_id", "device_id": "$request.body#/id"}


def api_router(pool: AsyncConnectionPool[Any], *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
               signing_key: bytes | None = None, tz_name: str = "America/Bogota",
               language: Literal["es", "en"] = "es", auth: Authenticator | None = None) -> APIRouter:
    """The `/api/v1` router on `pool`; `clock` stamps swaps and alert operations that name no time and checks the
    expiry of acknowledgement links, signed with `signing_key` (None: links refused; the daemon passes the
    `alerts.signing_key_file` key); `tz_name` is the network's time zone (exceedance years); `language` that of
    the link's pages; `auth` checks bearer tokens (the daemon's has its own pool and failure limits; default:
    one on `pool`). Serve with `aqnet.http.create_api_app`."""
    authenticator = auth or Authenticator(pool)
    bearer = HTTPBearer(auto_error=False, bearerFormat="aqn_<43 characters>",
                        description="a token from `aqnet tokens create --role technician|officer|reader`")

    @asynccontextmanager
    async def db() -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection, committed on success; registry and database refusals become 4xx."""
        try:
            async with pool.connection() as conn:
                yield conn
        except registry.RegistryError as exc:
            raise _problem(_STATUS.get(exc.code, 422), exc.code, exc.message, exc.field) from None
        except AlertError as exc:
            raise _problem(_STATUS.get(exc.code, 422), exc.code, exc.message) from None
        except CalibrationError as exc:
            raise _problem(422, "invalid_calibration", str(exc)) from None
        except psycopg.errors.DataError as exc:  # SQLSTATE class 22: the database refused a value
            raise _problem(422, "invalid", f"the database refused a value: {exc.diag.message_primary}") from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # the answer names no host, port, user or libpq text (it comes before any authentication); the log
            # line has the detail, passwords masked (aqnet.logs)
            log.warning("API: database unavailable: %s", exc)
            raise HTTPException(503, "database unavailable; try again later") from None

    def role(allowed: Iterable[Role]) -> Callable[..., Any]:
        allowed = frozenset(allowed)

        async def check(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> ApiToken:
            found = await authenticator.bearer(authenticator.client(request.scope),
                                               None if credentials is None else credentials.credentials)
            if isinstance(found, Limited):
                raise HTTPException(429, ApiError(code="too_many_failures", message="too many failed "
                                    "authentications from this address; wait").model_dump(),
                                    {"Retry-After": str(found.retry_after_s)})
            if isinstance(found, Unavailable):
                raise HTTPException(503, "database unavailable; try again")
            if found is None and credentials is None:
                raise _problem(401, "unauthorized", "missing `Authorization: Bearer <token>` header")
            if found is None:
                raise _problem(401, "unauthorized", "unknown or revoked token")
            token = found
            if token.role not in allowed:
                raise _problem(403, "forbidden", f"token {token.name!r} has role {token.role}; this needs "
                               f"{' or '.join(sorted(allowed))}")
            return token

        return check

    Reader = Annotated[ApiToken, Depends(role(READERS))]
    Technician = Annotated[ApiToken, Depends(role(TECHNICIAN))]

    def actor(token: ApiToken) -> str:
        return f"api:{token.name}"

    r = APIRouter(prefix=PREFIX)  # tags per operation: the alert routes added below are tagged alerts only

    @r.get("/me", tags=TAGS, operation_id="whoami", responses=_responses())
    async def whoami(token: Reader) -> TokenInfo:
        """The calling token's name and role."""
        return TokenInfo(id=token.id, name=token.name, role=token.role)

    @r.get("/sensors", tags=TAGS, operation_id="list_sensors", responses=_responses())
    async def list_sensors(_: Reader, kind: Literal["station", "microsensor"] | None = None,
                           lifecycle: Lifecycle | None = None) -> list[SensorRecord]:
        """Every sensor, optionally of one kind or lifecycle state."""
        async with db() as conn:
            return await registry.list_sensors(conn, kind=kind, lifecycle=lifecycle)

    @r.post("/sensors", tags=TAGS, operation_id="add_sensor", status_code=201,
            responses={**_responses(409), 201: {"links": _SENSOR_LINKS}})
    async def add_sensor(spec: SensorSpec, token: Technician) -> SensorRecord:
        """Register a sensor with its devices (lifecycle planned unless the body says otherwise)."""
        async with db() as conn:
            return await registry.add_sensor(conn, spec, actor=actor(token))

    @r.get("/sensors/{sensor_id}", tags=TAGS, operation_id="get_sensor", responses=_responses(404))
    async def get_sensor(sensor_id: SensorId, _: Reader) -> SensorRecord:
        """One sensor with its active devices and maintenance windows."""
        async with db() as conn:
            return await registry.get_sensor(conn, sensor_id)

    @r.patch("/sensors/{sensor_id}", tags=TAGS, operation_id="update_sensor", responses=_responses(404, 409))
    async def update_sensor(sensor_id: SensorId, patch: SensorPatch, token: Technician) -> SensorRecord:
        """Change name, notes, mobile, address or locality (fields left out stay as they are)."""
        async with db() as conn:
            return await registry.update_sensor(conn, sensor_id, patch, actor=actor(token))

    @r.put("/sensors/{sensor_id}/location", tags=TAGS, operation_id="move_sensor", responses=_responses(404, 409))
    async def move_sensor(sensor_id: SensorId, location: Location, token: Technician) -> SensorRecord:
        """Move a sensor (its series stays one series: measurements are keyed by sensor id)."""
        async with db() as conn:
            return await registry.move_sensor(conn, sensor_id, location, actor=actor(token))

    @r.post("/sensors/{sensor_id}/lifecycle", tags=TAGS, operation_id="set_lifecycle", responses=_responses(404, 409))
    async def set_lifecycle(sensor_id: SensorId, change: LifecycleChange, token: Technician) -> SensorRecord:
        """Commission, activate, put in or take out of maintenance, or retire (final) a sensor."""
        async with db() as conn:
            return await registry.set_lifecycle(conn, sensor_id, change.to, actor=actor(token),
                                                reason=change.reason)

    @r.post("/sensors/{sensor_id}/devices", tags=TAGS, operation_id="add_device", status_code=201,
            responses={**_responses(404, 409), 201: {"links": _links(
                swap_device=_DEVICE, add_calibration=_DEVICE, get_sensor=_FROM_PATH)}})
    async def add_device(sensor_id: SensorId, device: DeviceSpec, token: Technician) -> SensorRecord:
        """Add a device (instrument) to a sensor."""
        async with db() as conn:
            return await registry.add_device(conn, sensor_id, device, actor=actor(token))

    @r.post("/sensors/{sensor_id}/devices/{device_id}/swap", tags=TAGS, operation_id="swap_device",
            responses=_responses(404, 409))
    async def swap_device(sensor_id: SensorId, device_id: DeviceId, swap: SwapRequest,
                          token: Technician) -> SensorRecord:
        """Replace a device by a new one; the sensor's series continues and the swap is recorded."""
        async with db() as conn:
            return await registry.swap_device(conn, sensor_id, device_id, swap.new, actor=actor(token),
                                              at=swap.at or clock())

    @r.get("/sensors/{sensor_id}/calibrations", tags=TAGS, operation_id="list_calibrations", responses=_responses(404))
    async def list_calibrations(sensor_id: SensorId, _: Reader) -> list[CalibrationRecord]:
        """The calibrations in force of the sensor's active devices."""
        async with db() as conn:
            sensor = await registry.get_sensor(conn, sensor_id)
            found = await load_calibrations(conn, device_ids=[d.id for d in sensor.devices])
        return [CalibrationRecord(id=c.id, device_id=c.device_id, variable=c.variable, kind=c.kind,
                                  coefficients=list(c.coefficients), unit=c.unit, valid_from=c.valid_from,
                                  valid_to=c.valid_to, source=c.source) for c in found]

    @r.post("/sensors/{sensor_id}/devices/{device_id}/calibrations", tags=TAGS, operation_id="add_calibration",
            status_code=201, responses={**_responses(404, 409), 201: {"links": _links(list_calibrations=_FROM_PATH)}})
    async def add_calibration(sensor_id: SensorId, device_id: DeviceId, spec: CalibrationSpec,
                              token: Technician) -> CalibrationRecord:
        """Add a calibration of one variable of an active device of the sensor."""
        async with db() as conn:
            sensor = await registry.get_sensor(conn, sensor_id)
            if device_id not in {d.id for d in sensor.devices}:
                raise _problem(404, "not_found", f"sensor {sensor_id}: no active device {device_id}", "device_id")
            cal_id = await registry.calibrate(conn, device_id, spec, actor=actor(token))
        return CalibrationRecord(id=cal_id, device_id=device_id, variable=spec.variable, kind=spec.kind,
                                 coefficients=spec.coefficients, unit=spec.unit, valid_from=spec.valid_from,
                                 valid_to=spec.valid_to, source=spec.source)

    @r.post("/sensors/{sensor_id}/maintenance", tags=TAGS, operation_id="add_maintenance", status_code=201,
            responses={**_responses(404, 409), 201: {"links": _links(list_sensor_maintenance=_FROM_PATH)}})
    async def add_maintenance(sensor_id: SensorId, spec: MaintenanceSpec, token: Technician) -> MaintenanceWindow:
        """Put the sensor, or one device or variable of it, in maintenance for a period."""
        async with db() as conn:
            return await registry.add_maintenance(conn, sensor_id, spec, actor=actor(token))

    @r.get("/sensors/{sensor_id}/maintenance", tags=TAGS, operation_id="list_sensor_maintenance",
           responses=_responses(404))
    async def list_sensor_maintenance(sensor_id: SensorId, _: Reader) -> list[MaintenanceWindow]:
        """The sensor's maintenance windows."""
        async with db() as conn:
            await registry.get_sensor(conn, sensor_id)  # 404 for an unknown sensor, not an empty list
            return await registry.list_maintenance(conn, sensor_id=sensor_id)

    @r.get("/maintenance", tags=TAGS, operation_id="list_maintenance", responses=_responses())
    async def list_maintenance(_: Reader, since: Instant = None, until: Instant = None) -> list[MaintenanceWindow]:
        """Every maintenance window, or those overlapping [since, until) (either bound may be left open)."""
        overlapping = None
        if since is not None or until is not None:
            overlapping = (_instant("since", since) or datetime(1970, 1, 1, tzinfo=UTC),
                           _instant("until", until) or datetime(9999, 1, 1, tzinfo=UTC))
        async with db() as conn:
            return await registry.list_maintenance(conn, overlapping=overlapping)

    @r.get("/sensors/{sensor_id}/audit", tags=TAGS, operation_id="sensor_audit", responses=_responses(404))
    async def sensor_audit(sensor_id: SensorId, _: Reader,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditEntry]:
        """The sensor's audit trail, newest first: who changed what, when, before and after."""
        async with db() as conn:
            await registry.get_sensor(conn, sensor_id)
            return await registry.audit_log(conn, sensor_id=sensor_id, limit=limit)

    @r.get("/audit", tags=TAGS, operation_id="audit_log", responses=_responses())
    async def audit_log(_: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditEntry]:
        """The whole audit log, newest first."""
        async with db() as conn:
            return await registry.audit_log(conn, limit=limit)

    @r.get("/network", tags=TAGS, operation_id="export_network", responses={**_responses(), 200: {"content": {
        "application/yaml": {}, "text/csv": {}}}},
           response_model=list[SensorSpec])
    async def export_network(_: Reader, format: Literal["json", "yaml", "csv"] = "json") -> Any:
        """The whole network as `aqnet sensors export` writes it: JSON (default), YAML or CSV."""
        async with db() as conn:
            specs = await registry.export_network(conn)
        if format == "json":
            return specs
        from storage.network_file import dump_network

        media = "application/yaml" if format == "yaml" else "text/csv"
        return Response(dump_network(specs, fmt=format), media_type=f"{media}; charset=utf-8")

    @r.post("/network", tags=TAGS, operation_id="import_network", responses=_responses(409))
    async def import_network(specs: list[SensorSpec], token: Technician) -> ImportResult:
        """Import a whole network (adds and updates sensors), all or nothing."""
        async with db() as conn:
            return await registry.import_network(conn, specs, actor=actor(token), source=f"api:{token.name}")

    add_alert_routes(r, db, reader=role(READERS), officer=role(OFFICER), clock=clock, signing_key=signing_key,
                     responses_for=_responses,
                     tz_name=tz_name, language=language)
    _allow_headers(r)
    return r
