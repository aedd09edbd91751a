"""The HTTP API's registry operations: the calling token (`/me`), sensors, their devices and lifecycle, the
audit log and the whole network (`/api/v1/…`). Shell (FastAPI over `storage.registry`).

Contract: every role reads; technicians write (the actor recorded is "api:<token name>"). Errors as
`aqnet.api.context` maps them; calibrations and maintenance windows are `aqnet.api.calibrations` and
`aqnet.api.maintenance`.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from aqnet.api.context import Context, Reader, Technician, actor
from aqnet.api.errors import responses
from aqnet.api.params import FROM_BODY, FROM_PATH, TAGS, DeviceId, SensorId, links
from storage import registry
from storage.registry.models import (
    AuditEntry,
    DeviceSpec,
    ImportResult,
    Lifecycle,
    Location,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.tokens import Role

__all__ = ["LifecycleChange", "SwapRequest", "TokenInfo", "router"]

_SENSOR_LINKS = links(get_sensor=FROM_BODY, update_sensor=FROM_BODY, move_sensor=FROM_BODY,
                      set_lifecycle=FROM_BODY, add_device=FROM_BODY, add_maintenance=FROM_BODY,
                      list_sensor_maintenance=FROM_BODY, sensor_audit=FROM_BODY, list_calibrations=FROM_BODY)
_DEVICE = {"sensor_id": "$request.path.sensor_id", "device_id": "$request.body#/id"}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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


router = APIRouter()  # tags per operation: the alert routes are tagged alerts only


@router.get("/me", tags=TAGS, operation_id="whoami", responses=responses())
async def whoami(token: Reader) -> TokenInfo:
    """The calling token's name and role."""
    return TokenInfo(id=token.id, name=token.name, role=token.role)


@router.get("/sensors", tags=TAGS, operation_id="list_sensors", responses=responses())
async def list_sensors(_: Reader, api: Context, kind: Literal["station", "microsensor"] | None = None,
                       lifecycle: Lifecycle | None = None) -> list[SensorRecord]:
    """Every sensor, optionally of one kind or lifecycle state."""
    async with api.db() as conn:
        return await registry.list_sensors(conn, kind=kind, lifecycle=lifecycle)


@router.post("/sensors", tags=TAGS, operation_id="add_sensor", status_code=201,
             responses={**responses(409), 201: {"links": _SENSOR_LINKS}})
async def add_sensor(spec: SensorSpec, token: Technician, api: Context) -> SensorRecord:
    """Register a sensor with its devices (lifecycle planned unless the body says otherwise)."""
    async with api.db() as conn:
        return await registry.add_sensor(conn, spec, actor=actor(token))


@router.get("/sensors/{sensor_id}", tags=TAGS, operation_id="get_sensor", responses=responses(404))
async def get_sensor(sensor_id: SensorId, _: Reader, api: Context) -> SensorRecord:
    """One sensor with its active devices and maintenance windows."""
    async with api.db() as conn:
        return await registry.get_sensor(conn, sensor_id)


@router.patch("/sensors/{sensor_id}", tags=TAGS, operation_id="update_sensor", responses=responses(404, 409))
async def update_sensor(sensor_id: SensorId, patch: SensorPatch, token: Technician, api: Context) -> SensorRecord:
    """Change name, notes, mobile, address or locality (fields left out stay as they are)."""
    async with api.db() as conn:
        return await registry.update_sensor(conn, sensor_id, patch, actor=actor(token))


@router.put("/sensors/{sensor_id}/location", tags=TAGS, operation_id="move_sensor", responses=responses(404, 409))
async def move_sensor(sensor_id: SensorId, location: Location, token: Technician, api: Context) -> SensorRecord:
    """Move a sensor (its series stays one series: measurements are keyed by sensor id)."""
    async with api.db() as conn:
        return await registry.move_sensor(conn, sensor_id, location, actor=actor(token))


@router.post("/sensors/{sensor_id}/lifecycle", tags=TAGS, operation_id="set_lifecycle",
             responses=responses(404, 409))
async def set_lifecycle(sensor_id: SensorId, change: LifecycleChange, token: Technician,
                        api: Context) -> SensorRecord:
    """Commission, activate, put in or take out of maintenance, or retire (final) a sensor."""
    async with api.db() as conn:
        return await registry.set_lifecycle(conn, sensor_id, change.to, actor=actor(token), reason=change.reason)


@router.post("/sensors/{sensor_id}/devices", tags=TAGS, operation_id="add_device", status_code=201,
             responses={**responses(404, 409), 201: {"links": links(
                 swap_device=_DEVICE, add_calibration=_DEVICE, get_sensor=FROM_PATH)}})
async def add_device(sensor_id: SensorId, device: DeviceSpec, token: Technician, api: Context) -> SensorRecord:
    """Add a device (instrument) to a sensor."""
    async with api.db() as conn:
        return await registry.add_device(conn, sensor_id, device, actor=actor(token))


@router.post("/sensors/{sensor_id}/devices/{device_id}/swap", tags=TAGS, operation_id="swap_device",
             responses=responses(404, 409))
async def swap_device(sensor_id: SensorId, device_id: DeviceId, swap: SwapRequest, token: Technician,
                      api: Context) -> SensorRecord:
    """Replace a device by a new one; the sensor's series continues and the swap is recorded."""
    async with api.db() as conn:
        return await registry.swap_device(conn, sensor_id, device_id, swap.new, actor=actor(token),
                                          at=swap.at or api.clock())


@router.get("/sensors/{sensor_id}/audit", tags=TAGS, operation_id="sensor_audit", responses=responses(404))
async def sensor_audit(sensor_id: SensorId, _: Reader, api: Context,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditEntry]:
    """The sensor's audit trail, newest first: who changed what, when, before and after."""
    async with api.db() as conn:
        await registry.get_sensor(conn, sensor_id)
        return await registry.audit_log(conn, sensor_id=sensor_id, limit=limit)


@router.get("/audit", tags=TAGS, operation_id="audit_log", responses=responses())
async def audit_log(_: Reader, api: Context, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditEntry]:
    """The whole audit log, newest first."""
    async with api.db() as conn:
        return await registry.audit_log(conn, limit=limit)


@router.get("/network", tags=TAGS, operation_id="export_network", responses={**responses(), 200: {"content": {
    "application/yaml": {}, "text/csv": {}}}}, response_model=list[SensorSpec])
async def export_network(_: Reader, api: Context, format: Literal["json", "yaml", "csv"] = "json") -> Any:  # noqa: A002 - the query parameter's public name
    """The whole network as `aqnet sensors export` writes it: JSON (default), YAML or CSV."""
    async with api.db() as conn:
        specs = await registry.export_network(conn)
    if format == "json":
        return specs
    from storage.registry.network_file import dump_network

    media = "application/yaml" if format == "yaml" else "text/csv"
    return Response(dump_network(specs, fmt=format), media_type=f"{media}; charset=utf-8")


@router.post("/network", tags=TAGS, operation_id="import_network", responses=responses(409))
async def import_network(specs: list[SensorSpec], token: Technician, api: Context) -> ImportResult:
    """Import a whole network (adds and updates sensors), all or nothing."""
    async with api.db() as conn:
        return await registry.import_network(conn, specs, actor=actor(token), source=f"api:{token.name}")
