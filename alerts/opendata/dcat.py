"""The DCAT catalogue of the daily exports, as JSON-LD in the style of DCAT-AP, for a city portal's harvester
(CKAN's DCAT harvester reads it). Pure: no I/O, no clock (`now` is a parameter).

Contract: `catalogue(exports, publication, network, bbox, base_url, now)` gives one `dcat:Catalog` with one
`dcat:Dataset` per exported day and kind (measurements, hourly, daily), each with `dct:identifier`, `dct:title`,
`dct:description`, `dct:publisher`, `dct:license`, `dcat:contactPoint`, `dct:temporal` (a `dct:PeriodOfTime`
with `dcat:startDate`/`dcat:endDate`), `dct:spatial` (a `dct:Location` with `dcat:bbox`, the network's bounding
box as a WKT polygon, lon lat order, WGS 84), `dct:issued` (first export), `dct:modified` (this version),
`owl:versionInfo`, `adms:versionNotes`, `dcat:theme` (EU data theme ENVI), `dct:accrualPeriodicity` (daily), and
its `dcat:distribution`s (CSV, JSON, and the Data Package descriptor), each with `dcat:accessURL`,
`dcat:downloadURL`, `dcat:mediaType`, `dct:format`, `dct:license`, `dcat:byteSize` and an `spdx:checksum`.
URLs are absolute: `base_url` + the file's path under the export root; times are given in the network's zone. The
`@context` is inline (no remote document to fetch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from alerts.opendata.datapackage import Network
from alerts.opendata.metadata import CSV, DayExport, ExportedFile, Publication

__all__ = ["CONTEXT", "KINDS", "BoundingBox", "catalogue", "dataset_id"]

#: namespaces of DCAT 3 (https://www.w3.org/TR/vocab-dcat-3/), Dublin Core terms, FOAF, vCard, ADMS, OWL, SPDX,
#: GeoSPARQL (the bbox literal's datatype, as DCAT-AP 3 uses it) and XML Schema
CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "adms": "http://www.w3.org/ns/adms#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "spdx": "http://spdx.org/rdf/terms#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

#: dataset kinds: the table each holds and how it is described
KINDS: dict[str, str] = {
    "measurements": "readings with their QC flags and validation state",
    "hourly": "hourly averages (hours stamped by their end) with coverage and validity",
    "daily": "calendar-day averages with coverage and validity",
}

_THEME_ENVI = "http://publications.europa.eu/resource/authority/data-theme/ENVI"
_DAILY = "http://publications.europa.eu/resource/authority/frequency/DAILY"
_FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"
_MEDIA = "https://www.iana.org/assignments/media-types/"


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """The network's extent in WGS 84 degrees (from the locations the sensors may be published at)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def __post_init__(self) -> None:
        if not (-180 <= self.min_lon <= self.max_lon <= 180 and -90 <= self.min_lat <= self.max_lat <= 90):
            raise ValueError(f"bounding box: expected -180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= "
                             f"max_lat <= 90, got {self}")

    @classmethod
    def around(cls, points: Sequence[tuple[float, float]]) -> BoundingBox:
        """The smallest box holding every (lat, lon) point; ValueError for none."""
        if not points:
            raise ValueError("bounding box: no sensor location to bound")
        lats = [p[0] for p in points]
        lons = [p[1] for p in points]
        return cls(min(lons), min(lats), max(lons), max(lats))

    def wkt(self) -> str:
        """The box as a WKT polygon (lon lat, counter-clockwise, closed)."""
        a, b, c, d = self.min_lon, self.min_lat, self.max_lon, self.max_lat
        return f"POLYGON(({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b}))"


def _dt(value: datetime, tz: tzinfo) -> dict[str, str]:
    if value.tzinfo is None:
        raise ValueError(f"catalogue: times must be aware, got {value!r}")
    return {"@value": value.astimezone(tz).isoformat(), "@type": "xsd:dateTime"}


def _url(base_url: str, export: DayExport, name: str) -> str:
    return f"{base_url}{export.directory}/{name}"


def dataset_id(base_url: str, export: DayExport, kind: str) -> str:
    """The dataset's IRI: `<base_url><yyyy>/<yyyy-mm-dd>#<kind>` (stable across versions)."""
    return f"{base_url}{export.day.year}/{export.day.isoformat()}#{kind}"


