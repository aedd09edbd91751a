"""`compile_decoder` (the poll's fast path) equals `decode_value` on every input: the shared vectors, random
registers for every type × order × scaling, bad registers and counts (the same ValueError), and the bundled
profiles' own golden vectors; `DevicePlan.status_bits` equals the status functions it remembers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.modbus.decode import (
    DATA_TYPES,
    ORDERS,
    Codec,
    compile_decoder,
    decode_value,
    device_status,
    register_count,
    status_flags,
    status_word,
)
from sensors.modbus.plan import device_plan, plan_requests
from sensors.modbus.profile import STATUS_FIELD, StatusBit, StatusRegister, list_profiles, load_profile

VECTORS = json.loads((Path(__file__).parents[2] / "data" / "modbus_vectors.json").read_text(encoding="utf-8"))
TYPE_ORDERS = [(t, o) for t in DATA_TYPES if t != "bool" for o in (None, *ORDERS[register_count(t)])]


def _same(a: Any, b: Any) -> bool:
    """Equal value and type; NaN equals NaN (a float register may hold one)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _outcome(fn: Any, registers: Any) -> tuple[str, Any]:
    try:
        return "value", fn(registers)
    except ValueError as exc:
        return "error", str(exc)


def _agree(codec: Codec, registers: Any) -> None:
    slow = _outcome(lambda r: decode_value(r, codec), registers)
    fast = _outcome(compile_decoder(codec), registers)
    assert slow[0] == fast[0], (codec, registers, slow, fast)
    if slow[0] == "error":
        assert slow == fast
    else:
        assert _same(slow[1], fast[1]), (codec, registers, slow, fast)


@pytest.mark.parametrize("vec", VECTORS, ids=[f"{v['type']}-{v['order']}-{i}" for i, v in enumerate(VECTORS)])
def test_shared_vectors_decode_alike(vec: dict[str, Any]) -> None:
    _agree(Codec(vec["type"], vec["order"], scale=vec.get("scale", 1.0)), vec["registers"])


@st.composite
def _codec_and_registers(draw: st.DrawFn) -> tuple[Codec, list[int]]:
    data_type, order = draw(st.sampled_from(TYPE_ORDERS))
    scaled = draw(st.booleans())
    scale = draw(st.sampled_from([0.1, -2.0, 1e-3, 10.0])) if scaled else 1.0
    offset = draw(st.sampled_from([0.0, -40.0, 273.15])) if draw(st.booleans()) else 0.0
    registers = draw(st.lists(st.integers(0, 0xFFFF), min_size=register_count(data_type),
                              max_size=register_count(data_type)))
    return Codec(data_type, order, scale=scale, offset=offset), registers


@given(_codec_and_registers())
def test_random_registers_decode_alike(case: tuple[Codec, list[int]]) -> None:
    _agree(*case)


@given(st.sampled_from(TYPE_ORDERS), st.lists(st.one_of(st.integers(-5, 70_000), st.booleans(),
                                                          st.sampled_from([1.0, 2.5, float("nan")])),
                                                max_size=5))
def test_bad_registers_fail_alike(type_order: tuple[str, str | None], registers: list[Any]) -> None:
    _agree(Codec(*type_order), registers)


@given(st.lists(st.one_of(st.booleans(), st.integers(0, 2)), max_size=3), st.sampled_from([1.0, 0.5]),
       st.sampled_from([0.0, 1.0]))
def test_bits_decode_alike(registers: list[Any], scale: float, offset: float) -> None:
    _agree(Codec("bool", scale=scale, offset=offset), registers)


@pytest.mark.parametrize("name", list_profiles())
def test_profile_golden_vectors_decode_alike(name: str) -> None:
    profile = load_profile(name)
    assert profile.vectors, f"{name} ships no golden vector"
    for vec in profile.vectors:
        spec = profile.variable(vec.variable)
        assert _same(compile_decoder(spec)(list(vec.registers)), decode_value(list(vec.registers), spec))


@pytest.mark.parametrize("name", list_profiles())
def test_device_plan_is_the_read_plan(name: str) -> None:
    profile = load_profile(name)
    plan = device_plan(profile, profile.variable_names)
    assert list(plan.requests) == plan_requests(profile, profile.variable_names)
    assert [[(n, a, b - a) for n, a, b in cuts] for cuts in plan.cuts] == [
        [(f.name, f.offset, f.count) for f in r.fields] for r in plan.requests]
    assert [(n, s) for n, s, _ in plan.variables] == [(n, profile.variable(n)) for n in profile.variable_names]
    assert (STATUS_FIELD in {f.name for r in plan.requests for f in r.fields}) == (profile.status is not None)


_BITS = {0: StatusBit("fault", "device_invalid"), 3: StatusBit("cal", "maintenance"),
         5: StatusBit("ok", "device_invalid", when="clear")}


@given(st.integers(0, 0xFFFF), st.sampled_from(["AB", "BA", None]))
def test_status_bits_of_a_register_equal_the_status_functions(word: int, order: str | None) -> None:
    status = StatusRegister("input", 7, 7, "uint16", order, _BITS)
    profile = load_profile("sim-pm")
    plan = device_plan(profile, profile.variable_names)
    plan = type(plan)(plan.requests, plan.cuts, plan.variables, status, {})
    expected = device_status(status_flags(status_word([word], status), status))
    assert plan.status_bits([word]) == expected
    assert plan.status_bits([word]) == expected  # remembered: the same answer again


@given(st.lists(st.booleans(), min_size=6, max_size=8))
def test_status_bits_of_coils_equal_the_status_functions(bits: list[bool]) -> None:
    status = StatusRegister("coil", 0, 0, "bool", None, _BITS)
    profile = load_profile("sim-pm")
    plan = device_plan(profile, profile.variable_names)
    plan = type(plan)(plan.requests, plan.cuts, plan.variables, status, {})
    expected = device_status(status_flags(status_word(bits, status), status))
    assert plan.status_bits(bits) == expected
    assert plan.status_bits([int(b) for b in bits]) == expected
