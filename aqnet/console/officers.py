"""The web console's pages for environmental officers: the alert inbox, an alert's page (its evidence as a chart of
the averages with the limit drawn, its record, its history) with acknowledge / resolve / annotate, and the
validation workflow on a series chart. Shell (aqnet.console) over `storage.alerts_store`,
`storage.alert_record` and `storage.validation`; I/O.

Contract: the inbox and the alert pages need an officer (OFFICER, the API's alert-operation role: a reader or a
technician gets a 403 page); the series page and its decisions need a technician or an officer (VALIDATORS).
Every form is CSRF-checked. Acknowledgements, resolutions and notes are the API's own operations
(`storage.alerts_store`), recorded with the user's name via "console" and so shown by `aqnet alerts show`;
an illegal transition is answered on the alert's page with its reason (409), nothing written. Decisions are
`storage.validation.decide`'s, with the user's name and role via "console".
The inbox lists every open alert (firing, acknowledged) before the 100 newest resolved ones, each group by
severity (critical, warning, info), then newest first.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import math
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from aqnet.console.charts import line_chart
from aqnet.console.context import PREFIX, ConsoleContext, console_context
from aqnet.http.roles import OFFICER, VALIDATORS
from ingest.validation import REASONS, DecisionError, Period, Scope
from storage import alert_record, alerts_store, validation
from storage.alerts_store import AlertError

__all__ = ["inbox_order", "router"]

router = APIRouter()
Console = Annotated[ConsoleContext, Depends(console_context)]
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}
_EVIDENCE_BEFORE = timedelta(days=3)  #: how much of the series before the alert's evidence the chart shows
_DEFAULT_SERIES = timedelta(days=2)  #: the series page's period when none is given
_RESOLVED_SHOWN = 100  #: resolved alerts listed under the open ones (`aqnet alerts list` has them all)


def inbox_order(a: alerts_store.AlertRecord) -> tuple[int, int, float, int]:
    """The inbox's sort key: open before resolved, then by severity, then newest first."""
    return (a.state == "resolved", _SEVERITY.get(a.severity, 3), -a.started_at.timestamp(), -a.id)


@router.get("/alerts")
async def inbox(request: Request, ctx: Console) -> Response:
    """The alert inbox."""
    session = await ctx.require(request, OFFICER)
    if isinstance(session, Response):
        return session
    async with ctx.db() as conn:  # every open alert, however old; the newest resolved ones
        found = [a for state in ("firing", "acknowledged") for a in await alerts_store.list_alerts(
            conn, state=state, limit=10_000)]
        found += await alerts_store.list_alerts(conn, state="resolved", limit=_RESOLVED_SHOWN)
    ordered = sorted(found, key=inbox_order)
    return ctx.page("alerts.html", session, open=[a for a in ordered if a.state != "resolved"],
                    closed=[a for a in ordered if a.state == "resolved"])


async def _evidence(ctx: ConsoleContext, a: alerts_store.AlertRecord) -> list[tuple[datetime, float | None]]:
    """The averages of the alert's sensor, variable and period around its evidence, oldest first."""
    if a.sensor_id is None or a.variable is None or a.period is None:
        return []
    end = max(a.period_end or a.updated_at, a.updated_at)
    async with ctx.db() as conn, conn.cursor() as cur:
        await cur.execute("SELECT period_end, CASE WHEN valid THEN value END FROM averages WHERE sensor_id = %s "
                          "AND variable = %s AND period = %s AND period_end > %s AND period_end <= %s "
                          "ORDER BY period_end LIMIT 2000",
                          (a.sensor_id, a.variable, a.period, a.started_at - _EVIDENCE_BEFORE,
                           end + timedelta(days=1)))
        rows = await cur.fetchall()
    return [(t, v if v is not None and math.isfinite(v) else None) for t, v in rows]


async def _alert_page(ctx: ConsoleContext, session: Any, alert_id: int, *, status: int = 200,
                      message: str = "") -> Response:
    async with ctx.db() as conn:
        try:
            detail = await alerts_store.get_alert(conn, alert_id)
        except AlertError as exc:
            return ctx.error(session, 404, exc.message)
        record = await alert_record.alert_record(conn, alert_id)
    a = detail.alert
    points = await _evidence(ctx, a)
    if not points and a.value is not None and a.period_end is not None:
        points = [(a.period_end, a.value)]  # the evidence itself, when its averages are gone (retention)
    words = ctx.text()
    chart = line_chart(points, title=f"{words['averages_chart']}: {a.variable} {a.period}", unit=a.unit or "",
                       tz=ctx.tz, limit=a.threshold, limit_label=words["limit"], chart_id="evidence-chart")
    return ctx.page("alert.html", session, status=status, a=a, events=detail.events, record=record, chart=chart,
                    message=message)


