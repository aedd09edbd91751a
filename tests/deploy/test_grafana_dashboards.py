"""Every provisioned Grafana dashboard is valid panel JSON, and every SQL query in it (panels, annotations,
template variables), expanded as Grafana's PostgreSQL datasource expands it (`tests.deploy.grafana_macros`),
runs AS the read-only role on a day of data the pipeline produced from the simulators
(`tests.deploy.pipeline_data`), returning rows whose columns are non-null and in range."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from ingest.reading import EXCLUDED, QC
from tests.deploy.grafana_macros import expand, expand_macros, expand_variables
from tests.deploy.pipeline_data import ProducedData, produce
from tests.fixtures.timescale import _create_clone

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "aqnet.yaml").read_text())["datasources"][0]
#: Grafana 11.0's dashboard schema version (the dashboards target Grafana 11 or newer)
GRAFANA_11_SCHEMA = 39
#: Bogotá D.C.'s box, Sumapaz included (the bundled network's stations and microsensors lie inside it)
LAT, LON = (3.7, 4.9), (-74.5, -73.9)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ static checks

def test_there_are_the_dashboards_of_issue_11() -> None:
    assert {p.stem for p in DASHBOARDS} == {"aqnet-overview", "aqnet-station", "aqnet-microsensor",
                                            "aqnet-completeness", "aqnet-health"}


def test_datasource_provisioning_uses_the_read_only_role_and_timescaledb() -> None:
    assert DATASOURCE["type"] == "grafana-postgresql-datasource"
    assert DATASOURCE["uid"] == "aqnet-timescaledb"
    assert DATASOURCE["user"] == "${AQNET_GRAFANA_USER}"
    assert DATASOURCE["jsonData"]["timescaledb"] is True
    assert DATASOURCE["secureJsonData"]["password"] == "${AQNET_GRAFANA_PASSWORD}"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "aqnet.yaml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]


def _targets(dash: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dash["panels"]:
        for target in panel["targets"]:
            yield f"{dash['uid']} panel {panel['id']} {panel['title']!r} {target['refId']}", target
    for ann in dash["annotations"]["list"]:
        if "target" in ann:
            yield f"{dash['uid']} annotation {ann['name']!r}", ann["target"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_panel_json(path: Path) -> None:
    dash = _load(path)
    assert dash["schemaVersion"] >= GRAFANA_11_SCHEMA
    assert "Grafana 11" in dash["description"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{path.name}: panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["type"] and panel["title"] and panel["description"]
        assert panel["datasource"] == {"type": DATASOURCE["type"], "uid": DATASOURCE["uid"]}
        assert panel["targets"], panel["title"]
    for where, target in _targets(dash):
        assert target["datasource"] == {"type": DATASOURCE["type"], "uid": DATASOURCE["uid"]}, where
        assert target["rawSql"].strip() and target["rawQuery"] is True, where
        assert target["format"] in ("table", "time_series"), where
        assert "--" not in target["rawSql"] and "/*" not in target["rawSql"], f"{where}: Grafana 12 strips comments"
    for var in dash["templating"]["list"]:
        assert var["type"] == "query" and var["datasource"]["uid"] == DATASOURCE["uid"], var["name"]
        assert var["query"].strip().upper().startswith("SELECT"), var["name"]


def test_limit_panels_cite_the_norm_and_match_norm_limits() -> None:
    station = _load(GRAFANA / "dashboards" / "aqnet-station.json")
    limits = {"pm25": 37, "pm10": 75, "o3": 100, "no2": 200}  # Res. 2254/2017 Art. 2 Tabla 1 (norm_limits, 0007)
    found = 0
    for panel in station["panels"]:
        steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        if steps:
            found += 1
            assert "Res. 2254/2017" in panel["description"] and "Resolución 2254 de 2017" in panel["description"]
            variable = next(v for v in limits if f"'{v}'" in panel["targets"][0]["rawSql"])
            assert steps[-1] == {"color": "red", "value": limits[variable]}
    assert found == len(limits)


# ------------------------------------------------------------------------------------------- live data

@pytest.fixture(scope="module")
def pipeline_db(timescale: Any, timescale_template: str) -> Iterator[tuple[str, ProducedData]]:
    """A database holding a simulated day produced by the pipeline (about 45 s), shared by this module."""
    name = f"grafana_{uuid.uuid4().hex[:10]}"
    _create_clone(timescale, timescale_template, name)
    url = timescale.url_for(name)
    try:
        yield url, produce(url)
    finally:
        with psycopg.connect(timescale.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _as_readonly(url: str, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET ROLE aqnet_readonly")
        cur = conn.execute(query)  # type: ignore[arg-type]
        names = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
        conn.rollback()
    return names, rows


def _variables(dash: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in dash["templating"]["list"]:
        value = var["current"]["value"]
        out[var["name"]] = [value, "MS08"] if var.get("multi") else value
    return out


def _check_value(where: str, column: str, value: Any, data: ProducedData) -> None:
    if isinstance(value, datetime):
        assert data.start - timedelta(days=1) <= value <= datetime.now(UTC) + timedelta(hours=1), (where, column)
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    value = float(value)
    assert math.isfinite(value), (where, column)
    if column in ("latitude", "lat_deg"):
        assert LAT[0] <= value <= LAT[1], (where, column, value)
    elif column in ("longitude", "lon_deg"):
        assert LON[0] <= value <= LON[1], (where, column, value)
    elif column in ("iboca", "index_value"):
        assert 0 <= value <= 500, (where, column, value)
    elif "coverage" in column or "fraction" in column:
        assert 0 <= value <= 1, (where, column, value)
    else:  # concentrations (the dashboards' defaults are PM and gases), counts, ages, lags, ratios, limits
        assert value >= 0, (where, column, value)


def _queries() -> list[tuple[str, str, dict[str, Any], str]]:
    out = []
    for path in DASHBOARDS:
        dash = _load(path)
        variables = _variables(dash)
        for where, target in _targets(dash):
            out.append((where, target["rawSql"], variables, target["format"]))
        for var in dash["templating"]["list"]:
            out.append((f"{dash['uid']} variable {var['name']}", var["query"], variables, "table"))
    return out


QUERIES = _queries()


@pytest.mark.parametrize(("where", "raw", "variables", "fmt"), QUERIES, ids=[q[0] for q in QUERIES])
def test_every_dashboard_query_returns_sane_rows_as_the_read_only_role(pipeline_db, where, raw, variables, fmt):
    url, data = pipeline_db
    # the simulated day; the health dashboard's range runs to the wall clock, since dead letters, receive times
    # and job progress are stamped with it
    t_to = datetime.now(UTC) if where.startswith("aqnet-health") else data.end + timedelta(minutes=5)
    query = expand(raw, data.start, t_to, variables, interval=timedelta(minutes=5))
    assert "$" not in query.replace("$$", ""), f"{where}: unexpanded: {query}"
    names, rows = _as_readonly(url, query)
    assert rows, f"{where}: no rows for\n{query}"
    if fmt == "time_series":
        assert "time" in names, f"{where}: a time series needs a time column"
    # a gap-filled series is NULL in its gaps: that is its point
    nullable = set(names) - {"time"} if "grafana_series_gapfilled" in raw else set()
    for row in rows:
        record = dict(zip(names, row, strict=True))
        for column, value in record.items():
            if value is None:
                assert column in nullable, f"{where}: NULL {column} in {row}"
                continue
            if column == "value" and "NEGATIVE" in str(record.get("flags", "")):
                continue  # a reading flagged NEGATIVE is shown as it was measured: that is why it is flagged
            _check_value(where, column, value, data)
    if nullable:
        assert any(v is not None for r in rows for v in r[1:]), f"{where}: every bucket empty"


# ----------------------------------------------------------------------------------------- the views

def test_the_pipeline_day_exercised_the_dashboards(pipeline_db) -> None:
    _, data = pipeline_db
    assert data.readings > 40_000 and data.dead_letters >= 1 and data.alert_events >= 1


def test_qc_flag_table_matches_ingest_reading(pipeline_db) -> None:
    url, _ = pipeline_db
    _, rows = _as_readonly(url, "SELECT bit, value, name, excluded FROM grafana_qc_flags ORDER BY bit")
    assert [(v, n) for _, v, n, _ in rows] == [(int(f), f.name) for f in QC]
    assert sum(v for _, v, _, x in rows if x) == int(EXCLUDED) == 225
    _, rows = _as_readonly(url, f"SELECT grafana_flag_names({int(QC.NEGATIVE | QC.CLOCK_SKEW)}), grafana_flag_names(0)")
    assert rows == [(["NEGATIVE", "CLOCK_SKEW"], [])]


def test_valid_view_excludes_exactly_the_excluded_flags(pipeline_db) -> None:
    url, _ = pipeline_db
    _, rows = _as_readonly(url, "SELECT count(*) FILTER (WHERE flags & 225 <> 0), count(*) "
                                "FROM grafana_measurements_valid")
    assert rows[0][0] == 0 and rows[0][1] > 0
    # the clock-skewed microsensor's readings are stored, flagged, and not valid
    _, rows = _as_readonly(url, "SELECT count(*) FROM grafana_measurements_flagged "
                                "WHERE 'CLOCK_SKEW' = ANY(flag_names) AND excluded")
    assert rows[0][0] > 0


def test_gap_filled_series_stamps_buckets_at_their_end_and_keeps_gaps(pipeline_db) -> None:
    url, data = pipeline_db
    t_from = data.start - timedelta(hours=3)  # three hours before the first reading: gaps
    _, rows = _as_readonly(url, f"SELECT time, value, samples FROM grafana_series_gapfilled('KEN', 'pm25', "
                                f"'{t_from.isoformat()}', '{data.end.isoformat()}', interval '1 hour')")
    times = [r[0] for r in rows]
    assert times == [t_from + timedelta(hours=h) for h in range(1, 30)]
    assert [r[1:] for r in rows[:3]] == [(None, 0)] * 3
    _, hourly = _as_readonly(url, f"SELECT time, value FROM grafana_averages WHERE sensor_id = 'KEN' AND variable = "
                                  f"'pm25' AND period = '1h' AND time = '{times[10].isoformat()}'")
    assert hourly and rows[10][1] == pytest.approx(hourly[0][1])  # same hour, same end stamp, same mean
    _, days = _as_readonly(url, f"SELECT time FROM grafana_series_gapfilled('KEN', 'pm25', '{data.start.isoformat()}', "
                                f"'{data.end.isoformat()}', interval '1 day')")
    assert all(t.astimezone(timezone(timedelta(hours=-5))).hour == 0 for (t,) in days)  # Bogotá midnights


def test_nearest_station_is_the_haversine_nearest(pipeline_db) -> None:
    url, _ = pipeline_db
    _, rows = _as_readonly(url, "SELECT n.station_id, n.distance_km, m.lat_deg, m.lon_deg "
                                "FROM grafana_nearest_station n "
                                "JOIN grafana_sensors m ON m.sensor_id = n.microsensor_id "
                                "WHERE n.microsensor_id = 'MS08' AND n.variable = 'pm25'")
    station, km, lat, lon = rows[0]
    _, stations = _as_readonly(url, "SELECT DISTINCT s.sensor_id, s.lat_deg, s.lon_deg FROM grafana_sensors s JOIN "
                                    "grafana_sensor_variables v USING (sensor_id) WHERE s.kind = 'station' AND "
                                    "v.variable = 'pm25'")

    def haversine(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
        p1, p2 = math.radians(a_lat), math.radians(b_lat)
        h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b_lon - a_lon) / 2) ** 2
        return 2 * 6371.0088 * math.asin(math.sqrt(h))  # IUGG mean Earth radius, km
    best = min(stations, key=lambda s: haversine(lat, lon, s[1], s[2]))
    assert station == best[0] and km == pytest.approx(haversine(lat, lon, best[1], best[2]))


def test_read_only_role_cannot_write_nor_read_token_hashes(pipeline_db) -> None:
    url, _ = pipeline_db
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_readonly(url, "SELECT count(*) FROM api_tokens")
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE aqnet_readonly")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM measurements")


def test_expander_output_is_what_postgres_parses(pipeline_db) -> None:
    # Grafana's $__timeFilter / $__timeGroup output runs unchanged on our TimescaleDB (a macro argument cannot
    # hold a ')': Grafana's pattern stops at the first one, hence the subquery)
    url, data = pipeline_db
    q, fill = expand_macros("SELECT $__timeGroupAlias(time, '1h', 0), count(*) FROM (SELECT time, extract(epoch "
                            "from time) AS epoch_s FROM grafana_measurements_valid) v WHERE $__timeFilter(time) AND "
                            "$__unixEpochFilter(epoch_s) GROUP BY 1", data.start, data.end)
    names, rows = _as_readonly(url, q)
    assert names[0] == "time" and len(rows) in (26, 27) and fill is not None and fill.value == 0
    assert expand_variables("${s:sqlstring}", {"s": ["KEN", "MS08"]}) == "'KEN','MS08'"
