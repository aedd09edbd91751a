"""The signed acknowledgement link of e-mail and webhook messages, `/api/v1/alerts/ack/{token}`: it takes no
bearer token. Shell (FastAPI over `storage.alerts_store` and `alerts.delivery.signing`), answering small HTML pages.

Contract: GET answers a page with a form asking the officer's name and acknowledges nothing (mail scanners and
link previews follow GETs); POST of that form (field `name`, optional `note`) acknowledges, recording actor
"<name> (link)" via "link". A link whose signature does not verify, that expired or whose lifetime is over
`alerts.delivery.signing.MAX_ACK_LINK_TTL_H` is a 403 page; an alert already acknowledged or resolved is a 200 page
saying
by whom. A link is bound to the transition it was issued for: once the alert escalated after it, GET and POST
answer a 409 page saying so, with a link to the alert, and nothing changes (an escalation needs a new
acknowledgement, alerts.rules.state; the check that counts runs under the alert's row lock in
`storage.alerts_store.acknowledge(as_of_event=…)`). Pages are in the router's language (es or en).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from psycopg import AsyncConnection

from alerts.delivery.signing import verify_ack_token
from aqnet.api.context import ApiContext, Context
from storage import alerts_store
from storage.alerts_store import AlertError

__all__ = ["router", "superseding"]

_NAME_MAX = 100
_TOKEN_MAX = 512  #: alerts.delivery.signing tokens are ~60 characters
LinkToken = Annotated[str, Path(description="the signed token of the link (alerts.delivery.signing)")]

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

_LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": _HTML, "description": "the form (GET), or the acknowledgement done or already done"},
    403: {"content": _HTML, "description": "the link's signature does not verify, or it expired"},
    404: {"content": _HTML, "description": "the alert no longer exists"},
    409: {"content": _HTML, "description": "the alert escalated after the link was issued (a new "
          "acknowledgement is needed), or changed meanwhile and cannot be acknowledged"},
    422: {"content": _HTML, "description": "the form was sent without a name"}}


@dataclass(frozen=True, slots=True)
class _Pages:
    """The link's pages in `language`."""

    language: Literal["es", "en"]

    @property
    def said(self) -> dict[str, str]:
        return _PAGE[self.language]

    def page(self, status: int, alert_id: int | None, body: str) -> HTMLResponse:
        title = self.said["title"].format(id=alert_id if alert_id is not None else "?")
        return HTMLResponse(f'<!doctype html><html lang="{self.language}"><head><meta charset="utf-8"><meta '
                            'name="robots" content="noindex"><title>aqnet: ' + html.escape(title) +
                            "</title></head><body><h1>" + html.escape(title) + f"</h1>{body}</body></html>",
                            status_code=status, headers={"Cache-Control": "no-store",
                                                         "Referrer-Policy": "no-referrer"})

    def text(self, status: int, alert_id: int | None, message: str) -> HTMLResponse:
        return self.page(status, alert_id, f"<p>{html.escape(message)}</p>")

    def verify(self, api: ApiContext, token: str) -> tuple[int, int] | HTMLResponse:
        """(alert id, event id) of a valid link, or the 403 page saying why it is not."""
        invalid = self.said["invalid"]
        if api.signing_key is None:
            return self.text(403, None, invalid.format(why="acknowledgement links are not enabled", id="ID"))
        if len(token) > _TOKEN_MAX:  # checked here, not by the path's schema: the answer stays a page
            return self.text(403, None, invalid.format(why=f"malformed ack token: over {_TOKEN_MAX} characters",
                                                       id="ID"))
        try:
            return verify_ack_token(api.signing_key, token, api.clock())
        except ValueError as exc:
            return self.text(403, None, invalid.format(why=str(exc), id="ID"))

    def escalated(self, alert_id: int, level: str, at: datetime | None) -> HTMLResponse:
        """The 409 page of a link issued before an escalation, with a link to the alert (relative: a proxy's
        path prefix is kept; the alert's record asks for a token)."""
        message = self.said["escalated"].format(id=alert_id, level=level, at=_when(at))
        return self.page(409, alert_id, f'<p>{html.escape(message)}</p><p><a href="../{alert_id}">'
                         f"{html.escape(self.said['see'])}</a></p>")

    def settled(self, alert: Any) -> HTMLResponse | None:
        """The page for an alert nobody needs to acknowledge any more, or None."""
        if alert.state == "acknowledged":
            return self.text(200, alert.id, self.said["already"].format(who=alert.acknowledged_by,
                                                                        at=_when(alert.acknowledged_at)))
        if alert.state == "resolved":
            by = f" ({alert.resolved_by})" if alert.resolved_by else ""
            return self.text(200, alert.id, self.said["resolved"].format(at=_when(alert.resolved_at), by=by))
        return None


