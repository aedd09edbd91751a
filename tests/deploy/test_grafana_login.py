"""`aqnet up`'s read-only Grafana login (localstack.up.grafana_login): created once with a generated password kept in
var/ (mode 600), a member of aqnet_readonly, read-only by default, able to read the grafana_* views."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from aqnet.localstack import GRAFANA_LOGIN
from aqnet.localstack.up import grafana_login


def test_grafana_login_is_read_only_and_keeps_its_password(database_url: str, timescale, tmp_path: Path) -> None:
    password = grafana_login(timescale.url_for("postgres"), tmp_path)
    path = tmp_path / "grafana-password"
    assert path.read_text().strip() == password and len(password) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert grafana_login(timescale.url_for("postgres"), tmp_path) == password  # generated once
    with psycopg.connect(timescale.url_for("postgres")) as conn:
        row = conn.execute("SELECT r.rolcanlogin, r.rolsuper, pg_has_role(r.oid, 'aqnet_readonly', 'member'), "
                           "r.rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid r WHERE r.rolname = %s",
                           (GRAFANA_LOGIN,)).fetchone()
    assert row == (True, False, True, True)
    grafana_url = make_conninfo(**{**conninfo_to_dict(database_url), "user": GRAFANA_LOGIN, "password": password})
    with psycopg.connect(grafana_url) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM grafana_qc_flags").fetchone() == (10,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO norm_limits VALUES ('x', '1h', 1, 'test')")


def test_grafana_login_needs_its_password(database_url: str, timescale, tmp_path: Path) -> None:
    password = grafana_login(timescale.url_for("postgres"), tmp_path)
    base = {**conninfo_to_dict(database_url), "user": GRAFANA_LOGIN}
    for wrong in ("", "not-the-password"):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed|no password supplied"):
            psycopg.connect(make_conninfo(**{**base, "password": wrong})).close()
    psycopg.connect(make_conninfo(**{**base, "password": password})).close()
