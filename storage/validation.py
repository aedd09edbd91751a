"""Validation by people, stored: take a decision (validate, invalidate with a reason, undo), list the audit trail,
read values with their three levels. I/O (psycopg 3 async) over the pure `ingest.validation`.

Contract of `decide(conn, ...)`, in ONE transaction (a savepoint when the caller has one):

1. checks the request (`ingest.validation.check_request`; the sensor exists, the device is the sensor's, the
   variable is in the vocabulary or has readings of the sensor; an undo names a validation or invalidation not
   undone yet — which it locks — and repeats its scope and period); `DecisionRefused(code, message)` otherwise,
   code not_found | invalid | conflict, and nothing is written;
2. finds, per (sensor, variable, 15-minute slot) in the scope and period, the readings covered and those whose
   deciding decision changes (`DECIDING_SQL`: the latest in force covering the reading), and marks in
   `dirty_slots` (the late-data marks `storage.writer` and `storage.reprocess` use) every slot where a reading
   starts or stops counting, so the averaging job recomputes the averages, indices (and so exceedances) they
   touch. No measurement is changed;
3. appends the decision to `validation_decisions` with its actor (the token's name and role), `via`, time and
   effect (readings covered and changed per variable, slots marked, alerts touched);
4. for an invalidation, appends an `evidence_invalidated` event to each open alert (not resolved; sensor-scope
   evidence: the alert's sensor and variable) whose evidence period holds a reading that stops counting — the
   alert stays open until its rule resolves it on the recomputed averages; undoing that invalidation appends a
   note to those alerts still open (`storage.alert_record`).

Readers (`list_decisions`, `values`) are plain reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.reading import EXCLUDED
from ingest.validation import VALIDATOR_ROLES, Action, DecisionError, Period, Scope, check_request
from sensors.variables import VARIABLES
from storage.alert_record import alerts_resting_on, mark_evidence_invalidated, mark_evidence_restored
from storage.writer import MARK_LATE, SLOT_OF

__all__ = ["DECIDING_SQL", "INVALIDATED_SENSORS_SQL", "DecisionRefused", "RecordedDecision", "decide",
           "list_decisions", "values"]

#: the deciding action ('validate' | 'invalidate' | NULL) of measurement `m`: the latest decision in force covering
#: it, leaving out decision `{excluding}` (a bound parameter, 0: none) — the SQL twin of ingest.validation.resolve
DECIDING_SQL = """(SELECT f.action FROM validation_in_force f
  WHERE f.sensor_id = m.sensor_id AND (f.device_id IS NULL OR f.device_id = m.device_id)
    AND (f.variable IS NULL OR f.variable = m.variable) AND f.time_from <= m.time AND m.time < f.time_to
    AND f.id <> {excluding}
  ORDER BY f.id DESC LIMIT 1)"""

#: the sensors with an invalidation in force meeting [{start}, {end}) (an array, computed once per statement): only
#: their readings need `DECIDING_SQL`
INVALIDATED_SENSORS_SQL = """ARRAY(SELECT DISTINCT f.sensor_id
  FROM validation_in_force f WHERE f.action = 'invalidate' AND f.time_to > {start} AND f.time_from < {end})"""

_STAGING = "_aqnet_validation"

_SCOPE = """m.sensor_id = %(sensor)s AND (%(device)s::text IS NULL OR m.device_id = %(device)s::text)
  AND (%(variable)s::text IS NULL OR m.variable = %(variable)s::text)
  AND m.time >= %(from)s AND m.time < %(to)s"""

# per slot of the scope: readings covered, readings whose deciding action changes, and whether one starts or stops
# counting (one QC keeps, with a finite value, invalidated before xor after: storage.windows_store's rule)
_SLOTS = sql.SQL("""
CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS
SELECT r.sensor_id, r.variable, {slot} AS slot_start, count(*) AS readings,
       count(*) FILTER (WHERE r.before IS DISTINCT FROM r.after) AS changed,
       bool_or(r.qc AND coalesce(r.before = 'invalidate', false) <> coalesce(r.after = 'invalidate', false)) AS flips
FROM (SELECT m.sensor_id, m.variable, m.time, {before} AS before, {after} AS after,
             (m.flags & %(excluded)s::int4) = 0 AND m.value > '-Infinity'::float8 AND m.value < 'Infinity'::float8 AS qc
      FROM measurements m WHERE {scope}) r
GROUP BY 1, 2, 3
""")

_MARK = sql.SQL(MARK_LATE.format(select=f"SELECT sensor_id, variable, slot_start FROM {_STAGING} WHERE flips"))

_SUMMARY = sql.SQL("""
SELECT variable, sum(readings)::bigint AS readings, sum(changed)::bigint AS changed,
       count(*) FILTER (WHERE flips) AS slots
