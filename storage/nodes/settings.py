"""The `nodes` settings section: several aqnet machines on one broker and one database. Pure (storage).

Composed by `aqnet.config.Settings` under `nodes`. Off by default: one node (the daemon, with its
`ingest.processes`) behaves as it always did."""

from __future__ import annotations

import os
import socket
from typing import Annotated

from pydantic import Field, model_validator

from sensors.settings import Section

__all__ = ["NodesSettings"]


class NodesSettings(Section):
    enabled: bool = Field(default=False, description=(
        "Run as one node of several: intake partitions and Modbus link groups are taken through leases in the "
        "database (docs/operators/nodes.md). Off: this daemon takes every sensor and station itself."))
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description=(
        "This node's name in the leases and in `aqnet nodes`; unset: `<hostname>-<pid>` (a new name at every "
        "start, so a restarted node never mistakes an old lease for its own)."))
    partitions: Annotated[int, Field(ge=1, le=256)] = Field(default=8, description=(
        "Intake partitions: the MQTT sensors are split by a CRC-32 of their id into this many persistent "
        "sessions (`<mqtt.client_id>-p<k>`), each consumed by one node at a time. Fixed for the network's "
        "lifetime: changing it moves sensors between sessions (drain first: docs/operators/nodes.md). More "
        "partitions than nodes lets the load spread evenly (at most ceil(partitions / nodes) per node)."))
    lease_ttl_s: Annotated[float, Field(gt=0)] = Field(default=15.0, description=(
        "A lease lapses this long after its last renewal (the database's clock); then another node may take it. "
        "The time a dead node's partitions wait for a new owner."))
    lease_renew_s: Annotated[float, Field(gt=0)] = Field(default=3.0, description=(
        "Seconds between renewals (and between rebalancing steps). A node that has not renewed for "
        "`lease_ttl_s − lease_renew_s` stops consuming what the lease covers, before it can lapse (fencing). "
        "Must be at most a third of `lease_ttl_s`."))

    @model_validator(mode="after")
    def _timings(self) -> NodesSettings:
        if self.lease_renew_s * 3 > self.lease_ttl_s:
            raise ValueError(f"nodes.lease_renew_s: expected at most lease_ttl_s / 3 ({self.lease_ttl_s / 3:g}), "
                             f"got {self.lease_renew_s:g} (a node must renew at least twice, and stop consuming, "
                             "before its lease lapses)")
        return self

    def fence_after_s(self) -> float:
        """Seconds after the start of its last successful renewal at which a node stops consuming."""
        return self.lease_ttl_s - self.lease_renew_s

    def resolved_node_id(self) -> str:
        """`node_id`, or `<hostname>-<pid>`."""
        return self.node_id or f"{socket.gethostname()}-{os.getpid()}"
