"""storage/registry/network_file.py: YAML and CSV network files, round trips, and errors naming line and field. Pure."""

from __future__ import annotations

import pytest

from sensors.network import bundled_network
from storage.registry import spec_from_sensor
from storage.registry.network_file import CSV_COLUMNS, NetworkFileError, dump_network, line_of, parse_network

BUNDLED = [spec_from_sensor(s) for s in bundled_network()]

YAML = """\
sensors:
- id: MS07
  name: Microsensor 7
  kind: microsensor
  location:
    lat: 4.6
    lon: -74.1
  devices:
  - id: MS07
    profile: aqnet-json
    protocol: mqtt
    variables: [pm25, pm10]
    topic: aqnet/MS07/readings
- id: ST1
  name: Station 1
  kind: station
  lifecycle: active
  location: {lat: 4.7, lon: -74.0}
  devices:
  - id: ST1-pm
    profile: sim-pm
    protocol: modbus-tcp
    variables: [pm10, pm25]
    host: 10.0.0.5
    port: 1502
    unit_id: 1
"""


@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_bundled_network_round_trips(fmt: str) -> None:
    text = dump_network(BUNDLED, fmt=fmt)  # type: ignore[arg-type]
    assert parse_network(text, source=f"network.{fmt}", fmt=fmt) == BUNDLED  # type: ignore[arg-type]


def test_yaml_reads_and_lifecycle_is_optional() -> None:
    ms, st = parse_network(YAML, source="n.yaml", fmt="yaml")
    assert ms.devices[0].topic == "aqnet/MS07/readings" and "lifecycle" not in ms.model_fields_set
    assert st.lifecycle == "active" and st.devices[0].port == 1502
    assert parse_network("", source="n.yaml", fmt="yaml") == []


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), [
    ("    lat: 4.6", "    lat: 94.6", 6, "sensors[0].location.lat", "less than or equal to 90"),
    ("    port: 1502", "    port: 0", 25, "sensors[1].devices[0].port", "greater than or equal to 1"),
    ("    topic: aqnet/MS07/readings\n", "", 9, "sensors[0].devices[0]", "mqtt needs a topic"),
    ("  kind: station", "  kind: tower", 16, "sensors[1].kind", "'station' or 'microsensor'"),
])
def test_yaml_error_names_line_and_field(old: str, new: str, line: int, field: str, message: str) -> None:
    with pytest.raises(NetworkFileError, match=message) as err:
        parse_network(YAML.replace(old, new), source="n.yaml", fmt="yaml")
    assert (err.value.line, err.value.field) == (line, field)
    assert str(err.value).startswith(f"n.yaml:{line}: {field}: sensor ")


def test_yaml_syntax_and_shape_errors() -> None:
    with pytest.raises(NetworkFileError, match=r"n.yaml:4: not valid YAML") as err:
        parse_network("sensors:\n- id: [\n  name: x\n", source="n.yaml", fmt="yaml")
    assert err.value.line == 4
    with pytest.raises(NetworkFileError, match="expected a mapping with one key, sensors"):
        parse_network("stations: []\n", source="n.yaml", fmt="yaml")


def csv_text(*rows: str) -> str:
    return ",".join(CSV_COLUMNS) + "\n" + "\n".join(rows) + "\n"


ROW_A = "ST1,Station 1,station,4.7,-74.0,,,,,active,,ST1-pm,sim-pm,modbus-tcp,pm10 pm25,,10.0.0.5,1502,1,,,,,,,,,,"
ROW_B = "ST1,Station 1,station,4.7,-74.0,,,,,active,,ST1-o3,sim-o3,modbus-tcp,o3,,10.0.0.5,1502,3,,,,,,,,,,"


def test_csv_groups_rows_by_sensor() -> None:
    [st] = parse_network(csv_text(ROW_A, ROW_B, ""), source="n.csv", fmt="csv")
    assert [d.id for d in st.devices] == ["ST1-pm", "ST1-o3"] and st.devices[0].variables == ["pm10", "pm25"]
    [bare] = parse_network(csv_text("X1,Planned site,microsensor,4.6,-74.1" + "," * 24), source="n.csv", fmt="csv")
    assert bare.devices == [] and "lifecycle" not in bare.model_fields_set


def test_csv_errors_name_line_and_column() -> None:
    with pytest.raises(NetworkFileError) as err:
        parse_network(csv_text(ROW_A, ROW_B.replace(",1502,3,", ",99999,3,")), source="n.csv", fmt="csv")
    assert (err.value.line, err.value.field) == (3, "port")
    assert "sensor ST1: devices[1].port" in str(err.value) and str(err.value).startswith("n.csv:3: port: ")
    with pytest.raises(NetworkFileError) as err:
        parse_network(csv_text(ROW_A.replace(",4.7,", ",97,")), source="n.csv", fmt="csv")
    assert (err.value.line, err.value.field) == (2, "lat")
    with pytest.raises(NetworkFileError, match="differs from its first row \\(line 2\\)") as err:
        parse_network(csv_text(ROW_A, ROW_B.replace("Station 1", "Station One")), source="n.csv", fmt="csv")
    assert (err.value.line, err.value.field) == (3, "name")
    with pytest.raises(NetworkFileError, match="n.csv:1: colour: unknown column"):
        parse_network("sensor_id,colour\n", source="n.csv", fmt="csv")
    with pytest.raises(NetworkFileError, match="n.csv:1: lat: missing column"):
        parse_network("sensor_id,name,kind,lon\n", source="n.csv", fmt="csv")


def test_line_of_finds_fields_found_wrong_later() -> None:
    assert line_of(YAML, fmt="yaml", index=0, field="devices[0].topic") == 13
    assert line_of(YAML, fmt="yaml", index=1, field="id") == 14
    assert line_of(csv_text(ROW_A, ROW_B), fmt="csv", index=0, field="devices[1].unit_id") == 3
    assert line_of(YAML, fmt="yaml", index=5, field="id") is None
