"""`aqnet db init` against a real TimescaleDB cluster: the daemon's role is not a superuser, owns its database,
and can apply every migration itself; a second run changes nothing; a superuser role is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from aqnet.cli import cli
from aqnet.localstack import TimescaleCluster
from storage.migrate import discover, migrate

pytestmark = pytest.mark.integration


def _init(admin: str, role: str, database: str, *extra: str) -> dict:
    res = CliRunner().invoke(cli, ["db", "init", "--admin-url", admin, "--role", role, "--database", database,
                                   "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_db_init_makes_a_non_superuser_owner_that_migrates(timescale: TimescaleCluster, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    role, database = f"aqnet_daemon_{suffix}", f"aqnet_prod_{suffix}"
    admin = timescale.url_for("postgres")
    (tmp_path / "pw").write_text("db-secret\n")
    try:
        first = _init(admin, role, database, "--password-file", str(tmp_path / "pw"))
        assert f"role {role}" in first["created"] and f"database {database} (owner {role})" in first["created"]
        again = _init(admin, role, database)
        assert again["created"] == [] and again["updated"] == []
        with psycopg.connect(admin) as conn:
            attrs = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolpassword IS NOT NULL "
                                 "FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        assert attrs == (False, False, False, True, True)
        daemon_url = f"postgresql://{role}@127.0.0.1:{timescale.port}/{database}"
        with psycopg.connect(daemon_url) as conn:
            assert [m.name for m in discover()] == migrate(conn)  # every migration, as the daemon's role
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'measurements'").fetchone()
            hyper = conn.execute("SELECT count(*) FROM timescaledb_information.hypertables").fetchone()
        assert owner == (role,) and hyper is not None and hyper[0] >= 3
        with psycopg.connect(admin) as conn:  # an existing superuser is never the daemon's role
            conn.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(role)))
        res = CliRunner().invoke(cli, ["db", "init", "--admin-url", admin, "--role", role, "--database", database])
        assert res.exit_code != 0 and f"role {role} exists with SUPERUSER" in res.output and "NOSUPERUSER" in res.output
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
