"""`aqnet validation …` and `aqnet alerts record` against a real TimescaleDB holding simulator data
(tests/e2e/alert_harness.py): a reader's token, an unknown one or none cannot validate (exit 1 naming what is
needed, nothing written); a technician and an officer can, as the token's owner via cli; undo, the audit trail and
the values with their verification state; an unknown reason is a usage error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from psycopg import AsyncConnection

from aqnet.cli import cli
from storage.tokens import ROLES, create_token
from tests.e2e.alert_harness import AlertHarness, test_rules

pytestmark = pytest.mark.integration


def _setup(url: str) -> tuple[AlertHarness, dict[str, str]]:
    async def go() -> tuple[AlertHarness, dict[str, str]]:
        harness = AlertHarness(url, test_rules(), stations=("KEN",))
        await harness.open()
        await harness.write_hours(1, 3)
        await harness.close()
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            tokens = {role: (await create_token(conn, name=f"luz-{role}", role=role, created_by="pytest")).secret
                      for role in ROLES}
        return harness, tokens

    return asyncio.run(go())


def _run(url: str, *args: str, token: str | None = None) -> Any:
    env = {"AQNET_TOKEN": token} if token else {"AQNET_TOKEN": ""}
    return CliRunner().invoke(cli, ["validation", *args, "--url", url, "--json"], env=env)


def test_validation_commands_by_role_with_audit_and_values(database_url: str) -> None:
    harness, tokens = _setup(database_url)
    period = ["--from", harness.end_of(1).isoformat(), "--to", harness.end_of(2).isoformat()]
    for token in (tokens["reader"], "aqn_unknown", None):
        refused = _run(database_url, "invalidate", "KEN", "--variable", "pm25", "--reason", "local_source", *period,
                       token=token)
        assert refused.exit_code == 1, refused.output
        code = json.loads(refused.output)["error"]["code"]
        assert code == ("forbidden" if token == tokens["reader"] else "unauthorized")
    assert harness.query("SELECT count(*) FROM validation_decisions") == [(0,)]

    bad = _run(database_url, "invalidate", "KEN", "--reason", "vandalism", *period, token=tokens["officer"])
    assert bad.exit_code == 2 and "vandalism" in bad.output

    inv = _run(database_url, "invalidate", "KEN", "--variable", "pm25", "--reason", "local_source", "--text",
               "obras en la vía", *period, token=tokens["technician"])
    assert inv.exit_code == 0, inv.output
    taken = json.loads(inv.output)
    assert (taken["actor"], taken["actor_role"], taken["via"], taken["effect"]["readings"]) == (
        "luz-technician", "technician", "cli", 6)
    val = _run(database_url, "validate", "KEN", "--device", "KEN-pm", *period, token=tokens["officer"])
    assert val.exit_code == 0 and json.loads(val.output)["actor"] == "luz-officer"
    undo = _run(database_url, "undo", str(json.loads(val.output)["id"]), token=tokens["officer"])
    assert undo.exit_code == 0, undo.output
    twice = _run(database_url, "undo", str(json.loads(val.output)["id"]), token=tokens["technician"])
    assert twice.exit_code == 1 and json.loads(twice.output)["error"]["code"] == "conflict"

    audit = json.loads(_run(database_url, "audit", "--sensor", "KEN").output)
    assert [(d["action"], d["actor"], d["reason"], d["text"]) for d in audit] == [
        ("undo", "luz-officer", None, ""), ("validate", "luz-officer", None, ""),
        ("invalidate", "luz-technician", "local_source", "obras en la vía")]
    table = CliRunner().invoke(cli, ["validation", "audit", "--url", database_url])
    assert table.exit_code == 0 and "luz-technician" in table.output and "local_source" in table.output

    values = json.loads(_run(database_url, "values", "KEN", "pm25", *period).output)
    assert len(values) == 6 and {(v["decision"], v["verification"], v["validity"]) for v in values} == {
        ("invalidate", 1, -1)}


def test_sensor_operator_and_location_publication(database_url: str) -> None:
    harness, _ = _setup(database_url)
    (lat, lon), = harness.query("SELECT lat, lon FROM sensors WHERE id = 'KEN'")

    def publication(*args: str) -> Any:
        return CliRunner().invoke(cli, ["sensors", "publication", "KEN", *args, "--url", database_url, "--json",
                                        "--actor", "ana"])

    shown = publication()
    assert shown.exit_code == 0, shown.output
    assert (json.loads(shown.output)["location_publication"], json.loads(shown.output)["lat"]) == ("exact", lat)
    coarse = json.loads(publication("--operator", "Secretaría Distrital de Ambiente", "--location", "coarse").output)
    assert (coarse["operator"], coarse["location_publication"]) == ("Secretaría Distrital de Ambiente", "coarse")
    assert (coarse["lat"], coarse["lon"]) == (round(lat, 2), round(lon, 2)) and coarse["address"] == ""
    assert harness.query("SELECT actor, action, after->>'location_publication' FROM audit_log "
                         "WHERE action = 'publication'") == [("cli:ana", "publication", "coarse")]
    assert publication("--location", "blurred").exit_code == 2
    unknown = CliRunner().invoke(cli, ["sensors", "publication", "NOPE", "--url", database_url, "--json"])
    assert unknown.exit_code == 1 and json.loads(unknown.output)["error"]["code"] == "not_found"
