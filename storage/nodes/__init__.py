"""Several aqnet nodes on one broker and one database: leases of intake partitions and Modbus link groups.

Index: `storage.nodes.plan` (pure: partition of a sensor, fair share, one node's rebalancing step),
`storage.nodes.settings` (the `nodes` section), `storage.nodes.store` (I/O: members and leases in PostgreSQL),
`storage.nodes.fence` (I/O: the write path's fencing). See docs/operators/nodes.md.
"""

from __future__ import annotations

from storage.nodes.plan import LeasePlan, fair_share, partition_keys, partition_of, plan_leases

__all__ = ["LeasePlan", "fair_share", "partition_keys", "partition_of", "plan_leases"]
