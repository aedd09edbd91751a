"""The HTTP API's calibration operations: list the calibrations in force of a sensor's devices, add one
(`/api/v1/sensors/{id}/…calibrations`). Shell (FastAPI over `storage.registry.calibrations` and `storage.registry`).

Contract: every role reads; technicians add (validated by `storage.registry.calibrate`: an overlap with one in
force is a 409, unusable coefficients a 422).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from aqnet.api.context import Context, Reader, Technician, actor
from aqnet.api.errors import problem, responses
from aqnet.api.params import FROM_PATH, TAGS, DeviceId, SensorId, links
from storage import registry
from storage.registry.calibrations import load_calibrations
from storage.registry.models import CalibrationSpec

__all__ = ["CalibrationRecord", "router"]


class CalibrationRecord(BaseModel):
    """A calibration in force (not revoked) of one device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    device_id: str
    variable: str
    kind: str
    coefficients: list[float]
    unit: str
    valid_from: datetime
    valid_to: datetime | None
    source: str


router = APIRouter()


@router.get("/sensors/{sensor_id}/calibrations", tags=TAGS, operation_id="list_calibrations",
            responses=responses(404))
async def list_calibrations(sensor_id: SensorId, _: Reader, api: Context) -> list[CalibrationRecord]:
    """The calibrations in force of the sensor's active devices."""
    async with api.db() as conn:
        sensor = await registry.get_sensor(conn, sensor_id)
        found = await load_calibrations(conn, device_ids=[d.id for d in sensor.devices])
    return [CalibrationRecord(id=c.id, device_id=c.device_id, variable=c.variable, kind=c.kind,
                              coefficients=list(c.coefficients), unit=c.unit, valid_from=c.valid_from,
                              valid_to=c.valid_to, source=c.source) for c in found]


@router.post("/sensors/{sensor_id}/devices/{device_id}/calibrations", tags=TAGS, operation_id="add_calibration",
             status_code=201, responses={**responses(404, 409), 201: {"links": links(list_calibrations=FROM_PATH)}})
async def add_calibration(sensor_id: SensorId, device_id: DeviceId, spec: CalibrationSpec, token: Technician,
                          api: Context) -> CalibrationRecord:
    """Add a calibration of one variable of an active device of the sensor."""
    async with api.db() as conn:
        sensor = await registry.get_sensor(conn, sensor_id)
        if device_id not in {d.id for d in sensor.devices}:
            raise problem(404, "not_found", f"sensor {sensor_id}: no active device {device_id}", "device_id")
        cal_id = await registry.calibrate(conn, device_id, spec, actor=actor(token))
    return CalibrationRecord(id=cal_id, device_id=device_id, variable=spec.variable, kind=spec.kind,
                             coefficients=spec.coefficients, unit=spec.unit, valid_from=spec.valid_from,
                             valid_to=spec.valid_to, source=spec.source)
