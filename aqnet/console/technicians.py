"""The web console's pages for field technicians: the sensor list with health, a sensor's page (devices,
calibrations, maintenance windows, audit trail), registering a sensor with its device, issuing a push device's
HTTP credentials, maintenance windows, and the commissioning view. Shell (aqnet.console) over
`storage.registry`, `storage.device_credentials`, `alerts.health` and `ingest.commission`; I/O.

Contract: every role reads the sensor list and a sensor's page (READERS, as the API's GET operations); the forms
and the commissioning view need a technician (TECHNICIAN), and every form is CSRF-checked (aqnet.console.context).
Changes are recorded in the registry's audit log with the actor `console:<user name>`. A registry refusal is
answered as the form again with the refusal's message (422), nothing written. The commissioning view polls
`commissioning.json`: the newest stored readings of the sensor (raw and normalised, with their QC flag names)
and the verdict `ingest.commission.judge` gives on the newest reading of each variable of each device, as
`aqnet sensors test` judges an HTTP push device's stored readings.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import asyncio
import math
from datetime import datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from psycopg import sql

from alerts.health import DeviceHealth, device_health
from aqnet.console.context import PREFIX, ConsoleContext, console_context
from aqnet.http.roles import READERS, TECHNICIAN
from ingest.commission import DeviceCheck, flag_names, judge
from ingest.reading import Reading
from storage import device_credentials
from storage.registry import (
    MaintenanceSpec,
    RegistryError,
    SensorRecord,
    SensorSpec,
    add_maintenance,
    add_sensor,
    audit_log,
    get_sensor,
    list_sensors,
)
from storage.registry.calibrations import load_calibrations
from storage.registry.models import error_from_validation
from storage.rows import MEASUREMENT_COLUMNS, row_reading

__all__ = ["router"]

router = APIRouter()
Console = Annotated[ConsoleContext, Depends(console_context)]
_RECENT = timedelta(hours=1)  #: how far back the commissioning view shows readings


def actor(username: str) -> str:
    """The audit log's actor of a change made in the console."""
    return f"console:{username}"


async def _health(ctx: ConsoleContext, sensor_id: str | None = None) -> dict[str, DeviceHealth]:
    """Device id → its health now (alerts.health, read only, on a connection of its own in a thread)."""
    def read() -> list[DeviceHealth]:
        with psycopg.connect(ctx.database_url, autocommit=True, application_name="aqnet-console") as conn:
            return device_health(conn, ctx.clock(), ctx.health_policy, sensor_id=sensor_id)

    try:
        return {h.device_id: h for h in await asyncio.to_thread(read)}
    except psycopg.Error:
        return {}


def _health_row(h: DeviceHealth | None) -> dict[str, Any]:
    status = "unknown" if h is None or h.checked_until is None else "down" if h.down_since is not None else "up"
    flags = []
    if h is not None and h.flat_variable:
        flags.append(f"flat {h.flat_variable} {h.flat_minutes:.0f} min")
    if h is not None:
        flags.extend(f"drift {d.variable}" for d in h.drifts)
    completeness = None if h is None or h.completeness_24h is None else f"{100 * h.completeness_24h:.0f}%"
    return {"status": status, "last_heard": None if h is None else h.last_heard, "completeness": completeness,
            "flags": flags, "down_since": None if h is None else h.down_since}


@router.get("/sensors")
async def sensors_page(request: Request, ctx: Console) -> Response:
    """The sensor list with each device's health."""
    session = await ctx.require(request, READERS)
    if isinstance(session, Response):
        return session
    async with ctx.db() as conn:
        records = await list_sensors(conn)
    health = await _health(ctx)
    rows = [{"sensor": s, "devices": [{"device": d, **_health_row(health.get(d.id))} for d in s.devices]}
            for s in records if s.lifecycle != "retired"]
    return ctx.page("sensors.html", session, rows=rows)


