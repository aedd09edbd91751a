"""alerts.opendata.export_job on a real TimescaleDB: a seeded day exports as CSV and JSON tables with a Data Package
that `frictionless validate` accepts, a CSV that Python's csv module reads back (quoting, decimal point, UTF-8,
offsets in every time), a DCAT catalogue that parses as JSON-LD with its required properties; a re-run with nothing
changed writes nothing, and a later validation decision or late reading publishes version 2 with a change note."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from frictionless import Package, validate
from rdflib import RDF, Graph, Literal, Namespace, URIRef

from alerts.opendata.datapackage import Network
from alerts.opendata.export_job import CATALOGUE, ExportTarget, export_day, run_daily, write_catalogue
from alerts.opendata.metadata import Publication

TZ = ZoneInfo("America/Bogota")
DAY = date(2026, 3, 2)
START = datetime(2026, 3, 2, tzinfo=TZ)
AFTER = START + timedelta(days=1, hours=3)  # the export runs at 03:00 the next day
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")

PUBLICATION = Publication("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/",
                          "Secretaría Distrital de Ambiente", "datos@example.org", title="Red de prueba")


def seed(conn: psycopg.Connection[Any]) -> None:
    """Two sensors (a station, a coarse microsensor), readings of 08:00–09:00 and their averages."""
    conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality, address, operator) VALUES "
                 "('KEN', 'Kennedy, \"Carvajal\"', 'station', 4.625, -74.161, 'Kennedy', 'Cra 80', 'SDA'), "
                 "('MS1', 'Micro, uno', 'microsensor', 4.70123, -74.05987, 'Usaquén', 'Calle 1 # 2', '')")
    rows = []
    for i in range(12):
        t = START + timedelta(hours=8, minutes=5 * i)
        rows.append((t, "KEN", "KEN-pm", "pm25", 20.0 + i / 3, "µg/m³", 20.0 + i / 3, "ug/m3", 4 if i == 3 else 0, t))
        rows.append((t, "MS1", "MS1-a", "pm25", 31.25, "µg/m³", 31.25, "ug/m3", 0, t))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO measurements (time, sensor_id, device_id, variable, value, unit, raw_value, "
                        "raw_unit, flags, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        for sensor, value in (("KEN", 21.833333333333332), ("MS1", 31.25)):
            cur.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                        "coverage, samples, valid) VALUES (%s, 'pm25', '1h', %s, %s, %s, 'µg/m³', 1.0, 12, true)",
                        (sensor, START + timedelta(hours=8), START + timedelta(hours=9), value))
        cur.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                    "coverage, samples, valid) VALUES ('KEN', 'pm25', 'day', %s, %s, 21.833333333333332, 'µg/m³', "
                    "0.041666666666666664, 1, false)", (START, START + timedelta(days=1)))


@pytest.fixture
def db(database_url: str) -> Any:
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed(conn)
        yield conn


def target(root: Path) -> ExportTarget:
    return ExportTarget(root, PUBLICATION, Network("red-prueba", "America/Bogota"),
                        base_url="https://datos.example.org/aire/")


def test_day_export_is_a_valid_data_package_with_readable_csv_and_json(db: Any, tmp_path: Path) -> None:
    result = export_day(db, target(tmp_path), DAY, AFTER)
    assert result.version == 1 and result.note == "first export"
    vdir = tmp_path / "2026" / "2026-03-02" / "v1"
    assert result.directory == vdir
    assert sorted(p.name for p in vdir.iterdir()) == sorted(
        [f"{t}.{x}" for t in ("sensors", "variables", "measurements", "hourly", "daily") for x in ("csv", "json")]
        + ["datapackage.json"])
    assert not [p for p in vdir.parent.iterdir() if p.name.startswith(".")], "temporary directory left behind"

    report = validate(str(vdir / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])

    package = Package(str(vdir / "datapackage.json"))
    assert package.version == "1.0.0" and package.licenses[0]["name"] == "CC-BY-4.0"
    descriptor = json.loads((vdir / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["contributors"] == [{"title": "Secretaría Distrital de Ambiente", "email": "datos@example.org",
                                           "role": "publisher"}]
    assert descriptor["timezone"] == "America/Bogota" and descriptor["sources"][0]["title"]
    hourly_resource = next(r for r in descriptor["resources"] if r["name"] == "hourly")
    fields = {f["name"]: f for f in hourly_resource["schema"]["fields"]}
    assert fields["coverage"]["unit"] == "1" and fields["period_end"]["type"] == "datetime"
    assert descriptor["rowCounts"] == {"sensors": 2, "variables": descriptor["rowCounts"]["variables"],
                                       "measurements": 24, "hourly": 2, "daily": 1}

    raw = (vdir / "measurements.csv").read_bytes()
    text = raw.decode("utf-8")  # UTF-8, or this raises
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 24
    ken = [r for r in rows if r["sensor_id"] == "KEN"]
    assert ken[0]["time"] == "2026-03-02T08:00:00-05:00"  # the zone's offset in every value
    assert ken[1]["value"] == repr(20.0 + 1 / 3) and "." in ken[1]["value"] and "," not in ken[1]["value"]
    assert ken[3]["qc_flags"] == "4" and ken[3]["qc_flag_names"] == "spike" and ken[3]["qc_valid"] == "true"
    assert ken[0]["unit"] == "µg/m³" and ken[0]["verification"] == "3" and ken[0]["validity"] == "1"

    sensors = {r["id"]: r for r in csv.DictReader((vdir / "sensors.csv").read_text(encoding="utf-8").splitlines())}
    assert sensors["KEN"]["name"] == 'Kennedy, "Carvajal"'  # quoting survives a comma and quotes
    assert '"Kennedy, ""Carvajal"""' in (vdir / "sensors.csv").read_text(encoding="utf-8")
    assert (sensors["MS1"]["latitude"], sensors["MS1"]["longitude"]) == ("4.7", "-74.06")  # coarse: 0.01°
    assert sensors["MS1"]["location_publication"] == "coarse" and sensors["MS1"]["reference_grade"] == "false"

    hourly = json.loads((vdir / "hourly.json").read_text(encoding="utf-8"))
    assert hourly[0] == {"sensor_id": "KEN", "variable": "pm25", "period_start": "2026-03-02T08:00:00-05:00",
                         "period_end": "2026-03-02T09:00:00-05:00", "value": 21.833333333333332, "unit": "µg/m³",
                         "coverage": 1.0, "samples": 12, "valid": True, "verification": 3,
                         "reference_grade": True}
    daily = json.loads((vdir / "daily.json").read_text(encoding="utf-8"))
    assert [(d["sensor_id"], d["valid"]) for d in daily] == [("KEN", False)]


