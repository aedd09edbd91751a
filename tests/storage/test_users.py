"""storage.users and storage.console_sessions against a real TimescaleDB: only argon2id hashes are stored, the
lockout counts consecutive failures and ends with its time or a reset, disabling or resetting ends sessions, and
the read-only role (Grafana's) can read neither password hashes nor sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import AsyncConnection

from storage.console_sessions import close_session, open_session, session_of
from storage.users import LockoutPolicy, UserError, add_user, disable_user, reset_password, sign_in

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def test_the_readonly_role_cannot_read_password_hashes_or_sessions(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE aqnet_readonly")
        for table in ("console_users", "console_sessions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table}")


async def test_only_an_argon2id_hash_is_stored_and_bad_input_is_named(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await add_user(conn, username="ana", role="officer", password=PASSWORD, created_by="pytest")
        stored = await (await conn.execute("SELECT password_hash FROM console_users")).fetchone()
        assert stored is not None and stored[0].startswith("$argon2id$") and PASSWORD not in stored[0]
        with pytest.raises(UserError, match="'ana': that name is taken"):
            await add_user(conn, username="ana", role="reader", password=PASSWORD, created_by="pytest")
        with pytest.raises(UserError, match="at least 12 characters, got 5"):
            await add_user(conn, username="bob", role="reader", password="short", created_by="pytest")
        with pytest.raises(UserError, match="role 'boss' is not one of technician, officer, reader, admin"):
            await add_user(conn, username="bob", role="boss", password=PASSWORD, created_by="pytest")
        with pytest.raises(UserError, match="a name is 1-64 characters"):
            await add_user(conn, username="Bob Smith", role="reader", password=PASSWORD, created_by="pytest")


async def test_lockout_counts_consecutive_failures_and_ends_with_time_or_reset(database_url: str) -> None:
    policy = LockoutPolicy(3, 600)
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await add_user(conn, username="ana", role="officer", password=PASSWORD, created_by="pytest")
        assert (await sign_in(conn, "ana", "wrong 1", policy, NOW)).refusal == "wrong"
        assert (await sign_in(conn, "ana", PASSWORD, policy, NOW)).user is not None  # a success clears the count
        for n in range(2):
            assert (await sign_in(conn, "ana", f"wrong {n}", policy, NOW)).refusal == "wrong"
        assert (await sign_in(conn, "ana", "wrong 3", policy, NOW)).refusal == "locked"
        assert (await sign_in(conn, "ana", PASSWORD, policy, NOW + timedelta(seconds=599))).refusal == "locked"
        after = await sign_in(conn, "ana", PASSWORD, policy, NOW + timedelta(seconds=600))
        assert after.user is not None and after.user.failed_logins == 0
        for n in range(3):
            await sign_in(conn, "ana", f"wrong {n}", LockoutPolicy(3, 0), NOW)
        forever = await sign_in(conn, "ana", PASSWORD, policy, NOW + timedelta(days=3650))
        assert forever.refusal == "locked"  # lockout_s 0: until a reset
        await reset_password(conn, "ana", "another long passphrase")
        assert (await sign_in(conn, "ana", "another long passphrase", policy, NOW)).user is not None
        assert (await sign_in(conn, "nobody", PASSWORD, policy, NOW)).refusal == "wrong"


async def test_disabling_or_resetting_ends_sessions(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        user = await add_user(conn, username="ana", role="technician", password=PASSWORD, created_by="pytest")
        secret, opened = await open_session(conn, user, ttl_s=3600, now=NOW)
        found = await session_of(conn, secret, NOW + timedelta(minutes=5))
        assert found is not None and found.user.username == "ana" and found.csrf_token == opened.csrf_token
        assert await session_of(conn, secret, NOW + timedelta(hours=1)) is None  # expired
        assert await session_of(conn, "made-up", NOW) is None
        secret, _ = await open_session(conn, user, ttl_s=3600, now=NOW)
        await reset_password(conn, "ana", "another long passphrase")
        assert await session_of(conn, secret, NOW) is None
        secret, _ = await open_session(conn, user, ttl_s=3600, now=NOW)
        await disable_user(conn, "ana")
        assert await session_of(conn, secret, NOW) is None
        assert (await sign_in(conn, "ana", "another long passphrase", LockoutPolicy(), NOW)).refusal == "wrong"
        secret, _ = await open_session(conn, user, ttl_s=3600, now=NOW)  # a session of a disabled user is refused
        assert await session_of(conn, secret, NOW) is None
        await close_session(conn, secret)
        stored = await (await conn.execute("SELECT id_hash FROM console_sessions")).fetchall()
        assert secret not in str(stored)