async def _sensor_page(ctx: ConsoleContext, session: Any, sensor_id: str, *, status: int = 200,
                       message: str = "", issued: str = "") -> Response:
    async with ctx.db() as conn:
        try:
            record = await get_sensor(conn, sensor_id)
        except RegistryError as exc:
            return ctx.error(session, 404, exc.message)
        calibrations = await load_calibrations(conn, device_ids=[d.id for d in record.devices])
        audit = await audit_log(conn, sensor_id=sensor_id, limit=50)
    health = await _health(ctx, sensor_id)
    devices = [{"device": d, **_health_row(health.get(d.id))} for d in record.devices]
    return ctx.page("sensor.html", session, status=status, record=record, devices=devices,
                    calibrations=calibrations, audit=audit, message=message, issued=issued,
                    pushes=any(d.protocol == "http" for d in record.devices))


@router.get("/sensors/new")
async def new_sensor_page(request: Request, ctx: Console) -> Response:
    """The form registering a sensor and its device."""
    session = await ctx.require(request, TECHNICIAN)
    if isinstance(session, Response):
        return session
    return ctx.page("sensor_new.html", session, form={}, message="")


def _spec(form: dict[str, str]) -> SensorSpec:
    """The sensor the registration form describes (RegistryError naming the field otherwise)."""
    def opt(name: str) -> str | None:
        return form.get(name, "").strip() or None

    values = {
        "id": form.get("sensor_id", "").strip(), "name": form.get("name", "").strip(),
        "kind": form.get("kind", "microsensor"), "lifecycle": "commissioning",
        "location": {"lat": form.get("lat", ""), "lon": form.get("lon", ""),
                     "locality": form.get("locality", "").strip()},
        "devices": [{"id": form.get("device_id", "").strip(), "profile": form.get("profile", "").strip(),
                     "protocol": form.get("protocol", ""),
                     "variables": [v.strip() for v in form.get("variables", "").replace(",", " ").split()],
                     "topic": opt("topic"), "hardware_serial": opt("hardware_serial"), "host": opt("host"),
                     "port": opt("port"), "unit_id": opt("unit_id")}]}
    try:
        return SensorSpec.model_validate(values, strict=False)
    except ValueError as exc:
        if hasattr(exc, "errors"):
            raise error_from_validation(exc, "new sensor") from None  # type: ignore[arg-type]
        raise RegistryError("invalid", str(exc)) from None


@router.post("/sensors/new")
async def register_sensor(request: Request, ctx: Console) -> Response:
    """Register the sensor (lifecycle commissioning, so the daemon takes its readings at once)."""
    got = await ctx.posted(request, TECHNICIAN)
    if isinstance(got, Response):
        return got
    session, form = got
    try:
        spec = _spec(form)
        async with ctx.db() as conn:
            await add_sensor(conn, spec, actor=actor(session.user.username))
    except RegistryError as exc:
        return ctx.page("sensor_new.html", session, status=422, form=form, message=exc.message)
    return RedirectResponse(f"{PREFIX}/sensors/{spec.id}", status_code=303)


@router.get("/sensors/{sensor_id}")
async def sensor_page(sensor_id: str, request: Request, ctx: Console) -> Response:
    """A sensor's devices (with health), calibrations, maintenance windows and audit trail."""
    session = await ctx.require(request, READERS)
    if isinstance(session, Response):
        return session
    return await _sensor_page(ctx, session, sensor_id)


@router.post("/sensors/{sensor_id}/credentials")
async def issue_credentials(sensor_id: str, request: Request, ctx: Console) -> Response:
    """Issue (or replace) the sensor's HTTP basic credentials; the password is shown once."""
    got = await ctx.posted(request, TECHNICIAN)
    if isinstance(got, Response):
        return got
    session, _ = got
    async with ctx.db() as conn:
        try:
            record = await get_sensor(conn, sensor_id)
        except RegistryError as exc:
            return ctx.error(session, 404, exc.message)
        if not any(d.protocol == "http" for d in record.devices):
            return await _sensor_page(ctx, session, sensor_id, status=422, message=(
                f"sensor {sensor_id}: no device pushes over HTTP; MQTT devices get a broker login "
                f"(`aqnet sensors credentials {sensor_id}`)"))
        password = await device_credentials.issue(conn, sensor_id, created_by=actor(session.user.username))
    return await _sensor_page(ctx, session, sensor_id, issued=password)


