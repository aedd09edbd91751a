"""Co-location calibration in the database: the network's sites, a microsensor's hourly pairs with its
reference, and the calibration proposals (propose, read, apply as a new calibration version, reject). I/O
(psycopg 3, async); the logic is `ingest.colocation` (which reference) and `ingest.colocation_fit` (the fit and
its report).

Pairs (`hourly_pairs`), per hour [start, end) labelled by its end: the microsensor device's mean raw value (its
reported unit; readings flagged `ingest.reading.EXCLUDED` left out) and its mean recorded T and P; the sensor's
mean relative humidity (valid readings); the reference's valid 1-h average. The reference, stored in the
canonical unit at the reference conditions of Res. 2254/2017, is brought back to the microsensor's unit and to
the conditions it measured at (÷ `ingest.units.reference_factor` of its hour's mean T and P, the correction its
own values get), so the fit is in the space a calibration applies in (`ingest.calibration`).

`apply_proposal`, in one transaction: the proposal must still be `proposed`; the calibration in force for the
device and variable at `valid_from` is closed there (valid_to) — a new version, never an overwrite —, the new
calibration is added (`storage.registry.calibrations.insert_calibration`), both are written to the audit log
(`calibration.close`, `calibration.add` with the proposal's id), and the proposal is marked applied. Re-deriving
the stored values is `storage.reprocess.reprocess`'s, run by the caller after the commit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest import units
from ingest.calibration import CalibrationError
from ingest.colocation import Site, co_located_reference, distance_m
from ingest.colocation_fit import BARKJOHN_2021, TARGET_INTERVAL, Correction, FitError, Pairs, build_report, fit
from ingest.normalise import REPORTED_REFERENCE
from ingest.reading import EXCLUDED
from storage.registry.calibrations import insert_calibration
from storage.registry.rows import insert_audit

__all__ = ["Applied", "ProposalError", "apply_proposal", "get_proposal", "hourly_pairs", "insert_proposal",
           "list_proposals", "network_sites", "primary_device", "propose", "reject_proposal"]


class ProposalError(ValueError):
    """A proposal that cannot be made, found or applied (permanent: the message says what to change)."""


async def network_sites(conn: AsyncConnection[Any]) -> list[Site]:
    """Every active sensor with its coordinates and the variables it has a primary device for."""
    cur = await conn.execute(
        "SELECT s.id, s.kind, s.lat, s.lon, coalesce(array_agg(p.variable) FILTER (WHERE p.variable IS NOT NULL), "
        "'{}') FROM sensors s LEFT JOIN primary_devices p ON p.sensor_id = s.id WHERE s.lifecycle = 'active' "
        "GROUP BY s.id, s.kind, s.lat, s.lon ORDER BY s.id")
    return [Site(r[0], r[1], float(r[2]), float(r[3]), frozenset(r[4])) for r in await cur.fetchall()]


async def primary_device(conn: AsyncConnection[Any], sensor_id: str, variable: str) -> str:
    """The sensor's primary device for `variable`; ProposalError naming the sensor when there is none."""
    cur = await conn.execute("SELECT device_id FROM primary_devices WHERE sensor_id = %s AND variable = %s",
                             (sensor_id, variable))
    row = await cur.fetchone()
    if row is None:
        raise ProposalError(f"sensor {sensor_id}: no device measures {variable} (no primary device in the registry)")
    return str(row[0])


_SENSOR_HOURS = """
SELECT time_bucket('1 hour', time) + interval '1 hour' AS hour_end, avg(raw_value), array_agg(DISTINCT raw_unit),
       avg(conditions_temp_c), avg(conditions_pressure_hpa), bool_or(conditions_source = %(reported)s)
FROM measurements
WHERE sensor_id = %(sensor)s AND device_id = %(device)s AND variable = %(variable)s
  AND time >= %(from)s AND time < %(to)s AND flags & %(excluded)s = 0 AND raw_value IS NOT NULL
GROUP BY 1 ORDER BY 1
"""
_RH_HOURS = """
SELECT time_bucket('1 hour', time) + interval '1 hour', avg(value)
FROM measurements
WHERE sensor_id = %(sensor)s AND variable = 'relativehumidity' AND time >= %(from)s AND time < %(to)s
  AND flags & %(excluded)s = 0 AND value IS NOT NULL
GROUP BY 1
"""
_REFERENCE_HOURS = """
SELECT period_end, value FROM averages
WHERE sensor_id = %(ref)s AND variable = %(variable)s AND period = '1h' AND valid AND value IS NOT NULL
  AND period_end > %(from)s AND period_end <= %(to)s
"""


