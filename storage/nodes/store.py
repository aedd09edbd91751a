"""Members and leases of several aqnet nodes in PostgreSQL (migration 0021). I/O (psycopg 3, async).

Every time here is the database's (`clock_timestamp()`), never a node's: nodes whose clocks disagree still agree on
when a lease lapses. A lease is taken only when it is free (never held, released, or lapsed), and every take
increments its `epoch` (the fencing token), whoever takes it. Renewal extends only a lease the node still holds
unexpired; what it returns is what the node holds. Each call is one short transaction on the connection given
(autocommit, so nothing is held between calls); `lock_timeout` on that connection bounds how long a take waits for
a stale holder's write in flight (`storage.nodes.fence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection

__all__ = ["Lease", "LeaseKind", "Member", "heartbeat", "holders", "leave", "list_leases", "list_members",
           "live_nodes", "lock_holder", "release", "renew", "take"]

LeaseKind = Literal["partition", "station"]


@dataclass(frozen=True, slots=True)
class Member:
    """A node as the database knows it."""

    node_id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    live: bool  #: its heartbeat has not lapsed


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease row: `owner` None when released; `live` False once lapsed (by the database's clock)."""

    kind: str
    key: str
    owner: str | None
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    live: bool
    age_s: float  #: seconds since it was taken


async def heartbeat(conn: AsyncConnection[Any], node_id: str, *, host: str, pid: int, ttl_s: float) -> None:
    """Record that `node_id` is alive for `ttl_s` more seconds."""
    await conn.execute(
        "INSERT INTO node_members (node_id, host, pid, started_at, seen_at, expires_at) "
        "VALUES (%(n)s, %(h)s, %(p)s, clock_timestamp(), clock_timestamp(), "
        "        clock_timestamp() + make_interval(secs => %(t)s)) "
        "ON CONFLICT (node_id) DO UPDATE SET seen_at = EXCLUDED.seen_at, expires_at = EXCLUDED.expires_at, "
        "host = EXCLUDED.host, pid = EXCLUDED.pid", {"n": node_id, "h": host, "p": pid, "t": ttl_s})


async def live_nodes(conn: AsyncConnection[Any]) -> set[str]:
    """The nodes whose heartbeat has not lapsed."""
    cur = await conn.execute("SELECT node_id FROM node_members WHERE expires_at > clock_timestamp()")
    return {row[0] for row in await cur.fetchall()}


async def holders(conn: AsyncConnection[Any], kind: LeaseKind) -> dict[str, str | None]:
    """key → the node holding its lease now (None: released or lapsed), for every lease row of `kind`."""
    cur = await conn.execute(
        "SELECT key, CASE WHEN expires_at > clock_timestamp() THEN owner END FROM node_leases WHERE kind = %s",
        (kind,))
    return dict(await cur.fetchall())


async def take(conn: AsyncConnection[Any], node_id: str, kind: LeaseKind, key: str, *, ttl_s: float) -> int | None:
    """Take a free lease; its new epoch, or None when another node holds it."""
    cur = await conn.execute(
        "INSERT INTO node_leases AS l (kind, key, owner, epoch, acquired_at, renewed_at, expires_at) "
        "VALUES (%(k)s, %(key)s, %(n)s, 1, clock_timestamp(), clock_timestamp(), "
        "        clock_timestamp() + make_interval(secs => %(t)s)) "
        "ON CONFLICT (kind, key) DO UPDATE SET owner = EXCLUDED.owner, epoch = l.epoch + 1, "
        "acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at "
        "WHERE l.owner IS NULL OR l.expires_at <= clock_timestamp() "
        "RETURNING epoch", {"k": kind, "key": key, "n": node_id, "t": ttl_s})
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def renew(conn: AsyncConnection[Any], node_id: str, kind: LeaseKind, keys: Sequence[str], *,
                ttl_s: float) -> dict[str, int]:
    """Extend the leases of `keys` that `node_id` still holds unexpired; key → epoch of those (the rest are lost)."""
    if not keys:
        return {}
    cur = await conn.execute(
        "UPDATE node_leases SET renewed_at = clock_timestamp(), "
        "expires_at = clock_timestamp() + make_interval(secs => %(t)s) "
        "WHERE kind = %(k)s AND key = ANY(%(keys)s) AND owner = %(n)s AND expires_at > clock_timestamp() "
        "RETURNING key, epoch", {"k": kind, "keys": list(keys), "n": node_id, "t": ttl_s})
    return {key: int(epoch) for key, epoch in await cur.fetchall()}


async def release(conn: AsyncConnection[Any], node_id: str, kind: LeaseKind, keys: Sequence[str]) -> list[str]:
    """Give up leases `node_id` holds (another node may take them at once); the keys released."""
    if not keys:
        return []
    cur = await conn.execute(
        "UPDATE node_leases SET owner = NULL, expires_at = clock_timestamp() "
        "WHERE kind = %s AND key = ANY(%s) AND owner = %s RETURNING key", (kind, list(keys), node_id))
    return [row[0] for row in await cur.fetchall()]


async def leave(conn: AsyncConnection[Any], node_id: str) -> None:
    """A clean stop: give up every lease and the membership."""
    await conn.execute("UPDATE node_leases SET owner = NULL, expires_at = clock_timestamp() WHERE owner = %s",
                       (node_id,))
    await conn.execute("DELETE FROM node_members WHERE node_id = %s", (node_id,))


async def list_members(conn: AsyncConnection[Any]) -> list[Member]:
    """Every node the database knows, live ones first."""
    cur = await conn.execute(
        "SELECT node_id, host, pid, started_at, seen_at, expires_at > clock_timestamp() FROM node_members "
        "ORDER BY 6 DESC, node_id")
    return [Member(*row) for row in await cur.fetchall()]


async def list_leases(conn: AsyncConnection[Any]) -> list[Lease]:
    """Every lease row, by kind and key."""
    cur = await conn.execute(
        "SELECT kind, key, owner, epoch, acquired_at, renewed_at, expires_at, expires_at > clock_timestamp(), "
        "extract(epoch FROM clock_timestamp() - acquired_at)::float8 FROM node_leases ORDER BY kind, key")
    return [Lease(*row) for row in await cur.fetchall()]


async def lock_holder(conn: AsyncConnection[Any], key: int) -> str | None:
    """The application name of the session holding advisory lock `key` (a bigint), if any."""
    cur = await conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
    row = await cur.fetchone()
    return None if row is None else str(row[0])
