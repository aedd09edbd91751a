"""`aqnet sensors add|list|show|update|move|calibrate|swap|maintenance|retire|import|export|history` through
click's CliRunner against a real TimescaleDB: the technician's flow with its audit trail, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from aqnet.cli import cli

MS = ["--name", "Microsensor 90", "--kind", "microsensor", "--lat", "4.65", "--lon", "-74.1",
      "--locality", "Chapinero", "--profile", "aqnet-json", "--protocol", "mqtt", "--variables", "pm25 pm10",
      "--topic", "aqnet/MS90/readings", "--firmware", "NRZ-2024-135"]


def aq(url: str, *args: str, actor: str = "ana") -> Result:
    argv = ["sensors", *args, "--url", url]
    if args[0] not in ("list", "show", "export", "history"):
        argv += ["--actor", actor]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def refused(result: Result, message: str) -> str:
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    return result.output


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_technician_flow_with_audit_trail(database_url: str) -> None:
    """add → commission → active → recalibrate → swap → maintenance → retire; the history shows each step."""
    url = database_url
    out = ok(aq(url, "add", "MS90", *MS))
    assert "added MS90 (planned)" in out and "aqnet/MS90/readings" in out
    assert "MS90 is now commissioning" in ok(aq(url, "commission", "MS90"))
    assert "MS90 is now active" in ok(aq(url, "activate", "MS90", "--reason", "sensors test PASS"))
    out = ok(aq(url, "calibrate", "MS90", "--variable", "pm25", "--kind", "linear", "--coefficients", "0.8 1.5",
                "--unit", "ug/m3", "--from", "2026-05-01", "--source", "co-location with USQ"))
    assert "device MS90 pm25 linear [0.8, 1.5] (ug/m3) from 2026-05-01 00:00 -05" in out
    out = ok(aq(url, "swap", "MS90", "--old", "MS90", "--device", "MS90-b", "--firmware", "NRZ-2025-001"))
    assert "swapped MS90 → MS90-b" in out
    shown = json.loads(ok(aq(url, "show", "MS90", "--json")))
    [dev] = shown["devices"]
    assert (dev["id"], dev["topic"], dev["firmware"], dev["variables"], dev["primary"]) == (
        "MS90-b", "aqnet/MS90/readings", "NRZ-2025-001", ["pm25", "pm10"], True)
    out = ok(aq(url, "maintenance", "MS90", "--from", "2026-05-02T08:00", "--to", "2026-05-02T12:00",
                "--reason", "fan replaced", "--variable", "pm25"))
    assert "2026-05-02 08:00 -05" in out and "fan replaced" in out
    assert "MS90 is now retired" in ok(aq(url, "retire", "MS90", "--reason", "vandalised"))
    refused(aq(url, "retire", "MS90"), "sensor MS90: cannot go from retired to retired: it is already retired")

    history = json.loads(ok(aq(url, "history", "MS90", "--json")))
    assert [e["action"] for e in reversed(history)] == [
        "sensor.add", "sensor.lifecycle", "sensor.lifecycle", "calibration.add", "device.swap", "maintenance.add",
        "sensor.lifecycle"]
    assert {e["actor"] for e in history} == {"ana"}
    assert history[0]["before"] == {"lifecycle": "active"}
    assert history[0]["after"] == {"lifecycle": "retired", "reason": "vandalised"}
    table = ok(aq(url, "history", "MS90"))
    assert "device.swap" in table and 'lifecycle: "active" → "retired"' in table
    assert rows(url, "SELECT device_id, replaced_by FROM device_history WHERE removed_at IS NOT NULL "
                     "ORDER BY installed_at") == [("MS90", "MS90-b"), ("MS90-b", None)]


def test_list_show_update_move_and_json(database_url: str) -> None:
    url = database_url
    ok(aq(url, "import", "--bundled"))
    listed = ok(aq(url, "list", "--kind", "station"))
    header, first = listed.splitlines()[:2]
    assert header.split() == ["ID", "KIND", "LIFECYCLE", "DEVICES", "LAT", "LON", "LOCALITY", "NAME"]
    assert first.split()[:3] == ["BOL", "station", "active"] and listed.rstrip().endswith("19 sensors")
    assert header.index("KIND") == first.index("station")  # aligned
    assert len(json.loads(ok(aq(url, "list", "--json")))) == 44
    out = ok(aq(url, "update", "MS01", "--notes", "key at the porter's lodge", "--mobile"))
    assert "key at the porter's lodge" in out and "(mobile)" in out
    ok(aq(url, "move", "MS01", "--lat", "4.7", "--lon", "-74.05", "--address", "Cl 100 # 19-61"))
    shown = json.loads(ok(aq(url, "show", "MS01", "--json")))
    assert shown["location"]["lat"] == 4.7 and shown["location"]["address"] == "Cl 100 # 19-61"
    assert shown["location"]["locality"]  # unchanged, not blanked
    [move, update] = json.loads(ok(aq(url, "history", "MS01", "--json", "--limit", "2")))
    assert move["action"] == "sensor.move" and move["after"] == {"lat": 4.7, "lon": -74.05,
                                                                 "address": "Cl 100 # 19-61"}
    assert update["action"] == "sensor.update"


def test_bad_input_is_refused_with_a_specific_message(database_url: str) -> None:
    url = database_url
    ok(aq(url, "add", "MS90", *MS))
    refused(aq(url, "add", "MS90", *MS), "sensor MS90: already in the registry")
    out = refused(aq(url, "add", "MS91", *MS, "--device", "MS91"),
                  "sensor MS91: topic aqnet/MS90/readings is already used by sensor MS90 (device MS90)")
    assert rows(url, "SELECT count(*) FROM sensors") == [(1,)], out
    refused(aq(url, "add", "MS92", *[a if a != "aqnet-json" else "sensor-community" for a in MS]),
            "payload format 'sensor-community' is unknown")
    refused(aq(url, "add", "ST9", "--name", "S", "--kind", "station", "--lat", "4.6", "--lon", "-74", "--device",
               "ST9-pm", "--profile", "t9999", "--protocol", "modbus-tcp", "--variables", "pm25", "--host", "h",
               "--port", "502", "--unit-id", "1"), "profile 't9999' is not a known device profile")
    refused(aq(url, "add", "MS93", *[a if a != "4.65" else "94.65" for a in MS]),
            "sensor MS93: location.lat: Input should be less than or equal to 90, got 94.65")
    bad_json = json.loads(refused(aq(url, "move", "MS90", "--lat", "4.6", "--lon", "-200", "--json"), "error"))
    assert bad_json["error"]["code"] == "out_of_range" and bad_json["error"]["field"] == "lon"
    refused(aq(url, "calibrate", "MS90", "--variable", "pm25", "--kind", "linear", "--coefficients", "0 1",
               "--unit", "ug/m3"), "linear: expected coefficients (a, b) with a ≠ 0")
    refused(aq(url, "calibrate", "MS90", "--variable", "no2", "--kind", "linear", "--coefficients", "1 0",
               "--unit", "ppb"), "no device in service measures no2")
    refused(aq(url, "activate", "MS90"), "cannot go from planned to active")
    refused(aq(url, "show", "NOPE"), "sensor NOPE: not in the registry")
    refused(aq(url, "maintenance", "MS90", "--to", "+2h", "--from", "+3h", "--reason", "x"),
            "must be after starts_at")
    usage = aq(url, "maintenance", "MS90", "--to", "+2h")
    assert usage.exit_code == 2 and "--reason" in usage.output
    assert rows(url, "SELECT count(*) FROM audit_log") == [(1,)]  # only the first add


def test_import_export_round_trip_and_failed_import_changes_nothing(database_url: str, tmp_path: Path) -> None:
    url = database_url
    ok(aq(url, "import", "--bundled"))
    for fmt in ("yaml", "csv"):
        path = tmp_path / f"network.{fmt}"
        ok(CliRunner().invoke(cli, ["sensors", "export", "--url", url, "-o", str(path)]))
        assert "added 0" not in (out := ok(aq(url, "import", str(path))))
        assert "0 added, 0 updated, 44 unchanged" in out
    # edit the YAML as a city would in version control: MS07 reuses MS03's topic, 200+ lines down
    path = tmp_path / "network.yaml"
    text = path.read_text(encoding="utf-8")
    ms07 = text.index("- id: MS07\n")
    edited = text[:ms07] + text[ms07:].replace("aqnet/MS07/readings", "aqnet/MS03/readings", 1)
    edited = edited.replace("name: Usaquén", "name: Usaquén (renamed)", 1)
    path.write_text(edited, encoding="utf-8")
    line = edited[:edited.index("aqnet/MS03/readings", ms07)].count("\n") + 1
    before = rows(url, "SELECT max(id) FROM audit_log")
    out = refused(aq(url, "import", str(path)), f"{path}:{line}: sensors[")
    assert "devices[0].topic: sensor MS07: topic aqnet/MS03/readings is already used by sensor MS03" in out
    assert "nothing was imported" in out
    assert rows(url, "SELECT name FROM sensors WHERE id = 'USQ'") == [("Usaquén",)]
    assert rows(url, "SELECT max(id) FROM audit_log") == before
    # a syntax-level problem in CSV names the line and column
    csv_path = tmp_path / "network.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace(",modbus-tcp,", ",modbus-udp,", 1)
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused(aq(url, "import", str(csv_path)), f"{csv_path}:6: protocol: sensor")
    # a good edit goes through and is audited
    path.write_text(text.replace("name: Usaquén", "name: Usaquén (renamed)", 1), encoding="utf-8")
    assert "0 added, 1 updated, 43 unchanged" in ok(aq(url, "import", str(path), actor="city-git"))
    [entry] = json.loads(ok(aq(url, "history", "USQ", "--json", "--limit", "1")))
    assert (entry["actor"], entry["action"], entry["after"]) == ("city-git", "sensor.import",
                                                                 {"name": "Usaquén (renamed)"})
