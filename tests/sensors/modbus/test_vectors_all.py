"""Every entry of the shared decode vectors (tests/data/modbus_vectors.json, an unchanged copy of
shared/samples/modbus/vectors.json written by other projects' test suites) decodes to its expected value, and
none is skipped: the count is asserted, so an entry dropped from the file or from the loop fails here."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from sensors.modbus.decode import Codec, decode_value

VECTORS_FILE = Path(__file__).parents[2] / "data" / "modbus_vectors.json"
#: entries in vectors.json as copied (libmodbus 1, Telegraf 22, pymodbus 9, Home Assistant 5)
EXPECTED_COUNT = 37


def _f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def _agrees(got: float, vec: dict[str, Any]) -> bool:
    expected = vec["expected"]
    compare = vec.get("compare")
    if compare is None:
        return got == expected
    if compare == "float32_equal_after_scale":  # Telegraf's expected literal is a float32
        return _f32(got) == _f32(expected)
    if compare == "abs_tol":
        return abs(got - expected) <= vec["tolerance"]
    if compare == "float64_equal":
        return float(got) == float(expected)
    if compare == "round6":
        return round(got, 6) == expected
    if compare == "format_precision":
        return f"{got:.{vec['precision']}f}" == expected
    raise AssertionError(f"unknown compare mode {compare!r}")


def test_all_vectors_decode_and_none_is_skipped() -> None:
    vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    assert len(vectors) == EXPECTED_COUNT
    decoded = 0
    wrong = []
    for i, vec in enumerate(vectors):
        codec = Codec(vec["type"], vec["order"], scale=vec.get("scale", 1.0))
        got = decode_value(vec["registers"], codec)
        if _agrees(got, vec):
            decoded += 1
        else:
            wrong.append(f"[{i}] {vec['registers']} {vec['type']} {vec['order']}: {got!r} != {vec['expected']!r}")
    assert not wrong, wrong
    assert decoded == EXPECTED_COUNT


def test_vectors_come_from_four_other_projects() -> None:
    vectors = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    projects = [v["source"].split(":")[0] for v in vectors]
    assert {p: projects.count(p) for p in set(projects)} == {
        "stephane/libmodbus": 1, "influxdata/telegraf": 22, "pymodbus-dev/pymodbus": 9, "home-assistant/core": 5}
