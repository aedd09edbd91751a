"""The `http_device_credentials` table: HTTP basic credentials of the sensors that POST their readings
(the airrohr firmware's "send to own API"). I/O (psycopg 3 async), with pure hashing helpers.

Contract: the username is the sensor id and the password is 192 random bits (`secrets`), returned once by
`issue`. Only a salted scrypt hash is stored (`hash_password`; `scrypt$n$r$p$salt$hash`, salt and hash base64).
`verify_password` compares in constant time and never raises on a malformed hash (it is then just wrong).
`lookup` returns the stored hash of a sensor's credentials, or None; the caller (aqnet.http.auth) verifies the
password with a dummy hash when there is none, so an unknown sensor and a wrong password cost the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from psycopg import AsyncConnection

__all__ = ["DUMMY_HASH", "hash_password", "issue", "lookup", "new_password", "revoke", "verify_password"]

#: scrypt cost: 16 MiB of memory and a few tens of ms per check (the listener caches a verified credential)
_N, _R, _P = 1 << 14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits); fits the airrohr firmware's 64-character field."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of `password`: `scrypt$n$r$p$<salt b64>$<hash b64>`."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """True when `password` hashes to `stored` (constant-time compare); False for a malformed `stored`."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True), n=int(n),
                             r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


#: verified against when a sensor has no credentials, so that the answer takes as long as a wrong password's
DUMMY_HASH = hash_password(secrets.token_urlsafe(24))


async def issue(conn: AsyncConnection[Any], sensor_id: str, *, created_by: str, password: str | None = None) -> str:
    """New credentials for `sensor_id` (replacing any it had); returns the password (not stored)."""
    secret = password or new_password()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO http_device_credentials (sensor_id, secret_hash, created_by) VALUES (%s, %s, %s) "
            "ON CONFLICT (sensor_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, created_at = now(), "
            "created_by = EXCLUDED.created_by", (sensor_id, hash_password(secret), created_by))
    return secret


async def revoke(conn: AsyncConnection[Any], sensor_id: str) -> bool:
    """Delete `sensor_id`'s credentials; False when it had none."""
    async with conn.transaction():
        cur = await conn.execute("DELETE FROM http_device_credentials WHERE sensor_id = %s", (sensor_id,))
    return cur.rowcount > 0


async def lookup(conn: AsyncConnection[Any], sensor_id: str) -> str | None:
    """The stored hash of `sensor_id`'s credentials, or None."""
    if len(sensor_id) > 64 or "\x00" in sensor_id:
        return None
    cur = await conn.execute("SELECT secret_hash FROM http_device_credentials WHERE sensor_id = %s", (sensor_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])
