"""The HTTP API's alert operations (`/api/v1/alerts…`, `/api/v1/exceedances`), added to `aqnet.api.api_router`.
Shell (FastAPI over `storage.alerts_store` and `alerts.signing`).

Contract: every role reads alerts and exceedances; acknowledging, resolving and annotating need an officer token
(403 for a technician or a reader, 401 without a known token); the actor recorded is the token's name, via "api".
The signed acknowledgement link of e-mail and webhook messages, `/alerts/ack/{token}`, takes no bearer token:
GET answers a small HTML page with a form asking the officer's name and acknowledges nothing (mail scanners and
link previews follow GETs); POST of that form (field `name`, optional `note`) acknowledges, recording actor
"<name> (link)" via "link". A link whose signature does not verify, that expired or whose lifetime is over
`alerts.signing.MAX_ACK_LINK_TTL_H` is a 403 page; an alert already acknowledged or resolved is a 200 page saying
by whom. A link is bound to the transition it was issued for: once the alert escalated after it, GET and POST
answer a 409 page saying so, with a link to the alert, and nothing changes (an escalation needs a new
acknowledgement, alerts.state; the check that counts runs under the alert's row lock in
`storage.alerts_store.acknowledge(as_of_event=…)`). `storage.alerts_store.AlertError` maps to 404
(not_found) and 409 (illegal_transition) through the `db` context the router is given.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name the role
# dependencies local to add_alert_routes
import html
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from alerts.signing import verify_ack_token
from storage import alerts_store
from storage.alerts_store import AlertError
from storage.tokens import ApiToken

__all__ = ["AlertDetail", "AlertRecord", "ExceedanceRecord", "add_alert_routes"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TEXT = r"^[^\x00]*$"  #: PostgreSQL text cannot hold NUL
_NAME_MAX = 100
_TOKEN_MAX = 512  #: alerts.signing tokens are ~60 characters
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the alert's id")]
LinkToken = Annotated[str, Path(description="the signed token of the link (alerts.signing)")]
Db = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlertRecord(_Out):
    """One episode of one rule on one scope (sensor, locality or network), with its current level and state."""

    id: int
    rule: str
    kind: str = Field(description="threshold, index, no_data, flatline or device_fault")
    audience: str = Field(description="officers (air quality) or technicians (equipment)")
    scope: str = Field(description="sensor, locality or network")
    scope_key: str = Field(description="the sensor id, the locality's name or 'network'")
    sensor_id: str | None = Field(description="the sensor whose value is reported (a scope's worst)")
    sensor_name: str | None
    locality: str | None
    variable: str | None
    indicative: bool = Field(description="from microsensors: indicative, not compliance data")
    level: str
    severity: str
    state: Literal["firing", "acknowledged", "resolved"]
    value: float | None
    threshold: float | None
    unit: str | None
    source: str | None = Field(description="where the threshold comes from and its verification status")
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    coverage: float | None = Field(description="fraction 0..1 of the period covered by valid readings")
    started_at: datetime
    updated_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    escalated_at: datetime | None


class AlertEventRecord(_Out):
    """One transition or note of an alert; `actor` and `via` (cli, api, link) say who acted, null: the rules."""

    id: int
    time: datetime
    kind: str = Field(description="raised, escalated, unacknowledged, acknowledged, resolved or note")
    from_state: str | None
    to_state: str
    level: str | None
    from_level: str | None
    severity: str | None
    value: float | None
    note: str | None
    actor: str | None
    via: str | None


class DeliveryRecord(_Out):
    """One delivery of one transition to one channel (the outbox row)."""

    event_id: int
    channel: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class AlertDetail(AlertRecord):
    """An alert with its history (oldest first) and its deliveries."""

    events: list[AlertEventRecord]
    deliveries: list[DeliveryRecord]


class ExceedanceRecord(_Out):
    """Exceedances of one Res. 2254/2017 limit by one sensor in one calendar year (network time zone).

    day: days whose valid calendar-day average is above the 24-hour limit; 1h: hours whose valid hourly average
    is above the 1-hour limit; 8h: hours whose valid 8-hour rolling mean (ending at that hour) is above it."""

    sensor_id: str
    variable: str
    period: Literal["day", "1h", "8h"]
    year: int
    exceedances: int
    valid_periods: int = Field(description="valid periods (days or hours) of the year")
    limit_ugm3: float = Field(description="the limit, µg/m³ at 25 °C and 760 mmHg")
    source: str


class OfficerNote(_In):
    """An optional note recorded with the acknowledgement or resolution."""

    note: Annotated[str, Field(min_length=1, max_length=2000, pattern=_TEXT)] | None = None


class NoteText(_In):
    """A note added to the alert's history."""

    text: Annotated[str, Field(min_length=1, max_length=2000, pattern=_TEXT)]


