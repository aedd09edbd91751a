"""Which leases a node takes, keeps and gives up: intake partitions and Modbus link groups over several nodes. Pure.

Several aqnet nodes (machines) share one broker and one database. The work they split is a fixed set of *keys* of
two kinds: intake **partitions** (each one persistent MQTT session, its own client id, subscribed to the sensors
whose id hashes to it: `partition_of`) and Modbus **link groups** (the stations behind one physical link:
`sensors.modbus.shares.link_groups`). A node may work on a key only while it holds the key's lease in the database
(`storage.nodes.store`); the database, not this module, guarantees one holder at a time.

`plan_leases` is one node's step of the rebalancing, from what the database says now: the live nodes (members whose
heartbeat has not lapsed) and every key's holder (None: free, or its lease lapsed). Each node holds at most its
*fair share*, ``ceil(keys / live nodes)``:

- over its share (a node joined, or keys went away), it gives up its surplus — the keys it ranks last;
- under it, it takes free keys up to its share — the ones it ranks first;
- a key held by another node is never taken, even when that node is no longer live: its lease must lapse first
  (that lapse is the fence: the old holder stopped before it, `storage.nodes.fence`).

Ranking is rendezvous hashing (highest random weight: CRC-32 of node and key): each node prefers different keys,
so nodes that plan at the same moment seldom race for one key, and a key tends to return to the same node. Every
node applying its plan in turn converges: with N live nodes, N · ceil(K / N) ≥ K, so every key finds a holder, and
none holds more than its share (tests/storage/nodes/test_plan.py checks both over random histories).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LeasePlan", "as_seen_by", "fair_share", "partition_keys", "partition_of", "plan_leases", "rank"]


def partition_of(sensor_id: str, partitions: int) -> int:
    """The intake partition (0 … partitions − 1) of a sensor: CRC-32 of its id, stable across processes and
    machines (Python's `hash()` is salted per process)."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not sensor_id:
        raise ValueError("partition_of: sensor_id must not be empty")
    return zlib.crc32(sensor_id.encode()) % partitions


def partition_keys(client_id: str, partitions: int) -> list[str]:
    """The lease key of every partition: its MQTT session's client id, `<client_id>-p<k>`."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return [f"{client_id}-p{k}" for k in range(partitions)]


def fair_share(keys: int, nodes: int) -> int:
    """The most keys one node holds: ceil(keys / nodes)."""
    if keys < 0 or nodes < 1:
        raise ValueError(f"fair_share: expected keys >= 0 and nodes >= 1, got {keys}, {nodes}")
    return math.ceil(keys / nodes)


def rank(node: str, key: str) -> int:
    """How much `node` wants `key` (rendezvous hashing: higher first)."""
    return zlib.crc32(f"{node}\0{key}".encode())


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """One node's step: leases to take (free keys) and to give up (surplus, or keys that no longer exist)."""

    take: tuple[str, ...] = ()
    release: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.take) & set(self.release):
            raise ValueError(f"LeasePlan: a key both taken and released: {sorted(set(self.take) & set(self.release))}")


def plan_leases(me: str, keys: Sequence[str], holders: Mapping[str, str | None], nodes: Collection[str]) -> LeasePlan:
    """Node `me`'s step towards its fair share of `keys` (module docstring).

    Args:
        me: this node's id.
        keys: every key of one kind that exists now.
        holders: key → the node holding its lease now (None, or absent: free or lapsed). Keys not in `keys` held
            by `me` are given up.
        nodes: the live nodes (`me` counts even when absent: it is planning).
    """
    if not me:
        raise ValueError("plan_leases: node id must not be empty")
    live = set(nodes) | {me}
    wanted = set(keys)
    gone = sorted(k for k, owner in holders.items() if owner == me and k not in wanted)
    mine = sorted((k for k in wanted if holders.get(k) == me), key=lambda k: (-rank(me, k), k))
    share = fair_share(len(wanted), len(live))
    if len(mine) > share:
        return LeasePlan(release=tuple(gone + mine[share:]))
    free = sorted((k for k in wanted if holders.get(k) is None), key=lambda k: (-rank(me, k), k))
    return LeasePlan(take=tuple(free[: share - len(mine)]), release=tuple(gone))


def as_seen_by(me: str, holders: Mapping[str, str | None], running: Collection[str]) -> dict[str, str | None]:
    """`holders` as node `me` must plan with them: a lease held under its id that it does not run (an earlier run of
    a node started again with the same id) counts as another node's, so it is taken only once it lapses."""
    return {k: (f"{owner} (earlier run)" if owner == me and k not in running else owner)
            for k, owner in holders.items()}