@router.post("/sensors/{sensor_id}/maintenance")
async def maintenance(sensor_id: str, request: Request, ctx: Console) -> Response:
    """Open a maintenance window for the sensor (or one of its devices)."""
    got = await ctx.posted(request, TECHNICIAN)
    if isinstance(got, Response):
        return got
    session, form = got
    try:
        starts = _local_time(ctx, form.get("starts_at", ""), "starts_at")
        ends = _local_time(ctx, form.get("ends_at", ""), "ends_at")
        try:
            spec = MaintenanceSpec.model_validate({"starts_at": starts, "ends_at": ends,
                                                   "reason": form.get("reason", ""),
                                                   "device_id": form.get("device_id") or None}, strict=False)
        except ValueError as exc:
            raise error_from_validation(exc, f"sensor {sensor_id}: maintenance") from None  # type: ignore[arg-type]
        async with ctx.db() as conn:
            await add_maintenance(conn, sensor_id, spec, actor=actor(session.user.username))
    except RegistryError as exc:
        return await _sensor_page(ctx, session, sensor_id, status=422, message=exc.message)
    return RedirectResponse(f"{PREFIX}/sensors/{sensor_id}", status_code=303)


def _local_time(ctx: ConsoleContext, text: str, field: str) -> datetime:
    """A `datetime-local` field (network time zone) as an aware time; RegistryError naming the field."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RegistryError("invalid", f"{field}: expected a date and time (YYYY-MM-DDTHH:MM), got {text!r}",
                            field=field) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=ctx.tz)


@router.get("/sensors/{sensor_id}/commissioning")
async def commissioning_page(sensor_id: str, request: Request, ctx: Console) -> Response:
    """The commissioning view: live readings and the verdict, refreshed by the page's script."""
    session = await ctx.require(request, TECHNICIAN)
    if isinstance(session, Response):
        return session
    async with ctx.db() as conn:
        try:
            record = await get_sensor(conn, sensor_id)
        except RegistryError as exc:
            return ctx.error(session, 404, exc.message)
    return ctx.page("commission.html", session, record=record, state=await _commissioning(ctx, record))


@router.get("/sensors/{sensor_id}/commissioning.json")
async def commissioning_json(sensor_id: str, request: Request, ctx: Console) -> Response:
    """What the commissioning view shows, as JSON (polled by its script)."""
    session = await ctx.require(request, TECHNICIAN)
    if isinstance(session, Response):
        return JSONResponse({"error": "sign in as a technician"}, status_code=401)
    async with ctx.db() as conn:
        try:
            record = await get_sensor(conn, sensor_id)
        except RegistryError as exc:
            return JSONResponse({"error": exc.message}, status_code=404)
    return JSONResponse(await _commissioning(ctx, record), headers={"Cache-Control": "no-store"})


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


async def _commissioning(ctx: ConsoleContext, record: SensorRecord) -> dict[str, Any]:
    """The readings of the last hour and the verdict on the newest of each (device, variable)."""
    query = sql.SQL("SELECT {} FROM measurements WHERE sensor_id = %s AND time >= %s "
                    "ORDER BY time DESC, device_id, variable LIMIT 200").format(
        sql.SQL(", ").join(map(sql.Identifier, MEASUREMENT_COLUMNS)))
    async with ctx.db() as conn, conn.cursor() as cur:
        await cur.execute(query, (record.id, ctx.clock() - _RECENT))
        readings = [row_reading(r) for r in await cur.fetchall()]
    newest: dict[tuple[str, str], Reading] = {}
    for r in readings:
        newest.setdefault((r.device_id, r.variable), r)
    checks = []
    for d in record.devices:
        got = tuple(r for (device, _), r in newest.items() if device == d.id)
        reported = {r.variable for r in got}
        checks.append(DeviceCheck(d.id, d.protocol, d.topic or d.protocol, "ok" if got else "no_message",
                                  "" if got else "nothing stored from it yet", got,
                                  missing=tuple(v for v in d.variables if v not in reported) if got else ()))
    verdict, findings = judge(checks)
    return {"sensor_id": record.id, "verdict": verdict,
            "findings": [{"level": f.level, "device_id": f.device_id, "message": f.message} for f in findings],
            "readings": [{"time": ctx.local(r.time), "device_id": r.device_id, "variable": r.variable,
                          "raw_value": _num(r.raw_value), "raw_unit": r.raw_unit, "value": _num(r.value),
                          "unit": r.unit, "flags": list(flag_names(r.flags)), "received_at": ctx.local(r.received_at)}
                         for r in readings]}