FROM {staging} GROUP BY variable ORDER BY variable
""").format(staging=sql.Identifier(_STAGING))

_DECISION_COLUMNS = ("id, decided_at, actor, actor_role, via, action, sensor_id, device_id, variable, time_from, "
                     "time_to, reason, reason_text, undoes, effect")


class DecisionRefused(Exception):
    """A decision that was not taken; `code` is not_found | invalid | conflict | forbidden, `message` says why."""

    def __init__(self, code: Literal["not_found", "invalid", "conflict", "forbidden"], message: str,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A stored decision (a `validation_decisions` row), with who undid it if anyone did."""

    id: int
    decided_at: datetime
    actor: str
    actor_role: str
    via: str
    action: Action
    scope: Scope
    period: Period
    reason: str | None
    text: str
    undoes: int | None
    effect: Mapping[str, Any]
    undone_by: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the API's and the CLI's `--json`)."""
        return {"id": self.id, "decided_at": self.decided_at.isoformat(), "actor": self.actor,
                "actor_role": self.actor_role, "via": self.via, "action": self.action,
                "sensor": self.scope.sensor_id, "device": self.scope.device_id, "variable": self.scope.variable,
                "scope": self.scope.level, "from": self.period.start.isoformat(), "to": self.period.end.isoformat(),
                "reason": self.reason, "text": self.text, "undoes": self.undoes, "undone_by": self.undone_by,
                "effect": dict(self.effect)}


def _recorded(row: Mapping[str, Any]) -> RecordedDecision:
    return RecordedDecision(
        id=row["id"], decided_at=row["decided_at"], actor=row["actor"], actor_role=row["actor_role"], via=row["via"],
        action=row["action"], scope=Scope(row["sensor_id"], row["device_id"], row["variable"]),
        period=Period(row["time_from"], row["time_to"]), reason=row["reason"], text=row["reason_text"],
        undoes=row["undoes"], effect=row["effect"], undone_by=row.get("undone_by"))


async def _check_scope(cur: Any, scope: Scope) -> None:
    await cur.execute("SELECT 1 FROM sensors WHERE id = %s", (scope.sensor_id,))
    if await cur.fetchone() is None:
        raise DecisionRefused("not_found", f"unknown sensor {scope.sensor_id!r} (not in the registry)", "sensor")
    if scope.device_id is not None:
        await cur.execute("SELECT sensor_id FROM devices WHERE id = %s", (scope.device_id,))
        row = await cur.fetchone()
        if row is None:
            raise DecisionRefused("not_found", f"unknown device {scope.device_id!r}", "device")
        if row["sensor_id"] != scope.sensor_id:
            raise DecisionRefused("invalid", f"device {scope.device_id!r} belongs to sensor {row['sensor_id']!r}, "
                                  f"not {scope.sensor_id!r}", "device")
    if scope.variable is not None and scope.variable not in VARIABLES:
        await cur.execute("SELECT 1 FROM measurements WHERE sensor_id = %s AND variable = %s LIMIT 1",
                          (scope.sensor_id, scope.variable))
        if await cur.fetchone() is None:
            raise DecisionRefused("invalid", f"variable {scope.variable!r} is not in the vocabulary and sensor "
                                  f"{scope.sensor_id!r} has no reading of it", "variable")


async def _undo_target(cur: Any, undoes: int) -> RecordedDecision:
    await cur.execute(f"SELECT {_DECISION_COLUMNS} FROM validation_decisions WHERE id = %s FOR UPDATE", (undoes,))
    row = await cur.fetchone()
    if row is None:
        raise DecisionRefused("not_found", f"no decision {undoes} to undo", "undoes")
    target = _recorded(row)
    if target.action == "undo":
        raise DecisionRefused("invalid", f"decision {undoes} is an undo; take a new decision instead", "undoes")
    await cur.execute("SELECT id FROM validation_decisions WHERE undoes = %s", (undoes,))
    done = await cur.fetchone()
    if done is not None:
        raise DecisionRefused("conflict", f"decision {undoes} was already undone by decision {done['id']}",
                              "undoes")
    return target


async def decide(conn: AsyncConnection[Any], action: Action, *, scope: Scope | None = None,
                 period: Period | None = None, reason: str | None = None, text: str = "",
                 undoes: int | None = None, actor: str, role: str, via: str, now: datetime) -> RecordedDecision:
    """Take one decision (the module docstring's contract) and return it as stored. `actor` is the API token's
    name, `role` its role (technician or officer), `via` cli, api or console, `now` the decision's time."""
    if role not in VALIDATOR_ROLES:
        raise DecisionRefused("forbidden", f"validating needs a technician or officer token; {actor!r} is {role}")
    if not actor.strip() or via not in ("cli", "api", "console"):
        raise DecisionRefused("invalid", f"actor and via (cli|api|console) must say who acted where, got {actor!r}, "
                                         f"{via!r}")
    try:
        check_request(action, reason, text, undoes)
    except DecisionError as exc:
        raise DecisionRefused("invalid", str(exc), exc.field) from None
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        target: RecordedDecision | None = None
        if undoes is not None:
            target = await _undo_target(cur, undoes)
            scope, period = target.scope, target.period
        if scope is None or period is None:
            raise DecisionRefused("invalid", f"{action}: a scope (sensor, device, variable) and a period are needed")
        await _check_scope(cur, scope)
        # before: the deciding action now; after: the new decision decides all it covers (it will be the latest),
        # or, for an undo, what decides once the undone decision is left out
        before = sql.SQL(DECIDING_SQL.format(excluding="0"))
        after = (sql.SQL(DECIDING_SQL.format(excluding="%(undoes)s")) if target is not None
                 else sql.Literal(action))
        params = {"sensor": scope.sensor_id, "device": scope.device_id, "variable": scope.variable,
                  "from": period.start, "to": period.end, "undoes": undoes or 0, "excluded": int(EXCLUDED)}
        await cur.execute(_SLOTS.format(staging=sql.Identifier(_STAGING), slot=sql.SQL(SLOT_OF.format(time="r.time")),
                                        before=before, after=after, scope=sql.SQL(_SCOPE)), params)
        await cur.execute(_MARK)
        await cur.execute(_SUMMARY)
        summary = await cur.fetchall()
        effect: dict[str, Any] = {
            "readings": sum(int(r["readings"]) for r in summary),
            "changed": sum(int(r["changed"]) for r in summary),
            "slots_recomputed": sum(int(r["slots"]) for r in summary),
            "variables": {r["variable"]: {"readings": int(r["readings"]), "changed": int(r["changed"]),
                                          "slots_recomputed": int(r["slots"])} for r in summary},
        }
        stops = action == "invalidate"
        restores = target is not None and target.action == "invalidate"
        alert_ids: list[int] = []
        if stops:
            alert_ids = await alerts_resting_on(cur, _STAGING)
            effect["alerts_evidence_invalidated"] = alert_ids
        elif restores and target is not None:
            alert_ids = [int(a) for a in target.effect.get("alerts_evidence_invalidated", [])]
        await cur.execute(
            "INSERT INTO validation_decisions (decided_at, actor, actor_role, via, action, sensor_id, device_id, "
            "variable, time_from, time_to, reason, reason_text, undoes, effect) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            f"%s, %s, %s, %s, %s, %s, %s) RETURNING {_DECISION_COLUMNS}",
            (now, actor.strip(), role, via, action, scope.sensor_id, scope.device_id, scope.variable, period.start,
             period.end, reason, text, undoes, Jsonb(effect)))
        row = await cur.fetchone()
        assert row is not None
        recorded = _recorded(row)
        if stops and alert_ids:
            await mark_evidence_invalidated(cur, alert_ids, decision=recorded.id, actor=actor, role=role, via=via,
                                            now=now, describe=_describe(recorded))
        elif restores and alert_ids:
            await mark_evidence_restored(cur, alert_ids, decision=recorded.id, undone=undoes or 0, actor=actor,
                                         role=role, via=via, now=now)
        return recorded