async def hourly_pairs(conn: AsyncConnection[Any], *, sensor_id: str, device_id: str, variable: str,
                       reference_id: str, time_from: datetime, time_to: datetime) -> tuple[Pairs, str]:
    """The paired hours in [time_from, time_to) (module docstring) and the microsensor's reported unit."""
    params = {"sensor": sensor_id, "device": device_id, "variable": variable, "ref": reference_id,
              "from": time_from, "to": time_to, "excluded": int(EXCLUDED), "reported": REPORTED_REFERENCE}
    sensor_rows = await (await conn.execute(_SENSOR_HOURS, params)).fetchall()
    rh = {r[0]: float(r[1]) for r in await (await conn.execute(_RH_HOURS, params)).fetchall()}
    ref = {r[0]: float(r[1]) for r in await (await conn.execute(_REFERENCE_HOURS, params)).fetchall()}
    found_units = sorted({u for r in sensor_rows for u in r[2]})
    if len(found_units) > 1:
        raise ProposalError(f"sensor {sensor_id} device {device_id} {variable}: reported in several units "
                            f"({', '.join(found_units)}) over the period: choose a period with one")
    if not found_units:
        raise ProposalError(f"sensor {sensor_id} device {device_id} {variable}: no valid reading between "
                            f"{time_from.isoformat()} and {time_to.isoformat()}")
    unit = found_units[0]
    conv = units.conversion(unit, variable)
    if conv.add != 0.0:
        raise ProposalError(f"{variable} reported in {unit}: only units that scale (no offset) can be fitted")
    scale = units.convert(1.0, unit, variable)  # reported unit → canonical unit
    ends, xs, ys, rhs = [], [], [], []
    for hour_end, x, _, temp_c, pressure_hpa, reported_reference in sensor_rows:
        if hour_end not in ref:
            continue
        factor = 1.0
        if not reported_reference and temp_c is not None and pressure_hpa is not None:
            factor = units.reference_factor(float(temp_c), float(pressure_hpa))
        ends.append(hour_end)
        xs.append(float(x))
        ys.append(ref[hour_end] / factor / scale)
        rhs.append(rh.get(hour_end, math.nan))
    return Pairs(tuple(ends), tuple(xs), tuple(ys), tuple(rhs)), unit