def _distribution(base_url: str, export: DayExport, f: ExportedFile, licence: dict[str, str],
                  title: str, tz: tzinfo) -> dict[str, Any]:
    url = _url(base_url, export, f.name)
    fmt = "CSV" if f.media_type == CSV else "JSON"
    return {
        "@id": url, "@type": "dcat:Distribution", "dct:title": title,
        "dcat:accessURL": {"@id": url}, "dcat:downloadURL": {"@id": url},
        "dcat:mediaType": {"@id": _MEDIA + f.media_type}, "dct:format": {"@id": _FILE_TYPE + fmt},
        "dct:license": licence, "dcat:byteSize": {"@value": str(f.bytes), "@type": "xsd:nonNegativeInteger"},
        "spdx:checksum": {"@type": "spdx:Checksum", "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
                          "spdx:checksumValue": f.hash.removeprefix("sha256:")},
        "dct:issued": _dt(export.first_exported_at, tz), "dct:modified": _dt(export.exported_at, tz),
    }


def _dataset(export: DayExport, kind: str, publication: Publication, network: Network, bbox: BoundingBox,
             base_url: str, licence: dict[str, str]) -> dict[str, Any]:
    day = export.day.isoformat()
    tz = ZoneInfo(network.timezone)
    files = {f.resource: f for f in export.files}
    distributions = []
    for resource, title in ((kind, f"{kind} {day} (CSV)"), (f"{kind}-json", f"{kind} {day} (JSON)"),
                            ("datapackage", f"Data Package descriptor of {day}")):
        if resource not in files:
            raise ValueError(f"catalogue: day {day} v{export.version} lacks the file of resource {resource!r}")
        distributions.append(_distribution(base_url, export, files[resource], licence, title, tz))
    return {
        "@id": dataset_id(base_url, export, kind), "@type": "dcat:Dataset",
        "dct:identifier": f"{network.slug}:{day}:{kind}",
        "dct:title": f"{publication.title}: {kind} of {day}",
        "dct:description": (f"{KINDS[kind].capitalize()} of the local day {day} ({network.timezone}), "
                            "concentrations in µg/m³ at 25 °C and 760 mmHg (Resolución 2254 de 2017)."),
        "dct:publisher": {"@id": "#publisher"},
        "dct:license": licence,
        "dcat:contactPoint": {"@id": "#contact"},
        "dct:temporal": {"@type": "dct:PeriodOfTime", "dcat:startDate": _dt(export.period_start, tz),
                         "dcat:endDate": _dt(export.period_end, tz)},
        "dct:spatial": {"@type": "dct:Location", "dcat:bbox": {"@value": bbox.wkt(), "@type": "gsp:wktLiteral"}},
        "dct:issued": _dt(export.first_exported_at, tz), "dct:modified": _dt(export.exported_at, tz),
        "owl:versionInfo": export.semver, "adms:versionNotes": export.change_note,
        "dcat:theme": {"@id": _THEME_ENVI}, "dct:accrualPeriodicity": {"@id": _DAILY},
        "dcat:keyword": ["air quality", kind, network.slug],
        "dcat:distribution": distributions,
    }


def catalogue(exports: Sequence[DayExport], publication: Publication, network: Network, bbox: BoundingBox,
              base_url: str, now: datetime) -> dict[str, Any]:
    """The JSON-LD `dcat:Catalog` of the latest version of every exported day (newest day first)."""
    if not base_url.startswith(("https://", "http://", "file:///")) or not base_url.endswith("/"):
        raise ValueError(f"base_url: expected an absolute http(s) or file URL ending in '/', got {base_url!r}")
    licence = {"@id": publication.licence_url}
    tz = ZoneInfo(network.timezone)
    datasets = [_dataset(e, kind, publication, network, bbox, base_url, licence)
                for e in sorted(exports, key=lambda e: e.day, reverse=True) for kind in KINDS]
    issued = min((e.first_exported_at for e in exports), default=now)
    return {
        "@context": {**CONTEXT, "@base": base_url},
        "@id": f"{base_url}catalogue.jsonld", "@type": "dcat:Catalog",
        "dct:title": publication.title,
        "dct:description": (f"Daily open-data exports of {publication.title}: readings, hourly and daily averages, "
                            f"one dataset per local day ({network.timezone}) and kind."),
        "dct:publisher": {"@id": "#publisher", "@type": "foaf:Agent", "foaf:name": publication.publisher,
                          "foaf:mbox": {"@id": f"mailto:{publication.contact_email}"}},
        "dcat:contactPoint": {"@id": "#contact", "@type": "vcard:Kind", "vcard:fn": publication.publisher,
                              "vcard:hasEmail": {"@id": f"mailto:{publication.contact_email}"}},
        "dct:license": licence,
        "dct:issued": _dt(issued, tz), "dct:modified": _dt(now, tz),
        "dcat:themeTaxonomy": {"@id": "http://publications.europa.eu/resource/authority/data-theme"},
        "dcat:dataset": datasets,
    }
