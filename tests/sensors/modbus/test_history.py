"""aqnet's history ring protocol: records ↔ registers, the ring's wrap-around, reads by whole records. Pure."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.modbus.decode import Codec, register_count
from sensors.modbus.history import (
    HEADER_REGISTERS,
    HistoryRecord,
    RecordField,
    RingHeader,
    RingLayout,
    decode_record,
    decode_ring,
    decode_slots,
    encode_header,
    encode_record,
    encode_ring,
    parse_header,
    read_chunks,
)
from sensors.modbus.profile import ProfileError, list_profiles, load_profile, parse_profile

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

#: data type → a strategy of values that type holds exactly (unscaled)
_EXACT = {
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "float16": st.floats(width=16, allow_nan=False),
    "float32": st.floats(width=32, allow_nan=False),
    "float64": st.floats(allow_nan=False),
}
_ORDERS = {1: ("AB", "BA"), 2: ("ABCD", "CDAB", "BADC", "DCBA"),
           4: ("ABCDEFGH", "HGFEDCBA", "GHEFCDAB", "BADCFEHG")}


@st.composite
def layouts(draw: st.DrawFn, max_capacity: int = 12) -> RingLayout:
    types = draw(st.lists(st.sampled_from(sorted(_EXACT)), min_size=1, max_size=6))
    fields = tuple(
        RecordField(f"v{i}", Codec(t, draw(st.sampled_from(_ORDERS[register_count(t)]))))
        for i, t in enumerate(types))
    return RingLayout(draw(st.sampled_from(["holding", "input"])), draw(st.integers(0, 1000)),
                      draw(st.integers(1, max_capacity)), fields)


@st.composite
def records(draw: st.DrawFn, layout: RingLayout, start: datetime = T0) -> HistoryRecord:
    offset = draw(st.integers(0, 10**8))
    values = {f.name: draw(_EXACT[f.spec.data_type]) for f in layout.fields}
    return HistoryRecord(start + timedelta(seconds=offset), values, draw(st.integers(0, 0xFFFF)))


@given(st.data())
def test_a_record_round_trips_exactly(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    record = data.draw(records(layout))
    words = encode_record(record, layout)
    assert len(words) == layout.record_size
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_record(words, layout) == record


@given(st.data())
def test_the_ring_keeps_the_newest_capacity_records_across_wrap_around(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    n = data.draw(st.integers(0, 3 * layout.capacity))
    written = [HistoryRecord(T0 + timedelta(minutes=k), {f.name: 0 for f in layout.fields}, k & 0xFFFF)
               for k in range(n)]
    words = encode_ring(written, layout)
    assert len(words) == layout.registers
    header = parse_header(words[:HEADER_REGISTERS], layout)
    assert header == RingHeader(n % layout.capacity, min(n, layout.capacity), layout.record_size, layout.capacity)
    assert decode_ring(words, layout) == written[-layout.capacity:] if n else decode_ring(words, layout) == []
    if n:  # the newest record sits just before the write index
        slot = (header.write_index - 1) % layout.capacity
        start = HEADER_REGISTERS + slot * layout.record_size
        assert decode_record(words[start:start + layout.record_size], layout) == written[-1]


@given(st.data())
def test_reads_cover_the_valid_slots_newest_first_in_whole_records(data: st.DataObject) -> None:
    layout = data.draw(layouts(max_capacity=200))
    n = data.draw(st.integers(0, 3 * layout.capacity))
    max_registers = data.draw(st.integers(layout.record_size, 125))
    header = RingHeader.after(n, layout)
    chunks = read_chunks(header, layout, max_registers)
    covered = [slot for first, count in chunks for slot in range(first + count - 1, first - 1, -1)]
    newest_first = [(header.write_index - 1 - k) % layout.capacity for k in range(header.record_count)]
    assert covered == newest_first
    for first, count in chunks:
        assert count >= 1 and first + count <= layout.capacity  # contiguous, never past the last slot
        assert count * layout.record_size <= max_registers


@given(st.data())
def test_reading_the_chunks_gives_back_the_records(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    n = data.draw(st.integers(1, 3 * layout.capacity))
    written = [data.draw(records(layout, T0 + timedelta(days=k))) for k in range(n)]
    words = encode_ring(written, layout)
    got = []
    for first, count in read_chunks(parse_header(words[:HEADER_REGISTERS], layout), layout):
        start = layout.slot_address(first) - layout.pdu_address
        got.extend(decode_slots(words[start:start + count * layout.record_size], layout))
    assert sorted(got, key=lambda r: r.time) == sorted(written[-layout.capacity:], key=lambda r: r.time)


def test_header_must_match_the_profile_layout() -> None:
    layout = RingLayout("holding", 0, 10, (RecordField("o3", Codec("float32")),))
    assert layout.record_size == 2 + 2 + 1 and layout.registers == 4 + 50
    assert parse_header([3, 3, 5, 10], layout) == RingHeader(3, 3, 5, 10)
    with pytest.raises(ValueError, match="the device says 10 records of 6 registers, the profile 10 of 5"):
        parse_header([0, 0, 6, 10], layout)
    with pytest.raises(ValueError, match="write index 10 and record count 10 do not fit a ring of 10"):
        parse_header([10, 10, 5, 10], layout)
    with pytest.raises(ValueError, match="not yet full must have write index = record count"):
        parse_header([1, 4, 5, 10], layout)
    assert encode_header(RingHeader.after(23, layout)) == [3, 10, 5, 10]


def test_times_are_whole_unix_seconds_in_uint32_abcd() -> None:
    layout = RingLayout("input", 0, 1, (RecordField("co", Codec("int16", scale=0.01)),))
    record = HistoryRecord(datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC), {"co": 0.84}, 0b10)
    words = encode_record(record, layout)
    seconds = int(record.time.timestamp())
    assert words == [seconds >> 16, seconds & 0xFFFF, 84, 0b10]
    back = decode_record(words, layout)
    assert back.time == record.time and back.status == 2 and back.values["co"] == pytest.approx(0.84)
    with pytest.raises(ValueError, match="uint32 seconds"):
        encode_record(HistoryRecord(datetime(1969, 12, 31, tzinfo=UTC), {"co": 1}), layout)
    with pytest.raises(ValueError, match="no value for co"):
        encode_record(HistoryRecord(T0, {}), layout)


def test_a_nan_float_stays_nan_and_empty_slots_are_skipped() -> None:
    layout = RingLayout("holding", 0, 4, (RecordField("no2", Codec("float32", "CDAB")),))
    words = encode_record(HistoryRecord(T0, {"no2": math.nan}), layout)
    assert math.isnan(decode_record(words, layout).values["no2"])
    assert decode_slots([0] * layout.record_size * 2 + words, layout)[0].time == T0


def test_layout_refuses_what_cannot_be_read() -> None:
    f32 = RecordField("o3", Codec("float32"))
    with pytest.raises(ValueError, match="expected holding|input"):
        RingLayout("coil", 0, 1, (f32,))
    with pytest.raises(ValueError, match="a record must fit one read"):
        RingLayout("holding", 0, 1, tuple(RecordField(f"v{i}", Codec("float64")) for i in range(31)))
    with pytest.raises(ValueError, match="each variable once, got o3"):
        RingLayout("holding", 0, 1, (f32, f32))
    with pytest.raises(ValueError, match="capacity: expected 1..65535"):
        RingLayout("holding", 0, 0, (f32,))
    with pytest.raises(ValueError, match="address: the ring needs 54 registers from PDU address 65500"):
        RingLayout("holding", 65500, 10, (f32,))


def test_every_sim_profile_has_a_ring_and_the_real_ones_may_not() -> None:
    for name in list_profiles():
        profile = load_profile(name)
        if name.startswith("sim-"):
            assert profile.history is not None and profile.history.protocol == "aqnet-ring-1", name
            assert [f.name for f in profile.history.layout.fields] == list(profile.variable_names)


_PROFILE = {
    "model": "X", "manufacturer": "x", "firmware": "1", "source": "test", "address_base": 1,
    "variables": {"o3": {"table": "holding", "address": 1, "data_type": "float32", "unit": "ppb",
                         "range": [0, 1000]}},
}


def test_profile_history_section_is_validated_in_the_technicians_words() -> None:
    ok = parse_profile("x", {**_PROFILE, "history": {"protocol": "aqnet-ring-1", "table": "holding",
                                                     "address": 101, "capacity": 8}}, "x.yaml")
    assert ok.history is not None and ok.history.address == 101 and ok.history.layout.pdu_address == 100
    cases = {
        'x.yaml: history.protocol: expected aqnet-ring-1, got "modbus-log"':
            {"protocol": "modbus-log", "table": "holding", "address": 101, "capacity": 8},
        'x.yaml: history.variables: expected variables of this profile (o3), got "no2"':
            {"protocol": "aqnet-ring-1", "table": "holding", "address": 101, "capacity": 8, "variables": ["no2"]},
        "x.yaml: history.address: the ring (holding 0..43, 0-based) overlaps variables.o3":
            {"protocol": "aqnet-ring-1", "table": "holding", "address": 1, "capacity": 8},
        "x.yaml: history.capacity: expected 1..65535 records, got 0":
            {"protocol": "aqnet-ring-1", "table": "holding", "address": 101, "capacity": 0},
        'x.yaml: history.table: a history ring lives in registers: expected holding|input, got "coil"':
            {"protocol": "aqnet-ring-1", "table": "coil", "address": 101, "capacity": 8},
        "x.yaml: history.where: unknown key":
            {"protocol": "aqnet-ring-1", "table": "holding", "address": 101, "capacity": 8, "where": 1},
    }
    for message, history in cases.items():
        with pytest.raises(ProfileError) as info:
            parse_profile("x", {**_PROFILE, "history": history}, "x.yaml")
        assert info.value.errors == (message,), info.value.errors
