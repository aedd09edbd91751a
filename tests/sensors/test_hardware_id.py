"""MAC and hardware-serial normalisation (pure): PurpleAir firmware prints octets without zero padding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.hardware_id import hardware_serial_key, mac

_OCTETS = st.lists(st.integers(0, 255), min_size=6, max_size=6)


@given(_OCTETS, st.sampled_from([":", "-"]), st.lists(st.booleans(), min_size=6, max_size=6), st.booleans())
def test_any_padding_case_and_separator_gives_the_zero_padded_mac(octets: list[int], sep: str, pad: list[bool],
                                                                 upper: bool) -> None:
    text = sep.join(f"{o:02x}" if p else f"{o:x}" for o, p in zip(octets, pad, strict=True))
    text = text.upper() if upper else text
    expected = ":".join(f"{o:02x}" for o in octets)
    assert mac(f" {text} ") == expected
    assert hardware_serial_key(text) == expected


@pytest.mark.parametrize("text", ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa-bb:cc:dd:ee:ff", "aaa:b:c:d:e:f",
                                  "g:b:c:d:e:f", "aabbccddeeff", "a::b:c:d:e", ":a:b:c:d:e", "12331981"])
def test_not_a_mac(text: str) -> None:
    assert mac(text) is None


def test_other_serials_are_stripped_and_lower_cased() -> None:
    assert hardware_serial_key(" 12331981 ") == "12331981"
    assert hardware_serial_key("ESP-ABC") == "esp-abc"
