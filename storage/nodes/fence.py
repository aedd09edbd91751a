"""A node's measurements sink: the database only, and a refusal by the fence drops the stale session's readings.
I/O glue over `storage.writer` (implements `ingest.pipeline.Sink`).

In nodes mode the broker's sessions are the spool: a node that cannot reach the database acknowledges nothing
(`write` raises, the pipeline retries and withholds every ack), gives up its partitions before their leases lapse,
and the next holder receives the unacknowledged messages from the broker. A spool there would be wrong twice over:
a batch spooled and acknowledged lives only on a disk the new holder cannot read, and one whose acknowledgement did
not reach the broker is stored twice — once by the new holder (a redelivery) and again at replay (the old holder's
first delivery, which a receipt does not match: `storage.deliveries`). docs/operators/nodes.md says more.

The database refuses a receipt of a partition session the writing node no longer holds (migration 0021, SQLSTATE
`AQF01`, the session in the error's detail). `write` then calls `on_fenced(session)` — the node stops that session
*before* the batch is acknowledged, so the acknowledgements of its messages go nowhere and the broker redelivers
them to the holder — drops the batch's readings of that session and writes the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import psycopg

from ingest.letter import Letter
from ingest.reading import Reading

__all__ = ["FENCED", "FencedSink", "session_of", "writer_options"]

log = logging.getLogger(__name__)

#: SQLSTATE of the fence's refusal (migration 0021)
FENCED = "AQF01"


class _Writer(Protocol):
    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object: ...


def session_of(reading: Reading) -> str | None:
    """The MQTT session (client id) a receive-time reading arrived on (`sensors.delivery.mqtt_delivery`)."""
    if reading.delivery is None or not reading.delivery.key.startswith("mqtt:"):
        return None
    return reading.delivery.key[5:].rsplit(":", 2)[0]


def writer_options(node_id: str, *, idle_in_transaction_s: float) -> str:
    """libpq `options` of a node's measurements writer connections: the node's id (the fence reads it), and a
    session the database ends soon when its client vanishes inside a batch — a batch holds its partitions' lease
    rows locked until it ends, and a take waits for it (idle in a transaction for `idle_in_transaction_s`; the
    server's TCP keepalives drop a silent peer in about 5 + 3 · 2 s, as `alerts.leader` does)."""
    if not node_id or any(c.isspace() or c == "\\" for c in node_id):
        raise ValueError(f"writer_options: node id {node_id!r} must be non-empty, without spaces or backslashes")
    idle_ms = max(1, round(idle_in_transaction_s * 1000))
    return (f"-c aqnet.node_id={node_id} -c idle_in_transaction_session_timeout={idle_ms} "
            "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3")


class FencedSink:
    """The database writer behind a node's pipeline (module docstring)."""

    def __init__(self, writer: _Writer, on_fenced: Callable[[str], Awaitable[None]]) -> None:
        self._writer = writer
        self._on_fenced = on_fenced
        self.refused = 0  #: readings dropped because their session's lease had passed to another node

    async def write(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> object:
        """Write the batch; a fenced session's readings are dropped (unacknowledged: module docstring)."""
        while True:
            try:
                return await self._writer.write(batch, letters)
            except psycopg.Error as exc:
                if exc.sqlstate != FENCED or not exc.diag.message_detail:
                    raise
                session = exc.diag.message_detail
                await self._on_fenced(session)
                kept = [r for r in batch if session_of(r) != session]
                self.refused += len(batch) - len(kept)
                log.warning("node fenced from session %s: %d readings of it left to its holder (%s)", session,
                            len(batch) - len(kept), exc.diag.message_primary)
                if len(kept) == len(batch):  # the refusal named a session this batch has no reading of
                    raise
                batch = kept

    async def close(self) -> None:
        """Nothing to flush: every batch `write` accepted is in the database."""
