"""`aqnet deadletter …`: list the input aqnet could not store, and replay it after a decoder or registry fix. Shell
(click); I/O. Parses, calls `storage.deadletter` / `storage.replay`, renders text or `--json`, sets the exit code.

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's
(`var/state.json`), as for `aqnet db migrate`. `replay` decodes with the network of `--config` (the local stack's
configuration when neither option is given; with `--url` alone, the bundled network with its default payload
formats), in this process: the daemon need not stop, and the writer's idempotence means a reading the daemon
stored meanwhile is not stored twice.
Exit status of `replay`: 0 when every selected letter was stored, skipped or not replayable, 1 when one failed
again or an id does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aqnet.cli.options import DatabaseTarget, database_options, database_target
from aqnet.cli.times import parse_time
from sensors.network import bundled_network
from sensors.redact import redact
from sensors.sensor import Sensor
from storage import deadletter as dead_letters
from storage.deadletter import DeadLetter
from storage.replay import REPLAYABLE_SOURCES, Outcome, Replayer

__all__ = ["deadletter", "parse_since"]

_DETAIL_WIDTH = 90


def _network(target: DatabaseTarget) -> list[Sensor]:
    """The network the daemon decodes with: the configuration's, else the bundled one."""
    if target.settings is None:
        return bundled_network()
    return target.settings.network.configured_sensors()


def _target(url: str | None, config_path: Path | None, var_dir: Path) -> DatabaseTarget:
    """The database; the settings of --config, else (neither --url nor --config) the local stack's, else none:
    with --url alone, the bundled network with its default payload formats."""
    return database_target(url, config_path, var_dir, stack_config=url is None)


def parse_since(text: str, tz: tzinfo, now: datetime) -> datetime:
    """`2h`, `30m`, `7d`, `90s` before `now`, or an ISO 8601 date/time (without an offset: in `tz`)."""
    return parse_time(text, tz, now, relative="age", option="--since")


_db_options = database_options("YAML settings: its database and network")


def _run(url: str, coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise click.ClickException(redact(f"cannot use the database at {url}: {exc}")) from None


@click.group("deadletter")
def deadletter() -> None:
    """Input aqnet could not store (bad payloads, unknown sensors, conflicts): list and replay it."""


@deadletter.command("list")
@click.option("--reason", default=None, help="only this reason code, e.g. not_json, unknown_sensor, conflict")
@click.option("--sensor", "sensor_id", default=None, help="only this sensor id")
@click.option("--since", default=None, help="received since: an ISO 8601 time, or an age like 2h, 30m, 7d")
@click.option("--state", type=click.Choice(dead_letters.STATES), default=None,
              help="pending (never replayed), failed (a replay failed again), unreplayed (either), replayed")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="newest N letters")
