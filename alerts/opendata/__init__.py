"""Stage 4, open data: the daily exports a city portal harvests (CSV and JSON tables with a Frictionless Data
Package descriptor, a DCAT catalogue in JSON-LD, versioned when a later validation or late data changes a day) and
the annual compliance report against Res. 2254/2017 Tabla 1. Pure modules (`tables`, `metadata`, `datapackage`,
`dcat`, `versions`, `compliance`, `compliance_render`, `settings`) and I/O glue (`export_job`, `compliance_read`,
psycopg 3 sync and files).

Index: `alerts.opendata.export_job` (`export_day`, `run_daily`, `write_catalogue`),
`alerts.opendata.compliance_read` (`read_annual_report`), `alerts.opendata.compliance_render` (`report_json`,
`report_csv`), `alerts.opendata.settings` (`ExportsSettings`, the `exports` section).
"""

from __future__ import annotations

from alerts.opendata.metadata import Publication
from alerts.opendata.settings import ExportsSettings

__all__ = ["ExportsSettings", "Publication"]
