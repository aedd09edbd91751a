"""storage.tokens: secrets are random and stored only as their sha256; revoked or unknown tokens never
authenticate; last_used_at is stamped at most once a minute."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
from psycopg import AsyncConnection

from storage.tokens import (
    ROLES,
    TokenError,
    authenticate,
    create_token,
    hash_secret,
    list_tokens,
    new_secret,
    revoke_token,
)


def test_secrets_are_random_prefixed_and_hashed_as_sha256_hex() -> None:
    secrets = {new_secret() for _ in range(200)}
    assert len(secrets) == 200
    for s in secrets:
        assert s.startswith("aqn_") and len(s) == 4 + 43
    s = next(iter(secrets))
    assert hash_secret(s) == hashlib.sha256(s.encode()).hexdigest() and len(hash_secret(s)) == 64


async def _conn(url: str) -> AsyncConnection:
    return await AsyncConnection.connect(url, autocommit=True)


async def test_create_authenticate_revoke(database_url: str) -> None:
    async with await _conn(database_url) as conn:
        issued = {role: await create_token(conn, name=f"{role} one", role=role, created_by="ana") for role in ROLES}
        stored = [r[0] for r in await (await conn.execute("SELECT token_hash FROM api_tokens ORDER BY id")).fetchall()]
        assert stored == [hash_secret(issued[r].secret) for r in ROLES]
        assert not any(issued[r].secret in h for r in ROLES for h in stored)  # the secret itself is nowhere

        tech = issued["technician"]
        assert tech.token.last_used_at is None and tech.token.created_by == "ana"
        found = await authenticate(conn, tech.secret)
        assert found is not None and found.id == tech.token.id and found.role == "technician"
        assert found.last_used_at is not None
        again = await authenticate(conn, tech.secret)  # within the minute: not written again
        assert again is not None and again.last_used_at == found.last_used_at

        assert await authenticate(conn, tech.secret + "x") is None
        assert await authenticate(conn, "aqn_" + "A" * 43) is None
        assert await authenticate(conn, "not-ours") is None
        assert await authenticate(conn, "") is None

        revoked = await revoke_token(conn, tech.token.id)
        assert revoked.revoked_at is not None and not revoked.active
        assert await authenticate(conn, tech.secret) is None
        assert await authenticate(conn, issued["reader"].secret) is not None
        with pytest.raises(TokenError, match=rf"token {tech.token.id}: already revoked") as exc:
            await revoke_token(conn, tech.token.id)
        assert exc.value.code == "revoked"
        with pytest.raises(TokenError, match="token 999: no such token") as exc:
            await revoke_token(conn, 999)
        assert exc.value.code == "not_found"

        assert [t.role for t in await list_tokens(conn)] == ["officer", "reader"]
        assert [t.role for t in await list_tokens(conn, include_revoked=True)] == list(ROLES)


async def test_bad_role_and_name_are_refused(database_url: str) -> None:
    async with await _conn(database_url) as conn:
        with pytest.raises(TokenError, match="role 'admin' is not one of technician, officer, reader"):
            await create_token(conn, name="x", role="admin", created_by="ana")
        with pytest.raises(TokenError, match="name"):
            await create_token(conn, name="  ", role="reader", created_by="ana")
        with pytest.raises(psycopg.errors.CheckViolation):  # the table says the same, as a last line
            await conn.execute("INSERT INTO api_tokens (name, role, token_hash, created_by) "
                               "VALUES ('x', 'admin', %s, 'ana')", (hash_secret("x"),))
        assert await list_tokens(conn, include_revoked=True) == []
