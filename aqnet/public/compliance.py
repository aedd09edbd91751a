"""The public annual compliance report route: `GET /v1/compliance/{year}` as JSON (default) or CSV
(`?format=csv`). Shell (FastAPI) over `alerts.opendata.compliance_read` and `compliance_render`.

Contract: read-only, no login. The report comes from a `ReportSource` (year → `AnnualReport`) the app puts in
`app.state.compliance_source` (`database_report_source(url, timezone)` reads the database in a worker thread);
without one the route answers 503. A year before 1900 or after 9999 is 422; a year that has not begun is 404; the
current year is reported as `partial`. Responses carry `Cache-Control: public` (five minutes for a year not over,
an hour for an ended one: a later validation can still change it) and the CSV a `Content-Disposition` file name.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from alerts.averaging.averages import local_year_bounds
from alerts.opendata.compliance import AnnualReport
from alerts.opendata.compliance_read import read_annual_report
from alerts.opendata.compliance_render import report_csv, report_json

__all__ = ["ComplianceReport", "ReportSource", "database_report_source", "router"]

#: year → the annual compliance report of that local calendar year
ReportSource = Callable[[int], Awaitable[AnnualReport]]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnualMeanOut(_Out):
    """The year's mean of the valid daily means against the annual limit (Res. 2254/2017 Tabla 1)."""

    value: float | None = Field(description="µg/m³ at 25 °C and 760 mmHg; null without a valid day")
    valid: bool = Field(description="at least required_days valid days (75 % of the year)")
    valid_days: int
    days: int = Field(description="days in the year (365 or 366)")
    required_days: int = Field(description="ceil(0.75 · days): 274 of 365, 275 of 366")
    coverage: float = Field(description="valid_days / days")
    limit_ugm3: float | None = Field(description="the annual limit, null when the pollutant has none")
    limit_source: str | None
    verdict: Literal["exceeds", "complies", "incomplete", "no_limit", "no_data"]


class ExceedancesOut(_Out):
    """Exceedances of one short-term limit in the year, with the periods behind the count."""

    averaging: Literal["day", "8h", "1h"] = Field(description="calendar day, rolling 8 h (end-stamped), hour")
    limit_ugm3: float
    limit_source: str
    count: int = Field(description="valid periods with value > limit")
    valid_periods: int
    expected_periods: int
    coverage: float = Field(description="valid_periods / expected_periods")
    max_value: float | None = Field(description="highest valid average, µg/m³")
    verdict: Literal["exceeded", "not_exceeded", "incomplete"]


class ExclusionOut(_Out):
    """A span validation excluded, clipped to the year."""

    decision_id: int
    start: datetime
    end: datetime
    hours: float
    reason: str | None = Field(description="analyser_fault, calibration, maintenance, local_source or other")
    device_id: str | None


class SeriesOut(_Out):
    """One station and pollutant."""

    sensor_id: str
    sensor_name: str
    variable: str
    unit: str
    annual_mean: AnnualMeanOut
    exceedances: list[ExceedancesOut]
    excluded_periods: list[ExclusionOut]
    excluded_hours: float


class PeriodOut(_Out):
    """The local calendar year [start, end)."""

    start: datetime
    end: datetime
    convention: str


class ComplianceReport(_Out):
    """The annual compliance report of the reference stations (microsensors are indicative, never compliance
    data)."""

    year: int
    timezone: str
    period: PeriodOut
    generated_at: datetime
    partial: bool = Field(description="the year had not ended when the report was made")
    rules: str = Field(description="the completeness and exceedance rules applied, with their sources")
    series: list[SeriesOut]


def database_report_source(database_url: str, timezone: str,
                           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ReportSource:
    """A `ReportSource` reading the database at `database_url` (a connection per report, in a worker thread)."""

    def read(year: int) -> AnnualReport:
        with psycopg.connect(database_url, autocommit=True, application_name="aqnet-public") as conn:
            return read_annual_report(conn, year, timezone, clock())

    async def source(year: int) -> AnnualReport:
        return await asyncio.to_thread(read, year)

    return source


router = APIRouter()


@router.get("/v1/compliance/{year}", tags=["compliance"], operation_id="annual_compliance",
            response_model=ComplianceReport,
            responses={200: {"content": {"text/csv": {}}, "description": "the report (JSON, or CSV with ?format=csv)"},
                       404: {"description": "the year has not begun"},
                       503: {"description": "no report source configured"}})
async def annual_compliance(request: Request, year: Annotated[int, Path(ge=1900, le=9999)],
                            fmt: Annotated[Literal["json", "csv"], Query(alias="format", description="json or csv")]
                            = "json"
                            ) -> Response:
    """The annual compliance report: per reference station and pollutant, the annual mean against Res.
    2254/2017 Tabla 1's annual limit and the exceedances of each short-term limit, each figure with its coverage
    and the periods validation excluded."""
    source: ReportSource | None = getattr(request.app.state, "compliance_source", None)
    if source is None:
        raise HTTPException(503, "the compliance report is not available on this server")
    found = await source(year)
    tz = ZoneInfo(found.timezone)
    if found.generated_at < local_year_bounds(year, tz)[0]:
        raise HTTPException(404, f"year {year} has not begun")
    headers = {"Cache-Control": f"public, max-age={300 if found.partial else 3600}"}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="compliance-{year}.csv"'
        return Response(report_csv(found, tz), media_type="text/csv; charset=utf-8", headers=headers)
    body = ComplianceReport.model_validate(report_json(found, tz))
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
