"""The times `aqnet` commands take on their command line (`--from`, `--to`, `--at`, `--since`). Shell (click), pure.

Contract: `parse_time(text, tz, now, relative=)` accepts an ISO 8601 date or time and, depending on
`relative`, the relative forms a command documents: "signed" (`now`, `+2h` / `-30m` from now: the registry and
alert commands), "age" (`2h`, `30m`, `7d` before now: `aqnet deadletter list --since`), None (none:
`aqnet reprocess`). A time without a UTC offset is in `tz`; with `tz=None` it is refused. Anything else is a
`click.BadParameter` naming the forms accepted (and `option`, when given).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

import click

__all__ = ["Relative", "parse_time"]

Relative = Literal["signed", "age"]

_RELATIVE = {"signed": re.compile(r"^([+-])(\d+(?:\.\d+)?)([smhd])$"),
             "age": re.compile(r"^()(\d+(?:\.\d+)?)([smhd])$")}
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EXPECTED = {
    "signed": "expected now, +2h, -30m or an ISO 8601 time (2026-05-01T08:00-05:00); got {text!r}",
    "age": "expected an ISO 8601 time (2026-11-23T08:00-05:00) or an age like 2h, 30m, 7d; got {text!r}",
    None: "expected an ISO 8601 time such as 2026-03-02T00:00-05:00, got {text!r}",
}


def parse_time(text: str, tz: tzinfo | None, now: datetime, *, relative: Relative | None = None,
               option: str | None = None) -> datetime:
    """`text` as an aware time: ISO 8601 (a date is its midnight; without an offset: in `tz`, refused when `tz`
    is None), or a relative form of `relative` counted from `now`."""
    text = text.strip()
    if relative == "signed" and text == "now":
        return now
    m = _RELATIVE[relative].match(text) if relative else None
    if m:
        delta = timedelta(seconds=float(m.group(2)) * _UNIT_S[m.group(3)])
        return now + delta if m.group(1) == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise click.BadParameter(_EXPECTED[relative].format(text=text), param_hint=option) from None
    if parsed.tzinfo is not None:
        return parsed
    if tz is None:
        raise click.BadParameter(f"{text!r} has no UTC offset: add one (e.g. -05:00 for Bogotá, or Z)",
                                 param_hint=option)
    return parsed.replace(tzinfo=tz)
