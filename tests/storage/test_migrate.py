"""storage/migrate.py against a real TimescaleDB: applies in order, idempotent, checksummed, role grants."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aqnet.localstack import TimescaleCluster
from storage.migrate import MIGRATIONS_DIR, MigrationError, current_version, discover, migrate

MEASUREMENT_COLUMNS = [
    ("time", "timestamp with time zone", "NO"),
    ("sensor_id", "text", "NO"),
    ("variable", "text", "NO"),
    ("value", "double precision", "YES"),
    ("unit", "text", "NO"),
    ("flags", "integer", "NO"),
    ("raw_value", "double precision", "YES"),
    ("raw_unit", "text", "YES"),
    ("device_id", "text", "NO"),
    ("received_at", "timestamp with time zone", "NO"),
    # 0002_provenance_calibration
    ("conditions_temp_c", "double precision", "YES"),
    ("conditions_pressure_hpa", "double precision", "YES"),
    ("conditions_source", "text", "YES"),
    ("calibration_id", "bigint", "YES"),
    ("calibration_rh_pct", "double precision", "YES"),
]


@pytest.fixture
def empty_db(timescale: TimescaleCluster) -> Iterator[str]:
    """A database with the extension only (no migrations), dropped after the test."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(timescale.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(timescale.url_for(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    yield timescale.url_for(name)
    with psycopg.connect(timescale.url_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_discover_orders_files_and_checksums() -> None:
    migs = discover()
    assert [m.version for m in migs] == sorted(m.version for m in migs)
    assert migs[0].name == "0001_initial.sql"
    assert all(len(m.checksum) == 64 for m in migs)


def test_discover_rejects_badly_named_file(tmp_path: Path) -> None:
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"1_x\.sql"):
        discover(tmp_path)


def test_migrate_applies_then_is_noop(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert current_version(conn) == 0
        applied = migrate(conn)
        assert applied == [m.name for m in discover()]
        assert current_version(conn) == discover()[-1].version
        assert migrate(conn) == []
        rows = conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()
        assert [(v, n, c) for v, n, c in rows] == [(m.version, m.name, m.checksum) for m in discover()]


def test_changed_applied_file_is_an_error_naming_it(empty_db: str, tmp_path: Path) -> None:
    for m in discover():
        shutil.copy(m.path, tmp_path / m.name)
    with psycopg.connect(empty_db) as conn:
        migrate(conn, tmp_path)
        edited = (MIGRATIONS_DIR / "0001_initial.sql").read_text() + "\n-- edited\n"
        (tmp_path / "0001_initial.sql").write_text(edited)
        with pytest.raises(MigrationError, match=r"0001_initial\.sql.*changed after it was applied"):
            migrate(conn, tmp_path)


def test_failing_migration_rolls_back_and_names_file(empty_db: str, tmp_path: Path) -> None:
    for m in discover():
        shutil.copy(m.path, tmp_path / m.name)
    (tmp_path / "9999_broken.sql").write_text("CREATE TABLE half_done (x int);\nSELECT no_such_function();\n")
    with psycopg.connect(empty_db) as conn:
        with pytest.raises(MigrationError, match=r"9999_broken\.sql"):
            migrate(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert current_version(conn) == discover()[-1].version


def test_hypertables_exist_with_expected_dimensions(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        dims = dict(conn.execute(
            "SELECT hypertable_name, column_name FROM timescaledb_information.dimensions").fetchall())
        assert dims == {"measurements": "time", "averages": "period_end", "indices": "period_end"}
        interval = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'measurements'").fetchone()
        assert interval is not None and interval[0].days == 1
        hyper = {r[0] for r in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert hyper == {"measurements", "averages", "indices"}


def test_measurements_has_exactly_the_documented_columns(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        cols = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'measurements' ORDER BY ordinal_position").fetchall()
        assert cols == MEASUREMENT_COLUMNS
        comment = conn.execute("SELECT col_description('measurements'::regclass, 6)").fetchone()
        assert comment is not None and "ingest/reading.py" in comment[0]


def test_readonly_role_can_select_but_not_insert(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE aqnet_readonly")
        assert conn.execute("SELECT count(*) FROM measurements").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO sensors (id, name, kind, lat, lon) VALUES ('X', 'x', 'station', 0, 0)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM measurements")
        login = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'aqnet_readonly'").fetchone()
        assert login == (False,)
