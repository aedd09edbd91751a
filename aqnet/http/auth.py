"""Authentication of the HTTP listeners' callers: devices (HTTP basic, `storage.device_credentials`) and API
clients (bearer tokens, `storage.tokens`). Shell over aqnet.http.limits' pure pieces.

Contracts:
- Lookups run on the authenticator's own small pool (`http.auth_pool_size`), never on ingest's: a flood of
  made-up credentials can exhaust this pool, not the one readings are written through. A lookup waits at most
  `lookup_timeout_s` for a connection; when the database cannot answer, the caller gets `Unavailable` (503
  without naming any host or the reason: those are logged, not answered).
- A client (aqnet.http.limits.client_address) with `auth_failures_per_minute` failures in the last minute gets
  `Limited` (429, Retry-After) before anything is checked.
- Devices: an unknown sensor and a wrong password both give `None` after the same scrypt work (the unknown
  sensor is checked against a dummy hash). A verified (sensor, password) pair is remembered for `cache_s`, so a
  device pays the scrypt once per `cache_s`, and a revoked credential keeps working for at most that long.
- No secret is logged, cached in clear or put in an error: the cache keys on a sha256 of the credential.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aqnet.http.limits import FailureLimiter, TrustedProxies, client_address, parse_basic
from storage import device_credentials
from storage.tokens import ApiToken, authenticate

__all__ = ["Authenticator", "Limited", "Unavailable"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limited:
    """Too many failed authentications from this client: refuse (429) for `retry_after_s`."""

    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The credentials could not be checked now (the database): 503, send again."""


class Authenticator:
    """Checks credentials on its own pool, with per-client failure limits (see the module docstring)."""

    def __init__(self, pool: AsyncConnectionPool[Any] | None, *, trusted_proxies: TrustedProxies | None = None,
                 auth_failures_per_minute: int = 20, auth_cache_s: float = 60.0, lookup_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.trusted = trusted_proxies or TrustedProxies()
        self.limiter = FailureLimiter(auth_failures_per_minute, 60.0)
        self.cache_s, self.lookup_timeout_s, self.clock = auth_cache_s, lookup_timeout_s, clock
        self._verified: dict[bytes, tuple[str, float]] = {}  #: sha256(user \0 password) → (sensor id, until)
        self.failures = 0  #: failed authentications (a metric)
        self.limited = 0  #: requests refused by the failure limit

    def client(self, scope: dict[str, Any] | Any) -> str:
        """The client address of an ASGI scope (believing forwarding headers only from trusted proxies)."""
        peer = scope.get("client")
        return client_address(peer[0] if peer else None, scope.get("headers", []), self.trusted)

    def _gate(self, client: str) -> Limited | None:
        now = self.clock()
        if self.limiter.blocked(client, now):
            self.limited += 1
            return Limited(self.limiter.retry_after(client, now))
        return None

    def _failed(self, client: str) -> None:
        self.failures += 1
        self.limiter.failed(client, self.clock())

    async def device(self, client: str, authorization: str | None) -> str | Limited | Unavailable | None:
        """The sensor id whose HTTP basic credentials these are, or None (missing, malformed, unknown, wrong)."""
        if (limited := self._gate(client)) is not None:
            return limited
        credentials = parse_basic(authorization)
        if credentials is None:
            self._failed(client)
            return None
        user, password = credentials
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        cached = self._verified.get(key)
        now = self.clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            stored = await self._lookup(lambda conn: device_credentials.lookup(conn, user))
        except _Down:
            return Unavailable()
        ok = await asyncio.to_thread(device_credentials.verify_password, password,
                                     stored or device_credentials.DUMMY_HASH)
        if not ok or stored is None:
            self._failed(client)
            return None
        if self.cache_s > 0:
            if len(self._verified) > 10_000:
                self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
            self._verified[key] = (user, now + self.cache_s)
        return user

    async def bearer(self, client: str, secret: str | None) -> ApiToken | Limited | Unavailable | None:
        """The active API token whose secret this is, or None (missing, unknown, malformed, revoked)."""
        if (limited := self._gate(client)) is not None:
            return limited
        if not secret:
            self._failed(client)
            return None
        try:
            token = await self._lookup(lambda conn: authenticate(conn, secret))
        except _Down:
            return Unavailable()
        if token is None:
            self._failed(client)
        return token

    async def _lookup(self, query: Callable[[Any], Any]) -> Any:
        if self.pool is None:
            raise _Down
        try:
            async with self.pool.connection(timeout=self.lookup_timeout_s) as conn:
                return await query(conn)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("credentials not checked: the authentication pool has no database connection (%s)",
                        type(exc).__name__)
            raise _Down from None


class _Down(Exception):
    pass
