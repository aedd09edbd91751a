"""alerts.opendata.metadata, datapackage and dcat (pure): the value types refuse bad input naming the field; the
Data Package descriptor carries the licence, sources, publisher, version history and a schema per resource; the
DCAT catalogue names every required property, one dataset per day and kind, absolute URLs, the bounding box."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.opendata.datapackage import Network, VersionNote, datapackage, package_name, resource_name
from alerts.opendata.dcat import CONTEXT, KINDS, BoundingBox, catalogue, dataset_id
from alerts.opendata.metadata import CSV, JSON, DayExport, ExportedFile, Publication
from alerts.opendata.tables import TABLES

PUB = Publication("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/", "SDA", "datos@example.org",
                  title="Red")
NET = Network("rmcab", "America/Bogota")
T = datetime(2026, 3, 3, 8, tzinfo=UTC)
BASE = "https://datos.example.org/aire/"


def files(with_datapackage: bool = True) -> tuple[ExportedFile, ...]:
    out = [ExportedFile(f"{t.name}.{fmt}", resource_name(t, fmt), t.name, CSV if fmt == "csv" else JSON, 100 + i,
                        "sha256:" + "ab" * 32) for i, t in enumerate(TABLES) for fmt in ("csv", "json")]
    if with_datapackage:
        out.append(ExportedFile("datapackage.json", "datapackage", "datapackage", JSON, 5, "sha256:" + "cd" * 32))
    return tuple(out)


def export(day: date = date(2026, 3, 2), version: int = 2, **over: Any) -> DayExport:
    fields: dict[str, Any] = {"day": day, "version": version, "period_start": datetime(2026, 3, 2, 5, tzinfo=UTC),
                              "period_end": datetime(2026, 3, 3, 5, tzinfo=UTC), "exported_at": T + timedelta(days=1),
                              "first_exported_at": T, "digest": "sha256:" + "0" * 64, "change_note": "version 2: …",
                              "directory": f"{day.year}/{day.isoformat()}/v{version}", "files": files()}
    fields.update(over)
    return DayExport(**fields)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"licence_id": "CC BY 4.0"}, "licence_id: expected an SPDX identifier"),
    ({"licence_url": "creativecommons.org"}, "licence_url: expected an http"),
    ({"publisher": " "}, "publisher: expected"),
    ({"contact_email": "datos"}, "contact_email: expected an e-mail"),
    ({"title": ""}, "title: expected"),
])
def test_publication_refuses_bad_fields(kwargs: dict[str, str], message: str) -> None:
    base = {"licence_id": "CC-BY-4.0", "licence_url": "https://x.org/", "publisher": "SDA",
            "contact_email": "a@b.co"}
    with pytest.raises(ValueError, match=message):
        Publication(**{**base, **kwargs})


def test_exported_file_and_day_export_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="plain name"):
        ExportedFile("../x.csv", "x", "x", CSV, 1, "sha256:" + "a" * 64)
    with pytest.raises(ValueError, match="hash expected"):
        ExportedFile("x.csv", "x", "x", CSV, 1, "md5:abc")
    with pytest.raises(ValueError, match="bytes expected"):
        ExportedFile("x.csv", "x", "x", CSV, -1, "sha256:" + "a" * 64)
    with pytest.raises(ValueError, match="version expected >= 1"):
        export(version=0)
    with pytest.raises(ValueError, match="must be aware"):
        export(exported_at=datetime(2026, 3, 3))
    with pytest.raises(ValueError, match="is not before"):
        export(period_end=datetime(2026, 3, 2, 5, tzinfo=UTC))
    with pytest.raises(ValueError, match="directory must be relative"):
        export(directory="../etc")
    with pytest.raises(ValueError, match="network slug"):
        Network("RMCAB", "America/Bogota")
    with pytest.raises(ValueError, match="format: expected csv or json"):
        resource_name("hourly", "xml")


def test_datapackage_descriptor() -> None:
    e = export()
    history = [VersionNote(1, "2026-03-03T03:00:00-05:00", "first export"),
               VersionNote(2, "2026-03-04T03:00:00-05:00", e.change_note)]
    doc = datapackage(e, PUB, NET, history)
    assert doc["name"] == package_name(NET, e) == "rmcab-2026-03-02"
    assert doc["profile"] == "tabular-data-package" and doc["version"] == "2.0.0"
    assert doc["licenses"] == [{"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/",
                                "title": "CC-BY-4.0"}]
    assert doc["contributors"] == [{"title": "SDA", "email": "datos@example.org", "role": "publisher"}]
    assert doc["sources"][0]["title"] and "path" not in doc["sources"][0]
    assert doc["changes"] == [{"version": "1.0.0", "exported_at": "2026-03-03T03:00:00-05:00", "note": "first export"},
                              {"version": "2.0.0", "exported_at": "2026-03-04T03:00:00-05:00", "note": e.change_note}]
    assert doc["period"]["start"] == "2026-03-02T00:00:00-05:00" and doc["timezone"] == "America/Bogota"
    assert doc["created"] == "2026-03-04T03:00:00-05:00"  # every time in the network's zone
    resources = {r["name"]: r for r in doc["resources"]}
    assert sorted(resources) == sorted([t.name for t in TABLES] + [f"{t.name}-json" for t in TABLES])
    hourly = resources["hourly"]
    assert (hourly["path"], hourly["format"], hourly["mediatype"], hourly["encoding"]) == \
        ("hourly.csv", "csv", "text/csv", "utf-8")
    assert hourly["bytes"] == 103 and hourly["hash"] == "sha256:" + "ab" * 32
    assert hourly["dialect"]["delimiter"] == "," and hourly["schema"]["primaryKey"] == ["sensor_id", "variable",
                                                                                         "period_end"]
    assert "bytes" not in resources["hourly-json"] and "hash" not in resources["hourly-json"]
    assert datapackage(e, PUB, NET)["changes"] == [{"version": "2.0.0", "exported_at": "2026-03-04T03:00:00-05:00",
                                                    "note": e.change_note}]
    with pytest.raises(ValueError, match=r"lacks the tables \['daily'\]"):
        datapackage(export(files=tuple(f for f in files() if f.table != "daily")), PUB, NET)


def test_bounding_box() -> None:
    box = BoundingBox.around([(4.6, -74.2), (4.8, -74.0), (4.7, -74.1)])
    assert box == BoundingBox(-74.2, 4.6, -74.0, 4.8)
    assert box.wkt() == "POLYGON((-74.2 4.6, -74.0 4.6, -74.0 4.8, -74.2 4.8, -74.2 4.6))"
    with pytest.raises(ValueError, match="no sensor location"):
        BoundingBox.around([])
    with pytest.raises(ValueError, match="bounding box: expected"):
        BoundingBox(10, 0, 5, 1)


@given(st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=20))
def test_bounding_box_holds_every_point(points: list[tuple[float, float]]) -> None:
    box = BoundingBox.around(points)
    assert all(box.min_lat <= lat <= box.max_lat and box.min_lon <= lon <= box.max_lon for lat, lon in points)


def test_catalogue_names_every_required_property() -> None:
    old, new = export(date(2026, 3, 1), 1, directory="2026/2026-03-01/v1"), export()
    doc = catalogue([old, new], PUB, NET, BoundingBox(-74.2, 4.6, -74.0, 4.8), BASE, T + timedelta(days=2))
    assert doc["@context"] == {**CONTEXT, "@base": BASE} and doc["@type"] == "dcat:Catalog"
    assert doc["@id"] == BASE + "catalogue.jsonld"
    assert doc["dct:publisher"]["foaf:name"] == "SDA" and doc["dct:license"] == {"@id": PUB.licence_url}
    assert doc["dcat:contactPoint"]["vcard:hasEmail"] == {"@id": "mailto:datos@example.org"}
    assert doc["dct:issued"] == {"@value": "2026-03-03T03:00:00-05:00", "@type": "xsd:dateTime"}
    datasets = doc["dcat:dataset"]
    assert [d["@id"] for d in datasets] == [dataset_id(BASE, e, k) for e in (new, old) for k in KINDS]
    d = datasets[1]
    assert d["@id"] == BASE + "2026/2026-03-02#hourly" and d["@type"] == "dcat:Dataset"
    for key in ("dct:identifier", "dct:title", "dct:description", "dct:publisher", "dct:license", "dcat:contactPoint",
                "dct:temporal", "dct:spatial", "dct:issued", "dct:modified", "owl:versionInfo", "adms:versionNotes",
                "dcat:theme", "dct:accrualPeriodicity", "dcat:distribution"):
        assert key in d, key
    assert d["dct:temporal"]["dcat:startDate"]["@value"] == "2026-03-02T00:00:00-05:00"
    assert d["dct:spatial"]["dcat:bbox"]["@type"] == "gsp:wktLiteral"
    assert d["owl:versionInfo"] == "2.0.0" and d["dct:issued"]["@value"] == "2026-03-03T03:00:00-05:00"
    dist = d["dcat:distribution"]
    assert [x["@id"] for x in dist] == [BASE + "2026/2026-03-02/v2/" + n
                                        for n in ("hourly.csv", "hourly.json", "datapackage.json")]
    csv_dist = dist[0]
    assert csv_dist["dcat:downloadURL"] == csv_dist["dcat:accessURL"] == {"@id": csv_dist["@id"]}
    assert csv_dist["dcat:mediaType"] == {"@id": "https://www.iana.org/assignments/media-types/text/csv"}
    assert csv_dist["dcat:byteSize"] == {"@value": "103", "@type": "xsd:nonNegativeInteger"}
    assert csv_dist["spdx:checksum"]["spdx:checksumValue"] == "ab" * 32


def test_catalogue_refuses_bad_base_url_and_missing_files() -> None:
    box = BoundingBox(-74.2, 4.6, -74.0, 4.8)
    with pytest.raises(ValueError, match="base_url"):
        catalogue([], PUB, NET, box, "https://x.org/no-slash", T)
    with pytest.raises(ValueError, match="lacks the file of resource 'datapackage'"):
        catalogue([export(files=files(with_datapackage=False))], PUB, NET, box, BASE, T)
    empty = catalogue([], PUB, NET, box, BASE, T)
    assert empty["dcat:dataset"] == [] and empty["dct:issued"]["@value"] == "2026-03-03T03:00:00-05:00"


def test_an_empty_tables_json_resource_is_left_out() -> None:
    """frictionless cannot read an empty JSON array as a table: the CSV (a header row) describes the empty table."""
    empty = tuple(ExportedFile(f.name, f.resource, f.table, f.media_type, f.bytes, f.hash,
                               0 if f.table == "daily" else 5) for f in files())
    names = [r["name"] for r in datapackage(export(files=empty), PUB, NET)["resources"]]
    assert "daily" in names and "daily-json" not in names and "hourly-json" in names