def _describe(d: RecordedDecision) -> str:
    return (f"{d.scope.describe()} from {d.period.start.isoformat()} to {d.period.end.isoformat()}, "
            f"reason {d.reason}")


async def list_decisions(conn: AsyncConnection[Any], *, sensor_id: str | None = None,
                         since: datetime | None = None, until: datetime | None = None, limit: int = 200
                         ) -> list[RecordedDecision]:
    """The audit trail, newest first: decisions of `sensor_id` (all when None) whose period meets [since, until),
    each with the decision that undid it."""
    if not 1 <= limit <= 10_000:
        raise DecisionRefused("invalid", f"limit: expected 1..10000, got {limit}", "limit")
    columns = ", ".join(f"d.{c.strip()}" for c in _DECISION_COLUMNS.split(","))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {columns}, u.id AS undone_by FROM validation_decisions d "
            "LEFT JOIN validation_decisions u ON u.undoes = d.id "
            "WHERE (%(sensor)s::text IS NULL OR d.sensor_id = %(sensor)s::text) "
            "AND (%(until)s::timestamptz IS NULL OR d.time_from < %(until)s::timestamptz) "
            "AND (%(since)s::timestamptz IS NULL OR d.time_to > %(since)s::timestamptz) "
            "ORDER BY d.id DESC LIMIT %(limit)s",
            {"sensor": sensor_id, "since": since, "until": until, "limit": limit})
        return [_recorded(r) for r in await cur.fetchall()]


async def values(conn: AsyncConnection[Any], sensor_id: str, variable: str, period: Period, *,
                 device_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """The stored values of (sensor, variable) in the period, oldest first, with their three levels and their
    e-Reporting flags (`measurement_verification`): time, device, raw value and unit, value and unit, QC flags,
    qc_valid, decision (validate | invalidate | None), decision_id, reason, verification, validity."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT time, device_id, raw_value, raw_unit, value, unit, flags, qc_valid, decision, decision_id, "
            "reason, verification, validity FROM measurement_verification "
            "WHERE sensor_id = %s AND variable = %s AND time >= %s AND time < %s "
            "AND (%s::text IS NULL OR device_id = %s::text) ORDER BY time, device_id LIMIT %s",
            (sensor_id, variable, period.start, period.end, device_id, device_id, limit))
        return list(await cur.fetchall())