@router.get("/alerts/{alert_id}")
async def alert_page(alert_id: int, request: Request, ctx: Console) -> Response:
    """One alert: evidence chart, record, history, and the officer's actions."""
    session = await ctx.require(request, OFFICER)
    if isinstance(session, Response):
        return session
    return await _alert_page(ctx, session, alert_id)


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(alert_id: int, action: str, request: Request, ctx: Console) -> Response:
    """Acknowledge (`ack`), resolve (`resolve`) or annotate (`note`) the alert, as the API does."""
    got = await ctx.posted(request, OFFICER)
    if isinstance(got, Response):
        return got
    session, form = got
    note = form.get("note", "").strip() or None
    who, via = session.user.username, "console"
    try:
        async with ctx.db() as conn:
            if action == "ack":
                await alerts_store.acknowledge(conn, alert_id, note=note, at=ctx.clock(), actor=who, via=via)
            elif action == "resolve":
                await alerts_store.resolve(conn, alert_id, note=note, at=ctx.clock(), actor=who, via=via)
            elif action == "note" and note:
                await alerts_store.add_note(conn, alert_id, text=note, actor=who, via=via)
            else:
                return await _alert_page(ctx, session, alert_id, status=422, message=(
                    f"alert {alert_id}: {action!r} needs a note" if action == "note" else
                    f"alert {alert_id}: unknown action {action!r} (ack, resolve, note)"))
    except AlertError as exc:
        if exc.code == "not_found":
            return ctx.error(session, 404, exc.message)
        return await _alert_page(ctx, session, alert_id, status=409, message=exc.message)
    return RedirectResponse(f"{PREFIX}/alerts/{alert_id}", status_code=303)


def _period_of(ctx: ConsoleContext, since: str, until: str) -> Period:
    """The series page's period from its `since`/`until` fields (network time zone), default the last 2 days."""
    now = ctx.clock()

    def parse(text: str, default: datetime) -> datetime:
        if not text.strip():
            return default
        t = datetime.fromisoformat(text.strip())
        return t if t.tzinfo is not None else t.replace(tzinfo=ctx.tz)

    return Period(parse(since, now - _DEFAULT_SERIES), parse(until, now))


async def _series_page(ctx: ConsoleContext, session: Any, form: dict[str, str], *, status: int = 200,
                       message: str = "", done: str = "") -> Response:
    sensor, variable = form.get("sensor", "").strip(), form.get("variable", "").strip()
    try:
        period = _period_of(ctx, form.get("since", ""), form.get("until", ""))
    except (ValueError, DecisionError) as exc:
        return ctx.error(session, 422, f"since/until: {exc}")
    rows: list[dict[str, Any]] = []
    decisions: list[validation.RecordedDecision] = []
    if sensor and variable:
        async with ctx.db() as conn:
            rows = await validation.values(conn, sensor, variable, period, limit=5000)
            decisions = await validation.list_decisions(conn, sensor_id=sensor, since=period.start,
                                                        until=period.end, limit=50)
    unit = rows[0]["unit"] if rows else ""
    points = [(r["time"], r["value"] if r["value"] is not None and math.isfinite(r["value"]) else None)
              for r in rows]
    chart = line_chart(points, title=f"{ctx.text()['series_chart']}: {sensor} {variable}", unit=unit, tz=ctx.tz,
                       chart_id="series-chart") if points else ""
    local = {k: form.get(k, "") for k in ("sensor", "variable")}
    return ctx.page("series.html", session, status=status, form=local, chart=chart, rows=rows,
                    decisions=decisions, reasons=REASONS, message=message, done=done,
                    since=period.start.astimezone(ctx.tz).strftime("%Y-%m-%dT%H:%M"),
                    until=period.end.astimezone(ctx.tz).strftime("%Y-%m-%dT%H:%M"))


@router.get("/series")
async def series_page(request: Request, ctx: Console, sensor: str = "", variable: str = "", since: str = "",
                      until: str = "") -> Response:
    """A series chart with its values and the decisions on it, and the form to validate or invalidate a period."""
    session = await ctx.require(request, VALIDATORS)
    if isinstance(session, Response):
        return session
    return await _series_page(ctx, session, {"sensor": sensor, "variable": variable, "since": since,
                                             "until": until})


@router.post("/series")
async def decide(request: Request, ctx: Console) -> Response:
    """Validate or invalidate the selected period of the series (storage.validation.decide)."""
    got = await ctx.posted(request, VALIDATORS)
    if isinstance(got, Response):
        return got
    session, form = got
    action = form.get("action", "")
    if not form.get("starts_at", "").strip() or not form.get("ends_at", "").strip():
        return await _series_page(ctx, session, form, status=422,
                                  message="starts_at and ends_at: select a period (both ends)")
    if action not in ("validate", "invalidate"):
        return await _series_page(ctx, session, form, status=422,
                                  message=f"action: expected validate or invalidate, got {action!r}")
    try:
        period = _period_of(ctx, form["starts_at"], form["ends_at"])
        async with ctx.db() as conn:
            decided = await validation.decide(
                conn, "validate" if action == "validate" else "invalidate",
                scope=Scope(form.get("sensor", ""), None, form.get("variable") or None),
                period=period, reason=form.get("reason") or None if action == "invalidate" else None,
                text=form.get("text", ""), actor=session.user.username, role=session.user.role, via="console",
                now=ctx.clock())
    except validation.DecisionRefused as exc:
        return await _series_page(ctx, session, form, status=422, message=exc.message)
    except (ValueError, DecisionError) as exc:
        return await _series_page(ctx, session, form, status=422, message=str(exc))
    return await _series_page(ctx, session, {**form, "since": form.get("since", ""), "until": form.get("until", "")},
                              done=f"{ctx.text()['decided']} #{decided.id}")
