"""Validation by people against a real TimescaleDB with data the simulators produce (issue 21's acceptance):
`tests/e2e/alert_harness.AlertHarness` writes `simulators.signals.CitySignals` readings through the real pipeline
and writer, and runs the real stage jobs (averages, indices, rules) on a stepped clock.

- an invalidated period leaves the averages and indices it touched (coverage and sample counts drop, the hours
  become invalid) while its raw values stay stored; undoing it restores every average and index exactly; a
  validated period carries the verified state and changes no average; the audit lists every decision with its
  actor, role and reason, and who undid it;
- the SQL deciding rule (`storage.validation.DECIDING_SQL`, the `measurement_verification` view) agrees with the
  pure `ingest.validation.resolve` / `state_of` on overlapping decisions;
- decisions are append-only (the database refuses UPDATE and DELETE; TRUNCATE, a table owner's act, is left to
  test fixtures that empty the database).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from ingest.validation import Decision, Period, Scope, resolve, state_of
from storage.validation import DecisionRefused, decide, list_decisions, values
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
SENSOR, DEVICE = "KEN", "KEN-pm"


def _averages(harness: AlertHarness) -> list[tuple[Any, ...]]:
    return harness.query("SELECT variable, period, period_end, value, coverage, samples, valid FROM averages "
                         "WHERE sensor_id = %s ORDER BY variable, period, period_end", (SENSOR,))


def _indices(harness: AlertHarness) -> list[tuple[Any, ...]]:
    return harness.query("SELECT index, pollutant, averaging, period_end, value, level, dominant FROM indices "
                         "WHERE sensor_id = %s ORDER BY 1, 2, 3, 4", (SENSOR,))


def _measurements(harness: AlertHarness) -> list[tuple[Any, ...]]:
    return harness.query("SELECT time, device_id, variable, value, raw_value, raw_unit, flags FROM measurements "
                         "WHERE sensor_id = %s ORDER BY time, device_id, variable", (SENSOR,))


async def _decide(url: str, action: str, **kw: Any) -> Any:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await decide(conn, action, **kw)  # type: ignore[arg-type]


async def test_invalidate_recomputes_averages_and_indices_and_undo_restores_them(database_url: str) -> None:
    async with AlertHarness(database_url, test_rules(), stations=(SENSOR,)) as harness:
        await harness.warm_up(30)
        stored = _measurements(harness)
        before_avg, before_idx = _averages(harness), _indices(harness)
        assert stored and before_idx
        # hours 11..14 (the hours ending at 12..15), pm25 of the analyser
        start, end = harness.end_of(11), harness.end_of(15)
        pm25_1h = {row[2]: row for row in before_avg if row[:2] == ("pm25", "1h")}
        assert all(pm25_1h[harness.end_of(h)][6] for h in range(12, 16)), "the simulated hours were valid"

        invalid = await _decide(database_url, "invalidate", scope=Scope(SENSOR, DEVICE, "pm25"),
                                period=Period(start, end), reason="analyser_fault", text="zero drift seen on site",
                                actor="tec-ana", role="technician", via="api", now=harness.now)
        assert invalid.effect["variables"]["pm25"]["readings"] == 4 * 6
        assert invalid.effect["changed"] == 4 * 6 and invalid.effect["slots_recomputed"] == 4 * 4
        await harness.stage()  # the same `now`: nothing due, the marked windows recomputed

        assert _measurements(harness) == stored, "raw and normalised values are never changed"
        after = {row[:3]: row for row in _averages(harness)}
        for h in range(12, 16):
            _, _, _, value, coverage, samples, valid = after[("pm25", "1h", harness.end_of(h))]
            assert (value, coverage, samples, valid) == (None, 0.0, 0, False)
        day = after[("pm25", "24h", harness.end_of(30))]
        was = next(r for r in before_avg if r[:3] == ("pm25", "24h", harness.end_of(30)))
        assert day[4] == pytest.approx(was[4] - 4 / 24) and day[5] == was[5] - 4
        # the other variable and the hours outside the period are untouched
        assert [r for r in _averages(harness) if r[0] == "pm10"] == [r for r in before_avg if r[0] == "pm10"]
        assert after[("pm25", "1h", harness.end_of(11))] == pm25_1h[harness.end_of(11)]
        assert _indices(harness) != before_idx  # NowCasts and daily indices over those hours changed

        states = await _values(database_url, Period(harness.end_of(10), harness.end_of(16)))
        inside = [s for s in states if start <= s["time"] < end]
        outside = [s for s in states if not start <= s["time"] < end]
        assert {(s["decision"], s["verification"], s["validity"], s["decision_id"]) for s in inside} == {
            ("invalidate", 1, -1, invalid.id)}
        assert {(s["decision"], s["verification"]) for s in outside} == {(None, 3)}

        undo = await _decide(database_url, "undo", undoes=invalid.id, text="drift was the display, not the data",
                             actor="oficial-luz", role="officer", via="cli", now=harness.now + timedelta(minutes=5))
        assert (undo.scope, undo.period, undo.effect["changed"]) == (invalid.scope, invalid.period, 4 * 6)
        await harness.stage()
        assert _averages(harness) == before_avg
        assert _indices(harness) == before_idx
        assert _measurements(harness) == stored

        valid = await _decide(database_url, "validate", scope=Scope(SENSOR), period=Period(start, end),
                              actor="oficial-luz", role="officer", via="api", now=harness.now + timedelta(minutes=9))
        assert valid.effect["slots_recomputed"] == 0  # validating changes no average
        await harness.stage()
        assert _averages(harness) == before_avg
        states = await _values(database_url, Period(start, end))
        assert {(s["decision"], s["verification"], s["validity"]) for s in states} == {("validate", 1, 1)}

        with pytest.raises(DecisionRefused) as refused:
            await _decide(database_url, "undo", undoes=invalid.id, actor="tec-ana", role="technician", via="api",
                          now=harness.now)
        assert refused.value.code == "conflict" and f"undone by decision {undo.id}" in refused.value.message

        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            audit = await list_decisions(conn, sensor_id=SENSOR)
        assert [(d.id, d.action, d.actor, d.actor_role, d.via, d.reason, d.text, d.undoes, d.undone_by)
                for d in audit] == [
            (valid.id, "validate", "oficial-luz", "officer", "api", None, "", None, None),
            (undo.id, "undo", "oficial-luz", "officer", "cli", None, "drift was the display, not the data",
             invalid.id, None),
            (invalid.id, "invalidate", "tec-ana", "technician", "api", "analyser_fault", "zero drift seen on site",
             None, undo.id)]


async def _values(url: str, period: Period) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await values(conn, SENSOR, "pm25", period)


async def test_sql_deciding_rule_agrees_with_the_pure_one(database_url: str) -> None:
    async with AlertHarness(database_url, test_rules(), stations=(SENSOR,)) as harness:
        await harness.write_hours(1, 6)
        t = harness.end_of
        taken: list[Decision] = []
        plan: list[dict[str, Any]] = [
            {"action": "invalidate", "scope": Scope(SENSOR), "period": Period(t(0), t(4)), "reason": "maintenance"},
            {"action": "validate", "scope": Scope(SENSOR, DEVICE, "pm25"), "period": Period(t(1), t(2))},
            {"action": "invalidate", "scope": Scope(SENSOR, None, "pm10"),
             "period": Period(t(1) + timedelta(minutes=20), t(5)), "reason": "other"},
            {"action": "validate", "scope": Scope(SENSOR, DEVICE), "period": Period(t(3), t(6))},
        ]
        for i, step in enumerate(plan):
            text = "a bus idling by the inlet" if step.get("reason") == "other" else ""
            d = await _decide(database_url, step["action"], scope=step["scope"], period=step["period"],
                              reason=step.get("reason"), text=text, actor="t", role="technician", via="api",
                              now=harness.now)
            taken.append(Decision(d.id, d.action, d.scope, d.period, d.reason, d.text))
            if i == 1:  # undo the narrow validation: the sensor-wide invalidation decides again there
                u = await _decide(database_url, "undo", undoes=d.id, actor="t", role="technician", via="api",
                                  now=harness.now)
                taken.append(Decision(u.id, "undo", u.scope, u.period, undoes=d.id))
        rows = harness.query("SELECT time, device_id, variable, flags, value, decision_id, verification, validity "
                             "FROM measurement_verification WHERE sensor_id = %s", (SENSOR,))
        assert len(rows) == 6 * 6 * 2
        for time, device, variable, flags, value, decision_id, verification, validity in rows:
            decided = resolve(taken, SENSOR, device, variable, time)
            state = state_of(flags, value, decided)
            assert (decision_id, verification, validity) == (
                None if decided is None else decided.id, int(state.verification), int(state.validity)), (
                time, variable)


def test_decisions_are_append_only(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES ('S', 'S', 'station', 4.6, -74.1)")
        conn.execute("INSERT INTO validation_decisions (decided_at, actor, actor_role, via, action, sensor_id, "
                     "time_from, time_to) VALUES (now(), 'a', 'officer', 'cli', 'validate', 'S', now() - interval "
                     "'1 hour', now())")
        for statement in ("UPDATE validation_decisions SET actor = 'b'", "DELETE FROM validation_decisions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT actor FROM validation_decisions").fetchall() == [("a",)]
