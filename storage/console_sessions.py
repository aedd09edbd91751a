"""The `console_sessions` table: signed-in web console sessions and their CSRF tokens. I/O (psycopg 3 async).

Contract: `open_session` makes a session secret (32 random bytes from `secrets`, URL-safe base64) and a CSRF
token (the same), stores the secret's sha256 with the token and an expiry, and returns both once; the secret
goes into the cookie, the token into every form of the session (synchronizer token). `session_of` answers the
session of a secret, with its user, only while it has not expired and the user is neither disabled nor locked;
it stamps `last_seen_at`. `close_session` deletes one; expired ones are deleted on sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from storage.users import User, get_user

__all__ = ["ConsoleSession", "close_session", "open_session", "session_of"]

_SECRET_BYTES = 32  #: 256 bits from the OS CSPRNG


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live session: whose it is, its forms' CSRF token and when it ends."""

    user: User
    csrf_token: str
    expires_at: datetime


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def open_session(conn: AsyncConnection[Any], user: User, *, ttl_s: float, now: datetime
                       ) -> tuple[str, ConsoleSession]:
    """A new session of `user` lasting `ttl_s`: (the cookie's secret, the session). Expired sessions go."""
    secret, csrf = secrets.token_urlsafe(_SECRET_BYTES), secrets.token_urlsafe(_SECRET_BYTES)
    expires = now + timedelta(seconds=ttl_s)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("DELETE FROM console_sessions WHERE expires_at <= %s", (now,))
        await cur.execute("INSERT INTO console_sessions (id_hash, user_id, csrf_token, created_at, expires_at, "
                          "last_seen_at) VALUES (%s, %s, %s, %s, %s, %s)",
                          (_hash(secret), user.id, csrf, now, expires, now))
    return secret, ConsoleSession(user, csrf, expires)


async def session_of(conn: AsyncConnection[Any], secret: str | None, now: datetime) -> ConsoleSession | None:
    """The live session whose cookie secret this is, or None (module docstring)."""
    if not secret or len(secret) > 128:
        return None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE console_sessions s SET last_seen_at = %(now)s FROM console_users u WHERE s.id_hash = %(h)s "
            "AND u.id = s.user_id AND s.expires_at > %(now)s AND u.disabled_at IS NULL "
            "AND (u.locked_until IS NULL OR u.locked_until <= %(now)s) "
            "RETURNING s.user_id, s.csrf_token, s.expires_at", {"h": _hash(secret), "now": now})
        row = await cur.fetchone()
    if row is None:
        return None
    user = await get_user(conn, int(row["user_id"]))
    return None if user is None else ConsoleSession(user, row["csrf_token"], row["expires_at"])


async def close_session(conn: AsyncConnection[Any], secret: str | None) -> None:
    """End the session of this cookie secret (nothing when there is none)."""
    if secret:
        await conn.execute("DELETE FROM console_sessions WHERE id_hash = %s", (_hash(secret),))
