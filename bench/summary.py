"""`make bench`'s closing table: every figure of issue 19's table with its same-run baseline, its goal and whether
it is met, as markdown (to paste into a note) and as JSON. Pure: it formats results the benchmarks returned.

Goals (issue 19, 2 cores; reported, never a gate):
- MQTT → TimescaleDB: ≥ 50 % of the `psql \\copy` ceiling AND at least the hand-written COPY subscriber's rate,
  every reading stored (the naive INSERT ratio is printed only);
- publish → commit at the 10,000-sensor rate (8,000 readings/s offered): p99 < 1 s; not measured when the
  publishers could not offer that rate (< 95 % of it);
- where the time goes: the daemon (all its processes) uses more than one core (CPU s per wall s > 1.0);
- Modbus: requests ≥ 0.6× the raw pymodbus rate per CPU second and 0 missed polls;
- scheduler tick for 10,000 sensors: < 2 s and ≤ 2× the one-statement SQL baseline (only a 10,000-sensor tick
  is judged; a smaller one is printed as not measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.averages import TickResult
from bench.ingest import GOAL_CORES, GOAL_OF_CEILING, GOAL_OF_COPY, GOAL_P99_S, IngestBench
from bench.modbus import ModbusBench

__all__ = ["GOAL_MODBUS_MISSED", "GOAL_MODBUS_RATIO", "GOAL_TICK_RATIO", "GOAL_TICK_S", "OFFER_SHORT", "TICK_SENSORS",
           "Row", "averages_row", "ingest_rows", "modbus_row", "table", "to_json", "verdict"]

GOAL_MODBUS_RATIO, GOAL_MODBUS_MISSED = 0.6, 0  #: requests per CPU s relative to raw pymodbus; missed polls
GOAL_TICK_S, GOAL_TICK_RATIO, TICK_SENSORS = 2.0, 2.0, 10_000  #: scheduler tick: seconds, × the SQL baseline
OFFER_SHORT = 0.95  #: publishers offering less than this share of the asked rate did not measure the goal


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: what was measured, its baseline of the same run, the goal, and whether it is met
    (None: not measured, e.g. the load could not be offered); `values` are the raw figures, for JSON."""

    figure: str
    aqnet: str
    baseline: str
    goal: str
    met: bool | None
    values: dict[str, float] = field(default_factory=dict)


def verdict(met: bool | None) -> str:
    """How the table says whether a goal is met."""
    return {True: "met", False: "**MISSED**", None: "not measured"}[met]


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e3:,.0f} ms"


def ingest_rows(r: IngestBench) -> list[Row]:
    """The three ingest rows: sustained rate, latency at the 10,000-sensor rate, where the time goes."""
    a, p = r.aqnet, r.paced
    rate = Row(
        f"MQTT → TimescaleDB, {a.expected:,d} readings",
        (f"{a.per_s:,.0f} readings/s = {r.of_ceiling:.1%} of the ceiling, {r.of_copy:.1%} of the hand-written "
         f"subscriber, {r.over_naive:.1f}× naive" + (f" ({a.expected - a.rows:,d} rows MISSING)" if a.rows != a.expected
                                                       else "")),
        (f"ceiling `psql \\copy` {r.ceiling.per_s:,.0f}; hand-written COPY subscriber {r.copy.per_s:,.0f}; "
         f"naive INSERT {r.naive.per_s:,.0f}"),
        f"≥ {GOAL_OF_CEILING:.0%} of the ceiling and ≥ {GOAL_OF_COPY:.0%} of the hand-written subscriber",
        r.rate_met,
        {"readings_per_s": a.per_s, "of_ceiling": r.of_ceiling, "of_copy": r.of_copy, "over_naive": r.over_naive,
         "ceiling_per_s": r.ceiling.per_s, "copy_per_s": r.copy.per_s, "naive_per_s": r.naive.per_s,
         "missing": float(a.expected - a.rows)})
    short_offer = not p.achieved_per_s >= OFFER_SHORT * p.offered_per_s
    p50, p99 = p.latency_s(0.5), p.latency_s(0.99)
    latency = Row(
        f"publish→commit at {p.offered_per_s:,.0f} readings/s offered (10,000-sensor rate)",
        (f"p50 {_ms(p50)}, p99 {_ms(p99)} (publishers offered {p.achieved_per_s:,.0f}/s"
         + ("; SHORT of the asked rate" if short_offer else "") + f"; stored {p.per_s:,.0f}/s"
         + (f"; {p.expected - p.rows:,d} rows MISSING" if p.rows != p.expected else "") + ")"),
        "",
        f"p99 < {GOAL_P99_S:g} s at {p.offered_per_s:,.0f} readings/s",
        None if short_offer else r.latency_met,
        {"p50_s": p50, "p99_s": p99, "asked_per_s": p.offered_per_s, "offered_per_s": p.achieved_per_s,
         "stored_per_s": p.per_s})
    procs = len(a.processes) or 1
    top = ", ".join(f"{name.split(' --')[0][:40]} {cpu / a.wall_s:.2f}" for _, name, cpu in a.processes[:3])
    others = ", ".join(f"{k} {v / a.wall_s:.2f}" for k, v in a.cpu_s.items() if k != "consumer")
    where = Row(
        "where the time goes (flat out)",
        (f"daemon {r.cores:.2f} CPU s per wall s over {procs} process{'es' if procs > 1 else ''} ({top}); writer busy "
         f"{r.writer_busy:.0%} of the wall; ingest queue ≤ {r.metrics.get('queue_length_max', math.nan):,.0f}"),
        f"CPU s per wall s: {others}",
        f"both cores busy: daemon > {GOAL_CORES:g} CPU s per wall s",
        r.cores_met,
        {"daemon_cores": r.cores, "writer_busy": r.writer_busy, "processes": float(procs),
         **{f"{k}_cores": v / a.wall_s for k, v in a.cpu_s.items() if k != "consumer"}})
    return [rate, latency, where]


