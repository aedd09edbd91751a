"""The HTTP API's maintenance windows: add one to a sensor (or one device or variable of it), list a sensor's,
list those overlapping a period (`/api/v1/…maintenance`). Shell (FastAPI over `storage.registry`).

Contract: every role reads; technicians add. Alerts from data inside a window are suppressed (alerts.jobs).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
from datetime import UTC, datetime

from fastapi import APIRouter

from aqnet.api.context import Context, Reader, Technician, actor
from aqnet.api.errors import responses
from aqnet.api.params import FROM_PATH, TAGS, Instant, SensorId, instant, links
from storage import registry
from storage.registry.models import MaintenanceSpec, MaintenanceWindow

__all__ = ["router"]

router = APIRouter()


@router.post("/sensors/{sensor_id}/maintenance", tags=TAGS, operation_id="add_maintenance", status_code=201,
             responses={**responses(404, 409), 201: {"links": links(list_sensor_maintenance=FROM_PATH)}})
async def add_maintenance(sensor_id: SensorId, spec: MaintenanceSpec, token: Technician,
                          api: Context) -> MaintenanceWindow:
    """Put the sensor, or one device or variable of it, in maintenance for a period."""
    async with api.db() as conn:
        return await registry.add_maintenance(conn, sensor_id, spec, actor=actor(token))


@router.get("/sensors/{sensor_id}/maintenance", tags=TAGS, operation_id="list_sensor_maintenance",
            responses=responses(404))
async def list_sensor_maintenance(sensor_id: SensorId, _: Reader, api: Context) -> list[MaintenanceWindow]:
    """The sensor's maintenance windows."""
    async with api.db() as conn:
        await registry.get_sensor(conn, sensor_id)  # 404 for an unknown sensor, not an empty list
        return await registry.list_maintenance(conn, sensor_id=sensor_id)


@router.get("/maintenance", tags=TAGS, operation_id="list_maintenance", responses=responses())
async def list_maintenance(_: Reader, api: Context, since: Instant = None,
                           until: Instant = None) -> list[MaintenanceWindow]:
    """Every maintenance window, or those overlapping [since, until) (either bound may be left open)."""
    overlapping = None
    if since is not None or until is not None:
        overlapping = (instant("since", since) or datetime(1970, 1, 1, tzinfo=UTC),
                       instant("until", until) or datetime(9999, 1, 1, tzinfo=UTC))
    async with api.db() as conn:
        return await registry.list_maintenance(conn, overlapping=overlapping)
