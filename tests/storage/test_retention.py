"""storage.retention: the housekeeping plan for both TimescaleDB editions (pure), and whole-chunk drops on the real
database (Apache edition here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage.retention import Action, Policy, edition, plan_housekeeping, run_housekeeping


def test_nothing_to_do_by_default_on_the_apache_edition() -> None:
    assert plan_housekeeping(Policy(), "apache") == ()


def test_retention_drops_each_table_with_a_period() -> None:
    plan = plan_housekeeping(Policy(measurements_days=90, indices_days=400), "apache")
    assert plan == (Action("drop", "measurements", timedelta(days=90)), Action("drop", "indices", timedelta(days=400)))


def test_compression_is_switched_on_only_by_the_timescale_edition() -> None:
    policy = Policy(measurements_days=90, compress_after_days=7)
    assert all(a.kind == "drop" for a in plan_housekeeping(policy, "apache"))
    plan = plan_housekeeping(policy, "timescale")
    assert plan[0] == Action("drop", "measurements", timedelta(days=90))
    for table in ("measurements", "averages", "indices"):
        assert Action("enable_compression", table) in plan
        assert Action("compress", table, timedelta(days=7)) in plan
    # switching on comes before compressing, table by table
    assert plan.index(Action("enable_compression", "averages")) < plan.index(
        Action("compress", "averages", timedelta(days=7)))


def test_compression_off_and_tables_dropped_before_compression_are_left_alone() -> None:
    assert plan_housekeeping(Policy(compress_after_days=0), "timescale") == ()
    plan = plan_housekeeping(Policy(measurements_days=3, compress_after_days=7), "timescale")
    assert not [a for a in plan if a.table == "measurements" and a.kind != "drop"]


def test_bad_policy_and_edition_are_named() -> None:
    with pytest.raises(ValueError, match="measurements_days: expected >= 0"):
        Policy(measurements_days=-1)
    with pytest.raises(ValueError, match="expected 'apache' or 'timescale', got 'community'"):
        plan_housekeeping(Policy(), "community")  # type: ignore[arg-type]


def _insert(conn: psycopg.Connection, when: datetime) -> None:
    conn.execute("INSERT INTO measurements (time, sensor_id, variable, value, unit, flags, device_id, received_at) "
                 "VALUES (%s, 'USM', 'pm25', 10, 'µg/m³', 0, 'USM-pm25', %s)", (when, when))


@pytest.mark.integration
def test_old_chunks_are_dropped_whole_and_recent_data_kept(database_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert edition(conn) == "apache"  # what the project installs (deploy/install-system.sh)
        for days in (40, 35, 2, 0):
            _insert(conn, now - timedelta(days=days))
        run = run_housekeeping(conn, Policy(measurements_days=30))
        assert run.edition == "apache" and run.compressed == {}
        assert run.dropped == {"measurements": 2}  # 1-day chunks: the two old days, whole
        left = [r[0] for r in conn.execute("SELECT time FROM measurements ORDER BY time").fetchall()]
        assert left == [now - timedelta(days=2), now]
        assert run_housekeeping(conn, Policy(measurements_days=30)).dropped == {"measurements": 0}


def test_delivery_receipts_expire_after_their_period() -> None:
    plan = plan_housekeeping(Policy(delivery_receipts_s=8 * 86400), "apache")
    assert plan == (Action("expire", "delivery_receipts", timedelta(days=8)),)
    with pytest.raises(ValueError, match="delivery_receipts_s: expected >= 0"):
        Policy(delivery_receipts_s=-1)


@pytest.mark.integration
def test_old_delivery_receipts_are_deleted_and_recent_ones_kept(database_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO delivery_receipts (key, time, recorded_at) VALUES "
                     "('old', %s, %s), ('new', %s, %s)", (now, now - timedelta(days=9), now, now - timedelta(days=1)))
        run = run_housekeeping(conn, Policy(delivery_receipts_s=8 * 86400))
        assert run.expired == {"delivery_receipts": 1}
        assert conn.execute("SELECT key FROM delivery_receipts").fetchall() == [("new",)]