def test_dcat_catalogue_parses_as_json_ld_with_its_required_properties(db: Any, tmp_path: Path) -> None:
    t = target(tmp_path)
    export_day(db, t, DAY, AFTER)
    path = write_catalogue(db, t, AFTER)
    assert path == tmp_path / CATALOGUE
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"

    g = Graph().parse(data=path.read_text(encoding="utf-8"), format="json-ld")
    cat = URIRef("https://datos.example.org/aire/catalogue.jsonld")
    assert (cat, RDF.type, DCAT.Catalog) in g
    publisher = g.value(cat, DCT.publisher)
    assert g.value(publisher, FOAF.name) == Literal("Secretaría Distrital de Ambiente")
    datasets = list(g.objects(cat, DCAT.dataset))
    assert len(datasets) == 3  # measurements, hourly, daily of the one day
    ds = URIRef("https://datos.example.org/aire/2026/2026-03-02#hourly")
    assert ds in datasets and (ds, RDF.type, DCAT.Dataset) in g
    for prop in (DCT.title, DCT.description, DCT.identifier, DCT.publisher, DCT.license, DCT.temporal, DCT.spatial,
                 DCT.issued, DCT.modified, DCAT.contactPoint):
        assert g.value(ds, prop) is not None, prop
    assert g.value(ds, DCT.license) == URIRef("https://creativecommons.org/licenses/by/4.0/")
    temporal = g.value(ds, DCT.temporal)
    assert g.value(temporal, DCAT.startDate).toPython() == START
    assert g.value(temporal, DCAT.endDate).toPython() == START + timedelta(days=1)
    bbox = str(g.value(g.value(ds, DCT.spatial), DCAT.bbox))
    assert bbox == "POLYGON((-74.161 4.625, -74.06 4.625, -74.06 4.7, -74.161 4.7, -74.161 4.625))"
    distributions = list(g.objects(ds, DCAT.distribution))
    assert len(distributions) == 3
    csv_url = URIRef("https://datos.example.org/aire/2026/2026-03-02/v1/hourly.csv")
    assert csv_url in distributions
    assert g.value(csv_url, DCAT.downloadURL) == csv_url and g.value(csv_url, DCAT.accessURL) == csv_url
    assert g.value(csv_url, DCAT.mediaType) == URIRef("https://www.iana.org/assignments/media-types/text/csv")
    assert g.value(csv_url, DCT.license) == URIRef("https://creativecommons.org/licenses/by/4.0/")
    assert int(g.value(csv_url, DCAT.byteSize)) == (tmp_path / "2026/2026-03-02/v1/hourly.csv").stat().st_size
    assert g.value(csv_url, DCT.issued) is not None and g.value(csv_url, DCT.modified) is not None