async def _lookup_detail(conn: AsyncConnection[Any], alert_id: int) -> alerts_store.AlertDetail | None:
    """The alert with its events, or None when there is none."""
    try:
        return await alerts_store.get_alert(conn, alert_id)
    except AlertError as exc:
        if exc.code != "not_found":
            raise
        return None


router = APIRouter()


@router.get("/alerts/ack/{token}", tags=["alerts"], operation_id="ack_link_form", response_class=HTMLResponse,
            responses=_LINK_RESPONSES)
async def ack_link_form(token: LinkToken, api: Context) -> HTMLResponse:
    """The signed acknowledgement link (no bearer token): a form asking the officer's name. Acknowledges
    nothing: only POSTing the form does."""
    say = _Pages(api.language)
    checked = say.verify(api, token)
    if isinstance(checked, HTMLResponse):
        return checked
    alert_id, event_id = checked
    async with api.db() as conn:
        found = await _lookup_detail(conn, alert_id)
    if found is None:
        return say.text(404, alert_id, say.said["unknown"].format(id=alert_id))
    alert = found.alert
    done = say.settled(alert)
    if done is not None:
        return done
    later = superseding(found.events, event_id)
    if later is not None:
        return say.escalated(alert_id, later.level or alert.level, later.time)
    evidence = (f"{alert.rule}: {alert.level} — {alert.sensor_id or alert.scope_key} {alert.variable or ''} "
                f"{_num(alert.value)} {alert.unit or ''}")
    return say.page(200, alert_id, f"<p>{html.escape(evidence)}</p><p>{html.escape(say.said['ask'])}</p>"
                    '<form method="post"><p><label>' + html.escape(say.said["name"]) +
                    f' <input name="name" required maxlength="{_NAME_MAX}" autocomplete="name"></label></p>'
                    "<p><label>" + html.escape(say.said["note"]) + ' <textarea name="note" maxlength="2000">'
                    '</textarea></label></p><p><button type="submit">' + html.escape(say.said["submit"]) +
                    "</button></p></form>")


@router.post("/alerts/ack/{token}", tags=["alerts"], operation_id="ack_link", response_class=HTMLResponse,
             responses=_LINK_RESPONSES, openapi_extra=_LINK_FORM)
async def ack_link(token: LinkToken, request: Request, api: Context) -> HTMLResponse:
    """Acknowledge through the signed link's form (field `name`): recorded as "<name> (link)", via link."""
    say = _Pages(api.language)
    checked = say.verify(api, token)
    if isinstance(checked, HTMLResponse):
        return checked
    alert_id, event_id = checked
    form = await _form(request)
    if form is None:
        return say.text(422, alert_id, say.said["need_name"])
    name = " ".join((form.get("name") or [""])[0].split())[:_NAME_MAX].replace("\x00", "")
    note = (form.get("note") or [""])[0].strip()[:2000].replace("\x00", "") or None
    if not name:
        return say.text(422, alert_id, say.said["need_name"])
    actor = f"{name} (link)"
    async with api.db() as conn:
        try:
            await alerts_store.acknowledge(conn, alert_id, actor=actor, via="link", note=note, at=api.clock(),
                                           as_of_event=event_id)
            refused = None
        except AlertError as exc:  # handled here: the link answers pages, not the API's JSON errors
            refused = exc
        found = await _lookup_detail(conn, alert_id)
    if found is None:
        return say.text(404, alert_id, say.said["unknown"].format(id=alert_id))
    alert = found.alert
    if refused is not None:  # escalated since the link, or acknowledged/resolved meanwhile
        later = superseding(found.events, event_id) if refused.code == "superseded" else None
        if later is not None:
            return say.escalated(alert_id, later.level or alert.level, later.time)
        return say.settled(alert) or say.text(409, alert_id, refused.message)
    return say.text(200, alert_id, say.said["done"].format(who=actor, at=_when(alert.acknowledged_at)))


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


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="minutes") if at else "?"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
