"""The HTTP API's alert operations (`/api/v1/alerts…`, `/api/v1/exceedances`). Shell (FastAPI over
`storage.alerts_store`).

Contract: every role reads alerts and exceedances; acknowledging, resolving and annotating need an officer token
(403 for a technician or a reader, 401 without a known token); the actor recorded is the token's name, via "api".
`storage.alerts_store.AlertError` maps to 404 (not_found) and 409 (illegal_transition) (`aqnet.api.context`).
The signed acknowledgement link, which takes no bearer token, is `aqnet.api.ack_link`.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query

from aqnet.api.alert_models import (
    TEXT,
    AlertDetail,
    AlertRecord,
    ExceedanceRecord,
    NoteText,
    OfficerNote,
    alert_detail,
)
from aqnet.api.context import Context, Officer, Reader
from aqnet.api.errors import responses
from aqnet.api.params import ID_PATTERN
from storage import alerts_store

__all__ = ["router"]

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the alert's id")]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of an alert operation (404: no such alert; 409: an illegal transition)."""
    out = responses(*codes)
    if 404 in codes:
        out[404] = {**out[404], "description": "no such alert"}
    if 409 in codes:
        out[409] = {**out[409], "description": "illegal transition (e.g. acknowledging a resolved alert)"}
    return out


router = APIRouter()


@router.get("/alerts", tags=["alerts"], operation_id="list_alerts", responses=_responses())
async def list_alerts(_: Reader, api: Context, state: Literal["firing", "acknowledged", "resolved"] | None = None,
                      audience: Literal["officers", "technicians"] | None = None,
                      sensor_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                      locality: Annotated[str | None, Query(min_length=1, max_length=100, pattern=TEXT)] = None,
                      rule: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AlertRecord]:
    """Alerts, newest first, optionally of one state, audience, sensor, locality or rule."""
    async with api.db() as conn:
        found = await alerts_store.list_alerts(conn, state=state, audience=audience, sensor_id=sensor_id,
                                               locality=locality, rule=rule, limit=limit)
    return [AlertRecord.model_validate(a) for a in found]

@router.get("/alerts/{alert_id}", tags=["alerts"], operation_id="get_alert", responses=_responses(404))
async def get_alert(alert_id: AlertId, _: Reader, api: Context) -> AlertDetail:
    """One alert with its history (raised, escalated, acknowledged, notes, resolved) and its deliveries."""
    async with api.db() as conn:
        return alert_detail(await alerts_store.get_alert(conn, alert_id))

@router.post("/alerts/{alert_id}/ack", tags=["alerts"], operation_id="acknowledge_alert",
        responses=_responses(404, 409))
async def acknowledge_alert(alert_id: AlertId, token: Officer, api: Context,
                            body: Annotated[OfficerNote | None, Body()] = None) -> AlertDetail:
    """Acknowledge a firing alert (officers): recorded with the token's name, via api."""
    async with api.db() as conn:
        await alerts_store.acknowledge(conn, alert_id, actor=token.name, via="api",
                                       note=body.note if body else None, at=api.clock())
        return alert_detail(await alerts_store.get_alert(conn, alert_id))

@router.post("/alerts/{alert_id}/resolve", tags=["alerts"], operation_id="resolve_alert",
        responses=_responses(404, 409))
async def resolve_alert(alert_id: AlertId, token: Officer, api: Context,
                        body: Annotated[OfficerNote | None, Body()] = None) -> AlertDetail:
    """Resolve a firing or acknowledged alert by hand (officers); it stays resolved until the value falls
    below the rule's clear level, after which a new episode may start."""
    async with api.db() as conn:
        await alerts_store.resolve(conn, alert_id, actor=token.name, via="api",
                                   note=body.note if body else None, at=api.clock())
        return alert_detail(await alerts_store.get_alert(conn, alert_id))

@router.post("/alerts/{alert_id}/notes", tags=["alerts"], operation_id="annotate_alert", status_code=201,
        responses=_responses(404))
async def annotate_alert(alert_id: AlertId, body: NoteText, token: Officer, api: Context) -> AlertDetail:
    """Add a note to an alert's history (officers); notes are not delivered to channels."""
    async with api.db() as conn:
        await alerts_store.add_note(conn, alert_id, actor=token.name, via="api", text=body.text)
        return alert_detail(await alerts_store.get_alert(conn, alert_id))

@router.get("/exceedances", tags=["alerts"], operation_id="list_exceedances", responses=_responses())
async def list_exceedances(_: Reader, api: Context, year: Annotated[int | None, Query(ge=1900, le=9999)] = None,
                           sensor_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                           variable: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None
                           ) -> list[ExceedanceRecord]:
    """Exceedances of the norm's limits per sensor, variable, period and calendar year (network time zone):
    days whose valid calendar-day average is above the 24-hour limit, hours above the 1-hour limit, and the valid
    annual mean above the annual limit (PM10, PM2.5, NO2)."""
    async with api.db() as conn:
        found = await alerts_store.exceedances(conn, year=year, sensor_id=sensor_id, variable=variable,
                                               tz=api.tz_name)
    return [ExceedanceRecord.model_validate(e) for e in found]
