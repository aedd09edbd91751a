"""The `api_tokens` table: issue, list, revoke and authenticate the HTTP API's bearer tokens. I/O (psycopg 3 async).

Contract: a token's secret is `aqn_` + 32 random bytes (URL-safe base64) from `secrets`; only its sha256 is
stored (see migration 0005 for why a fast hash is right for random secrets), and the secret is returned once, by
`create_token`. Each function runs on the caller's async connection; the writes run in their own transaction
(a savepoint when the caller already has one). A revoked token is kept (its name stays in the audit trail) and
never authenticates again. `authenticate` also stamps `last_used_at`, at most once a minute per token so that a
busy client does not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from psycopg import AsyncConnection

__all__ = ["ROLES", "ApiToken", "IssuedToken", "Role", "TokenError", "authenticate", "create_token",
           "hash_secret", "list_tokens", "new_secret", "revoke_token"]

Role = Literal["technician", "officer", "reader"]
#: technician: registry and maintenance writes; officer: alert operations; reader: read only (all roles read)
ROLES: tuple[Role, ...] = get_args(Role)

_PREFIX = "aqn_"  #: makes a leaked token recognisable by secret scanners and in logs
_SECRET_BYTES = 32  #: 256 bits from the OS CSPRNG
_COLUMNS = "id, name, role, created_at, created_by, last_used_at, revoked_at"


#: one statement, one round trip per request: the token, with last_used_at stamped when older than a minute
_AUTHENTICATE = f"""
WITH found AS (SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = %(hash)s AND revoked_at IS NULL),
     stamped AS (UPDATE api_tokens t SET last_used_at = now() FROM found WHERE t.id = found.id
                 AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
                 RETURNING t.last_used_at)
SELECT id, name, role, created_at, created_by, coalesce((SELECT last_used_at FROM stamped), last_used_at),
       revoked_at FROM found
"""


class TokenError(Exception):
    """A token operation was refused; `code` is not_found | revoked | invalid, `message` says which token."""

    def __init__(self, code: Literal["not_found", "revoked", "invalid"], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One issued token, without its secret."""

    id: int
    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created and its secret, which is not stored and cannot be shown again."""

    token: ApiToken
    secret: str


def new_secret() -> str:
    """A fresh random bearer secret: `aqn_` + 43 URL-safe characters (32 random bytes)."""
    return _PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: sha256 of its UTF-8 bytes, lowercase hex (64 characters)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _token(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(id=int(row[0]), name=row[1], role=row[2], created_at=row[3], created_by=row[4],
                    last_used_at=row[5], revoked_at=row[6])


async def create_token(conn: AsyncConnection[Any], *, name: str, role: str, created_by: str) -> IssuedToken:
    """Issue a token for `role` named `name` (who or what uses it); TokenError(invalid) for a bad role/name."""
    if role not in ROLES:
        raise TokenError("invalid", f"new token {name!r}: role {role!r} is not one of {', '.join(ROLES)}")
    if not name.strip() or "\x00" in name:
        raise TokenError("invalid", f"new token: name {name!r} must be non-empty text (who or what uses it)")
    secret = new_secret()
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(f"INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES (%s, %s, %s, %s) "
                          f"RETURNING {_COLUMNS}", (name.strip(), role, hash_secret(secret), created_by))
        row = await cur.fetchone()
    assert row is not None
    return IssuedToken(_token(row), secret)


async def list_tokens(conn: AsyncConnection[Any], *, include_revoked: bool = False) -> list[ApiToken]:
    """Every token (without secrets), oldest first; revoked ones only with `include_revoked`."""
    where = "" if include_revoked else " WHERE revoked_at IS NULL"
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM api_tokens{where} ORDER BY id")
        return [_token(r) for r in await cur.fetchall()]


async def revoke_token(conn: AsyncConnection[Any], token_id: int) -> ApiToken:
    """Revoke a token at once; TokenError(not_found) if no such id, TokenError(revoked) if already revoked."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(f"UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
                          f"RETURNING {_COLUMNS}", (token_id,))
        row = await cur.fetchone()
        if row is None:
            await cur.execute("SELECT revoked_at FROM api_tokens WHERE id = %s", (token_id,))
            old = await cur.fetchone()
            if old is None:
                raise TokenError("not_found", f"token {token_id}: no such token (see `aqnet tokens list`)")
            raise TokenError("revoked", f"token {token_id}: already revoked at {old[0].isoformat()}")
    return _token(row)


async def authenticate(conn: AsyncConnection[Any], secret: str) -> ApiToken | None:
    """The active token whose secret this is, or None (unknown, malformed or revoked); stamps last_used_at."""
    if not secret.startswith(_PREFIX) or len(secret) > 128:
        return None  # not one of ours: no lookup
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_AUTHENTICATE, {"hash": hash_secret(secret)})
        row = await cur.fetchone()
    return None if row is None else _token(row)
