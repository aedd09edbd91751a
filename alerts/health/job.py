"""Device health: the job that records devices going down and up, and the per-device report (uptime, data
completeness, MTBF, MTTR, flat and drift indicators) that `aqnet sensors health`, the metrics and the docs
show. I/O glue (psycopg 3, sync): the SQL is `storage.health_store`'s, the logic `alerts.health.reliability`'s
and `alerts.health.indicators`'s. Pure over `now`: nothing here reads the clock.

- `update_status(conn, now, policy)`: in one transaction holding an advisory lock (one updater at a time,
  whichever process runs it), steps every watched device's watch over the receive times since its last run
  and records the transitions in `device_status_events`. A device seen for the first time is watched from its
  first reading in the last 30 days (its recent history is read once; before it the device may not have been
  installed), or from `now` when it has none. A re-run for the same `now`, or for an earlier one, changes
  nothing.
- `device_health(conn, now, policy)`: the report, read only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerts.health.indicators import Drift, completeness, drift, flat_minutes
from alerts.health.reliability import Heard, Reliability, Transition, Watch, reliability, step_heard
from ingest.colocation import Site, co_located_reference
from ingest.reading import EXCLUDED
from storage import health_store

__all__ = ["LONG", "SHORT", "DeviceHealth", "HealthPolicy", "device_health", "update_status"]

#: the two report windows
SHORT, LONG = timedelta(hours=24), timedelta(days=30)
#: pg_advisory_xact_lock key of update_status ("aqnet health" as a number; any constant unique to aqnet)
_LOCK_KEY = 0x6171_6E65_7448_6C74 & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The health settings the job needs (`health.*`, aqnet.config)."""

    down_after_station: timedelta
    down_after_microsensor: timedelta
    flatline_tolerance: float = 0.0
    colocation_max_distance_m: float = 20.0

    def down_after(self, kind: str) -> timedelta:
        """The silence after which a device of a sensor of `kind` is down."""
        return self.down_after_station if kind == "station" else self.down_after_microsensor


