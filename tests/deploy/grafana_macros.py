"""Expand a Grafana dashboard query the way Grafana 11+ does before its PostgreSQL datasource runs it. Pure (tests).

Three steps, in Grafana's order:
1. template variables, in the browser (`templateSrv.replace` with the SQL datasource's `interpolateVariable`,
   packages/grafana-sql/src/datasource/SqlDatasource.ts): `$var`, `${var}`, `[[var]]`, `${var:format}`; a value
   list (multi-value / All) becomes `'a','b'` (each quoted, `'` doubled), a single string value only has its `'`
   doubled; formats `csv` (`a,b`), `sqlstring` (`'a','b'`), `raw`, `singlequote`, `doublequote`, `pipe`;
2. the global SQL macros (pkg/tsdb/.../sqleng/sql_engine.go `Interpolate`): `$__interval_ms`, `$__interval`,
   `$__unixEpochFrom()`, `$__unixEpochTo()`;
3. the PostgreSQL macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go): `$__time`, `$__timeEpoch`,
   `$__timeFilter`, `$__timeFrom`, `$__timeTo`, `$__timeGroup` (time_bucket with `timescaledb: true`),
   `$__timeGroupAlias`, `$__unixEpochFilter`, `$__unixEpochNanoFilter/From/To`, `$__unixEpochGroup(Alias)`; a
   third `$__timeGroup` argument (NULL, previous or a number) sets the fill mode Grafana applies to the result.
Not reproduced: the SQL comment stripping of Grafana 12 (keep comments out of dashboard SQL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Fill", "MacroError", "expand", "expand_macros", "expand_variables", "format_interval", "parse_interval",
           "rfc3339nano"]

VariableValue = str | int | float | Sequence[str]


class MacroError(ValueError):
    """A macro Grafana would refuse (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True, slots=True)
class Fill:
    """The fill mode a third `$__timeGroup` argument asks Grafana to apply: null, previous or value."""

    mode: str
    interval_s: float
    value: float | None = None


