"""sensors.mqtt.payloads._time: every accepted timestamp form, the network zone for naive times, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.mqtt.payloads import PayloadError
from sensors.mqtt.payloads._time import device_time, parse_time

BOGOTA = ZoneInfo("America/Bogota")
KOLKATA = timezone(timedelta(hours=5, minutes=30))
T = datetime(2026, 3, 2, 12, 15, tzinfo=UTC)  # 07:15 in Bogotá (UTC-5, no DST)


@pytest.mark.parametrize(("raw", "expected"), [
    # ISO 8601 with an offset
    ("2026-03-02T12:15:00Z", T),
    ("2026-03-02T12:15:00z", T),
    ("2026-03-02T12:15:00+00:00", T),
    ("2026-03-02T07:15:00-05:00", T),
    ("2026-03-02T07:15:00.000-05:00", T),
    ("2026-03-02 07:15:00-0500", T),
    ("2026-03-02T17:45:00+05:30", T),
    ("20260302T121500Z", T),
    ("2026-03-02T12:15:00.250Z", T + timedelta(milliseconds=250)),
    # epoch seconds (int or float) and milliseconds
    (1772453700, T),
    (1772453700.0, T),
    (1772453700.5, T + timedelta(milliseconds=500)),
    (1772453700000, T),
    (1772453700123, T + timedelta(milliseconds=123)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
    (99_999_999_999, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=99_999_999_999)),  # still seconds
    (100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # from here on milliseconds
    # PurpleAir's DateTime: UTC
    ("2026/05/17T22:23:04z", datetime(2026, 5, 17, 22, 23, 4, tzinfo=UTC)),
    ("2026/05/17T22:23:04Z", datetime(2026, 5, 17, 22, 23, 4, tzinfo=UTC)),
    ("2022/04/29T03:53:26z", datetime(2022, 4, 29, 3, 53, 26, tzinfo=UTC)),
])
def test_accepted_forms(raw: object, expected: datetime) -> None:
    when = parse_time(raw, BOGOTA)
    assert when == expected
    assert when.utcoffset() is not None


@pytest.mark.parametrize("raw", ["2026-03-02T07:15:00", "2026-03-02 07:15", "2026-03-02T07:15:00.000",
                                 "2026/03/02T07:15:00"])
def test_without_offset_is_the_network_zone_not_utc(raw: str) -> None:
    when = parse_time(raw, BOGOTA)
    assert when == T
    assert when.utcoffset() == timedelta(hours=-5)
    assert parse_time(raw, KOLKATA) == datetime(2026, 3, 2, 1, 45, tzinfo=UTC)


def test_offset_written_is_kept() -> None:
    assert parse_time("2026-03-02T17:45:00+05:30", BOGOTA).utcoffset() == timedelta(hours=5, minutes=30)
    assert parse_time(1772453700, BOGOTA).utcoffset() == timedelta(0)


@pytest.mark.parametrize("raw", [
    None, True, False, [], {}, "", "yesterday", "2026-03-02", "20260302", "2026-13-02T07:15:00",
    "2026-03-02T24:00:01", "2026-03-02T07:15:00+25:00", "2026/05/17T22:23:04x", "2026/13/17T22:23:04z",
    "0000/01/01T00:00:00z", "1772453700", float("nan"), float("inf"), -float("inf"), 1e14, -1e14, 10**400,
    "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00",
])
def test_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_time(raw, BOGOTA)


def test_device_time_wraps_refusals_as_bad_time_naming_the_field() -> None:
    assert device_time("t/1", "DateTime", "2026/05/17T22:23:04z", BOGOTA) == datetime(2026, 5, 17, 22, 23, 4,
                                                                                        tzinfo=UTC)
    with pytest.raises(PayloadError) as err:
        device_time("t/1", "readings[3].time", "yesterday", BOGOTA)
    assert err.value.reason == "bad_time"
    assert str(err.value).startswith("t/1: readings[3].time: ")
    assert "'yesterday'" in str(err.value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                 st.datetimes(timezones=st.none() | st.just(UTC) | st.just(KOLKATA)).map(datetime.isoformat)))
def test_fuzz_any_json_scalar_is_a_time_or_value_error(raw: object) -> None:
    try:
        when = parse_time(raw, BOGOTA)
    except ValueError:
        return
    assert when.utcoffset() is not None
    when.astimezone(UTC)  # representable as a UTC instant
