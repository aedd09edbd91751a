"""Which averaging windows exist and which are due at a given `now`: hour ends, local calendar days and years in
the network's time zone. Pure (no I/O, no clock: `now` is an argument).

Every window is named by its END (VARIABLES.md "Time", `alerts.averaging.averages`): the hour ending at H holds
``H - 1 h <= t < H``; the day of local date D ends at D + 1 day, 00:00 local; the year Y ends on 1 January Y+1,
00:00 local. All returned datetimes are aware and in UTC. Local hours are whole hours of the time zone, so in a
zone with a half-hour offset they end at :30 UTC; an hour is 3600 s of absolute time even across a DST change,
so consecutive hour ends are always 1 h apart.

A window is due when its end is at or before `now` (never a window that has not ended: nothing is stamped in
the future).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from alerts.averaging.averages import HOUR, local_day_bounds, local_year_bounds

__all__ = [
    "day_bounds",
    "day_of_hour_end",
    "days_ending_in",
    "hour_end_at_or_before",
    "hour_end_containing",
    "hour_ends_in",
    "year_bounds",
    "years_ending_in",
]


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{name}: expected an aware datetime, got naive {t.isoformat()}")
    return t.astimezone(UTC)


def hour_end_at_or_before(now: datetime, tz: tzinfo) -> datetime:
    """The latest end of a whole hour of `tz` at or before `now`, in UTC."""
    local = _aware(now, "now").astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def hour_end_containing(t: datetime, tz: tzinfo) -> datetime:
    """The end (UTC) of the local hour of `tz` that holds the instant `t` (start inclusive, end exclusive)."""
    return hour_end_at_or_before(t, tz) + HOUR


def hour_ends_in(after: datetime, through: datetime) -> list[datetime]:
    """The hour ends in (after, through], oldest first; `through` must be an hour end, `after` is any instant."""
    after, through = _aware(after, "after"), _aware(through, "through")
    if through <= after:
        return []
    n = int((through - after) / HOUR - 1e-9)  # hour ends strictly after `after`
    return [through - k * HOUR for k in range(n, -1, -1) if through - k * HOUR > after]


def day_of_hour_end(end: datetime, tz: tzinfo) -> date:
    """The local calendar date of the hour ending at `end` (the hour ending at 00:00 belongs to the day before)."""
    return (_aware(end, "end") - HOUR).astimezone(tz).date()


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the local calendar day `day` (23, 24 or 25 h)."""
    start, end = local_day_bounds(day, tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def year_bounds(year: int, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the local calendar year `year`."""
    start, end = local_year_bounds(year, tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def days_ending_in(after: datetime, through: datetime, tz: tzinfo) -> list[date]:
    """Local calendar dates whose day ends in (after, through], oldest first."""
    after, through = _aware(after, "after"), _aware(through, "through")
    if through <= after:
        return []
    day = (after - timedelta(days=1)).astimezone(tz).date()
    out: list[date] = []
    while True:
        end = day_bounds(day, tz)[1]
        if end > through:
            return out
        if end > after:
            out.append(day)
        day += timedelta(days=1)


def years_ending_in(after: datetime, through: datetime, tz: tzinfo) -> list[int]:
    """Local calendar years that end in (after, through], oldest first."""
    after, through = _aware(after, "after"), _aware(through, "through")
    if through <= after:
        return []
    return [y for y in range(after.astimezone(tz).year - 1, through.astimezone(tz).year + 1)
            if after < year_bounds(y, tz)[1] <= through]