def test_rerun_unchanged_writes_nothing_and_a_validation_publishes_version_2(db: Any, tmp_path: Path) -> None:
    t = target(tmp_path)
    first = export_day(db, t, DAY, AFTER)
    assert first.version == 1
    again = export_day(db, t, DAY, AFTER + timedelta(hours=1))
    assert again.version is None and again.directory == first.directory
    forced = export_day(db, t, DAY, AFTER + timedelta(hours=1), force=True)
    assert forced.version is None and forced.note == "unchanged: same content"

    # an officer invalidates 08:00-08:30 of KEN: the readings' validity changes
    decided = AFTER + timedelta(hours=2)
    row = db.execute(
        "INSERT INTO validation_decisions (decided_at, actor, actor_role, via, action, sensor_id, variable, time_from, "
        "time_to, reason) VALUES (%s, 'ana', 'officer', 'cli', 'invalidate', 'KEN', 'pm25', %s, %s, 'analyser_fault') "
        "RETURNING id", (decided, START + timedelta(hours=8), START + timedelta(hours=8, minutes=30))).fetchone()
    second = export_day(db, t, DAY, decided + timedelta(minutes=5))
    assert second.version == 2
    assert second.note == (f"version 2: content changed after validation decision #{row[0]} (values, flags or "
                           "validity changed; row counts unchanged)")
    v2 = tmp_path / "2026" / "2026-03-02" / "v2"
    assert (tmp_path / "2026" / "2026-03-02" / "v1" / "datapackage.json").is_file()  # the old version stays
    assert validate(str(v2 / "datapackage.json")).valid
    rows = list(csv.DictReader((v2 / "measurements.csv").read_text(encoding="utf-8").splitlines()))
    ken = [r for r in rows if r["sensor_id"] == "KEN"]
    assert [r["validity"] for r in ken] == ["-1"] * 6 + ["1"] * 6
    assert {r["verification"] for r in ken[:6]} == {"1"}
    descriptor = json.loads((v2 / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["version"] == "2.0.0"
    assert [c["version"] for c in descriptor["changes"]] == ["1.0.0", "2.0.0"]
    assert descriptor["changes"][1]["note"] == second.note

    # a late reading of the day
    late_at = decided + timedelta(hours=1)
    db.execute("INSERT INTO measurements (time, sensor_id, device_id, variable, value, unit, flags, received_at) "
               "VALUES (%s, 'MS1', 'MS1-a', 'pm25', 40.5, 'µg/m³', 0, %s)", (START + timedelta(hours=10), late_at))
    third = export_day(db, t, DAY, late_at + timedelta(minutes=1))
    assert third.version == 3
    assert third.note == "version 3: content changed after 1 late reading (measurements 24 → 25 rows)"

    write_catalogue(db, t, late_at + timedelta(minutes=1))
    g = Graph().parse(tmp_path / CATALOGUE, format="json-ld")
    ds = URIRef("https://datos.example.org/aire/2026/2026-03-02#daily")
    owl_version = URIRef("http://www.w3.org/2002/07/owl#versionInfo")
    assert str(g.value(ds, owl_version)) == "3.0.0"
    assert str(g.value(ds, URIRef("http://www.w3.org/ns/adms#versionNotes"))) == third.note
    assert g.value(ds, DCT.issued).toPython() == AFTER  # the first export
    recorded = db.execute("SELECT version, change_note FROM open_data_exports ORDER BY version").fetchall()
    assert [r[0] for r in recorded] == [1, 2, 3]


def test_a_day_not_over_is_refused(db: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not over yet"):
        export_day(db, target(tmp_path), DAY, START + timedelta(hours=23))


def test_run_daily_exports_yesterday_and_writes_the_catalogue(db: Any, tmp_path: Path) -> None:
    t = target(tmp_path)
    results = run_daily(db, t, AFTER.astimezone(UTC), recheck_days=3)
    assert [(r.day, r.version) for r in results] == [(DAY, 1)]  # earlier days never exported are not backfilled
    assert (tmp_path / CATALOGUE).is_file()
    again = run_daily(db, t, AFTER.astimezone(UTC) + timedelta(days=1), recheck_days=3)
    assert [(r.day, r.version) for r in again] == [(DAY, None), (DAY + timedelta(days=1), 1)]
    empty = tmp_path / "2026" / "2026-03-03" / "v1"  # a day without readings or averages is still a valid package
    assert validate(str(empty / "datapackage.json")).valid
    assert json.loads((empty / "hourly.json").read_text(encoding="utf-8")) == []
    assert (empty / "hourly.csv").read_text(encoding="utf-8").splitlines()[0].startswith("sensor_id,variable,")


def test_a_decision_stamped_before_the_export_is_still_seen(db: Any, tmp_path: Path) -> None:
    """A simulated clock (`aqnet up --speed`) runs ahead of the validation CLI's: decisions are found by id."""
    t = target(tmp_path)
    assert export_day(db, t, DAY, AFTER + timedelta(days=30)).version == 1
    db.execute("INSERT INTO validation_decisions (decided_at, actor, actor_role, via, action, sensor_id, time_from, "
               "time_to, reason) VALUES (%s, 'ana', 'technician', 'api', 'invalidate', 'MS1', %s, %s, 'local_source')",
               (AFTER, START, START + timedelta(days=1)))
    again = export_day(db, t, DAY, AFTER + timedelta(days=30, hours=1))
    assert again.version == 2 and "validation decision #" in again.note
