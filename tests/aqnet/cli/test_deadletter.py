"""`aqnet deadletter list|replay` through click's CliRunner against a real database: filters, JSON, replay
outcomes and exit codes, idempotence, and how the database and network are found."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from click.testing import CliRunner, Result

from aqnet.cli.deadletter import deadletter, parse_since
from aqnet.localstack import free_port

T0 = datetime(2026, 11, 23, 13, 0, 5, tzinfo=UTC)
VALID = json.dumps({"time": "2026-11-23T08:00:00-05:00", "values": {"pm25": 10.0}}).encode()
GARBAGE = b"\x00{garbage"


def _insert(url: str, source: str, reason: str, *, sensor_id: str | None = None, payload: bytes | None = None,
            topic: str | None = None, received_at: datetime = T0, detail: str = "the error") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("INSERT INTO dead_letters (source, reason, detail, sensor_id, payload, topic, received_at) "
                           "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                           (source, reason, detail, sensor_id, payload, topic, received_at)).fetchone()
    assert row is not None
    return int(row[0])


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT sensor_id, variable, time FROM measurements ORDER BY 1, 2, 3").fetchall()


def _run(*args: str) -> Result:
    return CliRunner().invoke(deadletter, list(args), catch_exceptions=False)


@pytest.fixture
def letters(database_url: str) -> dict[str, int]:
    return {
        "garbage": _insert(database_url, "mqtt", "not_json", sensor_id="MS03", payload=GARBAGE,
                           topic="aqnet/MS03/readings", received_at=T0 - timedelta(days=3)),
        "unknown": _insert(database_url, "mqtt", "unknown_sensor", sensor_id="XX99", payload=VALID,
                           topic="aqnet/XX99/readings", received_at=T0 - timedelta(hours=2)),
        "valid": _insert(database_url, "mqtt", "unknown_sensor", sensor_id="MS03", payload=VALID,
                         topic="aqnet/MS03/readings", received_at=T0 - timedelta(hours=1)),
        "conflict": _insert(database_url, "writer", "conflict", sensor_id="USQ", received_at=T0,
                            detail="USQ/USQ-pm/pm25 at ...: value 2 differs from 1"),
    }


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "aqnet.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": database_url}, "mqtt": {"url": "mqtt://127.0.0.1:1"}}))
    return str(path)


def test_list_shows_every_letter_newest_first(database_url: str, letters: dict[str, int]) -> None:
    result = _run("list", "--url", database_url)
    assert result.exit_code == 0, result.output
    ids = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+\d{4}-\d\d-\d\d ", result.output, re.MULTILINE)]
    assert ids == [letters["conflict"], letters["valid"], letters["unknown"], letters["garbage"]]
    assert "aqnet/XX99/readings" in result.output and "4 letter(s) shown" in result.output


def test_list_filters_and_json(database_url: str, letters: dict[str, int]) -> None:
    def ids(*args: str) -> list[int]:
        result = _run("list", "--url", database_url, "--json", *args)
        assert result.exit_code == 0, result.output
        return [doc["id"] for doc in json.loads(result.output)]

    assert ids("--reason", "unknown_sensor") == [letters["valid"], letters["unknown"]]
    assert ids("--sensor", "MS03") == [letters["valid"], letters["garbage"]]
    assert ids("--since", (T0 - timedelta(hours=1, minutes=1)).isoformat()) == [letters["conflict"], letters["valid"]]
    assert ids("--since", "2026-11-21") == [letters["conflict"], letters["valid"], letters["unknown"]]  # Bogotá day
    assert ids("--limit", "1") == [letters["conflict"]]
    [doc] = json.loads(_run("list", "--url", database_url, "--json", "--reason", "not_json").output)
    assert doc["payload_text"] == GARBAGE.decode()
    assert doc["payload_base64"] == "AHtnYXJiYWdl"
    assert (doc["source"], doc["topic"], doc["state"], doc["error"]) == ("mqtt", "aqnet/MS03/readings", "pending",
                                                                         "the error")
    assert "no dead letters match" in _run("list", "--url", database_url, "--sensor", "NOPE").output


def test_replay_all_stores_the_valid_keeps_the_garbage_and_says_why(
        database_url: str, letters: dict[str, int], config: str) -> None:
    result = _run("replay", "--all", "--config", config)
    assert result.exit_code == 1, result.output  # some letters failed again
    out = result.output
    assert f"#{letters['valid']} MS03: stored 1 reading" in out
    assert f"#{letters['garbage']} MS03: failed (not_json): payload is not UTF-8 JSON" in out
    assert f"#{letters['unknown']} XX99: failed (unknown_sensor): " in out
    assert "1 writer letter(s) (conflict) not replayed" in out and "aqnet reprocess" in out
    assert "replay: 1 stored, 2 failed, 0 skipped, 0 not replayable, 0 missing" in out
    assert _rows(database_url) == [("MS03", "pm25", datetime(2026, 11, 23, 13, 0, tzinfo=UTC))]

    states = {d["id"]: d for d in json.loads(_run("list", "--url", database_url, "--json").output)}
    assert states[letters["valid"]]["state"] == "replayed"
    assert states[letters["valid"]]["replay_result"] == "stored 1 reading"
    assert states[letters["garbage"]]["state"] == "failed"
    assert states[letters["garbage"]]["error"] != "the error"  # the new error from today's decoder
    assert states[letters["conflict"]]["state"] == "pending"

    again = _run("replay", "--all", "--config", config, "--json")
    assert again.exit_code == 1
    doc = json.loads(again.output)
    assert {o["id"]: o["status"] for o in doc["outcomes"]} == {letters["garbage"]: "failed",
                                                               letters["unknown"]: "failed"}
    assert doc["not_replayable"] == [{"source": "writer", "reason": "conflict", "count": 1}]
    assert _rows(database_url) == [("MS03", "pm25", datetime(2026, 11, 23, 13, 0, tzinfo=UTC))]


def test_replay_by_id(database_url: str, letters: dict[str, int], config: str) -> None:
    result = _run("replay", "--id", str(letters["valid"]), "--id", str(letters["conflict"]), "--config", config)
    assert result.exit_code == 0, result.output
    assert "stored 1 reading" in result.output
    assert f"#{letters['conflict']} USQ: not replayable: a writer conflict is not replayable" in result.output
    again = _run("replay", "--id", str(letters["valid"]), "--url", database_url)
    assert again.exit_code == 0, again.output
    assert "skipped: already replayed at" in again.output
    assert len(_rows(database_url)) == 1
    missing = _run("replay", "--id", "999999", "--url", database_url)
    assert missing.exit_code == 1 and "#999999 ?: missing: no such dead letter" in missing.output


def test_replay_filters_by_reason(database_url: str, letters: dict[str, int]) -> None:
    result = _run("replay", "--all", "--reason", "not_json", "--url", database_url)
    assert result.exit_code == 1
    assert "replay: 0 stored, 1 failed" in result.output and "XX99" not in result.output


def test_replay_with_nothing_to_do(database_url: str) -> None:
    result = _run("replay", "--all", "--url", database_url)
    assert result.exit_code == 0 and "nothing to replay" in result.output


def test_replay_needs_ids_or_all(database_url: str) -> None:
    assert _run("replay", "--url", database_url).exit_code == 2
    assert _run("replay", "--all", "--id", "1", "--url", database_url).exit_code == 2


def test_no_database_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("list", "--var", str(tmp_path))
    assert result.exit_code == 1 and "pass --url or --config" in result.output
    url = f"postgresql://aqnet@127.0.0.1:{free_port()}/aqnet?connect_timeout=2"
    for args in (["list"], ["replay", "--all"]):
        result = _run(*args, "--url", url)
        assert result.exit_code == 1 and "cannot use the database" in result.output, result.output


def test_parse_since() -> None:
    tz, now = ZoneInfo("America/Bogota"), datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_since("2h", tz, now) == now - timedelta(hours=2)
    assert parse_since("30m", tz, now) == now - timedelta(minutes=30)
    assert parse_since("7d", tz, now) == now - timedelta(days=7)
    assert parse_since("2026-11-23T08:00", tz, now) == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert parse_since("2026-11-23T08:00Z", tz, now) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert parse_since("2026-11-23", tz, now) == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    with pytest.raises(Exception, match="ISO 8601"):
        parse_since("yesterday", tz, now)
