"""Which intake process polls which station, when the daemon runs several (`ingest.processes`). Pure (sensors).

One physical link (a TCP gateway, a serial bus: `sensors.modbus.link.link_key`) has one owner, so every station
behind it must be polled by the same process. Stations are therefore grouped into *link groups* — the connected
parts of the station–link graph: two stations are in one group when they share a link, directly or through other
stations — and each group goes to process `crc32(the group's smallest link key) mod count`.

The choice depends only on the group, never on the other stations, the order they come in or the Python process
(`hash()` is salted per process; CRC-32 is not): every process computes the same assignment from the same
registry snapshot without talking to the others, and a station added elsewhere in the network does not move a
station's poller. A registry change that joins two groups (a new device behind another station's gateway) may
move one of them, once.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from sensors.modbus.link.registry import link_key
from sensors.modbus.supervisor import PollTarget

__all__ = ["link_groups", "process_of", "share_of"]


def link_groups(targets: Mapping[str, PollTarget]) -> dict[str, str]:
    """station id → its link group's name (the smallest link key in the group)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    station_links: dict[str, list[str]] = {}
    for sid, target in targets.items():
        keys = sorted({link_key(d) for d in target.devices})
        station_links[sid] = keys
        for key in keys[1:]:
            a, b = find(keys[0]), find(key)
            if a != b:  # the smaller key names the merged group
                parent[max(a, b)] = min(a, b)
    return {sid: find(keys[0]) for sid, keys in station_links.items() if keys}


def process_of(group: str, count: int) -> int:
    """The process (0 … count − 1) that polls a link group."""
    if count < 1:
        raise ValueError(f"process count must be >= 1, got {count}")
    return zlib.crc32(group.encode()) % count


def share_of(targets: Mapping[str, PollTarget], index: int, count: int) -> dict[str, PollTarget]:
    """The targets process `index` of `count` polls (all of them when `count` is 1)."""
    if not 0 <= index < count:
        raise ValueError(f"process index {index} is not in 0..{count - 1}")
    if count == 1:
        return dict(targets)
    groups = link_groups(targets)
    return {sid: t for sid, t in targets.items() if process_of(groups[sid], count) == index}
