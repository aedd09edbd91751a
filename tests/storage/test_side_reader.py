"""storage.side_reader against a real TimescaleDB: the side read sees exactly the writer's exported snapshot (not
what is committed after it, not the writer's own uncommitted writes), and a failed side read says so."""

from __future__ import annotations

import logging

import psycopg
import pytest

from storage.side_reader import SideRead, export_snapshot


def _names(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM side_t ORDER BY name").fetchall()]


def test_the_side_read_sees_the_exported_snapshot(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE side_t (name text)")
        setup.execute("INSERT INTO side_t VALUES ('before')")
        with psycopg.connect(database_url) as writer:
            writer.execute("INSERT INTO side_t VALUES ('own, uncommitted')")
            snapshot = export_snapshot(writer).result()
            setup.execute("INSERT INTO side_t VALUES ('committed after the export')")
            side = SideRead(writer, snapshot, _names)
            assert side.result() == ["before"]
            assert _names(writer) == ["before", "committed after the export", "own, uncommitted"]  # read committed
            writer.rollback()


def test_a_failed_side_read_returns_none_and_warns(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(database_url) as writer:
        writer.execute("SELECT 1")
        with caplog.at_level(logging.WARNING, logger="storage.side_reader"):
            side = SideRead(writer, "00000003-0000001B-1", _names, name="the test read")  # no such snapshot
            assert side.result() is None
        assert "the test read on a second connection failed" in caplog.text
        writer.rollback()