def modbus_row(r: ModbusBench) -> Row:
    """The Modbus row: requests per CPU second against raw pymodbus, and missed polls."""
    b, p = r.baseline, r.polling
    met = r.request_ratio >= GOAL_MODBUS_RATIO and p.missed <= GOAL_MODBUS_MISSED
    return Row(
        f"Modbus, {p.stations:,d} stations every {p.interval_s:g} s",
        (f"{p.missed:,d} missed polls of {p.expected:,d}; requests at {r.request_ratio:.2f}× the raw rate per CPU "
         f"second (polls {r.poll_ratio:.2f}×)"),
        (f"raw pymodbus {b.reads_per_s:,.0f} reads/s of {b.count} registers "
         f"({r.sustainable_reads_per_s:,.0f} per CPU s)"),
        f"requests ≥ {GOAL_MODBUS_RATIO:g}× raw per CPU second, {GOAL_MODBUS_MISSED} missed polls",
        met,
        {"request_ratio": r.request_ratio, "poll_ratio": r.poll_ratio, "missed": float(p.missed),
         "expected": float(p.expected), "raw_reads_per_s": b.reads_per_s})


def averages_row(results: Sequence[TickResult]) -> Row:
    """The scheduler row: the 10,000-sensor tick (or the largest measured, then not judged) against SQL."""
    t = next((x for x in results if x.sensors == TICK_SENSORS), max(results, key=lambda x: x.sensors))
    judged = t.sensors == TICK_SENSORS
    return Row(
        f"scheduler tick, {t.sensors:,d} sensors",
        f"{t.tick_s:.2f} s ({t.ratio:.1f}× the SQL baseline)",
        f"one SQL `GROUP BY time_bucket`: {t.baseline_s:.2f} s",
        f"< {GOAL_TICK_S:g} s and ≤ {GOAL_TICK_RATIO:g}× the baseline (at {TICK_SENSORS:,d} sensors)",
        (t.tick_s < GOAL_TICK_S and t.ratio <= GOAL_TICK_RATIO) if judged else None,
        {"sensors": float(t.sensors), "tick_s": t.tick_s, "baseline_s": t.baseline_s, "ratio": t.ratio})


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "—"


def table(rows: Sequence[Row]) -> list[str]:
    """The rows as a markdown table (figure | aqnet | baseline, same run | goal | met), then a count line."""
    out = ["| figure | aqnet | baseline, same run | goal | met |", "|---|---|---|---|---|"]
    out += [f"| {_cell(r.figure)} | {_cell(r.aqnet)} | {_cell(r.baseline)} | {_cell(r.goal)} | {verdict(r.met)} |"
            for r in rows]
    met = sum(r.met is True for r in rows)
    missed = [r.figure for r in rows if r.met is False]
    unmeasured = sum(r.met is None for r in rows)
    out.append(f"goals met: {met} of {len(rows)}" + (f"; missed: {'; '.join(missed)}" if missed else "")
               + (f"; not measured: {unmeasured}" if unmeasured else ""))
    return out


def to_json(rows: Sequence[Row], **extra: Any) -> dict[str, Any]:
    """The rows as a JSON-ready document (NaN becomes null), with `extra` top-level keys."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    return {**extra, "rows": [clean(asdict(r)) for r in rows]}
