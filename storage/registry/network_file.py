"""The whole network as a file a city keeps in version control: YAML or CSV to SensorSpecs and back. Pure.

YAML: a mapping with `sensors:`, a list of sensors as `SensorSpec` (storage.registry.models) writes them,
devices nested; `dump_network` writes exactly that, leaving out empty and default device fields.
CSV: one row per device (a sensor without devices: one row with an empty `device_id`); the sensor's columns
repeat on each of its rows and must agree; `variables` and `channels` are separated by spaces; empty cells
take the default. `lifecycle` left out (absent key, empty cell) means "keep the registry's" on import.

Errors are `NetworkFileError` naming the source, line and field at fault (`network.yaml:42: sensors[3].
devices[0].port: …`); `line_of` finds the line of a field for errors found later, in the database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from storage.registry.models import SensorSpec, error_from_validation

__all__ = ["CSV_COLUMNS", "NetworkFileError", "dump_network", "line_of", "parse_network"]

Format = Literal["yaml", "csv"]
_SENSOR_COLUMNS = ("sensor_id", "name", "kind", "lat", "lon", "elevation_m", "address", "locality", "mobile",
                   "lifecycle", "notes")
_DEVICE_COLUMNS = ("device_id", "profile", "protocol", "variables", "firmware", "host", "port", "unit_id",
                   "serial_port", "baudrate", "parity", "stopbits", "bytesize", "topic", "client_id",
                   "hardware_serial", "channels", "primary")
#: the CSV header, in order
CSV_COLUMNS: tuple[str, ...] = _SENSOR_COLUMNS + _DEVICE_COLUMNS
_LOCATION = ("lat", "lon", "elevation_m", "address", "locality")
_LISTS = ("variables", "channels")


class NetworkFileError(ValueError):
    """A network file that cannot be imported: `source`, `line` (1-based, None when unknown), `field`."""

    def __init__(self, source: str, line: int | None, field: str | None, message: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        self.source = source
        self.line = line
        self.field = field
        self.message = message


# ---- YAML ---------------------------------------------------------------------------------------------------

def _yaml_nodes(text: str, source: str) -> tuple[list[Any], list[yaml.Node]]:
    """The sensors as data and as YAML nodes (for line numbers)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise NetworkFileError(source, mark.line + 1 if mark else None, None,
                               f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return [], []
    if isinstance(data, dict) and set(data) == {"sensors"} and isinstance(root, yaml.MappingNode):
        data = data["sensors"]
        root = root.value[0][1]
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise NetworkFileError(source, 1, None, "expected a mapping with one key, sensors: a list of sensors")
    return data or [], list(root.value)


def _node_at(node: yaml.Node, path: Sequence[str | int]) -> yaml.Node:
    """The deepest node along `path` (mapping keys and list indices)."""
    for step in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node


def _parse_yaml(text: str, source: str) -> list[SensorSpec]:
    data, nodes = _yaml_nodes(text, source)
    specs = []
    for i, (item, node) in enumerate(zip(data, nodes, strict=True)):
        if not isinstance(item, dict):
            raise NetworkFileError(source, node.start_mark.line + 1, f"sensors[{i}]", "expected a mapping")
        try:
            specs.append(SensorSpec.model_validate(item, strict=False))
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            err = error_from_validation(exc, f"sensor {item.get('id', f'#{i + 1}')}")
            line = _node_at(node, [p for p in loc if isinstance(p, str | int)]).start_mark.line + 1
            raise NetworkFileError(source, line, f"sensors[{i}].{err.field}" if err.field else f"sensors[{i}]",
                                   err.message) from None
    return specs


def _dump_yaml(specs: Sequence[SensorSpec]) -> str:
    sensors = []
    for spec in specs:
        doc = spec.model_dump(mode="json", exclude_none=True)
        for key, default in (("mobile", False), ("notes", "")):
            if doc[key] == default:
                del doc[key]
        doc["location"] = {k: v for k, v in doc["location"].items() if v != ""}
        for dev in doc["devices"]:
            if dev["channels"] == []:
                del dev["channels"]
            if dev["primary"]:
                del dev["primary"]
        if not doc["devices"]:
            del doc["devices"]
        sensors.append(doc)
    return yaml.safe_dump({"sensors": sensors}, allow_unicode=True, sort_keys=False, width=120)


# ---- CSV ----------------------------------------------------------------------------------------------------

def _csv_rows(text: str, source: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise NetworkFileError(source, 1, unknown[0], f"unknown column; expected {', '.join(CSV_COLUMNS)}")
    for required in ("sensor_id", "name", "kind", "lat", "lon"):
        if required not in header:
            raise NetworkFileError(source, 1, required, "missing column")
    rows = []
    for row in reader:
        if None in row:
            raise NetworkFileError(source, reader.line_num, None, f"{len(header) + len(row[None])} cells; "
                                   f"the header has {len(header)}")
        if any((v or "").strip() for v in row.values()):
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
    return rows


def _csv_group(rows: list[tuple[int, dict[str, str]]], source: str
               ) -> list[tuple[dict[str, Any], list[int], list[str]]]:
    """Sensors as dicts in file order, with the line of each of their rows and the columns those rows set."""
    by_id: dict[str, tuple[dict[str, Any], list[int], list[str]]] = {}
    for line, row in rows:
        sid = row["sensor_id"]
        if not sid:
            raise NetworkFileError(source, line, "sensor_id", "empty; every row names its sensor")
        sensor = {k: row[k] for k in _SENSOR_COLUMNS if row.get(k)}
        doc = {"id": sid, **{k: v for k, v in sensor.items() if k not in _LOCATION and k != "sensor_id"},
               "location": {k: sensor[k] for k in _LOCATION if k in sensor}}
        if sid in by_id:
            first, lines, _ = by_id[sid]
            for key in set(first) | set(doc):
                if key != "devices" and first.get(key) != doc.get(key):
                    column = "lat/lon/…" if key == "location" else key
                    raise NetworkFileError(source, line, column, f"sensor {sid}: differs from its first row "
                                           f"(line {lines[0]}); a sensor's columns must agree on all its rows")
        else:
            by_id[sid] = ({**doc, "devices": []}, [], [])
        entry = by_id[sid]
        entry[1].append(line)
        if row.get("device_id"):
            dev: dict[str, Any] = {"id": row["device_id"]}
            for column in _DEVICE_COLUMNS[1:]:
                if row.get(column):
                    dev[column] = row[column].split() if column in _LISTS else row[column]
            entry[0]["devices"].append(dev)
    return list(by_id.values())


def _parse_csv(text: str, source: str) -> list[SensorSpec]:
    specs = []
    for doc, lines, _ in _csv_group(_csv_rows(text, source), source):
        try:
            specs.append(SensorSpec.model_validate(doc, strict=False))
        except ValidationError as exc:
            err = error_from_validation(exc, f"sensor {doc['id']}")
            line, column = _csv_locate(doc, lines, err.field or "")
            raise NetworkFileError(source, line, column, err.message) from None
    return specs


def _csv_locate(doc: dict[str, Any], lines: list[int], field: str) -> tuple[int, str]:
    """The CSV line and column of a SensorSpec field path such as devices[1].port or location.lat."""
    if field.startswith("devices["):
        j = int(field[len("devices["):field.index("]")])
        rest = field[field.index("]") + 2:] if "]." in field else ""
        column = rest.split(".")[0].split("[")[0] or "device_id"
        offset = 1 if lines and len(lines) > len(doc["devices"]) else 0  # a device-less first row
        return lines[min(j + offset, len(lines) - 1)], "device_id" if column == "id" else column
    if field.startswith("location"):
        column = field.rsplit(".", maxsplit=1)[-1].split("[", maxsplit=1)[0]
    else:
        column = field.split(".", maxsplit=1)[0]
    return lines[0], {"id": "sensor_id"}.get(column, column or "sensor_id")


def _dump_csv(specs: Sequence[SensorSpec]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for spec in specs:
        loc = spec.location
        sensor = {"sensor_id": spec.id, "name": spec.name, "kind": spec.kind, "lat": loc.lat, "lon": loc.lon,
                  "elevation_m": loc.elevation_m, "address": loc.address, "locality": loc.locality,
                  "mobile": "true" if spec.mobile else "", "lifecycle": spec.lifecycle, "notes": spec.notes}
        if not spec.devices:
            writer.writerow({k: "" if v is None else v for k, v in sensor.items()})
        for dev in spec.devices:
            row = dict(sensor, device_id=dev.id)
            for column in _DEVICE_COLUMNS[1:]:
                value = getattr(dev, column)
                row[column] = " ".join(value) if column in _LISTS else value
            row["primary"] = "" if dev.primary else "false"
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


# ---- the surface --------------------------------------------------------------------------------------------

def parse_network(text: str, *, source: str, fmt: Format) -> list[SensorSpec]:
    """The sensors of a network file; NetworkFileError naming the line and field of the first problem."""
    if fmt == "yaml":
        return _parse_yaml(text, source)
    if fmt == "csv":
        return _parse_csv(text, source)
    raise ValueError(f"format: expected yaml or csv, got {fmt!r}")


def dump_network(specs: Sequence[SensorSpec], *, fmt: Format) -> str:
    """The network as a YAML or CSV file that `parse_network` reads back to the same specs."""
    if fmt == "yaml":
        return _dump_yaml(specs)
    if fmt == "csv":
        return _dump_csv(specs)
    raise ValueError(f"format: expected yaml or csv, got {fmt!r}")


def line_of(text: str, *, fmt: Format, index: int, field: str | None) -> int | None:
    """The line of sensor number `index` (0-based, file order) and its `field` (a SensorSpec path such as
    devices[0].topic), for errors found after parsing (a topic already used in the registry); None if unknown."""
    try:
        if fmt == "yaml":
            _, nodes = _yaml_nodes(text, "")
            path: list[str | int] = []
            for part in (field or "").replace("]", "").replace("[", ".").split("."):
                if part:
                    path.append(int(part) if part.isdigit() else part)
            return _node_at(nodes[index], path).start_mark.line + 1
        groups = _csv_group(_csv_rows(text, ""), "")
        doc, lines, _ = groups[index]
        return _csv_locate(doc, lines, field or "")[0]
    except (NetworkFileError, IndexError, ValueError):
        return None
