"""storage/spool/codec.py, without files: record framing (pure, hypothesis) and the batch codec."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import typing
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.reading import QC, Reading
from sensors.delivery import Delivery
from storage.spool.codec import BatchCodec, frame_record, scan_records

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def reading(i: int = 0, *, sensor: str = "USQ", value: float | None = None, **kw: object) -> Reading:
    t = T0 + timedelta(seconds=i)
    fields: dict[str, object] = dict(sensor_id=sensor, device_id=f"{sensor}-pm", variable="pm25", time=t,
                                     value=float(i) if value is None else value, unit="µg/m³", flags=QC(0),
                                     raw_value=float(i), raw_unit="ug/m3", received_at=t + timedelta(seconds=2))
    fields.update(kw)
    return Reading(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- framing


payloads = st.lists(st.tuples(st.binary(min_size=1, max_size=200), st.integers(0, 2**32 - 1)), max_size=8)


@given(payloads)
def test_framed_records_scan_back_exactly(records: list[tuple[bytes, int]]) -> None:
    data = b"".join(frame_record(p, n) for p, n in records)
    spans, end, why = scan_records(data)
    assert why is None and end == len(data)
    assert [(data[s.offset + 12:s.offset + s.size], s.readings) for s in spans] == records


@given(payloads.filter(bool), st.data())
def test_any_truncation_keeps_exactly_the_complete_records(records: list[tuple[bytes, int]],
                                                           data: st.DataObject) -> None:
    frames = [frame_record(p, n) for p, n in records]
    whole = b"".join(frames)
    cut = data.draw(st.integers(0, len(whole) - 1))
    spans, end, why = scan_records(whole[:cut])
    complete, boundary = 0, 0
    for f in frames:
        if boundary + len(f) > cut:
            break
        boundary += len(f)
        complete += 1
    assert len(spans) == complete and end == boundary
    assert (why is None) == (cut == boundary)


@given(payloads.filter(bool), st.data())
def test_a_corrupted_byte_is_never_read_as_a_record(records: list[tuple[bytes, int]], data: st.DataObject) -> None:
    frames = [frame_record(p, n) for p, n in records]
    whole = bytearray(b"".join(frames))
    pos = data.draw(st.integers(0, len(whole) - 1))
    whole[pos] ^= data.draw(st.integers(1, 255))
    spans, end, why = scan_records(bytes(whole))
    # every record before the damaged one survives, the damaged one and what follows never do
    damaged = next(i for i in range(len(frames)) if sum(map(len, frames[:i + 1])) > pos)
    assert len(spans) == damaged and end == sum(map(len, frames[:damaged])) and why is not None


def test_zeroed_tail_is_not_a_record() -> None:
    # a crash can leave a file extended with zeros (delayed allocation): never a valid empty record
    spans, end, why = scan_records(frame_record(b"x", 1) + bytes(64))
    assert len(spans) == 1 and end == 13 and why == "zero-length record"


# --------------------------------------------------------------------------------------------- codec


def test_codec_round_trips_every_field_of_reading() -> None:
    codec = BatchCodec()
    # a value for every field, none left at its default, built from the field types: a field added to Reading
    # later is covered by this test without editing it
    samples: dict[object, object] = {str: "x-µ", float: 12.25, int: 7, datetime: T0, QC: QC.SPIKE | QC.CALIBRATED,
                                     Delivery: Delivery("mqtt:aqnet-1:7:ab", math.inf)}
    hints = typing.get_type_hints(Reading)
    fields = {}
    for f in dataclasses.fields(Reading):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        assert args[0] in samples, f"add a sample value for {hint} (field {f.name})"
        fields[f.name] = samples[args[0]]
    fields["time"] = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    original = Reading(**fields)  # type: ignore[arg-type]
    (back,) = codec.decode(codec.encode([original]), "test")
    assert back == original
    for f in dataclasses.fields(Reading):
        assert type(getattr(back, f.name)) is type(getattr(original, f.name)), f.name
    assert back.time.utcoffset() == timedelta(hours=-5)


def test_codec_keeps_nan_and_none() -> None:
    codec = BatchCodec()
    (back,) = codec.decode(codec.encode([reading(value=math.nan, raw_value=math.nan)]), "test")
    assert math.isnan(back.value) and math.isnan(back.raw_value)
    none_fields = [f.name for f in dataclasses.fields(Reading) if f.default is None]
    assert all(getattr(back, n) is None for n in none_fields)


def test_codec_tolerates_fields_added_or_removed_since_spooling(caplog: pytest.LogCaptureFixture) -> None:
    codec = BatchCodec()
    doc = json.loads(codec.encode([reading(3)]))
    optional = [f.name for f in dataclasses.fields(Reading) if f.default is not dataclasses.MISSING]
    keep = [i for i, n in enumerate(doc["fields"]) if n not in optional]  # spooled by an older Reading
    doc["fields"] = [doc["fields"][i] for i in keep] + ["gone_field"]
    doc["rows"] = [[row[i] for i in keep] + [1] for row in doc["rows"]]
    with caplog.at_level(logging.WARNING):
        (back,) = codec.decode(json.dumps(doc).encode(), "spool x")
    assert back == reading(3)
    assert "gone_field" in caplog.text


@given(st.lists(st.tuples(st.floats(allow_nan=False), st.integers(0, (1 << 10) - 1),
                          st.text(max_size=20), st.datetimes(timezones=st.just(UTC))), min_size=1, max_size=20))
def test_codec_round_trips_values_flags_and_times(rows: list[tuple[float, int, str, datetime]]) -> None:
    codec = BatchCodec()
    original = [reading(value=v, flags=QC(f), raw_unit=u, time=t) for v, f, u, t in rows]
    assert codec.decode(codec.encode(original), "test") == original