_HTML = {"text/html": {"schema": {"type": "string"}}}
_LINK_FORM = {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": _NAME_MAX, "description": "who acknowledges"},
        "note": {"type": "string", "maxLength": 2000}}}}}}}

_PAGE = {
    "es": {"title": "Alerta {id}", "invalid": "Este enlace no es válido o venció: {why}. Reconozca la alerta "
           "en aqnet (`aqnet alerts ack {id}` o la API) o pida un enlace nuevo.",
           "unknown": "La alerta {id} no existe.", "ask": "Escriba su nombre para reconocer esta alerta.",
           "name": "Nombre", "note": "Nota (opcional)", "submit": "Reconocer",
           "done": "Alerta reconocida por {who} a las {at}.", "already": "Esta alerta ya fue reconocida por "
           "{who} a las {at}.", "resolved": "Esta alerta ya se resolvió a las {at}{by}: no hay nada que reconocer.",
           "need_name": "Falta su nombre: vuelva atrás y escríbalo.",
           "escalated": "La alerta {id} escaló a {level} ({at}) después de que se envió este enlace: una escalada "
           "necesita un reconocimiento nuevo. Use el enlace del mensaje más reciente o reconózcala en aqnet.",
           "see": "Ver la alerta"},
    "en": {"title": "Alert {id}", "invalid": "This link is not valid or has expired: {why}. Acknowledge the "
           "alert in aqnet (`aqnet alerts ack {id}` or the API) or ask for a new link.",
           "unknown": "Alert {id} does not exist.", "ask": "Enter your name to acknowledge this alert.",
           "name": "Name", "note": "Note (optional)", "submit": "Acknowledge",
           "done": "Alert acknowledged by {who} at {at}.", "already": "This alert was already acknowledged by "
           "{who} at {at}.", "resolved": "This alert was already resolved at {at}{by}: nothing to acknowledge.",
           "need_name": "Your name is missing: go back and enter it.",
           "escalated": "Alert {id} escalated to {level} ({at}) after this link was sent: an escalation needs a new "
           "acknowledgement. Use the link in the newest message or acknowledge it in aqnet.",
           "see": "See the alert"},
}


