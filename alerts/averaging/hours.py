"""Stage 4, averages — I/O glue (psycopg 3, sync): the stored '1h' averages a run of the averaging job
(`alerts.averaging.job`) needs around the hours it writes, as an `alerts.averaging.vectorised.HourTable`: from
the one range scan of every series' recent hours (`Scan`, read while the samples are summed) and, for the series
whose span the scan does not hold (late data), from indexed reads (`storage.windows_store.stored_packed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from alerts.averaging.nowcast import NOWCAST_POLLUTANTS
from alerts.averaging.series import Pair, Series
from alerts.averaging.vectorised import Averages, HourTable, packed
from storage import windows_store

__all__ = ["Scan", "load_hours"]


@dataclass(frozen=True, slots=True)
class Scan:
    """Every series' stored hours ending after `lo` (epoch s), as `windows_store.stored_hours` reads them, unpacked:
    one entry per series in `pairs` / `counts` / `active`, its hours consecutive in `ends` / `values` / `valid`."""

    lo: float
    pairs: list[Pair]
    counts: np.ndarray
    active: list[bool]  #: whether it has hours holding samples before the due hours
    ends: np.ndarray
    values: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, lo: datetime, rows: list[tuple[Any, ...]]) -> Scan:
        """Unpack the rows of `windows_store.stored_hours` read from `lo`."""
        hours = np.frombuffer(b"".join(r[2] for r in rows), dtype=windows_store.HOUR_RECORD)
        # exact: microseconds below 2**53 convert to float exactly, and one division rounds as PostgreSQL's epoch
        ends = (hours["end"].astype(np.int64) + windows_store.PG_EPOCH_S * 1_000_000) / 1e6
        return cls(lo.timestamp(), [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64),
                   [bool(r[3]) for r in rows], ends, hours["value"].astype(float), hours["valid"].astype(bool))


def load_hours(conn: psycopg.Connection, series: Series, wp: np.ndarray, we: np.ndarray, hourly: Averages,
                last_end: datetime, scan: Scan | None) -> HourTable:
    """The '1h' averages around the written hours, as stored once the hours `hourly` (series `wp`, end `we`, sorted
    by series) are written: the 24 h before them (rolling windows, their days) to the 25 h after (the windows and
    days holding them), for the written series and, for a NowCast pollutant, the sensor's other NowCast pollutants
    (its indices are recomputed together; they take the span of the sensor's first written one). `scan`: the
    stored hours of every series ending after a bound, read before the due hours (`windows_store.stored_hours`); a
    series whose span starts before it is read here."""
    ids = wp[np.r_[True, wp[1:] != wp[:-1]]] if wp.size else wp
    start = np.full(len(series), np.inf)
    stop = np.full(len(series), -np.inf)
    np.minimum.at(start, wp, we)
    np.maximum.at(stop, wp, we)
    lo = start - 26 * 3600.0  # spans (lo, hi] in epoch seconds, by series id (+inf: none)
    hi = np.minimum(last_end.timestamp(), stop + 25 * 3600.0)
    sibling: dict[str, tuple[float, float]] = {}  # sensor → the span of its first written NowCast pollutant
    for i in ids.tolist():
        sensor, variable = series.pairs[i]
        if variable in NOWCAST_POLLUTANTS and sensor not in sibling:
            sibling[sensor] = (float(lo[i]), float(hi[i]))

    def span(pair: Pair) -> tuple[float, float] | None:
        i = series.index.get(pair)
        if i is not None and i < lo.size and lo[i] < np.inf:
            return float(lo[i]), float(hi[i])
        return sibling.get(pair[0]) if pair[1] in NOWCAST_POLLUTANTS else None

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # series id, ends, values, valid
    seen: set[Pair] = set()
    if scan is not None:  # a span inside the scan is read from it (hours outside a span are never looked up)
        spans = [span(p) for p in scan.pairs]
        take = np.array([w is not None and w[0] >= scan.lo for w in spans], dtype=bool)
        inside = [p for p, t in zip(scan.pairs, take.tolist(), strict=True) if t]
        hours = np.repeat(take, scan.counts)
        parts.append((np.repeat(np.array([series.add(p) for p in inside], dtype=np.int64), scan.counts[take]),
                      scan.ends[hours], scan.values[hours], scan.valid[hours]))
        seen = set(inside)
    floor = scan.lo if scan is not None else np.inf
    rest = {}  # the spans the scan does not hold
    for i in ids.tolist():
        pair = series.pairs[i]
        wanted = [pair]
        if pair[1] in NOWCAST_POLLUTANTS:
            wanted += [(pair[0], other) for other in NOWCAST_POLLUTANTS]
        for p in wanted:
            if p not in seen and p not in rest and (w := span(p)) is not None and w[0] < floor:
                rest[p] = w
    if rest:
        rows = windows_store.stored_packed(conn, "1h", {
            p: (datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for p, (a, b) in rest.items()}).result()
        parts.append((np.repeat(np.array([series.add(pair) for pair, *_ in rows], dtype=np.int64),
                                [r[1] for r in rows]), packed([r[2] for r in rows], ">f8"),
                      packed([r[3] for r in rows], ">f8"), packed([r[4] for r in rows], "?")))
    sid, ends, values, valid = (np.concatenate([x[k] for x in parts]) if parts else np.empty(0) for k in range(4))
    # the hours being written come first: they replace what is stored under their keys (HourTable keeps a key's
    # first value)
    return HourTable(np.concatenate((wp, sid.astype(np.int64))), np.concatenate((we, ends)),
                     np.concatenate((hourly.value, values)), np.concatenate((hourly.valid, valid.astype(bool))))
