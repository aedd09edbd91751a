"""Stage 4, averages and indices — what the scheduler computes from the stored measurements: hourly, rolling
(8 h / 24 h), calendar-day and calendar-year averages with their completeness rules, the NowCast and the air
quality indices (US EPA AQI, IBOCA), and the averaging job that writes them. Pure modules (`averages`,
`vectorised`, `nowcast`, `indices`, `windows`, `series`) and I/O glue (`job`, `hours`, `index_job`, psycopg 3 sync).

Index: `alerts.averaging.averages` (per-series averages), `alerts.averaging.vectorised` (many series at once),
`alerts.averaging.nowcast`, `alerts.averaging.indices`, `alerts.averaging.windows` (which windows are due),
`alerts.averaging.series` (a run's series and windows as arrays), `alerts.averaging.job` (`compute_windows`), the
stored hours it reads `alerts.averaging.hours` and its index step `alerts.averaging.index_job`.
"""

from __future__ import annotations

from alerts.averaging.averages import HOUR, Average
from alerts.averaging.job import JOB, WindowRun, compute_windows, network_timezone
from alerts.averaging.windows import hour_end_at_or_before

__all__ = ["HOUR", "JOB", "Average", "WindowRun", "compute_windows", "hour_end_at_or_before", "network_timezone"]