@click.option("--json", "as_json", is_flag=True, help="print JSON (with the payload as text and base64)")
@_db_options
def list_command(reason: str | None, sensor_id: str | None, since: str | None, state: str | None, limit: int,
                 as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """List dead letters, newest first."""
    target = _target(url, config_path, var_dir)
    since_t = parse_since(since, target.tz, datetime.now(UTC)) if since else None

    async def work() -> list[DeadLetter]:
        async with await psycopg.AsyncConnection.connect(target.url) as conn:
            return await dead_letters.fetch(conn, reason=reason, sensor_id=sensor_id, since=since_t, state=state,
                                          limit=limit)

    letters = _run(target.url, work())
    if as_json:
        click.echo(json.dumps([_letter_doc(x) for x in letters], indent=2, ensure_ascii=False))
        return
    if not letters:
        click.echo("no dead letters match")
        return
    click.echo(f"{'ID':>7}  {'RECEIVED (UTC)':19}  {'SOURCE':6}  {'SENSOR':8}  {'REASON':16}  {'STATE':8}  "
               "WHERE / ERROR")
    for x in letters:
        where = x.topic or x.endpoint or "-"
        click.echo(f"{x.id:>7}  {x.received_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {x.source:6}  "
                   f"{x.sensor_id or '?':8}  {x.reason:16}  {x.state:8}  {where}")
        click.echo(f"{'':>9}{_short(f'replayed: {x.replay_result}' if x.replayed_at else x.current_error)}")
    click.echo(f"{len(letters)} letter(s) shown (newest first, --limit {limit})")


@deadletter.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="replay this letter (repeatable)")
@click.option("--all", "all_", is_flag=True, help="replay every letter not replayed yet, oldest first")
@click.option("--reason", default=None, help="only letters with this reason code")
@click.option("--sensor", "sensor_id", default=None, help="only letters of this sensor")
@click.option("--json", "as_json", is_flag=True, help="print the outcomes as JSON")
@_db_options
def replay_command(ids: tuple[int, ...], all_: bool, reason: str | None, sensor_id: str | None, as_json: bool,
                   url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """Decode stored MQTT/HTTP payloads again with today's formats and registry, and store their readings."""
    if bool(ids) == all_:
        raise click.UsageError("give either --id N (one or more) or --all")
    target = _target(url, config_path, var_dir)
    outcomes, skipped = _run(target.url, _replay(target, list(ids) if ids else None, reason, sensor_id))
    failed = any(o.status in ("failed", "missing") for o in outcomes)
    if as_json:
        click.echo(json.dumps({"outcomes": [_outcome_doc(o) for o in outcomes],
                               "not_replayable": [{"source": s, "reason": r, "count": n} for (s, r), n in skipped]},
                              indent=2, ensure_ascii=False))
    else:
        for o in outcomes:
            click.echo(_outcome_line(o))
        for (source, why), n in skipped:
            click.echo(f"{n} {source} letter(s) ({why}) not replayed: only MQTT and HTTP payload letters are "
                       "replayable" + ("; a writer conflict keeps the first stored value (use `aqnet reprocess`)"
                                       if source == "writer" else ""))
        counts = {s: sum(o.status == s for o in outcomes) for s in ("stored", "failed", "skipped",
                                                                     "not_replayable", "missing")}
        click.echo("replay: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
                   if outcomes else "replay: nothing to replay")
    if failed:
        raise SystemExit(1)


async def _replay(target: DatabaseTarget, ids: list[int] | None, reason: str | None, sensor_id: str | None
                  ) -> tuple[list[Outcome], list[tuple[tuple[str, str], int]]]:
    skew = target.settings.ingest.clock_skew_tolerance_s if target.settings else 300.0
    async with await psycopg.AsyncConnection.connect(target.url) as conn:  # fails fast when unreachable
        if ids is not None:
            letters = await dead_letters.fetch(conn, ids=ids, reason=reason, sensor_id=sensor_id, oldest_first=True)
            skipped: dict[tuple[str, str], int] = {}
        else:
            letters = await dead_letters.fetch(conn, reason=reason, sensor_id=sensor_id, state="unreplayed",
                                               sources=sorted(REPLAYABLE_SOURCES), oldest_first=True)
            counts = await dead_letters.count_by_source(conn, reason=reason, sensor_id=sensor_id, state="unreplayed")
            skipped = {k: n for k, n in counts.items() if k[0] not in REPLAYABLE_SOURCES}
    outcomes: list[Outcome] = []
    if letters:
        async with AsyncConnectionPool(target.url, min_size=1, max_size=2, open=False,
                                       kwargs={"application_name": "aqnet-deadletter-replay"}) as pool:
            await pool.wait(timeout=15)
            replayer = Replayer(pool, _network(target), tz=target.tz, skew_tolerance_s=skew)
            outcomes = await replayer.replay(letters)
    if ids is not None:
        found = {x.id for x in letters}
        outcomes += [Outcome(i, "missing", "no such dead letter" + (" matching the filters" if reason or sensor_id
                                                                    else "")) for i in ids if i not in found]
    return outcomes, sorted(skipped.items())


def _outcome_line(o: Outcome) -> str:
    head = f"#{o.letter_id} {o.sensor_id or '?'}"
    if o.status == "stored":
        return f"{head}: {o.message}"
    if o.status == "failed":
        return f"{head}: failed ({o.reason}): {o.message}"
    return f"{head}: {o.status.replace('_', ' ')}: {o.message}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_WIDTH else text[:_DETAIL_WIDTH - 1] + "…"


def _payload_text(payload: bytes | None) -> str | None:
    if payload is None:
        return None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _letter_doc(x: DeadLetter) -> dict[str, Any]:
    return {"id": x.id, "received_at": x.received_at.isoformat(), "source": x.source, "sensor_id": x.sensor_id,
            "reason": x.reason, "detail": x.detail, "error": x.current_error, "state": x.state,
            "topic": x.topic, "endpoint": x.endpoint, "format": x.format,
            "payload_text": _payload_text(x.payload),
            "payload_base64": base64.b64encode(x.payload).decode("ascii") if x.payload is not None else None,
            "reading": x.reading, "replayed_at": x.replayed_at.isoformat() if x.replayed_at else None,
            "replay_result": x.replay_result, "replay_attempts": x.replay_attempts}


def _outcome_doc(o: Outcome) -> dict[str, Any]:
    return {"id": o.letter_id, "sensor_id": o.sensor_id, "status": o.status, "reason": o.reason,
            "message": o.message}