async def propose(conn: AsyncConnection[Any], *, sensor_id: str, variable: str, time_from: datetime,
                  time_to: datetime, max_distance_m: float, created_by: str, kind: str = "linear_rh",
                  method: str = "fit", reference_id: str | None = None, interval: str = TARGET_INTERVAL) -> int:
    """Fit (or, method barkjohn-2021, take the cited correction) a calibration of the sensor's primary device
    for `variable` from its hours beside its reference in [time_from, time_to), store it as a proposal with its
    report, and return its id. The reference is `reference_id`, else the nearest station of the variable within
    `max_distance_m` (`ingest.colocation`). Nothing is applied."""
    if not time_from < time_to:
        raise ProposalError(f"period: --from {time_from.isoformat()} must be before --to {time_to.isoformat()}")
    sites = {s.sensor_id: s for s in await network_sites(conn)}
    me = sites.get(sensor_id)
    if me is None:
        raise ProposalError(f"sensor {sensor_id}: not an active sensor of the registry")
    if me.kind == "station":
        raise ProposalError(f"sensor {sensor_id} is a reference station: calibrate its analysers with their "
                            "zero/span checks, not against a neighbour")
    if reference_id is not None:
        ref = sites.get(reference_id)
        if ref is None or ref.kind != "station" or variable not in ref.variables:
            raise ProposalError(f"reference {reference_id}: not an active station measuring {variable}")
        distance = distance_m(me.lat, me.lon, ref.lat, ref.lon)
    else:
        found = co_located_reference(me, sites.values(), variable, max_distance_m)
        if found is None:
            near = co_located_reference(me, sites.values(), variable, math.inf)
            raise ProposalError(f"sensor {sensor_id}: no station measuring {variable} within {max_distance_m:g} m"
                                + (f" (nearest: {near[0].sensor_id}, {near[1]:.0f} m); move the sensor beside "
                                   "one, raise health.colocation_max_distance_m, or name one with --reference"
                                   if near else ""))
        ref, distance = found
    device_id = await primary_device(conn, sensor_id, variable)
    pairs, unit = await hourly_pairs(conn, sensor_id=sensor_id, device_id=device_id, variable=variable,
                                     reference_id=ref.sensor_id, time_from=time_from, time_to=time_to)
    correction: Correction
    if method == "barkjohn-2021":
        if variable != "pm25" or units.parse_unit(unit) != "µg/m³":
            raise ProposalError(f"barkjohn-2021 corrects PurpleAir PM2.5 in µg/m³, not {variable} in {unit}")
        correction = BARKJOHN_2021
    elif method == "fit":
        try:
            correction = fit(pairs, kind)  # type: ignore[arg-type]
        except FitError as exc:
            raise ProposalError(f"sensor {sensor_id} {variable} beside {ref.sensor_id}: {exc}") from None
    else:
        raise ProposalError(f"method: expected fit or barkjohn-2021, got {method!r}")
    built = build_report(pairs, correction, method=method, interval=interval)
    report = {"reference": {"sensor": ref.sensor_id, "distance_m": distance}, "unit": unit, **built}
    return await insert_proposal(conn, created_by=created_by, sensor_id=sensor_id, device_id=device_id,
                                 variable=variable, reference_sensor_id=ref.sensor_id, distance_m=distance,
                                 method=method, kind=correction.kind, coefficients=correction.coefficients,
                                 unit=unit, time_from=time_from, time_to=time_to,
                                 pairs=len(pairs.with_rh().hour_ends if correction.kind == "linear_rh"
                                           else pairs.hour_ends),
                                 report=report)