def update_status(conn: psycopg.Connection, now: datetime, policy: HealthPolicy) -> int:
    """Record every watched device's transitions up to `now`; returns how many were recorded (module docstring)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        stored = health_store.load_watches(conn)
        # a device already accounted for up to `now` or later (a run for an earlier time) is left as it is
        devices = [d for d in health_store.watched_devices(conn)
                   if d.device_id not in stored or stored[d.device_id][1] < now]
        watches: dict[str, Watch] = {}
        for d in devices:
            if d.device_id in stored:
                watched_from, checked_until, last_heard, down_since = stored[d.device_id]
                watches[d.device_id] = Watch(watched_from, checked_until, last_heard, down_since)
            else:
                watches[d.device_id] = Watch(now - LONG, now - LONG)
        recorded = 0
        for kind in sorted({d.sensor_kind for d in devices}):
            group = [d for d in devices if d.sensor_kind == kind]
            down_after = policy.down_after(kind)
            floor = min(watches[d.device_id].checked_until for d in group) - SHORT
            heard = health_store.heard_summaries(
                conn, [(d.device_id, d.sensor_id, watches[d.device_id].checked_until) for d in group], now=now,
                down_after=down_after, time_floor=floor)
            for d in group:
                got = heard.get(d.device_id)
                summary = None if got is None else Heard(got[0], got[1], tuple(got[2]))
                watch = watches[d.device_id]
                if d.device_id not in stored:  # first sight: watched from its first reading (none: from now)
                    start = summary.first if summary is not None else now
                    watch = Watch(start, start)
                watch, events = step_heard(watch, summary, now, down_after)
                recorded += health_store.insert_events(conn, [(d.device_id, d.sensor_id, ev.time, ev.state)
                                                              for ev in events])
                health_store.save_watch(conn, d.device_id, d.sensor_id, watch.watched_from, watch.checked_until,
                                        watch.last_heard, watch.down_since)
        return recorded


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """One device's health at `now` (module docstring; definitions in docs/operators/device-health.md)."""

    device_id: str
    sensor_id: str
    kind: str
    checked_until: datetime | None  #: the status is as of this (the health job's last run); None: never run
    down_since: datetime | None  #: set while an outage is open
    last_heard: datetime | None
    short: Reliability  #: last 24 h
    long: Reliability  #: last 30 days
    completeness_24h: float | None
    completeness_30d: float | None
    flat_minutes: float
    flat_variable: str | None
    drifts: tuple[Drift, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times ISO 8601, seconds and fractions as numbers, None as null)."""
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        def rel(r: Reliability) -> dict[str, Any]:
            return {"uptime": r.uptime, "down_s": r.down_s, "failures": r.failures, "repairs": r.repairs,
                    "mtbf_s": r.mtbf_s, "mttr_s": r.mttr_s}

        return {"device": self.device_id, "sensor": self.sensor_id, "kind": self.kind,
                "status": "unknown" if self.checked_until is None else ("down" if self.down_since else "up"),
                "status_as_of": iso(self.checked_until), "down_since": iso(self.down_since),
                "last_heard": iso(self.last_heard), "24h": {**rel(self.short), "completeness": self.completeness_24h},
                "30d": {**rel(self.long), "completeness": self.completeness_30d},
                "flat_minutes": self.flat_minutes, "flat_variable": self.flat_variable,
                "drift": [{"variable": d.variable, "reference": d.reference_sensor, "hours": d.hours,
                           "bias": d.bias, "per_day": d.per_day} for d in self.drifts]}


def _transitions(rows: Sequence[tuple[datetime, str]]) -> list[Transition]:
    return [Transition(t, "down" if s == "down" else "up") for t, s in rows]


def _window(events: Sequence[Transition], before: Transition | None, start: datetime, end: datetime,
            watched_from: datetime) -> Reliability:
    prior = [ev for ev in events if ev.time < start]
    last = prior[-1] if prior else before
    down_at_start = last is not None and last.state == "down"
    given = [ev for ev in events if start <= ev.time < end]
    if down_at_start and last is not None:
        given.append(last)
    return reliability(given, start, end, watched_from=watched_from, down_at_start=down_at_start)


def _sites(devices: Sequence[health_store.WatchedDevice]) -> dict[str, Site]:
    variables: dict[str, set[str]] = {}
    for d in devices:
        variables.setdefault(d.sensor_id, set()).update(d.variables)
    return {d.sensor_id: Site(d.sensor_id, d.sensor_kind, d.lat, d.lon, frozenset(variables[d.sensor_id]))
            for d in devices}


def device_health(conn: psycopg.Connection, now: datetime, policy: HealthPolicy, *, sensor_id: str | None = None,
                  all_devices: Sequence[health_store.WatchedDevice] | None = None) -> list[DeviceHealth]:
    """Every watched device's health at `now` (of one sensor when given); read only."""
    network = list(all_devices) if all_devices is not None else health_store.watched_devices(conn)
    devices = [d for d in network if sensor_id is None or d.sensor_id == sensor_id]
    if not devices:
        return []
    ids = [d.device_id for d in devices]
    watches = health_store.load_watches(conn)
    events = {k: _transitions(v) for k, v in health_store.load_events(conn, ids, now - LONG, now).items()}
    before = {k: Transition(t, "down" if s == "down" else "up")
              for k, (t, s) in health_store.status_before(conn, ids, now - LONG).items()}
    hour_end = now.replace(minute=0, second=0, microsecond=0)
    series = sorted({(d.sensor_id, v) for d in devices for v in d.variables})
    cov_short = health_store.coverage_sums(conn, series, hour_end - SHORT, hour_end)
    cov_long = health_store.coverage_sums(conn, series, hour_end - LONG, hour_end)
    flats: dict[str, tuple[float, str | None]] = {}
    for device, variable, last, run_start, run_n in health_store.flat_runs(
            conn, [(d.device_id, d.sensor_id) for d in devices], since=now - SHORT, now=now,
            excluded=int(EXCLUDED), tolerance=policy.flatline_tolerance):
        minutes = flat_minutes(last, run_start, int(run_n))
        held = flats.get(device)
        if held is None or minutes > held[0] or (minutes == held[0] and (variable or "") < (held[1] or "")):
            flats[device] = (minutes, variable)
    sites = _sites(network)
    out = []
    for d in devices:
        watch = watches.get(d.device_id)
        watched_from = watch[0] if watch else now
        evs = events.get(d.device_id, [])
        drifts = _drifts(conn, d, sites, now, policy) if d.sensor_kind != "station" else ()
        minutes, flat_var = flats.get(d.device_id, (0.0, None))
        out.append(DeviceHealth(
            d.device_id, d.sensor_id, d.sensor_kind, watch[1] if watch else None, watch[3] if watch else None,
            watch[2] if watch else None,
            _window(evs, before.get(d.device_id), now - SHORT, now, watched_from),
            _window(evs, before.get(d.device_id), now - LONG, now, watched_from),
            completeness([cov_short.get((d.sensor_id, v), 0.0) for v in d.variables], 24),
            completeness([cov_long.get((d.sensor_id, v), 0.0) for v in d.variables], 30 * 24),
            minutes, flat_var if minutes > 0 else None, tuple(drifts)))
    return out


def _drifts(conn: psycopg.Connection, device: health_store.WatchedDevice, sites: Mapping[str, Site], now: datetime,
            policy: HealthPolicy) -> list[Drift]:
    out = []
    for variable in device.variables:
        found = co_located_reference(sites[device.sensor_id], sites.values(), variable,
                                     policy.colocation_max_distance_m)
        if found is None:
            continue
        pairs = health_store.hourly_differences(conn, device.sensor_id, found[0].sensor_id, variable,
                                                since=now - LONG, until=now)
        got = drift(variable, found[0].sensor_id, [p[0] for p in pairs], [p[1] for p in pairs],
                    [p[2] for p in pairs])
        if got is not None:
            out.append(got)
    return out
