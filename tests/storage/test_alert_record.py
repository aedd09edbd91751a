"""The record of every decision on an alert, against a real TimescaleDB, with the PM2.5 episode the simulators
produce (`tests/e2e/alert_harness.py`: Kennedy's episode raises KEN's 24-h alert at hour 31) and the real stage
jobs: a technician invalidates the episode's readings; the open alert gets an `evidence_invalidated` transition
(it is not resolved by the decision), its record lists raised and evidence_invalidated with the evidence, the
level's threshold and legal source, and the actor's role (the name only when asked); the averages it rested on
are recomputed; undoing the invalidation notes the restored evidence on the alert."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import AsyncConnection

from ingest.validation import Period, Scope
from storage.alert_record import alert_record
from storage.validation import decide
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration

SENSOR, DEVICE = "KEN", "KEN-pm"
RAISED_AT = 31  #: KEN's 24-h PM2.5 mean reaches prevention (38 µg/m³) at hour 31 (alert_harness's table)


async def _record(url: str, alert_id: int, *, show_names: bool = False) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await alert_record(conn, alert_id, show_names=show_names)


async def test_invalidated_evidence_of_the_pm25_episode_alert_shows_in_its_record(database_url: str) -> None:
    async with AlertHarness(database_url, test_rules(), stations=(SENSOR,)) as harness:
        await harness.warm_up(23)
        await harness.advance(RAISED_AT - 23)
        ((alert_id, state, level),) = harness.query("SELECT id, state, level FROM alerts WHERE scope_key = %s",
                                                    (SENSOR,))
        assert (state, level) == ("firing", "prevention")
        mean_before = harness.query("SELECT value, valid FROM averages WHERE sensor_id = %s AND variable = 'pm25' "
                                    "AND period = '24h' AND period_end = %s", (SENSOR, harness.end_of(RAISED_AT)))
        assert mean_before[0][1] and mean_before[0][0] >= 38

        episode = Period(harness.end_of(24), harness.end_of(RAISED_AT))
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            decision = await decide(conn, "invalidate", scope=Scope(SENSOR, DEVICE, "pm25"), period=episode,
                                    reason="local_source", text="a brush fire 200 m upwind of the inlet",
                                    actor="tec-ana", role="technician", via="api", now=harness.now)
        assert decision.effect["alerts_evidence_invalidated"] == [alert_id]
        # the decision does not resolve the alert: it stays open with a transition saying why
        assert harness.query("SELECT state, level FROM alerts WHERE id = %s", (alert_id,)) == [("firing", "prevention")]

        record = await _record(database_url, alert_id)
        assert [(e["kind"], e["actor"], e["actor_role"], e["decision_id"]) for e in record] == [
            ("raised", "system", "system", None), ("evidence_invalidated", "technician", "technician", decision.id)]
        raised, invalidated = record
        for event in record:  # the evidence, the level, its threshold and legal source, on every transition
            assert (event["sensor_id"], event["variable"], event["period"], event["level"], event["threshold"],
                    event["unit"]) == (SENSOR, "pm25", "24h", "prevention", 38.0, "µg/m³")
            assert "Res. 2254/2017" in event["source"]
            assert event["period_end"] == harness.end_of(RAISED_AT) and event["coverage"] > 0.75
        assert raised["value"] >= 38 and "raised at prevention" in raised["note"]
        assert f"validation decision {decision.id}" in invalidated["note"]
        assert "brush fire" not in invalidated["note"] and "tec-ana" not in str(record)  # no person's name or text
        named = await _record(database_url, alert_id, show_names=True)
        assert named[1]["actor"] == "tec-ana"

        # the averages the alert rested on are recomputed without the episode's readings
        await harness.stage()
        ((value, valid, samples),) = harness.query(
            "SELECT value, valid, samples FROM averages WHERE sensor_id = %s AND variable = 'pm25' AND period = '1h' "
            "AND period_end = %s", (SENSOR, harness.end_of(RAISED_AT)))
        assert (value, valid, samples) == (None, False, 0)
        ((mean_valid, coverage),) = harness.query(
            "SELECT valid, coverage FROM averages WHERE sensor_id = %s AND variable = 'pm25' AND period = '24h' "
            "AND period_end = %s", (SENSOR, harness.end_of(RAISED_AT)))
        assert not mean_valid and coverage == pytest.approx(17 / 24)  # 7 of 24 hours invalidated

        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            undo = await decide(conn, "undo", undoes=decision.id, actor="oficial-luz", role="officer", via="cli",
                                now=harness.now)
        kinds = [(e["kind"], e["actor_role"], e["decision_id"]) for e in await _record(database_url, alert_id)]
        assert kinds[:2] == [("raised", "system", None), ("evidence_invalidated", "technician", decision.id)]
        assert ("note", "officer", undo.id) in kinds[2:]
        await harness.stage()
        ((value, valid),) = harness.query("SELECT value, valid FROM averages WHERE sensor_id = %s AND variable = "
                                          "'pm25' AND period = '24h' AND period_end = %s",
                                          (SENSOR, harness.end_of(RAISED_AT)))
        # the same hours summed in another order (recomputed windows): equal to the last bits
        assert valid and value == pytest.approx(mean_before[0][0], rel=1e-12)
