"""The public open-data API's routes (`/v1/…`): about, the catalogue of locations, latest values and indices,
hourly and daily averages, exceedances and the public alert record. Shell (FastAPI over `storage.public_read`).

Contract: every route is a GET with no login; pages are `limit` (1..`public.max_limit`, default 100) × `page`
(from 1) with `meta.found` and `meta.next`; `format=csv` (or `Accept: text/csv`) answers CSV; times in queries
are RFC 3339 with an offset; ranges are (datetime_from, datetime_to] by the END of each period (`CONVENTION`),
at most `public.max_range_days` long. 404 names the unknown location; 422 names the bad parameter.
"""


from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import Response

from aqnet.public import models, shape
from aqnet.public.context import API_NAME, PREFIX, PublicContext
from aqnet.public.formats import CSV_MEDIA_TYPE
from storage import public_read

__all__ = ["About", "public_router"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  #: the registry's identifiers (aqnet.api.params.ID_PATTERN)
PARAMETER_PATTERN = r"^[a-z0-9_]{1,32}$"
_TIME = Query(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$",
              json_schema_extra={"format": "date-time"}, examples=["2026-05-01T08:00:00-05:00"])

Format = Annotated[Literal["json", "csv"] | None, Query(description="json (default) or csv; or Accept: text/csv")]
PageNo = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
LocationId = Annotated[str, Path(pattern=ID_PATTERN, description="the location's id (aqnet's sensor id)",
                                 examples=["KEN"])]
LocationFilter = Annotated[str | None, Query(pattern=ID_PATTERN, description="only this location")]
ParameterCode = Annotated[str, Path(pattern=PARAMETER_PATTERN, description="the variable's code, e.g. pm25",
                                    examples=["pm25"])]
ParameterFilter = Annotated[str | None, Query(pattern=PARAMETER_PATTERN, description="only this variable")]
TimeFrom = Annotated[str | None, _TIME]
TimeTo = Annotated[str | None, _TIME]


class PublicError(BaseModel):
    """An error: what is wrong, naming the parameter."""

    detail: str


class About(models.Model):
    """Who publishes this data, under which licence, and how to read it."""

    name: str
    license: models.Licence
    publisher: models.Owner
    contact: str
    timezone: str
    time_convention: str
    reference_conditions: str
    openapi: str
    resources: dict[str, str]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    said = {304: "Not modified: the ETag given in If-None-Match is current",
            404: "Unknown location", 429: "Too many requests from this client: wait Retry-After seconds",
            503: "The database does not answer now: retry after Retry-After seconds"}
    out: dict[int | str, dict[str, Any]] = {
        200: {"content": {CSV_MEDIA_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
              "description": "JSON, or CSV with format=csv or Accept: text/csv"}}
    for code in (304, 429, 503, *codes):
        out[code] = {"description": said[code]} if code == 304 else {"model": PublicError, "description": said[code]}
    return out


def _invalid(name: str, message: str) -> RequestValidationError:
    """A 422 shaped as FastAPI's own (`detail`: a list of {loc, msg, type}), naming the query parameter."""
    return RequestValidationError([{"loc": ("query", name), "msg": f"{name}: {message}", "type": "value_error"}])


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(name, f"expected an RFC 3339 time such as 2026-05-01T08:00:00-05:00, got {value!r}") from None


def _range(ctx: PublicContext, start: str | None, end: str | None, default: timedelta) -> tuple[datetime, datetime]:
    to = _time("datetime_to", end) or ctx.clock()
    since = _time("datetime_from", start) or to - default
    if since >= to:
        raise _invalid("datetime_from", f"{since.isoformat()} must be before datetime_to ({to.isoformat()})")
    if to - since > timedelta(days=ctx.public.max_range_days):
        raise _invalid("datetime_from", f"datetime_from..datetime_to spans more than {ctx.public.max_range_days} "
                                        "days; ask in several ranges")
    return since, to


def public_router(ctx: PublicContext) -> APIRouter:
    """The `/v1` routes on `ctx`."""
    r = APIRouter(prefix=PREFIX, tags=["open data"])
    p = ctx.public
    Limit = Annotated[int, Query(ge=1, le=p.max_limit, description=f"results per page (1..{p.max_limit})")]  # noqa: N806

    def _offset(page: int, limit: int) -> int:
        return (page - 1) * limit

    async def _known(location_id: str) -> None:
        async with ctx.pool.connection() as conn:
            _, found = await public_read.locations_page(conn, limit=1, location_id=location_id)
        if not found:
            raise HTTPException(404, f"location {location_id!r}: no such location (see {PREFIX}/locations)")

    @r.get("/about", operation_id="about", response_model=models.Page[About], responses=_responses())
    async def about(request: Request) -> Response:
        """The publisher, licence, contact, time convention and the resources of this API."""
        body = About(name=API_NAME, license=ctx.licence, publisher=ctx.publisher, contact=ctx.open_data.contact_email,
                     timezone=ctx.zone.key, time_convention=models.CONVENTION,
                     reference_conditions="mass concentrations in µg/m³ at 25 °C and 760 mmHg (Res. 2254/2017), "
                                          "CO included",
                     openapi=f"{PREFIX}/openapi.json",
                     resources={"locations": f"{PREFIX}/locations", "latest": f"{PREFIX}/latest",
                                "indices": f"{PREFIX}/indices/latest",
                                "hours": f"{PREFIX}/locations/{{id}}/parameters/{{parameter}}/hours",
                                "days": f"{PREFIX}/locations/{{id}}/parameters/{{parameter}}/days",
                                "exceedances": f"{PREFIX}/exceedances",
                                "exceedance_periods": f"{PREFIX}/exceedances/periods",
                                "alert_record": f"{PREFIX}/alerts/record"})
        return ctx.page(request, [body], page=1, limit=1, found=1, max_age_s=p.catalogue_max_age_s, fmt=None)

    @r.get("/locations", operation_id="list_locations", response_model=models.Page[models.Location],
           responses=_responses())
    async def list_locations(request: Request, limit: Limit = 100, page: PageNo = 1, format: Format = None,  # noqa: A002
                             kind: Annotated[Literal["station", "microsensor"] | None, Query()] = None,
                             locality: Annotated[str | None, Query(max_length=200)] = None,
                             lifecycle: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None) -> Response:
        """The catalogue: reference stations and microsensors (retired ones too, `lifecycle` says), their location
        (coarsened where the registry says so), locality, operator, what each measures, reference or
        indicative."""
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.locations_page(conn, limit=limit, offset=_offset(page, limit), kind=kind,
                                                           locality=locality, lifecycle=lifecycle)
        results = [shape.location(row, zone=ctx.zone, licence=ctx.licence, publisher=ctx.publisher) for row in rows]
        return ctx.page(request, results, page=page, limit=limit, found=found, max_age_s=p.catalogue_max_age_s,
                        fmt=format)

    @r.get("/locations/{locations_id}", operation_id="get_location", response_model=models.Page[models.Location],
           responses=_responses(404))
    async def get_location(request: Request, locations_id: LocationId, format: Format = None) -> Response:  # noqa: A002
        """One location of the catalogue."""
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.locations_page(conn, limit=1, location_id=locations_id)
        if not rows:
            raise HTTPException(404, f"location {locations_id!r}: no such location (see {PREFIX}/locations)")
        results = [shape.location(rows[0], zone=ctx.zone, licence=ctx.licence, publisher=ctx.publisher)]
        return ctx.page(request, results, page=1, limit=1, found=found, max_age_s=p.catalogue_max_age_s, fmt=format)

    @r.get("/latest", operation_id="list_latest", response_model=models.Page[models.LatestValue],
           responses=_responses())
    async def list_latest(request: Request, limit: Limit = 100, page: PageNo = 1, format: Format = None,  # noqa: A002
                          locations_id: LocationFilter = None, parameter: ParameterFilter = None) -> Response:
        """The latest hourly average of every location's variables, with its provenance."""
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.latest_values_page(conn, limit=limit, offset=_offset(page, limit),
                                                               location_id=locations_id, variable=parameter)
        return ctx.page(request, [shape.latest_value(row, ctx.zone) for row in rows], page=page, limit=limit,
                        found=found, max_age_s=p.latest_max_age_s, fmt=format)

    @r.get("/indices/latest", operation_id="list_latest_indices", response_model=models.Page[models.IndexValue],
           responses=_responses())
    async def list_latest_indices(request: Request, limit: Limit = 100, page: PageNo = 1,
                                  format: Format = None,  # noqa: A002
                                  locations_id: LocationFilter = None,
                                  index: Annotated[Literal["iboca", "us_aqi"] | None, Query()] = None) -> Response:
        """The current hourly (NowCast) IBOCA and US AQI of every location, the dominant pollutant (`parameter`),
        category and colour, with the provenance of the 12 hours behind it."""
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.latest_indices_page(conn, limit=limit, offset=_offset(page, limit),
                                                                location_id=locations_id, index=index)
        return ctx.page(request, [shape.index_value(row, ctx.zone) for row in rows], page=page, limit=limit,
                        found=found, max_age_s=p.latest_max_age_s, fmt=format)

    async def _averages(request: Request, period: str, default: timedelta, locations_id: str, parameter: str,
                        start: str | None, end: str | None, limit: int, page: int, fmt: str | None) -> Response:
        since, to = _range(ctx, start, end, default)
        await _known(locations_id)
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.averages_page(conn, locations_id, parameter, period, start=since, end=to,
                                                          limit=limit, offset=_offset(page, limit))
        return ctx.page(request, [shape.average(row, ctx.zone) for row in rows], page=page, limit=limit,
                        found=found, max_age_s=p.history_max_age_s, fmt=fmt)

    @r.get("/locations/{locations_id}/parameters/{parameter}/hours", operation_id="list_hours",
           response_model=models.Page[models.Average], responses=_responses(404))
    async def list_hours(request: Request, locations_id: LocationId, parameter: ParameterCode,
                         datetime_from: TimeFrom = None, datetime_to: TimeTo = None, limit: Limit = 100,
                         page: PageNo = 1, format: Format = None) -> Response:  # noqa: A002
        """Hourly averages of one location's variable ending in (datetime_from, datetime_to] (default: the last
        24 hours), valid or not (`validity` says), oldest first."""
        return await _averages(request, "1h", timedelta(days=1), locations_id, parameter, datetime_from,
                               datetime_to, limit, page, format)

    @r.get("/locations/{locations_id}/parameters/{parameter}/days", operation_id="list_days",
           response_model=models.Page[models.Average], responses=_responses(404))
    async def list_days(request: Request, locations_id: LocationId, parameter: ParameterCode,
                        datetime_from: TimeFrom = None, datetime_to: TimeTo = None, limit: Limit = 100,
                        page: PageNo = 1, format: Format = None) -> Response:  # noqa: A002
        """Calendar-day averages (network time zone) of one location's variable ending in (datetime_from,
        datetime_to] (default: the last 31 days), valid or not, oldest first."""
        return await _averages(request, "day", timedelta(days=31), locations_id, parameter, datetime_from,
                               datetime_to, limit, page, format)

    @r.get("/exceedances", operation_id="list_exceedances", response_model=models.Page[models.ExceedanceCount],
           responses=_responses())
    async def list_exceedances(request: Request, year: Annotated[int | None, Query(ge=1900, le=9999)] = None,
                               locations_id: LocationFilter = None, parameter: ParameterFilter = None,
                               limit: Limit = 100, page: PageNo = 1, format: Format = None) -> Response:  # noqa: A002
        """Exceedances of each limit of Res. 2254/2017 Tabla 1 per location, variable, averaging period and
        calendar year (network time zone), with the valid periods behind each count."""
        async with ctx.pool.connection() as conn:
            counts = await public_read.exceedance_counts(conn, tz=ctx.zone.key, year=year, location_id=locations_id,
                                                         variable=parameter)
            chosen = counts[_offset(page, limit):_offset(page, limit) + limit]
            bounds = [shape.year_bounds(e.year, ctx.zone) for e, _ in chosen]
            verified = await public_read.verified_periods(
                conn, [(e.sensor_id, e.variable, s, t) for (e, _), (s, t) in zip(chosen, bounds, strict=True)])
        now = ctx.clock()
        results = [shape.exceedance_count(e, reference=ref, verified=v, now=now, zone=ctx.zone)
                   for (e, ref), v in zip(chosen, verified, strict=True)]
        return ctx.page(request, results, page=page, limit=limit, found=len(counts), max_age_s=p.history_max_age_s,
                        fmt=format)

    @r.get("/exceedances/periods", operation_id="list_exceedance_periods",
           response_model=models.Page[models.ExceedancePeriod], responses=_responses())
    async def list_exceedance_periods(request: Request, locations_id: LocationFilter = None,
                                      parameter: ParameterFilter = None, datetime_from: TimeFrom = None,
                                      datetime_to: TimeTo = None, limit: Limit = 100, page: PageNo = 1,
                                      format: Format = None) -> Response:  # noqa: A002
        """Each valid average above its limit ending in (datetime_from, datetime_to] (default: the last 31 days),
        with the limit, its legal source and the average's provenance; oldest first."""
        since, to = _range(ctx, datetime_from, datetime_to, timedelta(days=31))
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.exceedance_periods_page(
                conn, start=since, end=to, limit=limit, offset=_offset(page, limit), location_id=locations_id,
                variable=parameter)
        return ctx.page(request, [shape.exceedance_period(row, ctx.zone) for row in rows], page=page, limit=limit,
                        found=found, max_age_s=p.history_max_age_s, fmt=format)

    @r.get("/alerts/record", operation_id="list_alert_record", response_model=models.Page[models.AlertRecordEvent],
           responses=_responses())
    async def list_alert_record(request: Request, alert_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                                locations_id: LocationFilter = None, datetime_from: TimeFrom = None,
                                datetime_to: TimeTo = None, limit: Limit = 100, page: PageNo = 1,
                                format: Format = None) -> Response:  # noqa: A002
        """The public record of every decision on alerts (raised, escalated, acknowledged, resolved, notes,
        evidence invalidated by validation): who acted by role (not by name, unless the operator publishes
        names), the evidence's period, coverage, validity and verification; oldest first."""
        since, to = _time("datetime_from", datetime_from), _time("datetime_to", datetime_to)
        async with ctx.pool.connection() as conn:
            rows, found = await public_read.alert_record_page(
                conn, show_names=p.show_names, limit=limit, offset=_offset(page, limit), alert_id=alert_id,
                location_id=locations_id, start=since, end=to)
        return ctx.page(request, [shape.alert_event(row, ctx.zone) for row in rows], page=page, limit=limit,
                        found=found, max_age_s=p.history_max_age_s, fmt=format)

    return r