async def insert_proposal(conn: AsyncConnection[Any], *, created_by: str, sensor_id: str, device_id: str,
                          variable: str, reference_sensor_id: str | None, distance_m: float | None, method: str,
                          kind: str, coefficients: Sequence[float], unit: str, time_from: datetime,
                          time_to: datetime, pairs: int, report: dict[str, Any]) -> int:
    """Store a proposal (status proposed) and return its id."""
    cur = await conn.execute(
        "INSERT INTO calibration_proposals (created_by, sensor_id, device_id, variable, reference_sensor_id, "
        "distance_m, method, kind, coefficients, unit, time_from, time_to, pairs, report) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (created_by, sensor_id, device_id, variable, reference_sensor_id, distance_m, method, kind,
         [float(c) for c in coefficients], unit, time_from, time_to, pairs, Jsonb(report)))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def get_proposal(conn: AsyncConnection[Any], proposal_id: int) -> dict[str, Any]:
    """One proposal as a dict of its columns; ProposalError when unknown."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM calibration_proposals WHERE id = %s", (proposal_id,))
        row = await cur.fetchone()
    if row is None:
        raise ProposalError(f"calibration proposal {proposal_id}: no such proposal")
    return dict(row)


async def list_proposals(conn: AsyncConnection[Any], *, sensor_id: str | None = None) -> list[dict[str, Any]]:
    """Proposals, newest first (of one sensor when given)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM calibration_proposals WHERE %(s)s::text IS NULL OR sensor_id = %(s)s "
                          "ORDER BY id DESC", {"s": sensor_id})
        return [dict(r) for r in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a proposal did."""

    proposal_id: int
    sensor_id: str
    device_id: str
    calibration_id: int
    closed_calibration_id: int | None  #: the version it replaced (closed at valid_from), if any
    valid_from: datetime


async def apply_proposal(conn: AsyncConnection[Any], proposal_id: int, *, valid_from: datetime, actor: str
                         ) -> Applied:
    """Apply a proposal as a new calibration version from `valid_from` (module docstring)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM calibration_proposals WHERE id = %s FOR UPDATE", (proposal_id,))
        p = await cur.fetchone()
        if p is None:
            raise ProposalError(f"calibration proposal {proposal_id}: no such proposal")
        if p["status"] != "proposed":
            raise ProposalError(f"calibration proposal {proposal_id}: already {p['status']} by {p['decided_by']} "
                                f"at {p['decided_at'].isoformat()}")
        where = f"calibration proposal {proposal_id} (sensor {p['sensor_id']} device {p['device_id']} {p['variable']})"
        await cur.execute("SELECT id, kind, coefficients, unit, valid_from, valid_to FROM calibrations "
                          "WHERE device_id = %s AND variable = %s AND revoked_at IS NULL "
                          "AND (valid_to IS NULL OR valid_to > %s) ORDER BY valid_from FOR UPDATE",
                          (p["device_id"], p["variable"], valid_from))
        in_force = await cur.fetchall()
        later = [c for c in in_force if c["valid_from"] >= valid_from]
        if later:
            raise ProposalError(f"{where}: calibration {later[0]['id']} is in force from "
                                f"{later[0]['valid_from'].isoformat()}, not before {valid_from.isoformat()}: "
                                "revoke it, or apply from a later time")
        closed = in_force[0] if in_force else None
        if closed is not None:
            await cur.execute("UPDATE calibrations SET valid_to = %s WHERE id = %s", (valid_from, closed["id"]))
            await insert_audit(cur, actor=actor, action="calibration.close", sensor_id=p["sensor_id"],
                               device_id=p["device_id"],
                               before={"id": closed["id"], "valid_to": _iso(closed["valid_to"])},
                               after={"id": closed["id"], "valid_to": valid_from.isoformat(),
                                      "replaced_by_proposal": proposal_id})
        try:
            cal_id = await insert_calibration(
                conn, device_id=p["device_id"], variable=p["variable"], kind=p["kind"],
                coefficients=[float(c) for c in p["coefficients"]], unit=p["unit"], valid_from=valid_from,
                source=_source(p), note=f"calibration proposal {proposal_id}", created_by=actor)
        except CalibrationError as exc:
            raise ProposalError(f"{where}: {exc.detail}") from None
        await insert_audit(cur, actor=actor, action="calibration.add", sensor_id=p["sensor_id"],
                           device_id=p["device_id"],
                           after={"id": cal_id, "proposal": proposal_id, "variable": p["variable"], "kind": p["kind"],
                                  "coefficients": [float(c) for c in p["coefficients"]], "unit": p["unit"],
                                  "valid_from": valid_from.isoformat(), "source": _source(p)})
        await cur.execute("UPDATE calibration_proposals SET status = 'applied', decided_at = now(), decided_by = %s, "
                          "calibration_id = %s WHERE id = %s", (actor, cal_id, proposal_id))
        return Applied(proposal_id, p["sensor_id"], p["device_id"], cal_id,
                       closed["id"] if closed is not None else None, valid_from)


async def reject_proposal(conn: AsyncConnection[Any], proposal_id: int, *, actor: str) -> None:
    """Mark a proposal rejected (kept for the record); ProposalError unless it is still proposed."""
    cur = await conn.execute("UPDATE calibration_proposals SET status = 'rejected', decided_at = now(), "
                             "decided_by = %s WHERE id = %s AND status = 'proposed'", (actor, proposal_id))
    if cur.rowcount != 1:
        raise ProposalError(f"calibration proposal {proposal_id}: no such proposal awaiting a decision")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _source(p: dict[str, Any]) -> str:
    if p["method"] == "barkjohn-2021":
        return str(p["report"]["proposed"]["source"])
    return (f"co-location with {p['reference_sensor_id']} ({p['distance_m']:.0f} m), "
            f"{p['time_from'].isoformat()} to {p['time_to'].isoformat()}, {p['pairs']} paired hours "
            f"(aqnet calibrate proposal {p['id']})")
