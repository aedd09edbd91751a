"""The annual compliance report as JSON and as CSV (the CLI's `--json`/`--csv` and the public API's formats).
Pure: no I/O.

JSON: `{year, timezone, period: {start, end}, generated_at, partial, rules, series: [{sensor_id, sensor_name,
variable, unit, annual_mean: {...}, exceedances: [{averaging, ...}], excluded_periods: [...], excluded_hours}]}`.
CSV (UTF-8, comma, decimal point, RFC 4180 quoting, header row): one row per figure — the annual mean
(`figure` annual_mean, `averaging` year) and each short-term count (`figure` exceedances, `averaging` day | 8h |
1h) — with the coverage behind it and the series' excluded periods; times are ISO 8601 with their UTC offset.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, tzinfo
from typing import Any

from alerts.opendata.compliance import AnnualReport, Exclusion, SeriesReport

__all__ = ["CSV_FIELDS", "report_csv", "report_json"]

CSV_FIELDS = ("year", "sensor_id", "sensor_name", "variable", "figure", "averaging", "value", "unit", "limit_ugm3",
              "verdict", "valid_periods", "expected_periods", "required_periods", "coverage", "max_value",
              "excluded_periods", "excluded_hours", "exclusions", "limit_source", "timezone", "partial")


def _iso(t: datetime, tz: tzinfo) -> str:
    return t.astimezone(tz).isoformat()


def _exclusion(e: Exclusion, tz: tzinfo) -> dict[str, Any]:
    return {"decision_id": e.decision_id, "start": _iso(e.start, tz), "end": _iso(e.end, tz), "hours": e.hours,
            "reason": e.reason, "device_id": e.device_id}


def _series(s: SeriesReport, tz: tzinfo) -> dict[str, Any]:
    a = s.annual
    return {
        "sensor_id": s.sensor_id, "sensor_name": s.sensor_name, "variable": s.variable, "unit": s.unit,
        "annual_mean": {"value": a.value, "valid": a.valid, "valid_days": a.valid_days, "days": a.days,
                        "required_days": a.required_days, "coverage": a.coverage, "limit_ugm3": a.limit_ugm3,
                        "limit_source": a.source, "verdict": a.verdict},
        "exceedances": [{"averaging": c.period, "limit_ugm3": c.limit_ugm3, "limit_source": c.source,
                         "count": c.exceedances, "valid_periods": c.valid_periods,
                         "expected_periods": c.expected_periods, "coverage": c.coverage, "max_value": c.max_value,
                         "verdict": c.verdict} for c in s.short_term],
        "excluded_periods": [_exclusion(e, tz) for e in s.exclusions],
        "excluded_hours": s.excluded_hours,
    }


def report_json(report: AnnualReport, tz: tzinfo) -> dict[str, Any]:
    """The report as a JSON-ready dict (times in `tz`, the network's zone)."""
    return {"year": report.year, "timezone": report.timezone,
            "period": {"start": _iso(report.year_start, tz), "end": _iso(report.year_end, tz),
                       "convention": "local calendar year [start, end); a period belongs to the year of its start"},
            "generated_at": _iso(report.generated_at, tz), "partial": report.partial, "rules": report.rules,
            "series": [_series(s, tz) for s in report.series]}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def report_csv(report: AnnualReport, tz: tzinfo) -> str:
    """The report as CSV text (header row, one row per figure; see the module docstring)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for s in report.series:
        exclusions = "; ".join(f"#{e.decision_id} {_iso(e.start, tz)}/{_iso(e.end, tz)} {e.reason or ''}".rstrip()
                               for e in s.exclusions)
        common = {"year": report.year, "sensor_id": s.sensor_id, "sensor_name": s.sensor_name,
                  "variable": s.variable, "unit": s.unit, "excluded_periods": len(s.exclusions),
                  "excluded_hours": s.excluded_hours, "exclusions": exclusions, "timezone": report.timezone,
                  "partial": report.partial}
        a = s.annual
        rows = [{**common, "figure": "annual_mean", "averaging": "year", "value": a.value, "limit_ugm3": a.limit_ugm3,
                 "verdict": a.verdict, "valid_periods": a.valid_days, "expected_periods": a.days,
                 "required_periods": a.required_days, "coverage": a.coverage, "max_value": None,
                 "limit_source": a.source}]
        rows += [{**common, "figure": "exceedances", "averaging": c.period, "value": c.exceedances,
                  "limit_ugm3": c.limit_ugm3, "verdict": c.verdict, "valid_periods": c.valid_periods,
                  "expected_periods": c.expected_periods, "required_periods": None, "coverage": c.coverage,
                  "max_value": c.max_value, "limit_source": c.source} for c in s.short_term]
        for row in rows:
            writer.writerow([_cell(row[f]) for f in CSV_FIELDS])
    return buf.getvalue()
