"""The identities microsensors give themselves, normalised so a payload and a registration compare equal. Pure.

A PurpleAir reports its MAC as `SensorId`. Real firmware prints each octet without zero padding (issue 24: "an
octet such as `9` rather than `09`"), so "84:f3:eb:9:1:a" and "84:F3:EB:09:01:0A" are the same device: `mac`
accepts one or two hex digits per octet, ":" or "-" as the separator (one kind throughout), and returns the
lower-case, zero-padded, colon-separated form. `hardware_serial_key` is the form a hardware serial is stored and
matched in: a MAC in that form, anything else (an airrohr chip id such as "12331981") stripped and lower-cased.
"""

from __future__ import annotations

import re

__all__ = ["hardware_serial_key", "mac"]

#: six octets of one or two hex digits, one separator kind throughout
_MAC = re.compile(r"[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}")


def mac(text: str) -> str | None:
    """`text` as a MAC "aa:bb:cc:dd:ee:ff" (lower case, two digits per octet, colons), or None when it is not
    six octets of one or two hex digits separated by ":" or "-" (surrounding blanks ignored)."""
    value = text.strip().lower()
    match = _MAC.fullmatch(value)
    if match is None:
        return None
    return ":".join(octet.zfill(2) for octet in value.split(match.group(1)))


def hardware_serial_key(text: str) -> str:
    """The stored and compared form of a device's self-declared identity: a MAC zero-padded (`mac`), any other
    serial stripped and lower-cased."""
    return mac(text) or text.strip().lower()