def add_alert_routes(r: APIRouter, db: Db, *, reader: Callable[..., Any], officer: Callable[..., Any],
                     clock: Callable[[], datetime], signing_key: bytes | None, tz_name: str,
                     responses_for: Callable[..., dict[int | str, dict[str, Any]]],
                     language: Literal["es", "en"] = "es") -> None:
    """Add the alert endpoints to `r` (aqnet.api's `/api/v1` router), over `db` (a pooled-connection context
    mapping AlertError to 404/409); `reader` and `officer` are the role dependencies; `signing_key` verifies
    acknowledgement links (None: every link is refused); `tz_name` is the network's time zone (exceedance
    years); `responses_for(*codes)` gives the OpenAPI error responses the other routes declare."""
    Reader = Annotated[ApiToken, Depends(reader)]
    Officer = Annotated[ApiToken, Depends(officer)]
    say = _PAGE[language]

    def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
        out = responses_for(*codes)
        if 404 in codes:
            out[404] = {**out[404], "description": "no such alert"}
        if 409 in codes:
            out[409] = {**out[409], "description": "illegal transition (e.g. acknowledging a resolved alert)"}
        return out

    # the signed link first: POST /alerts/ack/{token} must not be taken for POST /alerts/{alert_id}/ack
    link_responses: dict[int | str, dict[str, Any]] = {
        200: {"content": _HTML, "description": "the form (GET), or the acknowledgement done or already done"},
        403: {"content": _HTML, "description": "the link's signature does not verify, or it expired"},
        404: {"content": _HTML, "description": "the alert no longer exists"},
        409: {"content": _HTML, "description": "the alert escalated after the link was issued (a new "
              "acknowledgement is needed), or changed meanwhile and cannot be acknowledged"},
        422: {"content": _HTML, "description": "the form was sent without a name"}}

    def page(status: int, alert_id: int | None, body: str) -> HTMLResponse:
        title = say["title"].format(id=alert_id if alert_id is not None else "?")
        return HTMLResponse(f"<!doctype html><html lang=\"{language}\"><head><meta charset=\"utf-8\"><meta "
                            "name=\"robots\" content=\"noindex\"><title>aqnet: " + html.escape(title) +
                            "</title></head><body><h1>" + html.escape(title) + f"</h1>{body}</body></html>",
                            status_code=status, headers={"Cache-Control": "no-store",
                                                         "Referrer-Policy": "no-referrer"})

    def text(status: int, alert_id: int | None, message: str) -> HTMLResponse:
        return page(status, alert_id, f"<p>{html.escape(message)}</p>")

    def verify(token: str) -> tuple[int, int] | HTMLResponse:
        if signing_key is None:
            return text(403, None, say["invalid"].format(why="acknowledgement links are not enabled", id="ID"))
        if len(token) > _TOKEN_MAX:  # checked here, not by the path's schema: the answer stays a page
            return text(403, None, say["invalid"].format(why=f"malformed ack token: over {_TOKEN_MAX} characters",
                                                         id="ID"))
        try:
            return verify_ack_token(signing_key, token, clock())
        except ValueError as exc:
            return text(403, None, say["invalid"].format(why=str(exc), id="ID"))

    async def lookup_detail(conn: AsyncConnection[Any], alert_id: int) -> alerts_store.AlertDetail | None:
        """The alert with its events, or None when there is none."""
        try:
            return await alerts_store.get_alert(conn, alert_id)
        except AlertError as exc:
            if exc.code != "not_found":
                raise
            return None

    def escalated(alert_id: int, level: str, at: datetime | None) -> HTMLResponse:
        """The 409 page of a link issued before an escalation, with a link to the alert (relative: a proxy's
        path prefix is kept; the alert's record asks for a token)."""
        return page(409, alert_id, f"<p>{html.escape(say['escalated'].format(id=alert_id, level=level, at=_when(at)))}"
                    f"</p><p><a href=\"../{alert_id}\">{html.escape(say['see'])}</a></p>")

    def settled(alert: Any) -> HTMLResponse | None:
        """The page for an alert nobody needs to acknowledge any more, or None."""
        if alert.state == "acknowledged":
            return text(200, alert.id, say["already"].format(who=alert.acknowledged_by,
                                                             at=_when(alert.acknowledged_at)))
        if alert.state == "resolved":
            by = f" ({alert.resolved_by})" if alert.resolved_by else ""
            return text(200, alert.id, say["resolved"].format(at=_when(alert.resolved_at), by=by))
        return None

    @r.get("/alerts/ack/{token}", tags=["alerts"], operation_id="ack_link_form", response_class=HTMLResponse,
           responses=link_responses)
    async def ack_link_form(token: LinkToken) -> HTMLResponse:
        """The signed acknowledgement link (no bearer token): a form asking the officer's name. Acknowledges
        nothing: only POSTing the form does."""
        checked = verify(token)
        if isinstance(checked, HTMLResponse):
            return checked
        alert_id, event_id = checked
        async with db() as conn:
            found = await lookup_detail(conn, alert_id)
        if found is None:
            return text(404, alert_id, say["unknown"].format(id=alert_id))
        alert = found.alert
        done = settled(alert)
        if done is not None:
            return done
        later = superseding(found.events, event_id)
        if later is not None:
            return escalated(alert_id, later.level or alert.level, later.time)
        evidence = (f"{alert.rule}: {alert.level} — {alert.sensor_id or alert.scope_key} {alert.variable or ''} "
                    f"{_num(alert.value)} {alert.unit or ''}")
        return page(200, alert_id, f"<p>{html.escape(evidence)}</p><p>{html.escape(say['ask'])}</p>"
                    "<form method=\"post\"><p><label>" + html.escape(say["name"]) +
                    f" <input name=\"name\" required maxlength=\"{_NAME_MAX}\" autocomplete=\"name\"></label></p>"
                    "<p><label>" + html.escape(say["note"]) + " <textarea name=\"note\" maxlength=\"2000\">"
                    "</textarea></label></p><p><button type=\"submit\">" + html.escape(say["submit"]) +
                    "</button></p></form>")

    @r.post("/alerts/ack/{token}", tags=["alerts"], operation_id="ack_link", response_class=HTMLResponse,
            responses=link_responses, openapi_extra=_LINK_FORM)
    async def ack_link(token: LinkToken, request: Request) -> HTMLResponse:
        """Acknowledge through the signed link's form (field `name`): recorded as "<name> (link)", via link."""
        checked = verify(token)
        if isinstance(checked, HTMLResponse):
            return checked
        alert_id, event_id = checked
        form = await _form(request)
        if form is None:
            return text(422, alert_id, say["need_name"])
        name = " ".join((form.get("name") or [""])[0].split())[:_NAME_MAX].replace("\x00", "")
        note = (form.get("note") or [""])[0].strip()[:2000].replace("\x00", "") or None
        if not name:
            return text(422, alert_id, say["need_name"])
        actor = f"{name} (link)"
        async with db() as conn:
            try:
                await alerts_store.acknowledge(conn, alert_id, actor=actor, via="link", note=note, at=clock(),
                                               as_of_event=event_id)
                refused = None
            except AlertError as exc:  # handled here: the link answers pages, not the API's JSON errors
                refused = exc
            found = await lookup_detail(conn, alert_id)
        if found is None:
            return text(404, alert_id, say["unknown"].format(id=alert_id))
        alert = found.alert
        if refused is not None:  # escalated since the link, or acknowledged/resolved meanwhile
            later = superseding(found.events, event_id) if refused.code == "superseded" else None
            if later is not None:
                return escalated(alert_id, later.level or alert.level, later.time)
            return settled(alert) or text(409, alert_id, refused.message)
        return text(200, alert_id, say["done"].format(who=actor, at=_when(alert.acknowledged_at)))

    @r.get("/alerts", tags=["alerts"], operation_id="list_alerts", responses=responses())
    async def list_alerts(_: Reader, state: Literal["firing", "acknowledged", "resolved"] | None = None,
                          audience: Literal["officers", "technicians"] | None = None,
                          sensor_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                          locality: Annotated[str | None, Query(min_length=1, max_length=100, pattern=_TEXT)] = None,
                          rule: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")] = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AlertRecord]:
        """Alerts, newest first, optionally of one state, audience, sensor, locality or rule."""
        async with db() as conn:
            found = await alerts_store.list_alerts(conn, state=state, audience=audience, sensor_id=sensor_id,
                                                   locality=locality, rule=rule, limit=limit)
        return [AlertRecord.model_validate(a) for a in found]

    @r.get("/alerts/{alert_id}", tags=["alerts"], operation_id="get_alert", responses=responses(404))
    async def get_alert(alert_id: AlertId, _: Reader) -> AlertDetail:
        """One alert with its history (raised, escalated, acknowledged, notes, resolved) and its deliveries."""
        async with db() as conn:
            return _detail(await alerts_store.get_alert(conn, alert_id))

    @r.post("/alerts/{alert_id}/ack", tags=["alerts"], operation_id="acknowledge_alert",
            responses=responses(404, 409))
    async def acknowledge_alert(alert_id: AlertId, token: Officer,
                                body: Annotated[OfficerNote | None, Body()] = None) -> AlertDetail:
        """Acknowledge a firing alert (officers): recorded with the token's name, via api."""
        async with db() as conn:
            await alerts_store.acknowledge(conn, alert_id, actor=token.name, via="api",
                                           note=body.note if body else None, at=clock())
            return _detail(await alerts_store.get_alert(conn, alert_id))

    @r.post("/alerts/{alert_id}/resolve", tags=["alerts"], operation_id="resolve_alert",
            responses=responses(404, 409))
    async def resolve_alert(alert_id: AlertId, token: Officer,
                            body: Annotated[OfficerNote | None, Body()] = None) -> AlertDetail:
        """Resolve a firing or acknowledged alert by hand (officers); it stays resolved until the value falls
        below the rule's clear level, after which a new episode may start."""
        async with db() as conn:
            await alerts_store.resolve(conn, alert_id, actor=token.name, via="api",
                                       note=body.note if body else None, at=clock())
            return _detail(await alerts_store.get_alert(conn, alert_id))

    @r.post("/alerts/{alert_id}/notes", tags=["alerts"], operation_id="annotate_alert", status_code=201,
            responses=responses(404))
    async def annotate_alert(alert_id: AlertId, body: NoteText, token: Officer) -> AlertDetail:
        """Add a note to an alert's history (officers); notes are not delivered to channels."""
        async with db() as conn:
            await alerts_store.add_note(conn, alert_id, actor=token.name, via="api", text=body.text)
            return _detail(await alerts_store.get_alert(conn, alert_id))

    @r.get("/exceedances", tags=["alerts"], operation_id="list_exceedances", responses=responses())
    async def list_exceedances(_: Reader, year: Annotated[int | None, Query(ge=1900, le=9999)] = None,
                               sensor_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                               variable: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None
                               ) -> list[ExceedanceRecord]:
        """Exceedances of the norm's limits per sensor, variable, period and calendar year (network time zone):
        days whose valid calendar-day average is above the 24-hour limit, hours above the 1-hour limit."""
        async with db() as conn:
            found = await alerts_store.exceedances(conn, year=year, sensor_id=sensor_id, variable=variable,
                                                   tz=tz_name)
        return [ExceedanceRecord.model_validate(e) for e in found]


def superseding(events: Any, event_id: int) -> Any:
    """The last escalation recorded after transition `event_id` among an alert's `events`, or None: a link issued
    for `event_id` no longer acknowledges once there is one. Pure."""
    later = [e for e in events if e.kind == "escalated" and e.id > event_id]
    return max(later, key=lambda e: e.id) if later else None


_FORM_MAX_BYTES = 16_384  #: a name and a note: anything larger is not the form


async def _form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form of the link's page (parsed here: python-multipart is not a dependency), or None when
    the body is too large or not a form."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_MAX_BYTES:
            return None
    try:
        return parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:  # more fields than the form has
        return None


def _detail(found: alerts_store.AlertDetail) -> AlertDetail:
    alert = AlertRecord.model_validate(found.alert).model_dump()
    return AlertDetail(**alert, events=[AlertEventRecord.model_validate(e) for e in found.events],
                       deliveries=[DeliveryRecord.model_validate(d) for d in found.deliveries])


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="minutes") if at else "?"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
