"""The register codec: published vectors, round trips for every type × order, status bits."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import QC
from sensors.modbus.decode import (
    DATA_TYPES,
    DEVICE_STATUS_BITS,
    ORDERS,
    Codec,
    decode_value,
    device_status,
    encode_value,
    register_count,
    status_flags,
    status_word,
)
from sensors.modbus.profile import StatusBit, StatusRegister

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "modbus_vectors.json").read_text(encoding="utf-8"))
NUMERIC = [t for t in DATA_TYPES if t != "bool"]
TYPE_ORDERS = [(t, o) for t in NUMERIC for o in ORDERS[register_count(t)]]
INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
FLOAT_WIDTH = {"float16": 16, "float32": 32, "float64": 64}


def _f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def _matches(got: float, vec: dict[str, Any]) -> bool:
    expected = vec["expected"]
    match vec.get("compare"):
        case None:
            return got == expected
        case "float32_equal_after_scale":
            return _f32(got) == _f32(expected)
        case "abs_tol":
            return abs(got - expected) <= vec["tolerance"]
        case "float64_equal":
            return float(got) == float(expected)
        case "round6":
            return round(got, 6) == expected
        case "format_precision":
            return f"{got:.{vec['precision']}f}" == expected
    raise AssertionError(f"unknown compare mode {vec['compare']}")


@pytest.mark.parametrize("vec", VECTORS, ids=[f"{v['type']}-{v['order']}-{i}" for i, v in enumerate(VECTORS)])
def test_published_vectors(vec: dict[str, Any]) -> None:
    codec = Codec(vec["type"], vec["order"], scale=vec.get("scale", 1.0))
    got = decode_value(vec["registers"], codec)
    where = f"{vec['registers']} {vec['type']} {vec['order']}"
    assert _matches(got, vec), f"{where}: {got!r} != {vec['expected']!r}"


def test_vectors_cover_every_order_family() -> None:
    covered = {(v["type"], v["order"]) for v in VECTORS}
    assert {o for _, o in covered} >= {"AB", "BA", "ABCD", "CDAB", "BADC", "DCBA", "ABCDEFGH", "HGFEDCBA",
                                        "GHEFCDAB"}


def test_uint64_is_decoded_exactly() -> None:
    vec = next(v for v in VECTORS if v["type"] == "uint64")
    assert decode_value(vec["registers"], Codec("uint64", vec["order"])) == 2**64 - 1387387292028


def test_word_order_mistake_gives_the_denormal_symptom() -> None:
    # thermo_49iQ.md: [0x0000, 0x4248] is 50.0 as CDAB and a tiny denormal as ABCD
    assert decode_value([0x0000, 0x4248], Codec("float32", "CDAB")) == 50.0
    assert 0 < decode_value([0x0000, 0x4248], Codec("float32", "ABCD")) < 1e-40


@pytest.mark.parametrize(("data_type", "order"), [(t, o) for t, o in TYPE_ORDERS if t in INT_RANGE])
def test_integer_round_trip(data_type: str, order: str) -> None:
    lo, hi = INT_RANGE[data_type]
    codec = Codec(data_type, order)

    @given(st.integers(lo, hi))
    def check(raw: int) -> None:
        registers = encode_value(raw, codec)
        assert len(registers) == register_count(data_type)
        assert all(0 <= r <= 0xFFFF for r in registers)
        assert decode_value(registers, codec) == raw

    check()


@pytest.mark.parametrize(("data_type", "order"), [(t, o) for t, o in TYPE_ORDERS if t in FLOAT_WIDTH])
def test_float_round_trip(data_type: str, order: str) -> None:
    codec = Codec(data_type, order)

    @given(st.floats(width=FLOAT_WIDTH[data_type], allow_nan=False))  # type: ignore[arg-type]
    def check(value: float) -> None:
        assert decode_value(encode_value(value, codec), codec) == value

    check()
    assert math.isnan(decode_value(encode_value(math.nan, codec), codec))


@pytest.mark.parametrize(("data_type", "order"), TYPE_ORDERS)
def test_registers_round_trip(data_type: str, order: str) -> None:
    codec = Codec(data_type, order)
    words = st.lists(st.integers(0, 0xFFFF), min_size=register_count(data_type),
                     max_size=register_count(data_type))

    @given(words)
    def check(registers: list[int]) -> None:
        value = decode_value(registers, codec)
        if math.isnan(value):
            return  # NaN payloads need not survive
        assert encode_value(value, codec) == registers

    check()


@pytest.mark.parametrize("width", [2, 4])
def test_orders_are_the_datasheet_permutations(width: int) -> None:
    data_type = {2: "uint32", 4: "uint64"}[width]

    @given(st.integers(*INT_RANGE[data_type]))
    def check(raw: int) -> None:
        big = encode_value(raw, Codec(data_type))  # ABCD / ABCDEFGH
        swap_bytes = [((w & 0xFF) << 8) | (w >> 8) for w in big]
        little = {2: "DCBA", 4: "HGFEDCBA"}[width]
        assert encode_value(raw, Codec(data_type, little)) == swap_bytes[::-1]
        if width == 2:
            assert encode_value(raw, Codec(data_type, "CDAB")) == big[::-1]
            assert encode_value(raw, Codec(data_type, "BADC")) == swap_bytes
        else:
            assert encode_value(raw, Codec(data_type, "GHEFCDAB")) == big[::-1]
            assert encode_value(raw, Codec(data_type, "BADCFEHG")) == swap_bytes

    check()


@given(st.integers(-32768, 32767))
def test_scaled_int16_round_trip(raw: int) -> None:
    codec = Codec("int16", scale=0.1, offset=-40.0)
    value = raw * 0.1 - 40.0
    registers = encode_value(value, codec)
    assert registers == encode_value(raw, Codec("int16"))
    assert decode_value(registers, codec) == pytest.approx(value, abs=1e-9)


def test_scale_and_offset() -> None:
    assert decode_value([213], Codec("int16", scale=0.1)) == pytest.approx(21.3)
    assert decode_value([0, 56012], Codec("uint32", scale=0.01)) == pytest.approx(560.12)
    assert decode_value([100], Codec("uint16", scale=2, offset=-10)) == 190
    assert encode_value(21.3, Codec("int16", scale=0.1)) == [213]


def test_bool_values() -> None:
    assert decode_value([True], Codec("bool")) == 1.0
    assert decode_value([False], Codec("bool")) == 0.0
    assert encode_value(1.0, Codec("bool")) == [1]


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"float32: expected 2 register\(s\), got 1"):
        decode_value([1], Codec("float32"))
    with pytest.raises(ValueError, match=r"register: expected 0..65535, got 70000"):
        decode_value([70000], Codec("uint16"))
    with pytest.raises(ValueError, match=r"int16: 4000.0 .* does not fit"):
        encode_value(4000.0, Codec("int16", scale=0.1))
    with pytest.raises(ValueError, match=r"uint16: cannot encode nan"):
        encode_value(math.nan, Codec("uint16"))
    with pytest.raises(ValueError, match=r'order: expected ABCD\|CDAB\|BADC\|DCBA, got "CADB"'):
        Codec("float32", "CADB")
    with pytest.raises(ValueError, match=r'data_type: expected bool\|int16.*got "real"'):
        Codec("real")
    with pytest.raises(ValueError, match="scale"):
        Codec("int16", scale=0)
    with pytest.raises(ValueError):
        register_count("int8")


def _status(table: str = "holding", order: str | None = "AB") -> StatusRegister:
    bits = {0: StatusBit("invalid", "device_invalid"), 1: StatusBit("maint", "maintenance"),
            3: StatusBit("system ok", "device_invalid", when="clear"), 7: StatusBit("fan warning", None)}
    return StatusRegister(table, 0, 0, "uint16" if table in ("holding", "input") else "bool", order, bits)


def test_status_flags() -> None:
    status = _status()
    ok = 1 << 3
    assert status_flags(ok, status) == frozenset()
    assert status_flags(ok | 1, status) == {"device_invalid"}
    assert status_flags(ok | 2, status) == {"maintenance"}
    assert status_flags(ok | 1 << 7, status) == frozenset()  # informative bit: no flag
    assert status_flags(0, status) == {"device_invalid"}  # "system OK" clear


def test_status_word_from_register_and_bits() -> None:
    assert status_word([0x0003], _status()) == 3
    assert status_word([0x0300], _status(order="BA")) == 3
    assert status_word([True, False, True], _status("discrete_input", None)) == 0b101


def test_device_status_bits_equal_ingest_qc() -> None:
    assert int(QC.DEVICE_INVALID) == DEVICE_STATUS_BITS["device_invalid"]
    assert int(QC.MAINTENANCE) == DEVICE_STATUS_BITS["maintenance"]
    assert set(DEVICE_STATUS_BITS) == {"device_invalid", "maintenance"}
    assert device_status({"device_invalid", "maintenance"}) == QC.DEVICE_INVALID | QC.MAINTENANCE
    assert device_status(()) == 0
