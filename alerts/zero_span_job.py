"""Records every scheduled zero/span check that has ended: its responses, errors, verdict and drift, into
`zero_span_checks`. I/O glue (psycopg 3, sync) over the pure `sensors.zero_span` (when each run is) and
`ingest.zero_span_eval` (responses, limits, drift); the queries are `storage.zero_span_store`. Run by
`alerts.jobs.run_stage_jobs` before the alert rules, so the technicians' `zero_span` rule sees a check as soon as
it is recorded.

Pure over `now`: a run is recorded once its purge time has ended (`purge_ends_at` ≤ `now` − `settle_s`, so the
readings of the check are in) and it started within `lookback_h`; a run recorded already is skipped
(`zero_span_checks_once`), so re-running for the same `now` changes nothing and a daemon that was down catches up.
A run with no reading at all is recorded too (responses NULL, `passed` NULL): the check did not report.

Values are the analyser's own (`measurements.raw_value` in `raw_unit`), converted to the schedule's unit (the
limits' unit: ppb, ppm) at the reference molar volume (`ingest.units`): aqnet's calibrations are not applied to a
check's response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from ingest.units import convert, from_canonical
from ingest.zero_span_eval import DEFAULT_LIMITS, CheckResult, Limits, drift, evaluate, responses
from sensors.zero_span import CheckSchedule, CheckWindow, occurrences
from storage import zero_span_store

__all__ = ["RecordedCheck", "limits_for", "record_checks"]


@dataclass(frozen=True, slots=True)
class RecordedCheck:
    """One run recorded by `record_checks`."""

    run: CheckWindow
    result: CheckResult
    limits: Limits


def limits_for(schedule: CheckSchedule, limits: Mapping[str, Limits]) -> Limits:
    """The limits of a schedule's variable (`limits`, else `DEFAULT_LIMITS`), in the schedule's unit; ValueError
    naming the schedule when there are none or their unit differs."""
    found = limits.get(schedule.variable) or DEFAULT_LIMITS.get(schedule.variable)
    where = f"zero/span schedule of {schedule.sensor_id}/{schedule.device_id} ({schedule.variable})"
    if found is None:
        raise ValueError(f"{where}: no acceptance limits: give zero_span.limits.{schedule.variable} (defaults exist "
                         f"for {', '.join(sorted(DEFAULT_LIMITS))})")
    if found.unit != schedule.unit:
        raise ValueError(f"{where}: unit {schedule.unit!r} differs from its limits' unit {found.unit!r}")
    return found


def _in_unit(value: float, unit: str, schedule: CheckSchedule) -> float:
    if unit == schedule.unit:
        return value
    return from_canonical(convert(value, unit, schedule.variable), schedule.unit, schedule.variable)


def record_checks(conn: psycopg.Connection, now: datetime, schedules: Sequence[CheckSchedule], *,
                  limits: Mapping[str, Limits] | None = None, stable_fraction: float = 0.5,
                  lookback_h: float = 72, settle_s: float = 0.0, drift_checks: int = 14) -> list[RecordedCheck]:
    """Record every run of `schedules` ended by `now` − `settle_s` and started within `lookback_h` that is not
    recorded yet (module docstring), in one transaction; return them in order. `drift_checks`: how many of the
    device's checks (this one included) the drift is fitted on."""
    if now.tzinfo is None:
        raise ValueError(f"record_checks: now: expected an aware datetime, got {now.isoformat()}")
    limits = limits or {}
    until = now - timedelta(seconds=settle_s)
    since = now - timedelta(hours=lookback_h)
    out: list[RecordedCheck] = []
    with conn.transaction():
        for schedule in schedules:
            lim = limits_for(schedule, limits)
            done = zero_span_store.recorded_starts(conn, device_id=schedule.device_id, variable=schedule.variable,
                                                   since=since)
            for run in occurrences(schedule, since, until):
                if run.purge_ends_at > until or run.starts_at < since or run.starts_at in done:
                    continue
                rows = zero_span_store.run_readings(conn, sensor_id=schedule.sensor_id, device_id=schedule.device_id,
                                                    variable=schedule.variable, start=run.starts_at, end=run.ends_at)
                samples = [(t, _in_unit(v, u, schedule)) for t, v, u in rows]
                zero, span = responses(run, samples, stable_fraction)
                result = evaluate(zero, span, zero_expected=schedule.zero_value, span_expected=schedule.span_value,
                                  limits=lim)
                history = zero_span_store.recent_errors(conn, device_id=schedule.device_id,
                                                        variable=schedule.variable, before=run.starts_at,
                                                        n=max(drift_checks - 1, 0))
                trend = drift([*history, (run.starts_at, result.zero_error, result.span_error_pct)])
                row = (schedule.sensor_id, schedule.device_id, schedule.variable, "schedule", run.starts_at,
                       run.span_at, run.ends_at, run.purge_ends_at, schedule.unit, schedule.zero_value,
                       result.zero_response, result.zero_n, schedule.span_value, result.span_response, result.span_n,
                       result.zero_error, result.span_error_pct, lim.zero, lim.span_pct, lim.source, lim.status,
                       result.percent_of_limit, result.passed, trend.zero_per_day, trend.span_pct_per_day, now)
                if zero_span_store.insert_check(conn, row):
                    out.append(RecordedCheck(run, result, lim))
    return out
