"""The record of every decision on alerts: the transitions a validation decision adds to open alerts, and the
public record (`alert_record`). I/O (psycopg 3 async, in the caller's transaction).

Every `alert_events` row carries its evidence (sensor, variable, averaging period and bounds, coverage, the
level's threshold, unit and legal source: copied from the alert by migration 0012's trigger as it is recorded)
and the actor's role (system for the rule engine; officer for acknowledge, resolve and notes; the token's role
for validation). The public record shows the role, not the name, and no text a person wrote, unless the
operator's setting asks for names (`show_names`).

`alerts_resting_on(cur, staging)` reads `storage.validation`'s per-slot table of a decision: the open alerts (not
resolved, with an evaluated period: air-quality alerts, not equipment ones) of whose evidence — the alert's sensor
and variable, from the first period any of its transitions rested on to the end of its current period — a
reading stops counting. They are locked (FOR UPDATE) so the rule engine and officers serialise with the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

__all__ = ["alert_record", "alerts_resting_on", "mark_evidence_invalidated", "mark_evidence_restored"]

_RESTING_ON = """
SELECT a.id FROM alerts a
WHERE a.state <> 'resolved' AND a.period_start IS NOT NULL AND a.variable IS NOT NULL
  AND EXISTS (SELECT 1 FROM {staging} s
              WHERE s.flips AND s.sensor_id = a.sensor_id AND s.variable = a.variable
                AND s.slot_start < a.period_end
                AND s.slot_start >= coalesce((SELECT min(e.period_start) FROM alert_events e WHERE e.alert_id = a.id),
                                             a.period_start))
ORDER BY a.id
FOR UPDATE OF a
"""

_EVENT = """
INSERT INTO alert_events (alert_id, time, kind, from_state, to_state, level, severity, value, note, actor, via,
                          actor_role, decision_id)
SELECT a.id, %(now)s, %(kind)s, a.state, a.state, a.level, a.severity, a.value, %(note)s, %(actor)s, %(via)s,
       %(role)s, %(decision)s
FROM alerts a WHERE a.id = ANY(%(ids)s) AND a.state <> 'resolved'
"""


async def alerts_resting_on(cur: Any, staging: str) -> list[int]:
    """The open alerts whose evidence holds a reading the decision in `staging` stops counting (module
    docstring), locked."""
    await cur.execute(sql.SQL(_RESTING_ON).format(staging=sql.Identifier(staging)))
    return [int(r["id"] if isinstance(r, dict) else r[0]) for r in await cur.fetchall()]


async def mark_evidence_invalidated(cur: Any, alert_ids: Sequence[int], *, decision: int, actor: str, role: str,
                                    via: str, now: datetime, describe: str) -> None:
    """Append an `evidence_invalidated` transition (state unchanged) to each alert of `alert_ids`."""
    note = (f"evidence invalidated by validation decision {decision} ({describe}); the averages are recomputed, "
            "the alert stays open until its rule resolves it")
    await cur.execute(_EVENT, {"now": now, "kind": "evidence_invalidated", "note": note, "actor": actor, "via": via,
                               "role": role, "decision": decision, "ids": list(alert_ids)})


async def mark_evidence_restored(cur: Any, alert_ids: Sequence[int], *, decision: int, undone: int, actor: str,
                                 role: str, via: str, now: datetime) -> None:
    """Append a note to each still-open alert of `alert_ids`: the invalidation `undone` was undone by `decision`."""
    note = (f"evidence restored: validation decision {decision} undid the invalidation {undone}; the averages are "
            "recomputed")
    await cur.execute(_EVENT, {"now": now, "kind": "note", "note": note, "actor": actor, "via": via, "role": role,
                               "decision": decision, "ids": list(alert_ids)})


async def alert_record(conn: AsyncConnection[Any], alert_id: int, *, show_names: bool = False
                       ) -> list[dict[str, Any]]:
    """Every transition of alert `alert_id`, oldest first, as the public may see it (`alert_record(show_names)`,
    migration 0012): time, kind, level, from_level, severity, value, unit, threshold, source, sensor_id, variable,
    period, period_start, period_end, coverage, indicative, actor (the role unless `show_names`), actor_role,
    via, decision_id, note. Empty for an unknown alert."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_record(%s) WHERE alert_id = %s ORDER BY time, event_id",
                          (show_names, alert_id))
        return list(await cur.fetchall())
