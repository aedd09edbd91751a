"""The scheduled stage jobs: windows (averages and indices), then the alert rules on them. I/O glue (psycopg 3,
sync): the windows are computed by `alerts.averaging.job` (and its index step, `alerts.averaging.index_job`), the rules
evaluated by `alerts.rules.evaluate`.

Every job is pure over an injected clock: it takes `now` and never reads the wall clock, and each runs in its own
transactions, so a crash leaves nothing half-written and a re-run for the same `now` changes nothing.

- `run_stage_jobs` = `compute_windows` (every average and index due up to `now`, and the windows late data
  touched; see `alerts.averaging.job`), `record_checks` (the zero/span checks that ended: `alerts.zero_span_job`)
  then `evaluate_alerts` (`alerts.rules.evaluate`: thresholds, indices and
  equipment checks, suppressions, escalation for want of an acknowledgement). Only the leader runs it
  (`alerts.leader`). Delivery is not done here: `alerts.delivery.dispatch` plans it from the `alert_events` written.
- `dry_run_rule` = `evaluate_alerts` for one rule inside a transaction that is rolled back: what would be raised,
  escalated, resolved or suppressed, with nothing written (`aqnet alerts test-rule`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import psycopg

from alerts.averaging.job import WindowRun, compute_windows, network_timezone
from alerts.averaging.windows import hour_end_at_or_before
from alerts.rules.evaluate import evaluate_alerts
from alerts.rules.model import Rule
from alerts.rules.state import AlertEvent
from alerts.zero_span_job import RecordedCheck, record_checks
from ingest.zero_span_eval import Limits
from sensors.zero_span import CheckSchedule
from storage import alert_episodes

__all__ = ["DryRun", "StageRun", "ZeroSpanJob", "compute_windows", "dry_run_rule", "evaluate_alerts",
           "hour_end_at_or_before", "network_timezone", "run_stage_jobs"]


@dataclass(frozen=True, slots=True)
class StageRun:
    """One run of the stage jobs: the windows computed, the zero/span checks recorded and the alert events."""

    windows: WindowRun
    events: tuple[AlertEvent, ...]
    checks: tuple[RecordedCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class ZeroSpanJob:
    """What `run_stage_jobs` records zero/span checks from (`alerts.zero_span_job.record_checks`)."""

    schedules: tuple[CheckSchedule, ...]
    limits: dict[str, Limits]
    stable_fraction: float = 0.5
    drift_checks: int = 14


def run_stage_jobs(conn: psycopg.Connection, now: datetime, rules: Sequence[Rule], *,
                   cadence_s: float | Mapping[str, float], default_cadence_s: float | None = None,
                   tz: tzinfo | None = None, lookback_h: int = 72, settle_s: float = 0.0,
                   escalate_after_min: float = 60.0, zero_span: ZeroSpanJob | None = None) -> StageRun:
    """Compute the windows due up to `now` (and late ones), record the zero/span checks that ended (`zero_span`),
    then evaluate the alert rules on them;
    `escalate_after_min`: minutes before a firing alert nobody acknowledged is escalated (0: never; a rule's
    `escalate_unacknowledged_after_min` overrides it)."""
    tz = tz or network_timezone()
    windows = compute_windows(conn, now, cadence_s=cadence_s, default_cadence_s=default_cadence_s, tz=tz,
                              lookback_h=lookback_h, settle_s=settle_s)
    checks: list[RecordedCheck] = []
    if zero_span is not None and zero_span.schedules:
        checks = record_checks(conn, now, zero_span.schedules, limits=zero_span.limits,
                               stable_fraction=zero_span.stable_fraction, lookback_h=lookback_h, settle_s=settle_s,
                               drift_checks=zero_span.drift_checks)
    events = evaluate_alerts(conn, now, rules, tz=tz, lookback_h=lookback_h, escalate_after_min=escalate_after_min)
    return StageRun(windows, tuple(events), tuple(checks))


@dataclass(frozen=True, slots=True)
class DryRun:
    """What evaluating a rule would do: its events, and the suppressions it would record (column → value)."""

    events: tuple[AlertEvent, ...]
    suppressed: tuple[dict[str, Any], ...]


def dry_run_rule(conn: psycopg.Connection, rule: Rule, at: datetime, *, tz: tzinfo,
                 escalate_after_min: float = 60.0) -> DryRun:
    """Evaluate `rule` at `at` against the stored data in a transaction that is rolled back: nothing is written,
    so nothing is delivered. Events are relative to the stored state (an alert already firing gives none)."""
    with conn.transaction(force_rollback=True):  # evaluate_alerts' own transaction nests as a savepoint
        before = alert_episodes.last_suppression_id(conn)
        events = evaluate_alerts(conn, at, [rule], tz=tz, escalate_after_min=escalate_after_min)
        suppressed = tuple(alert_episodes.suppressions_after(conn, before))
    return DryRun(tuple(events), suppressed)
