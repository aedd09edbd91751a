"""storage.nodes.fence: a refusal by the fence drops the stale session's readings, stops it first, writes the rest
(pure: a scripted writer stands for the database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest

from ingest.letter import Letter
from ingest.reading import QC, Reading
from sensors.delivery import http_delivery, mqtt_delivery
from storage.nodes.fence import FencedSink, session_of, writer_options

T0 = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def reading(session: str | None, value: float) -> Reading:
    delivery = (mqtt_delivery(session, 7, "aqnet/MS01/readings", b"{}", dup=False) if session
                else http_delivery("MS01", "/data", b"{}", window_s=60))
    return Reading(sensor_id="MS01", device_id="MS01-a", variable="pm25", time=T0, value=value, unit="µg/m³",
                   flags=QC.RECEIVE_TIME, raw_value=value, raw_unit="µg/m³", received_at=T0, delivery=delivery)


def refusal(session: str, sqlstate: str = "AQF01") -> psycopg.Error:
    """What psycopg raises for the fence's RAISE: SQLSTATE AQF01, the session in the detail (the real one:
    tests/storage/nodes/test_store.py)."""
    diag = type("Diag", (), {"message_detail": session, "message_primary": "refused"})()
    cls = type("Refusal", (psycopg.Error,), {"sqlstate": sqlstate, "diag": diag})
    return cls("refused")


class ScriptedWriter:
    def __init__(self, refuse: list[str], sqlstate: str = "AQF01") -> None:
        self.refuse = list(refuse)
        self.sqlstate = sqlstate
        self.written: list[list[float]] = []

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object:
        sessions = {session_of(r) for r in batch}
        for session in self.refuse:
            if session in sessions:
                raise refusal(session, self.sqlstate)
        self.written.append([r.value for r in batch])
        return len(batch)


def test_session_of_reads_the_client_id_of_an_mqtt_delivery() -> None:
    assert session_of(reading("aqnet:odd-p3", 1.0)) == "aqnet:odd-p3"  # a client id may hold colons
    assert session_of(reading(None, 1.0)) is None


async def test_the_refused_sessions_readings_are_dropped_after_it_is_stopped() -> None:
    stopped: list[str] = []
    writer = ScriptedWriter(["aq-p1"])

    async def on_fenced(session: str) -> None:
        stopped.append(session)
        writer.refuse.remove(session)  # the database refuses it no more once it is out of the batch

    sink = FencedSink(writer, on_fenced)
    await sink.write([reading("aq-p0", 1.0), reading("aq-p1", 2.0), reading(None, 3.0), reading("aq-p1", 4.0)])
    assert stopped == ["aq-p1"]
    assert writer.written == [[1.0, 3.0]]
    assert sink.refused == 2


async def test_other_database_errors_reach_the_pipeline() -> None:
    async def on_fenced(session: str) -> None:
        raise AssertionError("not a fence refusal")

    with pytest.raises(psycopg.Error, match="refused"):
        await FencedSink(ScriptedWriter(["aq-p0"], sqlstate="23505"), on_fenced).write([reading("aq-p0", 1.0)])


def test_writer_options_name_the_node_and_bound_a_vanished_writers_locks() -> None:
    options = writer_options("aq-1", idle_in_transaction_s=3)
    assert "-c aqnet.node_id=aq-1 " in options and "idle_in_transaction_session_timeout=3000" in options
    with pytest.raises(ValueError, match="node id"):
        writer_options("a b", idle_in_transaction_s=3)