_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def parse_interval(text: str) -> timedelta:
    """gtime.ParseInterval: `5m`, `12d`, `20ms`, `1h`, `1w`, `1y` (a bare number is seconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|M|y)?\s*", text)
    if m is None:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=float(m.group(1)) * _UNITS_S[m.group(2) or "s"])


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit (y, d, h, m, s, ms), as `$__interval` shows it."""
    ms = round(interval.total_seconds() * 1000)
    for unit, size in (("y", 365 * 86400_000), ("d", 86400_000), ("h", 3600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


def rfc3339nano(t: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC instant: fraction without trailing zeros, `Z`."""
    t = t.astimezone(UTC)
    out = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        out += "." + f"{t.microsecond:06d}".rstrip("0")
    return out + "Z"


def _epoch_ns(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _epoch_s(t: datetime) -> int:
    return _epoch_ns(t) // 1_000_000_000


def _seconds(interval: timedelta) -> str:
    """Go's %v of a float64 number of seconds (300, 0.02, 1036800)."""
    s = interval.total_seconds()
    return str(int(s)) if s == int(s) else repr(s)


# ------------------------------------------------------------------------------------------ variables

_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")


def _quote(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def _format(value: VariableValue, fmt: str | None) -> str:
    values = [str(v) for v in value] if isinstance(value, (list, tuple)) else None
    if fmt is None:  # the SQL datasource's interpolateVariable
        if isinstance(value, (int, float)):
            return str(value)
        if values is not None:
            return ",".join(_quote(v) for v in values)
        return str(value).replace("'", "''")
    items = values if values is not None else [str(value)]
    if fmt in {"csv", "raw"}:
        return ",".join(items)
    if fmt == "sqlstring":
        return ",".join(_quote(v) for v in items)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in items)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in items)
    if fmt == "pipe":
        return "|".join(items)
    raise MacroError(f"variable format {fmt!r}: expected csv, sqlstring, raw, singlequote, doublequote or pipe")


def expand_variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """Replace the dashboard's template variables; `$__…` names (macros, built-ins) and unknown names stay."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name.startswith("__") or name not in variables:
            return m.group(0)
        return _format(variables[name], fmt)
    return _VARIABLE.sub(sub, sql)


# --------------------------------------------------------------------------------------------- macros

_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")


def _fill(args: list[str], interval: timedelta) -> Fill:
    mode = args[2]
    if mode == "NULL":
        return Fill("null", interval.total_seconds())
    if mode == "previous":
        return Fill("previous", interval.total_seconds())
    try:
        return Fill("value", interval.total_seconds(), float(mode))
    except ValueError:
        raise MacroError(f"error parsing fill value {mode}") from None


def expand_macros(sql: str, t_from: datetime, t_to: datetime, *, interval: timedelta = timedelta(minutes=1),
                  timescaledb: bool = True) -> tuple[str, Fill | None]:
    """Steps 2 and 3 for the time range [t_from, t_to]: the SQL Grafana sends, and the fill mode if one is asked."""
    sql = sql.replace("$__interval_ms", str(round(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_epoch_s(t_from))).replace("$__unixEpochTo()", str(_epoch_s(t_to)))
    fill: list[Fill] = []
    original = sql

    def evaluate(name: str, args: list[str]) -> str:
        if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter") \
                and (not args or args == [""]):
            raise MacroError(f"missing time column argument for macro {name}")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339nano(t_from)}' AND '{rfc3339nano(t_to)}'"
        if name == "__timeFrom":
            return f"'{rfc3339nano(t_from)}'"
        if name == "__timeTo":
            return f"'{rfc3339nano(t_to)}'"
        if name in ("__timeGroup", "__unixEpochGroup"):
            if len(args) < 2:
                raise MacroError(f"macro {name} needs time column and interval and optional fill value")
            bucket = parse_interval(args[1].strip("'"))
            if len(args) == 3:
                fill.append(_fill(args, bucket))
            if name == "__unixEpochGroup":
                return f"floor(({args[0]})/{_seconds(bucket)})*{_seconds(bucket)}"
            if timescaledb:
                return f"time_bucket('{bucket.total_seconds():.3f}s',{args[0]})"
            return f"floor(extract(epoch from {args[0]})/{_seconds(bucket)})*{_seconds(bucket)}"
        if name in ("__timeGroupAlias", "__unixEpochGroupAlias"):
            return evaluate(name.removesuffix("Alias"), args) + ' AS "time"'
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {_epoch_s(t_from)} AND {args[0]} <= {_epoch_s(t_to)}"
        if name == "__unixEpochNanoFilter":
            return f"{args[0]} >= {_epoch_ns(t_from)} AND {args[0]} <= {_epoch_ns(t_to)}"
        if name == "__unixEpochNanoFrom":
            return str(_epoch_ns(t_from))
        if name == "__unixEpochNanoTo":
            return str(_epoch_ns(t_to))
        raise MacroError(f'unknown macro "{name}"')

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        # Grafana's pre-5.3 compatibility: `$__timeGroup(...)` directly followed by ',' gets the alias
        if name == "__timeGroup":
            at = original.find(m.group(0))
            if at >= 0 and original[at + len(m.group(0)):at + len(m.group(0)) + 1] == ",":
                name = "__timeGroupAlias"
        return evaluate(name, [a.strip(" ") for a in m.group(2).split(",")])

    return _MACRO.sub(sub, sql), (fill[-1] if fill else None)


def expand(sql: str, t_from: datetime, t_to: datetime, variables: Mapping[str, VariableValue] | None = None, *,
           interval: timedelta = timedelta(minutes=1), timescaledb: bool = True) -> str:
    """The SQL the PostgreSQL datasource executes for a dashboard query (variables, then macros)."""
    out, _ = expand_macros(expand_variables(sql, variables or {}), t_from, t_to, interval=interval,
                           timescaledb=timescaledb)
    return out
