"""`aqnet alerts …` against a real TimescaleDB: list and show for anyone; ack, resolve and note only with an officer
token (a technician's or reader's token, an unknown one, or none: exit 1 naming the role and what is needed, and
the alert untouched); test-rule shows what a rule would do and changes nothing; exceedances."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import AsyncConnection

from aqnet.cli import cli
from storage.tokens import ROLES, create_token
from tests.aqnet.api.test_alerts import seed_alert

TABLES = ("alerts", "alert_events", "alert_suppressions", "alert_outbox")


def _setup(url: str, **alert: Any) -> tuple[int, dict[str, str]]:
    async def go() -> tuple[int, dict[str, str]]:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            tokens = {role: (await create_token(conn, name=f"luz-{role}", role=role, created_by="pytest")).secret
                      for role in ROLES}
            alert_id, _ = await seed_alert(conn, **alert)
        return alert_id, tokens

    return asyncio.run(go())


def _row(url: str, alert_id: int) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state, acknowledged_by, resolved_by, (SELECT count(*) FROM alert_events e "
                           "WHERE e.alert_id = a.id) FROM alerts a WHERE id = %s", (alert_id,)).fetchone()
    assert row is not None
    return tuple(row)


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


@pytest.mark.parametrize("command", [["ack", "{id}", "--note", "en camino"], ["resolve", "{id}"],
                                     ["note", "{id}", "llamé al operador"]])
def test_officer_operations_need_an_officer_token(database_url: str, command: list[str]) -> None:
    alert_id, tokens = _setup(database_url)
    args = ["alerts", *[a.format(id=alert_id) for a in command], "--url", database_url]
    runner = CliRunner()
    before = _row(database_url, alert_id)
    for role in ("technician", "reader"):
        refused = runner.invoke(cli, [*args, "--token", tokens[role]])
        assert refused.exit_code == 1, refused.output
        assert f"has role {role}" in refused.output and "officer" in refused.output
    unknown = runner.invoke(cli, [*args, "--token", "aqn_" + "x" * 43])
    assert unknown.exit_code == 1 and "unknown or revoked" in unknown.output
    missing = runner.invoke(cli, args, env={"AQNET_TOKEN": ""})
    assert missing.exit_code == 1 and "AQNET_TOKEN" in missing.output
    assert _row(database_url, alert_id) == before

    done = runner.invoke(cli, [*args, "--json"], env={"AQNET_TOKEN": tokens["officer"]})
    assert done.exit_code == 0, done.output
    last = json.loads(done.stdout)["events"][-1]
    assert (last["actor"], last["via"]) == ("luz-officer", "cli")
    state, acked_by, resolved_by, events = _row(database_url, alert_id)
    assert events == before[3] + 1
    assert {"ack": (state, acked_by) == ("acknowledged", "luz-officer"),
            "resolve": (state, resolved_by) == ("resolved", "luz-officer"),
            "note": state == "firing" and last["note"] == "llamé al operador"}[command[0]]


def test_list_show_and_refusals(database_url: str) -> None:
    alert_id, tokens = _setup(database_url)
    runner = CliRunner()
    table = runner.invoke(cli, ["alerts", "list", "--url", database_url])
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split()[:5] == ["ID", "STATE", "SEVERITY", "RULE", "LEVEL"]
    assert row.split()[:5] == [str(alert_id), "firing", "warning", "pm25-24h-levels", "prevention"]
    listed = json.loads(runner.invoke(cli, ["alerts", "list", "--json", "--audience", "officers",
                                            "--url", database_url]).stdout)
    assert [(a["id"], a["sensor_name"], a["value"]) for a in listed] == [(alert_id, "Station KEN", 41.5)]
    none = runner.invoke(cli, ["alerts", "list", "--state", "resolved", "--url", database_url])
    assert none.stdout.strip() == "no alerts"

    shown = runner.invoke(cli, ["alerts", "show", str(alert_id), "--url", database_url])
    assert shown.exit_code == 0, shown.output
    assert "41.5 µg/m³ (threshold 38 µg/m³)" in shown.stdout and "coverage 92%" in shown.stdout
    assert "Res. 2254/2017" in shown.stdout and "raised" in shown.stdout

    officer = ["--token", tokens["officer"], "--url", database_url]
    assert runner.invoke(cli, ["alerts", "ack", str(alert_id), *officer]).exit_code == 0
    twice = runner.invoke(cli, ["alerts", "ack", str(alert_id), *officer])
    assert twice.exit_code == 1 and "already acknowledged by luz-officer" in twice.output
    missing = runner.invoke(cli, ["alerts", "show", "999999", "--json", "--url", database_url])
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["code"] == "not_found"


def test_test_rule_reports_and_changes_nothing(database_url: str) -> None:
    hour = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sensor, locality in (("KEN", "Kennedy"), ("USM", "Usme")):
            conn.execute("INSERT INTO sensors (id, name, kind, lat, lon, locality) VALUES (%s, %s, 'station', "
                         "4.6, -74.1, %s)", (sensor, f"Station {sensor}", locality))
        # KEN's valid 24 h mean is in the alert band (56–150 µg/m³, Res. 2254/2017); USM's is as high but
        # invalid (coverage below the completeness rule): no alert from it, a suppression at most
        for sensor, value, coverage, valid in (("KEN", 60.0, 0.95, True), ("USM", 80.0, 0.4, False)):
            conn.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                         "coverage, samples, valid) VALUES (%s, 'pm25', '24h', %s, %s, %s, 'µg/m³', %s, 20, %s)",
                         (sensor, hour - timedelta(hours=24), hour, value, coverage, valid))
    before = _counts(database_url)
    runner = CliRunner()
    args = ["alerts", "test-rule", "pm25-24h-levels", "--at", "2026-03-10T15:05:00Z", "--url", database_url]
    text = runner.invoke(cli, args)
    assert text.exit_code == 0, text.output
    assert "dry run" in text.stdout and "raised" in text.stdout and "KEN" in text.stdout
    doc = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)
    assert [(e["kind"], e["scope_key"], e["level"], e["value"]) for e in doc["events"]] == [
        ("raised", "KEN", "alert", 60.0)]
    assert [(s["scope_key"], s["reason"]) for s in doc["suppressed"]] == [("USM", "invalid")]
    assert "suppressed" in text.stdout and "invalid" in text.stdout
    assert _counts(database_url) == before  # nothing written (and so nothing to deliver)

    unknown = runner.invoke(cli, ["alerts", "test-rule", "pm99-levels", "--url", database_url])
    assert unknown.exit_code == 1 and "pm25-24h-levels" in unknown.output  # lists the known ids


def test_exceedances_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = datetime(2026, 2, 1, 5, tzinfo=UTC)  # a Bogotá calendar day; 75 µg/m³ is PM10's 24 h limit
        conn.execute("INSERT INTO averages (sensor_id, variable, period, period_start, period_end, value, unit, "
                     "coverage, samples, valid) VALUES ('KEN', 'pm10', 'day', %s, %s, 80, 'µg/m³', 1, 24, true)",
                     (start, start + timedelta(days=1)))
    runner = CliRunner()
    out = runner.invoke(cli, ["alerts", "exceedances", "--year", "2026", "--url", database_url])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[1].split()[:7] == ["2026", "KEN", "pm10", "day", "1", "1", "75"]
    doc = json.loads(runner.invoke(cli, ["alerts", "exceedances", "--json", "--sensor", "NONE",
                                         "--url", database_url]).stdout)
    assert doc == []
