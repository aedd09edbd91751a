"""Read plans: contiguous fields share a request, tables and gaps split them, at most 125 registers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.modbus.plan import MAX_REGISTERS, Field, Request, plan_requests, split_response
from sensors.modbus.profile import STATUS_FIELD, Profile, load_profile, parse_profile
from sensors.network import ANALYSERS


def _profile(variables: dict[str, dict[str, object]], status: dict[str, object] | None = None) -> Profile:
    data: dict[str, object] = {"model": "m", "manufacturer": "m", "firmware": "1", "source": "test",
                               "address_base": 0, "conditions": "local", "variables": variables}
    if status:
        data["status"] = status
    return parse_profile("t", data, "t.yaml")


def _var(table: str, address: int, data_type: str = "float32") -> dict[str, object]:
    return {"table": table, "address": address, "data_type": data_type, "unit": "x", "range": [0, 1]}


def test_sim_pm_is_one_request_with_its_status() -> None:
    assert plan_requests(load_profile("sim-pm")) == [
        Request("input", 0, 5, (Field("pm10", 0, 2), Field("pm25", 2, 2), Field(STATUS_FIELD, 4, 1)))]


def test_status_in_another_table_is_its_own_request() -> None:
    requests = plan_requests(load_profile("sim-nox"))
    assert [(r.table, r.address, r.count) for r in requests] == [("holding", 100, 1), ("input", 0, 6)]


def test_only_the_wanted_variables_are_read() -> None:
    requests = plan_requests(load_profile("sim-met"), ["temperature", "precipitation"], include_status=False)
    assert [(r.table, r.address, r.count, [f.name for f in r.fields]) for r in requests] == [
        ("input", 0, 1, ["temperature"]), ("input", 8, 2, ["precipitation"])]


def test_a_gap_splits_unless_allowed() -> None:
    profile = _profile({"o3": _var("input", 0), "no2": _var("input", 4)})
    assert [(r.address, r.count) for r in plan_requests(profile)] == [(0, 2), (4, 2)]
    merged = plan_requests(profile, max_gap=2)
    assert [(r.address, r.count) for r in merged] == [(0, 6)]
    assert merged[0].fields == (Field("o3", 0, 2), Field("no2", 4, 2))


def test_requests_never_exceed_125_registers() -> None:
    codes = ["pm10", "pm25", "no", "no2", "nox", "o3", "so2", "co", "co2", "bc", "bbp", "temperature"]
    profile = _profile({c: _var("holding", 60 * i, "float64") for i, c in enumerate(codes)})
    # 12 fields of 4 registers, every 60: contiguous only with max_gap=56
    requests = plan_requests(profile, max_gap=56)
    assert all(r.count <= MAX_REGISTERS for r in requests)
    assert sum(len(r.fields) for r in requests) == len(codes)
    assert [(r.address, r.count) for r in requests[:2]] == [(0, 124), (180, 124)]


@given(st.lists(st.integers(0, 3000), min_size=1, max_size=20, unique=True), st.integers(0, 40))
def test_every_field_lands_in_exactly_one_bounded_request(slots: list[int], max_gap: int) -> None:
    codes = sorted(ANALYSERS["sim-met"] + ANALYSERS["sim-nox"] + ANALYSERS["sim-pm"] + ("o3", "so2", "co"))
    chosen = dict(zip(codes, slots, strict=False))
    profile = _profile({c: _var("input", 4 * s) for c, s in chosen.items()})
    requests = plan_requests(profile, max_gap=max_gap)
    seen = [f.name for r in requests for f in r.fields]
    assert sorted(seen) == sorted(chosen)
    for r in requests:
        assert 1 <= r.count <= MAX_REGISTERS
        for f in r.fields:
            spec = profile.variable(f.name)
            assert r.address + f.offset == spec.pdu_address and f.count == spec.count


def test_bit_status_reads_up_to_its_highest_bit() -> None:
    profile = _profile({"o3": _var("input", 18)},
                       {"table": "discrete_input", "address": 19,
                        "bits": {0: {"name": "invalid", "flag": "device_invalid"},
                                 5: {"name": "system ok", "flag": "device_invalid", "when": "clear"}}})
    assert plan_requests(profile) == [Request("discrete_input", 19, 6, (Field(STATUS_FIELD, 0, 6),)),
                                      Request("input", 18, 2, (Field("o3", 0, 2),))]


def test_split_response() -> None:
    request = plan_requests(load_profile("sim-pm"))[0]
    assert split_response(request, [1, 2, 3, 4, 5]) == {"pm10": [1, 2], "pm25": [3, 4], STATUS_FIELD: [5]}
    bits = Request("coil", 0, 3, (Field("a", 0, 1), Field("b", 2, 1)))
    assert split_response(bits, [True, False, True, False, False, False, False, False]) == {
        "a": [True], "b": [True]}  # bit reads come back padded to a byte
    with pytest.raises(ValueError, match=r"input 0×5: response has only 4 value\(s\)"):
        split_response(request, [1, 2, 3, 4])


def test_request_checks_its_count() -> None:
    with pytest.raises(ValueError, match=r"count expected 1..125, got 126"):
        Request("holding", 0, 126, ())
    Request("coil", 0, 2000, ())


def test_unknown_variable_names_the_profile(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"profile sim-o3 .* has no variable 'no2'"):
        plan_requests(load_profile("sim-o3"), ["no2"])
