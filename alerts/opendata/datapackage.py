"""The Frictionless Data Package descriptor (`datapackage.json`) of one day's export. Pure: no I/O, no clock.

Contract: `datapackage(export, publication, network)` gives the descriptor of Data Package v1
(https://specs.frictionlessdata.io/data-package/): one tabular resource per table and format (`<table>` for the
CSV, `<table>-json` for the JSON array of objects), each with its path, format, media type, encoding and Table Schema
(types, units, descriptions, primary and foreign keys; the CSVs also with their byte count and sha256 hash); the
package's licence, sources, contributors (the publisher) and version (`N.0.0`) with the change notes of every
version so far. aqnet's own properties (`period`, `timezone`, `changes`; the export job adds `rowCounts`) are
custom properties, which the spec allows. The JSON resource of an empty table is left out (frictionless cannot read
an empty JSON array as a table); its CSV resource describes the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alerts.opendata.metadata import CSV, DayExport, Publication
from alerts.opendata.tables import TABLES, Table

__all__ = ["Network", "VersionNote", "datapackage", "package_name", "resource_name"]


@dataclass(frozen=True, slots=True)
class Network:
    """What the export says about the network it comes from."""

    slug: str  #: lower-case name part of package names, e.g. "rmcab"
    timezone: str  #: IANA zone of the network's local day
    source_title: str = ("the network's reference stations (Modbus) and microsensors (MQTT, HTTP), "
                         "collected and checked by aqnet")
    source_path: str | None = None  #: a URL describing the network, when there is one

    def __post_init__(self) -> None:
        if not self.slug or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in self.slug) \
                or self.slug != self.slug.lower():
            raise ValueError(f"network slug: expected lower-case letters, digits, '-', '_', '.', got {self.slug!r}")


@dataclass(frozen=True, slots=True)
class VersionNote:
    """One earlier (or the current) version of the day's export and what it changed."""

    version: int
    exported_at: str  #: ISO 8601
    note: str


def resource_name(table: Table | str, fmt: str) -> str:
    """The resource name of `table` in format csv (the table's name) or json (`<name>-json`)."""
    name = table if isinstance(table, str) else table.name
    if fmt not in ("csv", "json"):
        raise ValueError(f"format: expected csv or json, got {fmt!r}")
    return name if fmt == "csv" else f"{name}-json"


def package_name(network: Network, export: DayExport) -> str:
    """The package's name: `<network>-<yyyy-mm-dd>` (lower case, as the spec asks)."""
    return f"{network.slug}-{export.day.isoformat()}"


def datapackage(export: DayExport, publication: Publication, network: Network,
                history: Sequence[VersionNote] = ()) -> dict[str, Any]:
    """The `datapackage.json` descriptor of `export` (its data files in `export.files`)."""
    tables = {t.name: t for t in TABLES}
    resources: list[dict[str, Any]] = []
    for f in export.files:
        if f.table not in tables or (f.media_type != CSV and f.rows == 0):
            # frictionless cannot read an empty JSON array as a table ("cannot extract JSON tabular data"): the
            # empty table is described by its CSV resource (a header row); the JSON file `[]` is still written
            continue
        table = tables[f.table]
        resource: dict[str, Any] = {
            "name": f.resource, "path": f.name, "title": f"{table.title} ({f.format.upper()})",
            "description": table.description, "profile": "tabular-data-resource", "format": f.format,
            "mediatype": f.media_type, "encoding": "utf-8", "schema": table.schema()}
        if f.media_type == CSV:
            # frictionless checks a CSV's bytes and hash, but computes none for JSON data (it parses JSON as a
            # document, not a byte stream) and would report every JSON resource's as missing: the JSON files' size
            # and sha256 are in the DCAT catalogue (dcat:byteSize, spdx:checksum)
            resource["bytes"], resource["hash"] = f.bytes, f.hash
            resource["dialect"] = {"delimiter": ",", "quoteChar": '"', "doubleQuote": True, "header": True,
                                   "lineTerminator": "\r\n"}
        resources.append(resource)
    missing = [t.name for t in TABLES if t.name not in {f.table for f in export.files}]
    if missing:
        raise ValueError(f"day {export.day}: the export lacks the tables {missing}")
    tz = ZoneInfo(network.timezone)
    start, end = export.period_start.astimezone(tz).isoformat(), export.period_end.astimezone(tz).isoformat()
    exported = export.exported_at.astimezone(tz).isoformat()
    notes = list(history) or [VersionNote(export.version, exported, export.change_note)]
    return {
        "profile": "tabular-data-package",
        "name": package_name(network, export),
        "id": f"{network.slug}:{export.day.isoformat()}:v{export.version}",
        "title": f"{publication.title}: air-quality data of {export.day.isoformat()} ({network.timezone})",
        "description": (
            f"Readings, hourly and daily averages of the local day {export.day.isoformat()} "
            f"[{start}, {end}), time zone {network.timezone}. "
            "Concentrations in µg/m³ at 25 °C and 760 mmHg (Resolución 2254 de 2017); averages are stamped by the "
            "end of their period. Microsensor values are indicative (reference_grade false), never compliance "
            "data. A later validation or late data publishes a new version with a change note."),
        "version": export.semver,
        "created": exported,
        "keywords": ["air quality", "PM2.5", "PM10", "NO2", "O3", "SO2", "CO", network.slug],
        "licenses": [{"name": publication.licence_id, "path": publication.licence_url,
                      "title": publication.licence_title or publication.licence_id}],
        "sources": [{"title": network.source_title, **({"path": network.source_path} if network.source_path else {})}],
        "contributors": [{"title": publication.publisher, "email": publication.contact_email,
                          "role": "publisher"}],
        "timezone": network.timezone,
        "period": {"start": start, "end": end,
                   "convention": "half-open [start, end); averages stamped by the end of their period"},
        "changes": [{"version": f"{n.version}.0.0", "exported_at": n.exported_at, "note": n.note} for n in notes],
        "resources": resources,
    }
